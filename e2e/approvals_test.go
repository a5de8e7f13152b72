package e2e

import (
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/approvals"
	"guichet/internal/mxclient"
)

// announce has p join the support room and ask; it returns the request's
// acknowledgement as p saw it.
func announce(t testing.TB, w *world, p *mxclient.Person, text string) (id.EventID, mxclient.Message) {
	t.Helper()
	w.joinSupport(p)
	ask := w.send(p, w.tb.SupportRoom, text)
	ack := w.expect(p, "the acknowledgement", from(w.tb.Bot.UserID), in(w.tb.SupportRoom), replyTo(ask))
	return ask, ack
}

// command has the moderator (or another person) type cmd in the support room
// and returns guichet's reply.
func command(t testing.TB, w *world, p *mxclient.Person, cmd string) mxclient.Message {
	t.Helper()
	evt := w.send(p, w.tb.SupportRoom, cmd)
	return w.expect(p, "the reply to "+cmd, from(w.tb.Bot.UserID), in(w.tb.SupportRoom), replyTo(evt))
}

func mustContain(t testing.TB, m mxclient.Message, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(m.Body, p) {
			t.Errorf("%q lacks %q", m.Body, p)
		}
	}
}

// Replies, threads and edits never open a second request; a rejected agent
// is told why and a new message opens a renewed request.
func TestRequestsAreNotDuplicatedAndRenewAfterRejection(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	room, mod := w.tb.SupportRoom, w.tb.Moderator
	alice := w.person("alice.martin-interieur.gouv.fr")
	ask, ack := announce(t, w, alice, "Bonjour, je voudrais l'Assistant IA")

	reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "Merci !",
		RelatesTo: &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: ack.EventID}}}
	thread := &event.MessageEventContent{MsgType: event.MsgText, Body: "Dans un fil",
		RelatesTo: &event.RelatesTo{Type: event.RelThread, EventID: ask}}
	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "* Bonjour (modifié)",
		NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: "Bonjour (modifié)"},
		RelatesTo:  &event.RelatesTo{Type: event.RelReplace, EventID: ask}}
	for _, c := range []*event.MessageEventContent{reply, thread, edit} {
		if _, err := alice.Send(w.ctx(), room, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.Client.RedactEvent(w.ctx(), room, ask); err != nil {
		t.Fatal(err)
	}
	list := command(t, w, mod, "!pending")
	mustContain(t, list, "1 demande(s)", "n° 1")

	rej := command(t, w, mod, "!reject "+alice.UserID().String()+" compte de test")
	mustContain(t, rej, "refusée", "compte de test")
	told := w.expect(alice, "the rejection", from(w.tb.Bot.UserID), in(room), mentions(alice.UserID()), contains("n'a pas été acceptée"))
	mustContain(t, told, "motif : compte de test")

	again := w.send(alice, room, "Je suis bien agente publique, je redemande")
	renewed := w.expect(alice, "a new acknowledgement", from(w.tb.Bot.UserID), replyTo(again))
	mustContain(t, renewed, "n° 2", "nouvelle demande")
	if n := count(alice, from(w.tb.Bot.UserID), mentions(alice.UserID()), contains("enregistrée")); n != 2 {
		t.Errorf("alice got %d acknowledgements, want 2", n)
	}
}

// Every mistake a moderator can make gets a precise answer and changes nothing.
func TestModeratorMistakesGetPreciseAnswers(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	mod := w.tb.Moderator
	alice := w.person("alice.martin-interieur.gouv.fr")
	announce(t, w, alice, "Bonjour")

	cases := []struct{ cmd, want string }{
		{"!approve", "Pour qui ?"},
		{"!approve @alice", "Je ne reconnais pas `@alice`"},
		{"!approve @personne:" + w.tb.HS.ServerName, "Je ne trouve pas de compte"},
		{"!approve " + w.tb.Bot.UserID.String(), "me valider moi-même"},
		{"!approve " + mod.UserID().String(), "est modérateur"},
		{"!approve #99", "pas de demande n° 99"},
		{"!reject #99 motif", "pas de demande n° 99"},
		{"!revoke " + alice.UserID().String(), "n'a pas d'accès à retirer"},
		{"!capacity -3", "Usage"},
		{"!frobnicate", "Je ne connais pas la commande `!frobnicate`"},
		{"!help", "!approve @agent"},
		{"!aide", "!capacity [partenaire] [N]"},
	}
	for _, c := range cases {
		mustContain(t, command(t, w, mod, c.cmd), c.want)
	}
	// The request is untouched, then a decision taken twice is explained.
	mustContain(t, command(t, w, mod, "!pending"), "1 demande(s)")
	mustContain(t, command(t, w, mod, "!valider #1"), "validé")
	again := command(t, w, mod, "!approve "+alice.UserID().String())
	mustContain(t, again, "déjà validée par "+mod.UserID().String(), "à l'instant")
	info := command(t, w, mod, "!info "+alice.UserID().String())
	mustContain(t, info, "demande n° 1", "validée", "demande par", "validation par "+mod.UserID().String())
}

// Moderators are read live from the room's power levels.
func TestPowerLevelChangesApplyAtOnce(t *testing.T) {
	w := newWorld(t)
	clock := &offsetClock{}
	w.opts.Now = clock.Now
	w.startGuichet()
	dave := w.person("dave.leroy-dinum.gouv.fr")
	w.joinSupport(dave)

	mustContain(t, command(t, w, dave, "!pending"), "seuls les modérateurs")
	if err := w.tb.SetPowerLevel(w.ctx(), dave.UserID(), 50); err != nil {
		t.Fatal(err)
	}
	// Wait until dave's own client saw the change: guichet syncs the same room.
	w.expectPowerLevel(dave, 50)
	mustContain(t, command(t, w, dave, "!pending"), "Aucune demande")
	if err := w.tb.SetPowerLevel(w.ctx(), dave.UserID(), 0); err != nil {
		t.Fatal(err)
	}
	w.expectPowerLevel(dave, 0)
	clock.Advance(approvals.RefusalQuiet) // refusals are answered once per RefusalQuiet
	mustContain(t, command(t, w, dave, "!attente"), "seuls les modérateurs")
}

// ✅ and ❌ on guichet's acknowledgement decide, for moderators only.
func TestReactionsDecide(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator
	alice := w.person("alice.martin-interieur.gouv.fr")
	carol := w.person("carol.durand-education.gouv.fr")
	_, aliceAck := announce(t, w, alice, "Bonjour")
	_, carolAck := announce(t, w, carol, "Bonjour aussi")

	react := func(p *mxclient.Person, target id.EventID, key string) id.EventID {
		resp, err := p.Client.SendReaction(w.ctx(), room, target, key)
		if err != nil {
			t.Fatal(err)
		}
		return resp.EventID
	}
	// carol tries to approve herself with a reaction: refused, nothing changes.
	react(carol, carolAck.EventID, "✅")
	w.expect(carol, "a refusal", from(bot), in(room), mentions(carol.UserID()), contains("seuls les modérateurs"))

	react(mod, aliceAck.EventID, "✅\ufe0f")
	w.expect(mod, "the approval", from(bot), replyTo(aliceAck.EventID), contains("validé", alice.UserID().String()))
	w.expect(alice, "the welcome", from(bot), notInRoom(room), contains("!accepter"))

	react(mod, carolAck.EventID, "❌")
	w.expect(mod, "the rejection", from(bot), replyTo(carolAck.EventID), contains("refusée", carol.UserID().String()))
	w.expect(carol, "being told", from(bot), mentions(carol.UserID()), contains("n'a pas été acceptée"))

	// Other emoji are just emoji.
	react(mod, aliceAck.EventID, "👍")
	mustContain(t, command(t, w, mod, "!info "+alice.UserID().String()), "validée")
	audit, err := w.app.Store.Audit(w.ctx(), carol.UserID())
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range audit {
		actions = append(actions, e.Action)
	}
	if strings.Join(actions, ",") != "request,refused_command,reject" {
		t.Errorf("carol's audit = %v", actions)
	}
}

// Beyond access.max_active_users, approvals wait; a revocation lets the
// oldest waiting agent in, with the welcome.
func TestCapacityWaitlistAndRevocation(t *testing.T) {
	w := newWorld(t)
	w.cfg.Access.MaxActiveUsers = 1
	w.startGuichet()
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator
	alice := w.person("alice.martin-interieur.gouv.fr")
	bob := w.person("bob.bernard-justice.gouv.fr")
	announce(t, w, alice, "Bonjour")
	announce(t, w, bob, "Bonjour")

	mustContain(t, command(t, w, mod, "!approve "+alice.UserID().String()), "validé")
	aliceDM := w.expect(alice, "the welcome", from(bot), notInRoom(room)).RoomID
	waitlisted := command(t, w, mod, "!approve "+bob.UserID().String())
	mustContain(t, waitlisted, "liste d'attente", "capacité atteinte (1/1)")
	w.expect(bob, "being waitlisted", from(bot), mentions(bob.UserID()), contains("liste d'attente"))
	mustContain(t, command(t, w, mod, "!capacite"), "**1** (maximum : 1)", "En liste d'attente : 1")

	revoked := command(t, w, mod, "!revoke "+alice.UserID().String()+" fin de mission")
	mustContain(t, revoked, "retiré", bob.UserID().String(), "sort de la liste d'attente", "je lui écris")
	w.expect(alice, "the revocation in her DM", from(bot), in(aliceDM), contains("retiré", "fin de mission"))
	w.expect(bob, "the welcome", from(bot), notInRoom(room), contains("!accepter"))

	// Raising the cap lets the next waiting agent in.
	carol := w.person("carol.durand-education.gouv.fr")
	announce(t, w, carol, "Bonjour")
	mustContain(t, command(t, w, mod, "!approve "+carol.UserID().String()), "liste d'attente")
	mustContain(t, command(t, w, mod, "!capacity 2"), "Capacité fixée à 2", carol.UserID().String())
	w.expect(carol, "the welcome", from(bot), notInRoom(room), contains("!accepter"))
}

// access.auto_approve and access.deny decide at once, audited.
func TestAutomaticRules(t *testing.T) {
	w := newWorld(t)
	w.cfg.Access.AutoApprove = []string{"@*-dinum.gouv.fr:" + w.tb.HS.ServerName}
	w.cfg.Access.Deny = []string{"@*-gmail.com:" + w.tb.HS.ServerName}
	w.startGuichet()
	bot, room := w.tb.Bot.UserID, w.tb.SupportRoom
	dinum := w.person("jeanne.roux-dinum.gouv.fr")
	outsider := w.person("paul.dupont-gmail.com")

	_, ack := announce(t, w, dinum, "Bonjour")
	mustContain(t, ack, "validé automatiquement")
	w.expect(dinum, "the welcome", from(bot), notInRoom(room), contains("!accepter"))
	_, ack = announce(t, w, outsider, "Bonjour")
	mustContain(t, ack, "réservé aux agents")
	// Insisting opens nothing and is not answered again (no flooding).
	w.send(outsider, room, "Vraiment ?")
	mustContain(t, command(t, w, w.tb.Moderator, "!pending"), "Aucune demande")
	if n := count(outsider, from(bot), mentions(outsider.UserID())); n != 1 {
		t.Errorf("the outsider got %d answers, want 1", n)
	}
	for user, want := range map[id.UserID]string{dinum.UserID(): approvals.ActionAutoApprove, outsider.UserID(): approvals.ActionDeny} {
		audit, err := w.app.Store.Audit(w.ctx(), user)
		if err != nil || len(audit) != 1 || audit[0].Action != want {
			t.Errorf("audit of %s = %+v (err %v), want one %s", user, audit, err, want)
		}
	}
}

// Two moderators deciding at the same moment: one decision applies, the
// other is told who took it.
func TestConcurrentDecisions(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	mod2 := w.person("moderatrice2")
	w.joinSupport(mod2)
	if err := w.tb.SetPowerLevel(w.ctx(), mod2.UserID(), 50); err != nil {
		t.Fatal(err)
	}
	w.expectPowerLevel(mod2, 50)
	alice := w.person("alice.martin-interieur.gouv.fr")
	announce(t, w, alice, "Bonjour")

	var wg sync.WaitGroup
	replies := make([]mxclient.Message, 2)
	for i, p := range []*mxclient.Person{w.tb.Moderator, mod2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			evt, err := p.SendText(w.ctx(), w.tb.SupportRoom, "!approve "+alice.UserID().String())
			if err != nil {
				t.Error(err)
				return
			}
			replies[i], _ = p.WaitMessage(w.ctx(), func(m mxclient.Message) bool { return m.InReplyTo == evt })
		}()
	}
	wg.Wait()
	won, lost := 0, 0
	for _, r := range replies {
		switch {
		case strings.Contains(r.Body, "déjà validée par"):
			lost++
		case strings.Contains(r.Body, "validé"):
			won++
		}
	}
	if won != 1 || lost != 1 {
		t.Errorf("replies %q and %q: want one approval and one 'déjà validée'", replies[0].Body, replies[1].Body)
	}
	w.expect(alice, "the welcome", from(w.tb.Bot.UserID), notInRoom(w.tb.SupportRoom))
	if n := count(alice, from(w.tb.Bot.UserID), contains("!accepter")); n != 1 {
		t.Errorf("alice got %d welcomes", n)
	}
}

// A new policy version asks agents to accept again before their next question.
func TestPolicyChangeAsksForConsentAgain(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	bot := w.tb.Bot.UserID
	alice, dm := activeAgent(t, w)

	w.stopGuichet()
	w.cfg.Policy.Version = "2027-01"
	w.startGuichet()
	q := w.send(alice, dm, "Une question")
	w.expect(alice, "the new conditions", from(bot), replyTo(q), contains("ont changé", "2027-01", "!accepter"))
	consent(t, w, alice, dm)
	q2 := w.send(alice, dm, "Une question")
	w.expect(alice, "the answer", from(bot), replyTo(q2), contains("Voici ma réponse"))
	if n := w.tb.Albert.Calls(); n != 1 {
		t.Errorf("Albert called %d times, want 1", n)
	}
}

// An approval typed while guichet is down is carried out once after restart.
func TestApprovalAcrossRestart(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	bot, room := w.tb.Bot.UserID, w.tb.SupportRoom
	alice := w.person("alice.martin-interieur.gouv.fr")
	announce(t, w, alice, "Bonjour")

	w.stopGuichet()
	cmd := w.send(w.tb.Moderator, room, "!approve "+alice.UserID().String())
	w.startGuichet()
	w.expect(w.tb.Moderator, "the confirmation", from(bot), replyTo(cmd))
	w.expect(alice, "the welcome", from(bot), notInRoom(room))
	w.stopGuichet()
	w.startGuichet()
	mustContain(t, command(t, w, w.tb.Moderator, "!info "+alice.UserID().String()), "validée")
	if n := count(alice, from(bot), contains("!accepter")); n != 1 {
		t.Errorf("alice got %d welcomes across restarts, want 1", n)
	}
	if n := count(w.tb.Moderator, from(bot), replyTo(cmd)); n != 1 {
		t.Errorf("the moderator got %d confirmations, want 1", n)
	}
}

func (w *world) expectPowerLevel(p *mxclient.Person, level int) {
	w.t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		pl, err := p.Client.StateStore.GetPowerLevels(w.ctx(), w.tb.SupportRoom)
		if err == nil && pl != nil && pl.GetUserLevel(p.UserID()) == level {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.t.Fatalf("%s never saw power level %d", p.UserID(), level)
}
