package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/approvals"
	"guichet/internal/mxclient"
)

// approveAndWelcome plays steps 1 and 2: alice asks, a moderator approves,
// alice gets the encrypted welcome. It returns alice's DM with guichet.
func approveAndWelcome(t testing.TB, w *world, alice *mxclient.Person) id.RoomID {
	t.Helper()
	bot, room := w.tb.Bot.UserID, w.tb.SupportRoom
	w.joinSupport(alice)
	ask := w.send(alice, room, "Bonjour, je souhaite accéder à l'Assistant IA")
	w.expect(alice, "the acknowledgement", from(bot), in(room), replyTo(ask), contains("n° 1"))

	cmd := w.send(w.tb.Moderator, room, "!approve "+alice.UserID().String())
	w.expect(w.tb.Moderator, "the approval confirmation", from(bot), in(room), replyTo(cmd), contains("validé", alice.UserID().String()))
	welcome := w.expect(alice, "the welcome in a DM", from(bot), notInRoom(room), contains("!accepter", w.cfg.Policy.URL))
	if !welcome.Encrypted {
		t.Errorf("the welcome was not end-to-end encrypted")
	}
	return welcome.RoomID
}

// Step 1: an agent who announces herself gets one acknowledgement, as a reply
// that mentions only her, with her request number and the usual delay.
func TestAnnounceIsAcknowledged(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	bot, room := w.tb.Bot.UserID, w.tb.SupportRoom
	alice := w.person("alice.martin-interieur.gouv.fr")
	w.joinSupport(alice)

	ask := w.send(alice, room, "Bonjour, je souhaite accéder à l'Assistant IA @room")
	ack := w.expect(alice, "the acknowledgement", from(bot), in(room), replyTo(ask))
	for _, want := range []string{"n° 1", "dans la journée", "message privé"} {
		if !strings.Contains(ack.Body, want) {
			t.Errorf("acknowledgement %q lacks %q", ack.Body, want)
		}
	}
	if ack.MsgType != event.MsgNotice {
		t.Errorf("acknowledgement is %s, want m.notice", ack.MsgType)
	}
	if len(ack.Mentions) != 1 || ack.Mentions[0] != alice.UserID() {
		t.Errorf("acknowledgement mentions %v, want only %s", ack.Mentions, alice.UserID())
	}
	if strings.Contains(ack.Body, "@room") || strings.Contains(ack.FormattedBody, "@room") {
		t.Errorf("acknowledgement echoes the agent's text: %q", ack.Body)
	}

	// A second message creates nothing; the moderator's !pending is the barrier.
	w.send(alice, room, "Je suis à la préfecture du Rhône.")
	cmd := w.send(w.tb.Moderator, room, "!pending")
	list := w.expect(w.tb.Moderator, "the pending list", from(bot), replyTo(cmd))
	if !strings.Contains(list.Body, "1 demande(s)") || !strings.Contains(list.Body, alice.UserID().String()) {
		t.Errorf("pending list = %q, want alice's single request", list.Body)
	}
	if n := count(alice, from(bot), in(room), mentions(alice.UserID())); n != 1 {
		t.Errorf("alice got %d notices addressed to her in the support room, want 1", n)
	}
}

// Steps 2 and 3: approval opens an encrypted DM with the welcome; after
// !accepter, a question gets Albert's answer rendered as HTML.
func TestApproveAcceptAndAsk(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	bot := w.tb.Bot.UserID
	alice := w.person("alice.martin-interieur.gouv.fr")
	dm := approveAndWelcome(t, w, alice)

	// Before accepting, a question gets the conditions again, not an answer.
	q0 := w.send(alice, dm, "Puis-je déjà poser une question ?")
	w.expect(alice, "a reminder of the conditions", from(bot), in(dm), replyTo(q0), contains("!accepter"))
	if w.tb.Albert.Calls() != 0 {
		t.Fatalf("Albert was called before consent")
	}

	consent(t, w, alice, dm)

	q := w.send(alice, dm, "Comment rédiger une note de synthèse ?")
	answer := w.expect(alice, "Albert's answer", from(bot), in(dm), replyTo(q), encrypted())
	if !strings.Contains(answer.Body, "Comment rédiger une note de synthèse ?") {
		t.Errorf("answer %q does not come from the fake Albert", answer.Body)
	}
	if answer.Format != event.FormatHTML || !strings.Contains(answer.FormattedBody, "<strong>") {
		t.Errorf("answer was not rendered from Markdown: format=%q html=%q", answer.Format, answer.FormattedBody)
	}
	reqs := w.tb.Albert.Requests()
	if len(reqs) != 1 {
		t.Fatalf("Albert got %d requests, want 1", len(reqs))
	}
	if msgs := reqs[0].Messages; len(msgs) != 2 || msgs[0].Role != "system" || msgs[1].Content != "Comment rédiger une note de synthèse ?" {
		t.Errorf("Albert got messages %+v, want the system prompt and the question", msgs)
	}

	// The next question carries the conversation so far.
	q2 := w.send(alice, dm, "Et pour une note de service ?")
	w.expect(alice, "the second answer", from(bot), in(dm), replyTo(q2))
	if reqs := w.tb.Albert.Requests(); len(reqs) != 2 || len(reqs[1].Messages) != 4 {
		t.Errorf("second call did not carry the previous turns: %+v", reqs)
	}
}

// Step 4: a stranger who writes to guichet in a DM is told how to ask; a
// non-moderator's !approve changes nothing and gets a polite refusal.
func TestStrangersAndSpoofedModerators(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	bot, room := w.tb.Bot.UserID, w.tb.SupportRoom
	carol := w.person("carol.durand-education.gouv.fr")

	dm := createDM(t, w, carol)
	hello := w.send(carol, dm, "Bonjour, tu peux m'aider ?")
	w.expect(carol, "how to ask for access", from(bot), in(dm), replyTo(hello), contains("Support et retours"))

	w.joinSupport(carol)
	spoof := w.send(carol, room, "!approve "+carol.UserID().String())
	w.expect(carol, "a refusal", from(bot), in(room), replyTo(spoof), contains("seuls les modérateurs"))
	_, err := w.app.Store.LatestRequest(w.ctx(), carol.UserID())
	if !errors.Is(err, approvals.ErrNotFound) {
		t.Errorf("a spoofed !approve created a request (err=%v)", err)
	}
	audit, err := w.app.Store.Audit(w.ctx(), carol.UserID())
	if err != nil || len(audit) != 1 || audit[0].Action != approvals.ActionRefused {
		t.Errorf("refusal not audited: %+v (err=%v)", audit, err)
	}

	// Approved later, carol gets the welcome in the DM she opened.
	w.send(w.tb.Moderator, room, "!approve "+carol.UserID().String())
	welcome := w.expect(carol, "the welcome", from(bot), contains("!accepter"))
	if welcome.RoomID != dm {
		t.Errorf("welcome sent in %s, not in carol's DM %s", welcome.RoomID, dm)
	}

	// A room opened without is_direct is not a direct message: guichet
	// says so and leaves at once, and the welcome later opens a real DM.
	dave := w.person("dave.leroy-culture.gouv.fr")
	resp, err := dave.Client.CreateRoom(w.ctx(), &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bot},
		InitialState: []*event.Event{{Type: event.StateEncryption, Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	w.expect(dave, "why guichet leaves", from(bot), in(resp.RoomID), contains("qu'en message privé"))
	if err := dave.WaitLeft(w.ctx(), resp.RoomID, bot); err != nil {
		t.Fatal(err)
	}
	w.send(w.tb.Moderator, room, "!approve "+dave.UserID().String())
	if m := w.expect(dave, "the welcome", from(bot), contains("!accepter")); m.RoomID == resp.RoomID {
		t.Errorf("welcome sent in the room guichet left (%s)", m.RoomID)
	}
}

// createDM has p open an encrypted direct message with guichet, as Tchap does.
func createDM(t testing.TB, w *world, p *mxclient.Person) id.RoomID {
	t.Helper()
	room, err := p.CreateDM(w.ctx(), w.tb.Bot.UserID)
	if err != nil {
		t.Fatalf("failed to create DM: %v", err)
	}
	if err := p.WaitMember(w.ctx(), room, w.tb.Bot.UserID); err != nil {
		t.Fatalf("guichet did not join the DM: %v", err)
	}
	return room
}

// Step 5: a restart acknowledges, welcomes and answers nothing twice, and a
// question sent while guichet was down is answered once.
func TestRestartLosesAndRepeatsNothing(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	bot := w.tb.Bot.UserID
	alice := w.person("alice.martin-interieur.gouv.fr")
	dm := approveAndWelcome(t, w, alice)
	acc := consent(t, w, alice, dm)
	device := w.app.Bot.DeviceID()

	w.stopGuichet()
	q := w.send(alice, dm, "Question posée pendant l'arrêt")
	w.startGuichet()
	if got := w.app.Bot.DeviceID(); got != device {
		t.Errorf("device changed across restart: %s then %s", device, got)
	}
	w.expect(alice, "the answer to the question sent while down", from(bot), in(dm), replyTo(q))

	// Barrier: one more exchange after the restart, then count.
	q2 := w.send(alice, dm, "Et une autre ?")
	w.expect(alice, "the next answer", from(bot), in(dm), replyTo(q2))
	checks := []struct {
		what string
		n    int
	}{
		{"acknowledgements", count(alice, from(bot), in(w.tb.SupportRoom), mentions(alice.UserID()))},
		{"welcomes", count(alice, from(bot), in(dm), contains("Votre accès à l'**Assistant IA** est validé"))},
		{"consent confirmations", count(alice, from(bot), replyTo(acc))},
		{"answers to the question sent while down", count(alice, from(bot), replyTo(q))},
	}
	for _, c := range checks {
		if c.n != 1 {
			t.Errorf("alice saw %d %s, want 1", c.n, c.what)
		}
	}
	if n := w.tb.Albert.Calls(); n != 2 {
		t.Errorf("Albert was called %d times, want 2", n)
	}
}

// A crash between the homeserver accepting a message and guichet recording it
// sends the message again at restart; the homeserver must recognise it.
func TestSendRepeatedAfterCrashIsDeliveredOnce(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	bot := w.tb.Bot.UserID
	alice := w.person("alice.martin-interieur.gouv.fr")
	dm := approveAndWelcome(t, w, alice)
	acc := consent(t, w, alice, dm)
	w.stopGuichet()

	// What a crash just after the send leaves behind: the message still unsent.
	db := openDB(t, w.cfg.Database)
	res, err := db.Exec(context.Background(), `UPDATE outbox SET sent_at=NULL, event_id='' WHERE reply_to=$1`, acc.String())
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%d outbox rows reply to !accepter, want 1", n)
	}
	db.Close()

	w.startGuichet()
	q := w.send(alice, dm, "Une question après la reprise")
	w.expect(alice, "the answer after the restart", from(bot), in(dm), replyTo(q))
	if n := count(alice, from(bot), replyTo(acc)); n != 1 {
		t.Errorf("alice saw %d consent confirmations, want 1", n)
	}
}
