package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/conversation"
	"guichet/internal/testdb"
	"guichet/store"
)

// fileBytes reads the database and its write-ahead log, as a backup would.
func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	var all []byte
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// storeQuestion records one answered question as guichet does: the inbox
// row holding the decrypted event, the turns, and the answer sent.
func storeQuestion(t *testing.T, st *store.Store, room id.RoomID, user id.UserID, evt id.EventID, question, answer string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	raw := []byte(`{"type":"m.room.message","content":{"msgtype":"m.text","body":"` + question + `"}}`)
	if _, err := st.AddInbox(ctx, store.InboxItem{EventID: evt, RoomID: room, Sender: user, EventJSON: raw, ReceivedAt: at}); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkDone(ctx, evt, at); err != nil {
		t.Fatal(err)
	}
	if err := st.AddExchange(ctx, conversation.Exchange{Room: room, User: user, Question: evt,
		Asked: question, AskedAt: at, Answered: answer, AnsweredAt: at}); err != nil {
		t.Fatal(err)
	}
	key := "reply:" + evt.String()
	if err := st.Enqueue(ctx, store.Outgoing{Key: key, RoomID: room, ReplyTo: evt, MsgType: "m.text", Markdown: answer, CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkSent(ctx, key, evt+"-sent", at); err != nil {
		t.Fatal(err)
	}
}

// What guichet promises to forget leaves the files: the database (no free
// pages holding it) and the write-ahead log, while guichet runs.
func TestForgettingRemovesTheBytes(t *testing.T) {
	testdb.SQLiteOnly(t)
	const (
		alice  = id.UserID("@alice:hs")
		bob    = id.UserID("@bob:hs")
		room   = id.RoomID("!alice-dm:hs")
		bobDM  = id.RoomID("!bob-dm:hs")
		secret = "NIR-1850578006084-ALICE"
		quoted = "ANSWER-QUOTING-NIR-ALICE"
		kept   = "BOB-KEEPS-THIS-QUESTION"
	)
	tests := []struct {
		name   string
		forget func(st *store.Store) error
	}{
		{"!oublier", func(st *store.Store) error { return st.Forget(context.Background(), alice) }},
		{"redaction", func(st *store.Store) error { return st.ForgetEvent(context.Background(), room, "$secret") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "guichet.db")
			st, _ := openPath(t, path)
			at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
			storeQuestion(t, st, room, alice, "$secret", secret, quoted, at)
			storeQuestion(t, st, bobDM, bob, "$bob", kept, "a reply to bob", at)
			// Let some of it reach the main file, as it does in production.
			if err := st.Scrub(context.Background()); err != nil {
				t.Fatal(err)
			}
			storeQuestion(t, st, room, alice, "$later", "unrelated later question", "later answer", at.Add(time.Minute))
			if b := fileBytes(t, path); !bytes.Contains(b, []byte(secret)) {
				t.Fatal("the secret is not in the files before forgetting: the test would prove nothing")
			}

			if err := tt.forget(st); err != nil {
				t.Fatal(err)
			}
			b := fileBytes(t, path)
			for _, s := range []string{secret, quoted} {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("%q is still in the database files", s)
				}
			}
			if !bytes.Contains(b, []byte(kept)) {
				t.Errorf("bob's question was lost too")
			}
			turns, err := st.RecentTurns(context.Background(), room, time.Time{}, 10)
			if err != nil {
				t.Fatal(err)
			}
			for _, turn := range turns {
				if turn.Content == secret || turn.Content == quoted {
					t.Errorf("turn %q is still in the context", turn.Content)
				}
			}
			if tt.name == "redaction" && len(turns) != 2 {
				t.Errorf("redacting one question left %d turns, want the other exchange's 2", len(turns))
			}
		})
	}
}

// Texts older than privacy.retention go, bytes included; newer ones stay,
// and so do the ids that deduplicate.
func TestExpireTexts(t *testing.T) {
	const (
		room = id.RoomID("!dm:hs")
		user = id.UserID("@alice:hs")
		old  = "OLD-QUESTION-WITH-A-PHONE-0612345678"
		rep  = "OLD-ANSWER-QUOTING-0612345678"
		kept = "RECENT-QUESTION-KEPT"
	)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "guichet.db")
	st, _ := openPath(t, path)
	t0 := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	storeQuestion(t, st, room, user, "$old", old, rep, t0)
	if err := st.Scrub(ctx); err != nil {
		t.Fatal(err)
	}
	storeQuestion(t, st, room, user, "$new", kept, "recent answer", t0.Add(40*24*time.Hour))

	n, err := st.ExpireTexts(ctx, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 { // two turns, one inbox text, one outbox text
		t.Errorf("ExpireTexts changed %d rows, want 4", n)
	}
	if !testdb.Postgres() { // SQLite: the bytes are gone from the files too
		b := fileBytes(t, path)
		for _, s := range []string{old, rep} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%q is still in the database files", s)
			}
		}
		if !bytes.Contains(b, []byte(kept)) {
			t.Error("a recent question was deleted")
		}
	}
	if recorded, done, err := st.InboxDone(ctx, "$old"); err != nil || !recorded || !done {
		t.Errorf("the handled event's id is gone (recorded=%v done=%v err=%v): a replayed sync would answer it again", recorded, done, err)
	}
	if n, err := st.ExpireTexts(ctx, t0.Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("a second ExpireTexts changed %d rows (%v), want 0", n, err)
	}
}
