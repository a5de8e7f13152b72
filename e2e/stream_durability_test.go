package e2e

import (
	"context"
	"guichet/config"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/internal/mxclient"
)

// answers are guichet's messages that answer question: replies to it in
// m.text (a placeholder or a whole answer), not edits, not notices.
func answers(p viewer, bot id.UserID, question id.EventID) []mxclient.Message {
	var out []mxclient.Message
	for _, m := range p.Messages() {
		if m.Sender == bot && m.InReplyTo == question && m.ReplaceOf == "" && m.MsgType == event.MsgText {
			out = append(out, m)
		}
	}
	return out
}

// shownText is what p sees of a message: its latest edit, or itself.
func shownText(p viewer, msg mxclient.Message) string {
	text := msg.Body
	for _, m := range p.Messages() {
		if m.ReplaceOf == msg.EventID && m.Sender == msg.Sender {
			text = m.Body
		}
	}
	return text
}

// dbCount runs a counting query on guichet's database (stopped or running).
func dbCount(t testing.TB, cfg config.Database, query string, args ...any) int {
	t.Helper()
	db := openDB(t, cfg)
	defer db.Close()
	var n int
	if err := db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// waitGrowing sends a question to a slow Albert and returns it with its
// placeholder once an edit showed some of the answer.
func waitGrowing(t *testing.T, w *world, alice *mxclient.Person, dm id.RoomID, q string) (id.EventID, mxclient.Message) {
	t.Helper()
	w.tb.Albert.SetTokenDelay(150 * time.Millisecond) // about 40 pieces: 6 s
	question := w.send(alice, dm, q)
	placeholder := w.expect(alice, "the placeholder", from(w.tb.Bot.UserID), replyTo(question))
	w.expect(alice, "an edit with some of the answer", from(w.tb.Bot.UserID), func(m mxclient.Message) bool {
		return m.ReplaceOf == placeholder.EventID && strings.Contains(m.Body, "Voici")
	})
	return question, placeholder
}

// Stopped while an answer grows, guichet continues it after the restart,
// even when Albert then answers at once: the same placeholder gets the
// final text, no second answer appears, and the question counts once.
func TestStreamStoppedWhileGrowingIsContinued(t *testing.T) {
	w := newWorld(t)
	w.cfg.Albert.EditInterval = 300 * time.Millisecond
	w.startGuichet()
	alice, dm := activeAgent(t, w)
	bot := w.tb.Bot.UserID

	q, placeholder := waitGrowing(t, w, alice, dm, "Explique la réforme, lentement")
	w.stopGuichet()
	w.tb.Albert.SetTokenDelay(0)
	w.startGuichet()

	w.expect(alice, "the final edit of the first placeholder", from(bot), func(m mxclient.Message) bool {
		return m.ReplaceOf == placeholder.EventID && strings.Contains(m.Body, "Bonne journée !") && !strings.HasSuffix(m.Body, "…")
	})
	// Barrier: one more exchange, then count.
	ask(t, w, alice, dm, "Et ensuite $1")
	if got := answers(alice, bot, q); len(got) != 1 {
		t.Errorf("alice saw %d answers to one question, want 1", len(got))
	}
	db := w.cfg.Database
	if n := dbCount(t, db, `SELECT messages FROM limit_state WHERE user_id=$1`, alice.UserID().String()); n != 2 {
		t.Errorf("the limits counted %d questions for 2 asked", n)
	}
	if n := dbCount(t, db, `SELECT COUNT(*) FROM usage_ledger WHERE user_id=$1 AND outcome='ok'`, alice.UserID().String()); n != 2 {
		t.Errorf("the usage ledger holds %d answered calls for 2 questions", n)
	}
}

// A placeholder whose send reached the homeserver but whose event id was
// never recorded (a crash between the two) is found in the room and edited,
// not sent again.
func TestPlaceholderSentBeforeACrashIsFound(t *testing.T) {
	w := newWorld(t)
	w.cfg.Albert.EditInterval = 300 * time.Millisecond
	w.startGuichet()
	alice, dm := activeAgent(t, w)
	bot := w.tb.Bot.UserID

	q, placeholder := waitGrowing(t, w, alice, dm, "Une question dont la réponse sera coupée")
	w.stopGuichet()
	// What a crash just after the send leaves: the send recorded as
	// started, its event id unknown.
	db := openDB(t, w.cfg.Database)
	res, err := db.Exec(context.Background(), `UPDATE question SET placeholder='' WHERE event_id=$1 AND placeholder_at<>0`, q.String())
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%d question rows recorded the placeholder's send, want 1", n)
	}
	db.Close()
	w.tb.Albert.SetTokenDelay(0)
	w.startGuichet()

	w.expect(alice, "the final edit of the first placeholder", from(bot), func(m mxclient.Message) bool {
		return m.ReplaceOf == placeholder.EventID && strings.Contains(m.Body, "Bonne journée !") && !strings.HasSuffix(m.Body, "…")
	})
	ask(t, w, alice, dm, "Et ensuite ?")
	if got := answers(alice, bot, q); len(got) != 1 {
		t.Errorf("alice saw %d answers to one question, want 1", len(got))
	}
}
