package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"guichet/albert/fakealbert"
	"guichet/internal/mxclient"
)

// longReply is an answer of about 47,000 characters that escaping makes as
// large as it gets: HTML specials, quotes, accents and four-byte emoji.
func longReply(fakealbert.Request) string {
	var b strings.Builder
	for i, n := 1, 0; n < 47000; i++ {
		line := fmt.Sprintf("Ligne %d : é😀 & <b> \"x\" 'y' & <i> fin.\n\n", i)
		b.WriteString(line)
		n += utf8.RuneCountInString(line)
	}
	return strings.TrimSpace(b.String())
}

// An answer of 47,000 characters, which as one final edit exceeded the
// homeserver's 64 KiB limit (413) and was lost, comes whole as several
// messages in order: the placeholder's final edit, then continuations
// replying to it. Nothing is given up, and the next question is answered.
func TestLongAnswerIsSplitAndDelivered(t *testing.T) {
	w := newWorld(t)
	w.cfg.Albert.EditInterval = 300 * time.Millisecond
	w.startGuichet()
	alice, dm := activeAgent(t, w)
	bot := w.tb.Bot.UserID
	w.tb.Albert.SetReply(longReply)
	w.tb.Albert.SetLatency(500 * time.Millisecond) // a placeholder first

	q := w.send(alice, dm, "Écris-moi un très long rapport")
	placeholder := w.expect(alice, "the placeholder", from(bot), replyTo(q))
	want := strip(longReply(fakealbert.Request{}))
	var got string
	deadline := time.Now().Add(wait)
	for {
		parts := []string{shownText(alice, placeholder)}
		for _, m := range alice.Messages() {
			if m.Sender == bot && m.InReplyTo == placeholder.EventID && m.ReplaceOf == "" {
				parts = append(parts, m.Body)
			}
		}
		got = strip(strings.Join(parts, ""))
		if got == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling what alice's client received
	}
	if got != want {
		t.Fatalf("alice saw %d of the answer's %d characters (without spaces)", len([]rune(got)), len([]rune(want)))
	}
	w.tb.Albert.SetReply(nil)
	w.tb.Albert.SetLatency(0)
	ask(t, w, alice, dm, "Et en bref ?")
	if n := dbCount(t, w.cfg.Database, `SELECT COUNT(*) FROM outbox WHERE given_up_at IS NOT NULL`); n != 0 {
		t.Errorf("%d messages given up", n)
	}
	continuations := count(alice, from(bot), replyTo(placeholder.EventID), func(m mxclient.Message) bool { return m.ReplaceOf == "" })
	t.Logf("47,000 characters: the placeholder and %d continuations", continuations)
	if continuations < 1 {
		t.Error("no continuation")
	}
}

func strip(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '…' {
			return -1
		}
		return r
	}, s)
}
