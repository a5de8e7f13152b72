package e2e

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"guichet/internal/testdb"
)

// An agent who deletes (redacts) a question with personal data removes it at
// once from what guichet keeps: the follow-up does not send it (or the answer
// that quoted it) to Albert, and it is gone from the database files.
func TestRedactedQuestionLeavesContextAndFiles(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	alice, dm := activeAgent(t, w)
	const secret = "mon NIR est 2850578006084"

	q := w.send(alice, dm, "Bonjour, "+secret+", quelle caisse dois-je contacter ?")
	finalReply(t, w, alice, q)
	if _, err := alice.Client.RedactEvent(w.ctx(), dm, q); err != nil {
		t.Fatal(err)
	}
	// guichet forgets when the redaction reaches its sync: wait for it.
	deadline := time.Now().Add(wait)
	for {
		turns, err := w.app.Store.TurnsOf(w.ctx(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(turns) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the redacted question is still stored")
		}
		time.Sleep(20 * time.Millisecond)
	}

	ask(t, w, alice, dm, "Et pour une mutuelle ?")
	reqs := w.tb.Albert.Requests()
	last := reqs[len(reqs)-1]
	for _, m := range last.Messages {
		if strings.Contains(m.Content, "2850578006084") {
			t.Errorf("the follow-up sent the deleted text to Albert (%s turn): %q", m.Role, m.Content)
		}
	}
	if len(last.Messages) != 2 {
		t.Errorf("the follow-up carried %d messages, want the system prompt and the question only", len(last.Messages))
	}
	if testdb.Postgres() {
		return // the bytes in PostgreSQL's files are its VACUUM's business
	}
	var files []byte
	for _, p := range []string{w.cfg.Database.URI, w.cfg.Database.URI + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		files = append(files, b...)
	}
	if bytes.Contains(files, []byte("2850578006084")) {
		t.Error("the deleted text is still in the database files")
	}
}
