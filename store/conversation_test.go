package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"

	"guichet/conversation"
	"guichet/internal/testdb"
	"guichet/store"
)

func TestTurns(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	const dm, other = id.RoomID("!dm:x"), id.RoomID("!other:x")
	for i := range 3 {
		at := t0.Add(time.Duration(2*i) * time.Second)
		ex := conversation.Exchange{Room: dm, User: alice, Question: id.EventID(fmt.Sprintf("$q%d", i)),
			Asked: fmt.Sprintf("m%d", 2*i), AskedAt: at, Answered: fmt.Sprintf("m%d", 2*i+1), AnsweredAt: at.Add(time.Second)}
		if err := st.AddExchange(ctx, ex); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := st.AddExchange(ctx, conversation.Exchange{Room: other, User: bob, Question: "$elsewhere", Asked: "elsewhere", AskedAt: t0, Answered: "ok", AnsweredAt: t0}); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name  string
		room  id.RoomID
		since time.Time
		limit int
		want  []string
	}{
		{"latest three, oldest first", dm, time.Time{}, 3, []string{"m3", "m4", "m5"}},
		{"one", dm, time.Time{}, 1, []string{"m5"}},
		{"more than stored", dm, time.Time{}, 50, []string{"m0", "m1", "m2", "m3", "m4", "m5"}},
		{"zero", dm, time.Time{}, 0, nil},
		{"since a time, inclusive", dm, t0.Add(4 * time.Second), 50, []string{"m4", "m5"}},
		{"since a time and a limit", dm, t0.Add(time.Second), 2, []string{"m4", "m5"}},
		{"since after the last turn", dm, t0.Add(time.Hour), 50, nil},
		{"other room", other, time.Time{}, 10, []string{"elsewhere", "ok"}},
		{"empty room", "!none:x", time.Time{}, 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := st.RecentTurns(ctx, tt.room, tt.since, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var contents []string
			for _, turn := range got {
				contents = append(contents, turn.Content)
			}
			if !slices.Equal(contents, tt.want) {
				t.Errorf("RecentTurns = %v, want %v", contents, tt.want)
			}
		})
	}
	got, _ := st.RecentTurns(ctx, dm, time.Time{}, 2)
	want := conversation.Turn{Role: "user", Content: "m4", Question: "$q2", At: t0.Add(4 * time.Second)}
	if got[0].Role != want.Role || got[0].Question != want.Question || !got[0].At.Equal(want.At) || got[1].Question != "$q2" || got[1].Role != "assistant" {
		t.Errorf("turns = %+v, want %+v and its answer", got, want)
	}
	// A new conversation: earlier turns are no longer read.
	if err := st.StartConversation(ctx, dm, t0.Add(3500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.RecentTurns(ctx, dm, time.Time{}, 50); len(got) != 2 || got[0].Content != "m4" {
		t.Errorf("RecentTurns after StartConversation = %+v, want m4 and m5", got)
	}
	if got, _ := st.RecentTurns(ctx, other, time.Time{}, 50); len(got) != 2 {
		t.Errorf("RecentTurns of another room after StartConversation = %+v, want its two turns", got)
	}
	if n, err := st.CountQuestions(ctx, alice); err != nil || n != 3 {
		t.Errorf("CountQuestions(alice) = %d, %v; want 3", n, err)
	}
}

// TestQuotedTurn: a reply designates a question by its event, an answer by
// its placeholder or by any message queued for its question.
func TestQuotedTurn(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	const dm = id.RoomID("!dm:x")
	add := func(q, answer id.EventID, asked, answered string) {
		t.Helper()
		if err := st.AddExchange(ctx, conversation.Exchange{Room: dm, User: alice, Question: q, Asked: asked, AskedAt: t0,
			Answer: answer, Answered: answered, AnsweredAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	add("$q1", "$placeholder1", "question 1", "answer 1")
	add("$q2", "", "question 2", "answer 2")
	for i, key := range []string{"reply:$q2", "reply:$q2:2", "after:$q2:0"} {
		msg := store.Outgoing{Key: key, Kind: store.KindReply, RoomID: dm, Regarding: "$q2", MsgType: "m.text", Markdown: "x", CreatedAt: t0}
		if i == 2 {
			msg.Kind, msg.Regarding = store.KindNotice, ""
		}
		if err := st.Enqueue(ctx, msg); err != nil {
			t.Fatal(err)
		}
		if err := st.MarkSent(ctx, key, id.EventID(fmt.Sprintf("$sent%d", i)), t0); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		evt  id.EventID
		room id.RoomID
		want string // content, "" for none
	}{
		{"$q1", dm, "question 1"},
		{"$placeholder1", dm, "answer 1"},
		{"$q2", dm, "question 2"},
		{"$sent0", dm, "answer 2"},  // the answer's own message
		{"$sent1", dm, "answer 2"},  // its continuation
		{"$sent2", dm, ""},          // a notice sent after it
		{"$q1", "!elsewhere:x", ""}, // same id, another room
		{"$unknown", dm, ""},
	}
	for _, tt := range tests {
		got, err := st.QuotedTurn(ctx, tt.room, tt.evt)
		if err != nil {
			t.Fatal(err)
		}
		var content string
		if got != nil {
			content = got.Content
		}
		if content != tt.want {
			t.Errorf("QuotedTurn(%s, %s) = %q, want %q", tt.room, tt.evt, content, tt.want)
		}
	}
}

func TestPrefsAndLastExchange(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	if p, err := st.Prefs(ctx, alice); err != nil || p.Model != "" || p.CollectionsChosen {
		t.Fatalf("Prefs of a newcomer = %+v, %v", p, err)
	}
	steps := []struct {
		do   func() error
		want conversation.Prefs
	}{
		{func() error { return st.SetModelPref(ctx, alice, "m2") }, conversation.Prefs{Model: "m2"}},
		{func() error { return st.SetCollectionsPref(ctx, alice, []int{7, 3}, true) }, conversation.Prefs{Model: "m2", Collections: []int{7, 3}, CollectionsChosen: true}},
		{func() error { return st.SetCollectionsPref(ctx, alice, nil, true) }, conversation.Prefs{Model: "m2", Collections: []int{}, CollectionsChosen: true}},
		{func() error { return st.SetModelPref(ctx, alice, "") }, conversation.Prefs{Collections: []int{}, CollectionsChosen: true}},
		{func() error { return st.SetCollectionsPref(ctx, alice, nil, false) }, conversation.Prefs{}},
	}
	for i, step := range steps {
		if err := step.do(); err != nil {
			t.Fatal(err)
		}
		got, err := st.Prefs(ctx, alice)
		if err != nil || got.Model != step.want.Model || got.CollectionsChosen != step.want.CollectionsChosen || !slices.Equal(got.Collections, step.want.Collections) {
			t.Errorf("step %d: Prefs = %+v, %v; want %+v", i, got, err, step.want)
		}
	}

	const dm = id.RoomID("!dm:x")
	if ex, err := st.LastExchange(ctx, dm); err != nil || ex != nil {
		t.Fatalf("LastExchange of an empty room = %+v, %v", ex, err)
	}
	sources := []conversation.Source{{N: 1, DocumentID: 7, Document: "Congé", CollectionID: 3, Collection: "fiches", URL: "https://x/7", Score: 0.8, Content: "extrait"}}
	for i, src := range [][]conversation.Source{sources, nil} {
		q := id.EventID(fmt.Sprintf("$q%d", i))
		if err := st.AddExchange(ctx, conversation.Exchange{Room: dm, User: alice, Question: q, Asked: "q", AskedAt: t0, Answered: "a", AnsweredAt: t0, Sources: src}); err != nil {
			t.Fatal(err)
		}
		ex, err := st.LastExchange(ctx, dm)
		if err != nil || ex == nil || ex.Question != q || !slices.Equal(ex.Sources, src) {
			t.Errorf("LastExchange after %s = %+v, %v; want its sources %+v", q, ex, err, src)
		}
	}
}

// TestUpgradeToExchanges upgrades a v6 database whose answers were stored
// under synthetic "<event>:answer" ids: every id becomes an event id, the
// placeholder moves to its own column, and a reply still finds its turn.
func TestUpgradeToExchanges(t *testing.T) {
	testdb.SQLiteOnly(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "guichet.db")
	v6 := fstest.MapFS{}
	entries, err := os.ReadDir("upgrades")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() >= "07" {
			continue
		}
		data, err := os.ReadFile("upgrades/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		v6["upgrades/"+e.Name()] = &fstest.MapFile{Data: data}
	}
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Child(store.VersionTable, dbutil.BuildUpgradeTable().WithFSPath(v6, "upgrades").Finish(), dbutil.NoopLogger).Upgrade(ctx); err != nil {
		t.Fatalf("creating a v6 database: %v", err)
	}
	rows := []struct{ room, role, content, event string }{
		{"!a:x", "user", "q1", "$q1"},
		{"!a:x", "assistant", "a1", "$ph1:answer"}, // answered through a placeholder
		{"!b:x", "user", "other", "$o1"},           // another room in between
		{"!a:x", "user", "q2", "$q2"},
		{"!a:x", "assistant", "a2", "$q2:answer"}, // answered in one message
	}
	for _, r := range rows {
		if _, err := db.Exec(ctx, `INSERT INTO conversation_turn (room_id, user_id, role, content, event_id, at) VALUES ($1, $2, $3, $4, $5, $6)`,
			r.room, alice, r.role, r.content, r.event, t0.UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(ctx, `INSERT INTO agent_pref (user_id, model) VALUES ($1, 'm2')`, alice); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	st, _ := openPath(t, path)
	turns, err := st.RecentTurns(ctx, "!a:x", time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []conversation.Turn{
		{Role: "user", Content: "q1", Question: "$q1"},
		{Role: "assistant", Content: "a1", Question: "$q1", Answer: "$ph1"},
		{Role: "user", Content: "q2", Question: "$q2"},
		{Role: "assistant", Content: "a2", Question: "$q2"},
	}
	if len(turns) != len(want) {
		t.Fatalf("turns = %+v, want %+v", turns, want)
	}
	for i := range want {
		got := turns[i]
		got.At = time.Time{}
		if got != want[i] {
			t.Errorf("turn %d = %+v, want %+v", i, got, want[i])
		}
	}
	if q, err := st.QuotedTurn(ctx, "!a:x", "$ph1"); err != nil || q == nil || q.Content != "a1" {
		t.Errorf("QuotedTurn($ph1) = %+v, %v; want a1", q, err)
	}
	if p, err := st.Prefs(ctx, alice); err != nil || p.Model != "m2" || p.CollectionsChosen {
		t.Errorf("Prefs after upgrade = %+v, %v; want m2 and the default collections", p, err)
	}
}

// !stats and !partenaires: the answers count successful chat calls; what
// was billed counts every call, searches and failures included, per
// partner or for all.
func TestStatsSinceBilling(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	rows := []store.Usage{
		{UserID: alice, Endpoint: store.EndpointSearch, Outcome: "ok", Cost: 0.5, Partner: "justice", At: t0},
		{UserID: alice, Endpoint: store.EndpointSearch, Outcome: "upstream", Partner: "justice", At: t0},
		{UserID: alice, Outcome: "busy", PromptTokens: 100, Cost: 0.2, Partner: "justice", At: t0},
		{UserID: alice, Outcome: "ok", PromptTokens: 60, CompletionTokens: 40, Cost: 1.0, Partner: "justice", At: t0},
		{UserID: bob, Outcome: "ok", PromptTokens: 10, CompletionTokens: 5, Cost: 0.1, At: t0},
	}
	for _, u := range rows {
		if err := st.AddUsage(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		partner                     string
		questions, billed, searches int
		failures, errors            int
		cost                        float64
	}{
		{"justice", 1, 200, 2, 1, 1, 1.7},
		{"", 1, 15, 0, 0, 0, 0.1},
		{store.AllPartners, 2, 215, 2, 1, 1, 1.8},
	}
	for _, tt := range tests {
		got, err := st.StatsSince(ctx, t0.Add(-time.Hour), tt.partner)
		if err != nil {
			t.Fatal(err)
		}
		if got.Questions != tt.questions || got.BilledTokens != tt.billed || got.Searches != tt.searches ||
			got.SearchFailures != tt.failures || len(got.ErrorsByClass) != tt.errors || got.Cost < tt.cost-1e-9 || got.Cost > tt.cost+1e-9 {
			t.Errorf("StatsSince(%q) = %+v, want %d questions, %d billed tokens, %d searches (%d failed), %d error classes, %.2f €",
				tt.partner, got, tt.questions, tt.billed, tt.searches, tt.failures, tt.errors, tt.cost)
		}
	}
}
