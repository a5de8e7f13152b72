package bot

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"guichet/approvals"
	"guichet/store"
)

// A request pending longer than ReminderAfter is listed in one notice, at
// most once per interval, and only stale requests are listed.
func TestRemindersAreSentOncePerInterval(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(filepath.Join(t.TempDir(), "guichet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	st := store.New(db, zerolog.Nop())
	if err := st.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	service := approvals.New(st, approvals.Rules{}, clock)
	b := New(Config{ReminderAfter: 4 * time.Hour}, Deps{DB: db, Store: st, Approvals: service, Log: zerolog.Nop(), Now: clock})
	b.supportRoom = "!support:example.org"

	unsent := func() []store.Outgoing {
		t.Helper()
		msgs, err := st.Unsent(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		return msgs
	}
	if _, _, err := service.Announce(ctx, "@alice:example.org", b.supportRoom, "$a"); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		advance time.Duration
		want    int // reminders queued so far
		lists   []string
	}{
		{0, 0, nil}, // nothing stale yet
		{4*time.Hour + time.Minute, 1, []string{"@alice:example.org"}}, // alice is stale
		{time.Hour, 1, nil}, // within the interval: nothing more
		{4 * time.Hour, 2, []string{"@alice:example.org", "@bob:example.org"}},
	}
	for i, step := range steps {
		now = now.Add(step.advance)
		if i == 2 {
			if _, _, err := service.Announce(ctx, "@bob:example.org", b.supportRoom, "$b"); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.remind(ctx); err != nil {
			t.Fatal(err)
		}
		msgs := unsent()
		if len(msgs) != step.want {
			t.Fatalf("step %d: %d reminders queued, want %d", i, len(msgs), step.want)
		}
		if step.lists != nil {
			last := msgs[len(msgs)-1]
			if last.RoomID != id.RoomID("!support:example.org") {
				t.Errorf("reminder sent to %s", last.RoomID)
			}
			for _, user := range step.lists {
				if !strings.Contains(last.Markdown, user) {
					t.Errorf("step %d: reminder %q does not list %s", i, last.Markdown, user)
				}
			}
			if i == 3 && !strings.Contains(last.Markdown, "2 demande(s)") {
				t.Errorf("step %d: reminder %q should count 2 requests", i, last.Markdown)
			}
		}
	}
}
