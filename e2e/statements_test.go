package e2e

import (
	"maunium.net/go/mautrix/id"
	"strings"
	"testing"
	"time"
)

// Regression guards of issue 15, as counts (never times): the SQL
// statements run on the database per answered question in an encrypted DM
// (guichet's and mautrix's: two transactions, the inbox, the question's
// state, the limits, the turns, the usage, the outbox, and Megolm's session
// and index). 52 before the guard; 42 with one message per quick answer; 36
// once each agent's limits and override, request and consent, and
// conversation start and turns were read in one statement each, the
// question's row written in one, the reply's reader taken from the
// question, and the outbox's retry schedule read only after a failure. It
// also counts the room events an answer costs when it completes before
// albert.first_message_after (one message, no placeholder). The count
// includes what runs beside the answers (a sync token saved per sync), which
// varies from run to run by a statement or two: hence the margin.
const maxStatementsPerAnswer = 39

func TestStatementsAndEventsPerAnswer(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	alice, dm := activeAgent(t, w)
	bot := w.tb.Bot.UserID
	ask(t, w, alice, dm, "Une première question, pour chauffer")

	const n = 10
	before := w.app.Store.Statements()
	events := 0
	for i := range n {
		q := w.send(alice, dm, "Question rapide "+strings.Repeat("?", i+1))
		final := finalReply(t, w, alice, q)
		if !strings.Contains(final.Body, "Voici ma réponse") {
			t.Fatalf("answer %d = %q", i, final.Body)
		}
		events += roomEvents(alice, bot, q)
	}
	// The last answer's transaction may still be committing: settle.
	time.Sleep(200 * time.Millisecond)
	perAnswer := float64(w.app.Store.Statements()-before) / n
	t.Logf("%.1f statements per answer, %.1f room events per answer", perAnswer, float64(events)/n)
	if perAnswer > maxStatementsPerAnswer {
		t.Errorf("%.1f statements per answer, more than the guard %d", perAnswer, maxStatementsPerAnswer)
	}
	if events != n {
		t.Errorf("%d room events for %d quick answers, want one each", events, n)
	}
}

// roomEvents counts guichet's events for the answer to q: its messages
// replying to q and every edit of them.
func roomEvents(p viewer, bot id.UserID, q id.EventID) int {
	first := map[id.EventID]bool{}
	n := 0
	for _, m := range p.Messages() {
		if m.Sender == bot && m.InReplyTo == q && m.ReplaceOf == "" {
			first[m.EventID] = true
			n++
		}
	}
	for _, m := range p.Messages() {
		if m.Sender == bot && first[m.ReplaceOf] {
			n++
		}
	}
	return n
}
