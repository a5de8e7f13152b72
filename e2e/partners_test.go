package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/albert/fakealbert"
	"guichet/config"
	"guichet/internal/mxclient"
)

const partnerKey = "cle-justice-0123"

// withJustice configures a partner, the Ministère de la Justice, on its own
// fake Albert (its own base URL and key), with its model, its collection,
// auto-approval and the cap given; the default profile searches 150281.
func withJustice(t *testing.T, w *world, maxActive int) *fakealbert.Server {
	t.Helper()
	justice := fakealbert.Start()
	t.Cleanup(justice.Close)
	justice.SetAPIKey(partnerKey)
	w.cfg.Retrieval.Collections = []int{150281}
	w.cfg.Partners = []config.Partner{{
		ID: "justice", Name: "Ministère de la Justice", Match: []string{"@*-justice.gouv.fr:*"},
		Albert:    config.PartnerAlbert{BaseURL: justice.URL, APIKey: partnerKey, Model: "openai/gpt-oss-120b"},
		Retrieval: config.PartnerRetrieval{Collections: []int{150277}},
		Access:    config.PartnerAccess{AutoApprove: true, MaxActiveUsers: maxActive},
	}}
	return justice
}

// partnerAgent announces p in the support room; the partner's rule approves
// them at once; they accept the policy in the DM guichet opens.
func partnerAgent(t *testing.T, w *world, p *mxclient.Person) id.RoomID {
	t.Helper()
	bot, room := w.tb.Bot.UserID, w.tb.SupportRoom
	w.joinSupport(p)
	w.send(p, room, "Bonjour, je souhaite accéder à l'Assistant IA")
	dm := w.expect(p, "the welcome", from(bot), notInRoom(room), contains("!accepter")).RoomID
	consent(t, w, p, dm)
	return dm
}

// An agent of a partner is answered on the partner's key, with its model
// and its collections; an agent of the default profile on the default key.
// When the partner's key runs out of budget, only its agents are paused
// (told so, and the support room once); the default agent is answered at
// once. Moderators see the partner in !info, !partenaires and !stats.
func TestPartnerProfile(t *testing.T) {
	w := newWorld(t)
	justice := withJustice(t, w, 0)
	w.startGuichet()
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator

	alice, aliceDM := activeAgent(t, w)
	bob := w.person("bob.durand-justice.gouv.fr")
	bobDM := partnerAgent(t, w, bob)

	ask(t, w, bob, bobDM, "Combien dure le congé de maternité d'une salariée ?")
	reqs := justice.Requests()
	if len(reqs) != 1 || reqs[0].Model != "openai/gpt-oss-120b" || reqs[0].Header.Get("Authorization") != "Bearer "+partnerKey {
		t.Fatalf("the partner's Albert got %+v, want one call with its model and key", reqs)
	}
	if s := justice.SearchRequests(); len(s) != 1 || !slices.Equal(s[0].CollectionIDs, []int{150277}) {
		t.Errorf("the partner's searches = %+v, want its collection 150277", s)
	}
	for _, r := range w.tb.Albert.Requests() {
		if strings.Contains(r.LastUserMessage(), "salariée") {
			t.Errorf("the default Albert answered the partner's agent: %+v", r)
		}
	}
	defaultCalls := w.tb.Albert.Calls()
	ask(t, w, alice, aliceDM, "Combien dure le congé de maternité d'une fonctionnaire ?")
	if w.tb.Albert.Calls() != defaultCalls+1 || len(justice.Requests()) != 1 {
		t.Errorf("alice's question: default calls %d -> %d, partner calls %d", defaultCalls, w.tb.Albert.Calls(), len(justice.Requests()))
	}
	if s := w.tb.Albert.SearchRequests(); len(s) == 0 || !slices.Equal(s[len(s)-1].CollectionIDs, []int{150281}) {
		t.Errorf("the default searches = %+v, want 150281", s)
	}

	// The partner's budget is spent: its agents are paused, the room told once.
	justice.FailAlways(fakealbert.InsufficientBudget())
	paused := ask(t, w, bob, bobDM, "Et pour un fonctionnaire ?")
	if !strings.Contains(paused.Body, "votre administration") || !strings.Contains(paused.Body, "Ministère de la Justice") {
		t.Errorf("bob was told %q, want his administration's access paused", paused.Body)
	}
	w.expect(mod, "one notice naming the partner", from(bot), in(room), contains("budget", "Ministère de la Justice"))
	start := time.Now()
	answer := ask(t, w, alice, aliceDM, "Et le télétravail ?")
	if !strings.Contains(answer.Body, "Voici ma réponse") {
		t.Errorf("alice was told %q while the partner is paused", answer.Body)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("alice's answer took %s while the partner is paused", d)
	}
	calls := len(justice.Requests())
	again := ask(t, w, bob, bobDM, "Toujours pas ?")
	if !strings.Contains(again.Body, "votre administration") || len(justice.Requests()) != calls {
		t.Errorf("a paused partner was called again (%d -> %d calls): %q", calls, len(justice.Requests()), again.Body)
	}
	if n := count(mod, from(bot), in(room), contains("budget", "Ministère de la Justice")); n != 1 {
		t.Errorf("%d notices about the partner's budget, want 1", n)
	}

	info := w.send(mod, room, "!info "+bob.UserID().String())
	w.expect(mod, "!info", from(bot), in(room), replyTo(info), contains("Partenaire", "Ministère de la Justice"))
	list := w.send(mod, room, "!partenaires")
	w.expect(mod, "!partenaires", from(bot), in(room), replyTo(list), contains("Ministère de la Justice", "justice", "en pause", "1 avec accès"))
	stats := w.send(mod, room, "!stats justice")
	w.expect(mod, "!stats justice", from(bot), in(room), replyTo(stats), contains("Ministère de la Justice"))
	unknown := w.send(mod, room, "!stats interieur")
	w.expect(mod, "!stats of an unknown partner", from(bot), in(room), replyTo(unknown), contains("interieur", "justice"))
}

// A partner's cap has its own waitlist: when it is full, the partner's next
// agent waits while the default profile still approves; raising the
// partner's cap promotes its agent only.
func TestPartnerCap(t *testing.T) {
	w := newWorld(t)
	withJustice(t, w, 1)
	w.cfg.Access.MaxActiveUsers = 5
	w.startGuichet()
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator

	bob := w.person("bob.durand-justice.gouv.fr")
	partnerAgent(t, w, bob)
	carol := w.person("carol.petit-justice.gouv.fr")
	w.joinSupport(carol)
	w.send(carol, room, "Bonjour, je souhaite accéder à l'Assistant IA")
	w.expect(carol, "the waitlist notice", from(bot), contains("liste d'attente"))
	if n := count(carol, from(bot), notInRoom(room), contains("!accepter")); n != 0 {
		t.Fatal("carol was welcomed over the partner's cap")
	}
	// The default profile is not full: a moderator's approval welcomes alice.
	alice := w.person("alice.martin-interieur.gouv.fr")
	w.joinSupport(alice)
	w.send(alice, room, "Bonjour, je souhaite accéder à l'Assistant IA")
	w.expect(alice, "alice's acknowledgement", from(bot), in(room), contains("n° 3"))
	w.send(mod, room, "!approve "+alice.UserID().String())
	w.expect(alice, "alice's welcome", from(bot), notInRoom(room), contains("!accepter"))

	capCmd := w.send(mod, room, "!capacity justice")
	w.expect(mod, "the partner's capacity", from(bot), in(room), replyTo(capCmd), contains("Ministère de la Justice", "maximum : 1", "En liste d'attente : 1"))
	raise := w.send(mod, room, "!capacity justice 2")
	w.expect(mod, "the raised capacity", from(bot), in(room), replyTo(raise), contains("Ministère de la Justice", "2 agents"))
	w.expect(carol, "carol's welcome", from(bot), notInRoom(room), contains("!accepter"))
}

// The partner's key is checked at start-up (GET /me/info), and a key that
// expires within 14 days is announced once in the support room.
func TestPartnerKeyExpiry(t *testing.T) {
	w := newWorld(t)
	justice := withJustice(t, w, 0)
	justice.SetAccount(fakealbert.Account{Name: "justice", Expires: time.Now().Add(5 * 24 * time.Hour)})
	w.startGuichet()
	mod := w.tb.Moderator
	w.expect(mod, "the expiry warning", from(w.tb.Bot.UserID), in(w.tb.SupportRoom), contains("Ministère de la Justice", "expire"))
	if justice.MeInfoCalls() == 0 {
		t.Error("the partner's account was never read")
	}
	w.stopGuichet()
	w.startGuichet()
	list := w.send(mod, w.tb.SupportRoom, "!partenaires")
	w.expect(mod, "!partenaires", from(w.tb.Bot.UserID), in(w.tb.SupportRoom), replyTo(list), contains("budget : illimité", "clé valable jusqu'au"))
	if n := count(mod, from(w.tb.Bot.UserID), contains("Ministère de la Justice", "expire")); n != 1 {
		t.Errorf("%d expiry warnings after a restart, want 1", n)
	}
	_ = http.StatusOK
}
