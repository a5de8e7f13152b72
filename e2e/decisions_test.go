package e2e

import (
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/approvals"
)

// auditActions lists the audit actions about user, oldest first.
func auditActions(t testing.TB, w *world, user id.UserID) []string {
	t.Helper()
	rows, err := w.app.Store.Audit(w.ctx(), user)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, r.Action)
	}
	return out
}

// A reaction on an acknowledgement, and a request number, designate that
// request: ✅ after ❌ on one acknowledgement says the request is already
// refused and changes nothing (it used to open request n° 2 and approve it).
// Only !reverse undoes a decision, audited as such.
func TestDecisionsNameOneRequest(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator
	alice := w.person("alice.martin-interieur.gouv.fr")
	_, ack := announce(t, w, alice, "Bonjour, je voudrais l'Assistant IA")

	react := func(key string) {
		t.Helper()
		if _, err := mod.Client.SendReaction(w.ctx(), room, ack.EventID, key); err != nil {
			t.Fatal(err)
		}
	}
	react("❌")
	w.expect(mod, "the rejection", from(bot), replyTo(ack.EventID), contains("refusée"))
	w.expect(alice, "being told", from(bot), mentions(alice.UserID()), contains("n'a pas été acceptée"))

	react("✅")
	again := w.expect(mod, "the state of n° 1", from(bot), replyTo(ack.EventID), contains("déjà refusée"))
	mustContain(t, again, "n° 1", "par "+mod.UserID().String(), "!reverse #1")
	for _, cmd := range []string{"!approve #1", "!valider #1", "!approve " + alice.UserID().String()} {
		mustContain(t, command(t, w, mod, cmd), "n° 1", "déjà refusée", "!reverse #1")
	}
	if req, err := w.app.Store.LatestRequest(w.ctx(), alice.UserID()); err != nil || req.ID != 1 || req.Status != approvals.StatusRejected {
		t.Fatalf("latest request of alice = %+v, %v; want n° 1 still rejected", req, err)
	}
	if n := count(alice, from(bot), contains("!accepter")); n != 0 {
		t.Errorf("alice got %d welcomes while rejected", n)
	}
	// Told where she stands, not that her access is "not validated yet".
	dm := createDM(t, w, alice)
	acc := w.send(alice, dm, "!accepter")
	told := w.expect(alice, "the answer to !accepter", from(bot), in(dm), replyTo(acc))
	mustContain(t, told, "rien à accepter", "n'a pas été acceptée")

	// The explicit way back.
	mustContain(t, command(t, w, mod, "!reverse #1 erreur de ma part"), "Décision annulée", "n° 1")
	w.expect(alice, "the welcome", from(bot), notInRoom(room), contains("!accepter"))
	mustContain(t, command(t, w, mod, "!annuler #1"), "rien à annuler")
	want := []string{approvals.ActionRequest, approvals.ActionReject, approvals.ActionReverse}
	if got := auditActions(t, w, alice.UserID()); !slices.Equal(got, want) {
		t.Errorf("alice's audit = %v, want %v", got, want)
	}

	// A moderator's change of an agent's limits is audited too.
	mustContain(t, command(t, w, mod, "!quota "+alice.UserID().String()+" 10/min"), "10")
	if got := auditActions(t, w, alice.UserID()); got[len(got)-1] != approvals.ActionQuota {
		t.Errorf("alice's audit after !quota = %v, want it to end with %s", got, approvals.ActionQuota)
	}
}

// Someone who may not use a command makes guichet answer once per 10
// minutes in the shared room, however often they try; every attempt is
// audited.
func TestRefusalsInSupportRoomAreBounded(t *testing.T) {
	w := newWorld(t)
	clock := &offsetClock{}
	w.opts.Now = clock.Now
	w.startGuichet()
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator
	carol := w.person("carol.durand-education.gouv.fr")
	w.joinSupport(carol)

	for _, cmd := range []string{"!stats", "!stats", "!approve @carol:x", "!frobnicate", "!stats"} {
		w.send(carol, room, cmd)
	}
	// Support-room events are handled in order: once the moderator's
	// command is answered, carol's five have been.
	command(t, w, mod, "!pending")
	if n := count(carol, from(bot), in(room), mentions(carol.UserID())); n != 1 {
		t.Errorf("carol got %d refusals for 5 attempts, want 1", n)
	}
	want := []string{approvals.ActionRefused, approvals.ActionRefusedQuiet, approvals.ActionRefusedQuiet, approvals.ActionRefusedQuiet, approvals.ActionRefusedQuiet}
	if got := auditActions(t, w, carol.UserID()); !slices.Equal(got, want) {
		t.Errorf("carol's audit = %v, want %v", got, want)
	}

	// Ten minutes later she is answered again, once.
	clock.Advance(11 * time.Minute)
	later := w.send(carol, room, "!stats")
	w.expect(carol, "a second refusal", from(bot), replyTo(later), contains("seuls les modérateurs"))
}

// Invited into a room that is not a direct message, guichet says at once
// that it works only in DMs and leaves, without waiting for a message; a DM
// that becomes a group is left the same way.
func TestRoomsThatAreNotDirectMessagesAreLeft(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	bot := w.tb.Bot.UserID
	alice := w.person("alice.martin-interieur.gouv.fr")
	carol := w.person("carol.durand-education.gouv.fr")

	// A group room, encrypted as Tchap's are, without is_direct.
	resp, err := alice.Client.CreateRoom(w.ctx(), &mautrix.ReqCreateRoom{
		Preset: "private_chat",
		Invite: []id.UserID{bot},
		InitialState: []*event.Event{{
			Type:    event.StateEncryption,
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	group := resp.RoomID
	told := w.expect(alice, "why guichet leaves", from(bot), in(group), contains("message privé"))
	if !told.Encrypted {
		t.Error("the notice in an encrypted room was sent in clear")
	}
	if err := alice.WaitLeft(w.ctx(), group, bot); err != nil {
		t.Fatalf("guichet did not leave the group room: %v", err)
	}

	// A real DM, then a third person is invited.
	dm, err := alice.CreateDM(w.ctx(), bot)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.WaitMember(w.ctx(), dm, bot); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.InviteUser(w.ctx(), dm, &mautrix.ReqInviteUser{UserID: carol.UserID()}); err != nil {
		t.Fatal(err)
	}
	w.expect(alice, "why guichet leaves the DM", from(bot), in(dm), contains("message privé"))
	if err := alice.WaitLeft(w.ctx(), dm, bot); err != nil {
		t.Fatalf("guichet did not leave the DM turned group: %v", err)
	}
}

// A moderator who replies to an agent's request with a bare command, or
// reacts to the agent's own message, decides on that request.
func TestReplyOrReactionToTheRequestDesignatesIt(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator
	alice := w.person("alice.martin-interieur.gouv.fr")
	carol := w.person("carol.durand-education.gouv.fr")
	aliceAsk, _ := announce(t, w, alice, "Bonjour, je voudrais l'Assistant IA")
	carolAsk, _ := announce(t, w, carol, "Bonjour aussi")

	reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "!approve",
		RelatesTo: &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: aliceAsk}}}
	cmd, err := mod.Send(w.ctx(), room, reply)
	if err != nil {
		t.Fatal(err)
	}
	w.expect(mod, "the approval", from(bot), replyTo(cmd), contains("validé", "n° 1"))
	w.expect(alice, "the welcome", from(bot), notInRoom(room), contains("!accepter"))

	if _, err := mod.Client.SendReaction(w.ctx(), room, carolAsk, "❌"); err != nil {
		t.Fatal(err)
	}
	w.expect(mod, "the rejection", from(bot), replyTo(carolAsk), contains("refusée", "n° 2"))
	if req, err := w.app.Store.LatestRequest(w.ctx(), carol.UserID()); err != nil || req.Status != approvals.StatusRejected {
		t.Errorf("carol's request = %+v, %v; want rejected", req, err)
	}
}
