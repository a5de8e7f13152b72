package e2e

// Adversarial instances of the kinds of issue 9, end to end on Dendrite,
// other than the ones the fixes were tested with. What held is kept as a
// regression test; what failed is marked BUG and skipped.

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/albert/fakealbert"
	"guichet/approvals"
	"guichet/internal/mxclient"
)

// A revocation names a person's access: writing again in the support room
// opens a new request for the moderators, it does not get access back,
// even on a domain that access.auto_approve lets in.
func TestAdversarialRevokedAgentOfAnAutoApprovedDomain(t *testing.T) {
	w := newWorld(t)
	w.cfg.Access.AutoApprove = []string{"@*-dinum.gouv.fr:" + w.tb.HS.ServerName}
	w.startGuichet()
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator
	jeanne := w.person("jeanne.roux-dinum.gouv.fr")
	_, ack := announce(t, w, jeanne, "Bonjour")
	mustContain(t, ack, "validé automatiquement")
	w.expect(jeanne, "the welcome", from(bot), notInRoom(room), contains("!accepter"))

	mustContain(t, command(t, w, mod, "!revoke "+jeanne.UserID().String()+" usage abusif"), "retiré")
	w.expect(jeanne, "the revocation", from(bot), contains("a été retiré", "usage abusif"))

	again := w.send(jeanne, room, "Pourquoi ? Je veux mon accès")
	w.expect(jeanne, "an answer to her new message", from(bot), in(room), replyTo(again))
	if st := status(t, w, jeanne.UserID()); st.Granted() || st == approvals.StatusWaitlisted {
		t.Errorf("after a revocation, writing in the room gave jeanne %s", st)
	}
	if n := count(jeanne, from(bot), contains("!accepter")); n != 1 {
		t.Errorf("jeanne got %d welcomes, want 1 (the revocation was undone)", n)
	}
}

// "!approve @alice:server." ends a sentence: the full stop is not part of
// alice's id, and no phantom account is pre-approved.
func TestAdversarialTargetEndingASentence(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	mod := w.tb.Moderator
	alice := w.person("alice.martin-interieur.gouv.fr")
	announce(t, w, alice, "Bonjour, je voudrais l'Assistant IA")
	reply := command(t, w, mod, "!approve "+alice.UserID().String()+".")
	if st := status(t, w, alice.UserID()); st != approvals.StatusApproved {
		t.Errorf("alice is %s after %q; guichet answered %q", st, "!approve "+alice.UserID().String()+".", reply.Body)
	}
}

// Everything a non-moderator can do in the support room (commands typed,
// edited, sent as replies, emotes or in a thread, reactions on their own
// request, a display name copied from a moderator, a forged "sender" in
// the content) decides nothing and makes guichet speak at most once to
// them besides their acknowledgement.
func TestAdversarialNoiseAndSpoofsFromANonModerator(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator
	carol := w.person("carol.durand-education.gouv.fr")
	ask, ack := announce(t, w, carol, "Bonjour, je voudrais l'Assistant IA")

	// She takes the moderator's display name.
	modName := "Modératrice Support"
	if err := mod.Client.SetDisplayName(w.ctx(), modName); err != nil {
		t.Fatal(err)
	}
	if err := carol.Client.SetDisplayName(w.ctx(), modName); err != nil {
		t.Fatal(err)
	}
	me := carol.UserID().String()
	for _, text := range []string{"!approve " + me, "!approve #1", "!aide", "!stats"} {
		w.send(carol, room, text)
	}
	contents := []*event.MessageEventContent{
		// An edit of her request into a command.
		{MsgType: event.MsgText, Body: "* !approve " + me,
			NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: "!approve " + me},
			RelatesTo:  &event.RelatesTo{Type: event.RelReplace, EventID: ask}},
		// A bare command replying to her own request.
		{MsgType: event.MsgText, Body: "!approve", RelatesTo: &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: ask}}},
		// An emote, and a command in a thread.
		{MsgType: event.MsgEmote, Body: "!approve " + me},
		{MsgType: event.MsgText, Body: "!approve " + me, RelatesTo: &event.RelatesTo{Type: event.RelThread, EventID: ask}},
		// A notice, which guichet never reads.
		{MsgType: event.MsgNotice, Body: "!approve " + me},
		// A mention of guichet.
		{MsgType: event.MsgText, Body: "guichet ?", Format: event.FormatHTML,
			FormattedBody: `<a href="https://matrix.to/#/` + bot.String() + `">guichet</a> ?`, Mentions: &event.Mentions{UserIDs: []id.UserID{bot}}},
	}
	for _, c := range contents {
		sendContent(t, w, carol, room, c)
	}
	// A forged sender in the content.
	if _, err := carol.Client.SendMessageEvent(w.ctx(), room, event.EventMessage, map[string]any{
		"msgtype": "m.text", "body": "!approve " + me, "sender": mod.UserID().String(),
	}); err != nil {
		t.Fatal(err)
	}
	// Reactions on her own request and acknowledgement.
	for _, target := range []id.EventID{ask, ack.EventID} {
		for _, key := range []string{"✅", "✅️", "❌"} {
			if _, err := carol.Client.SendReaction(w.ctx(), room, target, key); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Support-room events are handled in order: once the moderator's
	// command is answered, all of carol's have been.
	pending := command(t, w, mod, "!pending")
	mustContain(t, pending, "1 demande(s) en attente", me)
	// carol's client has seen everything guichet said before it.
	w.expect(carol, "the list, in the same room", func(m mxclient.Message) bool { return m.EventID == pending.EventID })
	if st := status(t, w, carol.UserID()); st != approvals.StatusPending {
		t.Errorf("carol's request is %s, want pending", st)
	}
	toCarol := func(m mxclient.Message) bool { return m.InReplyTo != pending.InReplyTo }
	if n := count(carol, from(bot), in(room), toCarol); n != 2 {
		var seen []string
		for _, m := range carol.Messages() {
			if m.Sender == bot && m.RoomID == room && toCarol(m) {
				seen = append(seen, m.Body)
			}
		}
		t.Errorf("guichet said %d things to carol in the room, want 2 (acknowledgement, one refusal):\n%s", n, strings.Join(seen, "\n"))
	}
	if n := count(mod, from(bot), in(room), contains("validé")); n != 0 {
		t.Errorf("%d approvals in the room", n)
	}
}

// threePersonDirectRoom has alice create a room flagged is_direct, as a
// DM is, but with carol invited too, and waits until guichet left it.
func threePersonDirectRoom(t *testing.T, w *world) (*mxclient.Person, id.RoomID) {
	t.Helper()
	bot := w.tb.Bot.UserID
	alice := w.person("alice.martin-interieur.gouv.fr")
	carol := w.person("carol.durand-education.gouv.fr")
	resp, err := alice.Client.CreateRoom(w.ctx(), &mautrix.ReqCreateRoom{
		Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{bot, carol.UserID()},
		InitialState: []*event.Event{{
			Type:    event.StateEncryption,
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	group := resp.RoomID
	w.expect(alice, "why guichet leaves", from(bot), in(group), contains("message privé"))
	if err := alice.WaitLeft(w.ctx(), group, bot); err != nil {
		t.Fatalf("guichet did not leave the three-person room: %v", err)
	}
	if n := count(alice, from(bot), in(group)); n != 1 {
		t.Errorf("guichet said %d things in the group, want 1", n)
	}
	return alice, group
}

// A room created as a direct message (is_direct) with a third person is
// not a DM: guichet says so once and leaves at once.
func TestAdversarialDirectRoomWithThreeMembersIsLeft(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	threePersonDirectRoom(t, w)
}

// ... and never takes it for the inviter's DM: her welcome, decisions and
// answers would be sent to a room guichet left.
func TestAdversarialDirectRoomWithThreeMembersIsNotHerDM(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	alice, group := threePersonDirectRoom(t, w)
	if dm, err := w.app.Store.DMRoom(w.ctx(), alice.UserID()); err != nil || dm == group {
		t.Errorf("alice's DM is %q (err %v): the three-person room guichet left", dm, err)
	}
}

// A moderator's "!quota @agent N/min" counts the questions already sent in
// the last 60 seconds, and so does overload mode.
func TestAdversarialPerMinuteOverrideCountsSentQuestions(t *testing.T) {
	w := newWorld(t)
	clock := &offsetClock{}
	w.opts.Now = clock.Now
	w.cfg.Limits.PerUser.MessagesPerMinute, w.cfg.Limits.PerUser.Burst = 5, 0
	w.cfg.Limits.OverloadFactor = 0.5
	w.startGuichet()
	alice, dm := agent(t, w, "alice.martin-interieur.gouv.fr")
	mod := w.tb.Moderator

	mustContain(t, ask(t, w, alice, dm, "Première"), "Voici ma réponse")
	mustContain(t, ask(t, w, alice, dm, "Deuxième"), "Voici ma réponse")
	mustContain(t, command(t, w, mod, "!quota "+alice.UserID().String()+" 2/min"), "2 par minute")
	mustContain(t, ask(t, w, alice, dm, "Troisième, même minute"), "patienter")
	if n := w.tb.Albert.Calls(); n != 2 {
		t.Errorf("%d calls to Albert, want 2: the override let a third question through", n)
	}

	// Back to the default (5/min), then overload halves it: 2 already sent
	// in the last minute, so the next is refused.
	clock.Advance(61 * time.Second)
	mustContain(t, command(t, w, mod, "!quota "+alice.UserID().String()+" défaut"), "limites par défaut")
	mustContain(t, ask(t, w, alice, dm, "Quatrième"), "Voici ma réponse")
	mustContain(t, ask(t, w, alice, dm, "Cinquième"), "Voici ma réponse")
	mustContain(t, command(t, w, mod, "!surcharge on"), "Mode surcharge activé")
	mustContain(t, ask(t, w, alice, dm, "Sixième, en surcharge"), "patienter")
	if n := w.tb.Albert.Calls(); n != 4 {
		t.Errorf("%d calls to Albert, want 4: overload mode let a question through", n)
	}
}

// Albert's limits are per model: the daily window of the model one agent
// picked does not stop the service for everyone on the default model.
func TestAdversarialDailyLimitOfOneModel(t *testing.T) {
	w := newWorld(t)
	w.cfg.Albert.Models = []string{"openai/gpt-oss-120b"}
	w.startGuichet()
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator
	alice, dm := agent(t, w, "alice.martin-interieur.gouv.fr")
	bob, bobDM := agent(t, w, "bob.petit-interieur.gouv.fr")

	mustContain(t, ask(t, w, alice, dm, "!modele openai/gpt-oss-120b"), "openai/gpt-oss-120b")
	w.tb.Albert.FailNextWith(1, fakealbert.Failure{Status: http.StatusTooManyRequests,
		Detail: "1000 requests for openai/gpt-oss-120b per day exceeded (remaining: 0)."})
	// Alice is answered by the default model, and told why.
	mustContain(t, ask(t, w, alice, dm, "Question au modèle épuisé"), "Voici ma réponse")
	w.expect(alice, "the fallback notice", from(bot), in(dm), contains("limite pour aujourd'hui", "modèle par défaut"))
	mustContain(t, ask(t, w, bob, bobDM, "Question au modèle par défaut"), "Voici ma réponse")
	if n := count(mod, from(bot), in(room), contains("⏸️")); n != 0 {
		t.Errorf("the support room was told the whole service is paused (%d notices)", n)
	}
}

// A bare command replying to a later message of the agent who asked (not
// the one that opened the request) is about that agent's request.
func TestAdversarialBareCommandReplyingToAFollowUp(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	room, mod := w.tb.SupportRoom, w.tb.Moderator
	alice := w.person("alice.martin-interieur.gouv.fr")
	announce(t, w, alice, "Bonjour, je voudrais l'Assistant IA")
	followUp := w.send(alice, room, "Toujours en attente ?")
	// Handled in order: once this is answered, the follow-up was read.
	command(t, w, mod, "!pending")
	cmd := sendContent(t, w, mod, room, &event.MessageEventContent{MsgType: event.MsgText, Body: "!approve",
		RelatesTo: &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: followUp}}})
	got := w.expect(mod, "the answer", from(w.tb.Bot.UserID), replyTo(cmd))
	if st := status(t, w, alice.UserID()); st != approvals.StatusApproved {
		t.Errorf("alice is %s; guichet answered %q", st, got.Body)
	}
}

// A default model that Albert no longer serves (404 "Model not found.") is
// an outage for every agent: operators are paged, and the agent, who chose
// nothing, is not told to choose another model.
func TestAdversarialDefaultModelNotFound(t *testing.T) {
	w := newWorld(t)
	ops, err := w.tb.Moderator.Client.CreateRoom(w.ctx(), &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "ops", Name: "Exploitation"})
	if err != nil {
		t.Fatal(err)
	}
	w.cfg.OpsRoom = "#ops:" + w.tb.HS.ServerName
	w.startGuichet()
	alice, dm := activeAgent(t, w)
	w.tb.Albert.FailNextWith(1, fakealbert.Failure{Status: http.StatusNotFound, Detail: "Model not found."})
	r := ask(t, w, alice, dm, "Bonjour")
	if strings.Contains(r.Body, "!modele") {
		t.Errorf("an agent who chose no model is told to choose another: %q", r.Body)
	}
	w.expect(w.tb.Moderator, "the operators' alert", from(w.tb.Bot.UserID), in(ops.RoomID), contains("Incident Albert API"))
}

// A moderator's command with a long reason (a pasted e-mail) is answered,
// not silently dropped.
func TestAdversarialLongModeratorCommand(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	alice := w.person("alice.martin-interieur.gouv.fr")
	announce(t, w, alice, "Bonjour, je voudrais l'Assistant IA")
	reason := strings.Repeat("Le compte n'est pas professionnel. ", 120)
	got := command(t, w, w.tb.Moderator, "!reject "+alice.UserID().String()+" "+reason)
	if st := status(t, w, alice.UserID()); st != approvals.StatusRejected {
		t.Errorf("alice is %s; guichet answered %q", st, got.Body)
	}
}
