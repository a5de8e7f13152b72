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

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"

	"guichet/internal/testdb"
	"guichet/store"
)

func enqueue(t *testing.T, st *store.Store, msgs ...store.Outgoing) {
	t.Helper()
	for _, m := range msgs {
		if m.MsgType == "" {
			m.MsgType = "m.notice"
		}
		if m.Markdown == "" {
			m.Markdown = "x"
		}
		if err := st.Enqueue(context.Background(), m); err != nil {
			t.Fatalf("Enqueue(%s): %v", m.Key, err)
		}
	}
}

func keysOf(msgs []store.Outgoing) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Key
	}
	return out
}

func due(t *testing.T, st *store.Store, now time.Time, limit int) []string {
	t.Helper()
	got, err := st.Due(context.Background(), now, limit)
	if err != nil {
		t.Fatalf("Due: %v", err)
	}
	return keysOf(got)
}

func fail(t *testing.T, st *store.Store, key string, at time.Time, permanent bool) bool {
	t.Helper()
	gaveUp, err := st.Failed(context.Background(), key, "M_LIMIT_EXCEEDED", at, permanent)
	if err != nil {
		t.Fatalf("Failed(%s): %v", key, err)
	}
	return gaveUp
}

const other = id.RoomID("!dm-bob:agent.interieur.tchap.gouv.fr")

// Only messages due now are read: one waiting for its retry holds back the
// later messages of its own room (their order is kept), not those of other
// rooms, and it takes no room in the page.
func TestOutboxDueOnly(t *testing.T) {
	tests := []struct {
		name   string
		failed []string      // keys failed (temporarily) at t0
		at     time.Duration // Due at t0 + at
		limit  int
		want   []string
	}{
		{"nothing failed", nil, 0, 10, []string{"a1", "b1", "a2", "d1", "b2"}},
		{"a page keeps the queue order", nil, 0, 2, []string{"a1", "b1"}},
		{"a1 waits: a2 waits behind it, the others go", []string{"a1"}, 0, 10, []string{"b1", "d1", "b2"}},
		{"a2 waits: a1 before it goes", []string{"a2"}, 0, 10, []string{"a1", "b1", "d1", "b2"}},
		{"a person's DM is a queue of its own", []string{"b1"}, 0, 10, []string{"a1", "a2", "d1"}},
		{"a1's retry has come", []string{"a1"}, store.RetryBase, 10, []string{"a1", "b1", "a2", "d1", "b2"}},
		{"not yet", []string{"a1"}, store.RetryBase - time.Millisecond, 10, []string{"b1", "d1", "b2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := open(t)
			enqueue(t, st,
				store.Outgoing{Key: "a1", RoomID: room, CreatedAt: t0},
				store.Outgoing{Key: "b1", RoomID: other, CreatedAt: t0},
				store.Outgoing{Key: "a2", RoomID: room, CreatedAt: t0},
				store.Outgoing{Key: "d1", DMUser: alice, CreatedAt: t0},
				store.Outgoing{Key: "b2", RoomID: other, CreatedAt: t0},
			)
			for _, k := range tt.failed {
				fail(t, st, k, t0, false)
			}
			if got := due(t, st, t0.Add(tt.at), tt.limit); !slices.Equal(got, tt.want) {
				t.Errorf("Due = %v, want %v", got, tt.want)
			}
		})
	}
}

// Issue 10, 1(e): 300 messages to one room stuck behind a failing first one
// no longer fill the 200-row page that a message to another room needs.
func TestOutboxWaitingRowsDoNotFillThePage(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	for i := range 300 {
		enqueue(t, st, store.Outgoing{Key: fmt.Sprintf("stuck:%d", i), RoomID: room, CreatedAt: t0})
	}
	enqueue(t, st, store.Outgoing{Key: "other", RoomID: other, CreatedAt: t0})
	fail(t, st, "stuck:0", t0, false)
	if got := due(t, st, t0, 200); !slices.Equal(got, []string{"other"}) {
		t.Errorf("Due = %d rows starting %v, want only the other room's message", len(got), got[:min(3, len(got))])
	}
	if all, err := st.Unsent(ctx, 1000); err != nil || len(all) != 301 {
		t.Errorf("Unsent = %d rows, %v; want all 301 still to deliver", len(all), err)
	}
}

// A message due but held behind a waiting one does not make the outbox
// wake before the waiting one's time.
func TestOutboxNextAttemptSkipsHeldMessages(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	enqueue(t, st,
		store.Outgoing{Key: "a1", RoomID: room, CreatedAt: t0},
		store.Outgoing{Key: "a2", RoomID: room, CreatedAt: t0},
	)
	if _, ok, _ := st.NextAttempt(ctx, t0); ok {
		t.Error("a next attempt with nothing waiting")
	}
	fail(t, st, "a1", t0, false)
	next, ok, err := st.NextAttempt(ctx, t0)
	if err != nil || !ok || !next.Equal(t0.Add(store.RetryBase)) {
		t.Errorf("NextAttempt = %v, %v, %v; want a1's retry, not a2 held behind it", next, ok, err)
	}
}

// Retries are paced per message: each failure doubles the wait, up to
// RetryMax, and the MaxAttempts-th gives the message up.
func TestOutboxBackoffSchedule(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	enqueue(t, st, store.Outgoing{Key: "m", RoomID: room, CreatedAt: t0})
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 320 * time.Second, 10 * time.Minute, 10 * time.Minute}
	now := t0
	for i := 1; i < store.MaxAttempts; i++ {
		if fail(t, st, "m", now, false) {
			t.Fatalf("given up after %d temporary failures, want %d", i, store.MaxAttempts)
		}
		wait := 10 * time.Minute
		if i <= len(want) {
			wait = want[i-1]
		}
		next, ok, err := st.NextAttempt(ctx, now)
		if err != nil || !ok || !next.Equal(now.Add(wait)) {
			t.Fatalf("after failure %d: next attempt %v (%v, %v), want %v later", i, next.Sub(now), ok, err, wait)
		}
		if _, ok, _ := st.NextAttempt(ctx, next); ok {
			t.Fatalf("after failure %d: a next attempt after the only one", i)
		}
		if got := due(t, st, next.Add(-time.Millisecond), 10); len(got) != 0 {
			t.Fatalf("after failure %d: due %v before its time", i, got)
		}
		if got := due(t, st, next, 10); !slices.Equal(got, []string{"m"}) {
			t.Fatalf("after failure %d: due %v at its time, want [m]", i, got)
		}
		now = next
	}
	if !fail(t, st, "m", now, false) {
		t.Fatalf("attempt %d did not give the message up", store.MaxAttempts)
	}
	if got := due(t, st, now.Add(24*time.Hour), 10); len(got) != 0 {
		t.Errorf("a given-up message is still due: %v", got)
	}
	for i, w := range want {
		if got := store.RetryDelay(i + 1); got != w {
			t.Errorf("RetryDelay(%d) = %v, want %v", i+1, got, w)
		}
	}
}

// A permanent error gives the message up at once; given-up messages are
// never tried again, counted by kind, and a later failure report about them
// changes nothing.
func TestOutboxGivenUp(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	enqueue(t, st,
		store.Outgoing{Key: "welcome:7", DMUser: alice, CreatedAt: t0},
		store.Outgoing{Key: "reply:$q", RoomID: room, ReplyTo: "$q", CreatedAt: t0},
		store.Outgoing{Key: "later", RoomID: room, CreatedAt: t0},
		store.Outgoing{Key: "old", RoomID: other, Kind: store.KindReply, CreatedAt: t0},
	)
	if !fail(t, st, "old", t0, true) {
		t.Fatal("a permanent error did not give the message up")
	}
	at := t0.Add(time.Hour)
	if !fail(t, st, "welcome:7", at, true) || !fail(t, st, "reply:$q", at, true) {
		t.Fatal("a permanent error did not give the message up")
	}
	if fail(t, st, "welcome:7", at.Add(time.Minute), true) {
		t.Error("a message was given up twice")
	}
	if got := due(t, st, at, 10); !slices.Equal(got, []string{"later"}) {
		t.Errorf("Due = %v, want only [later]: a given-up message holds nothing back", got)
	}
	all, err := st.Unsent(ctx, 10)
	if err != nil || !slices.Equal(keysOf(all), []string{"later"}) {
		t.Errorf("Unsent = %v, %v; want [later]", keysOf(all), err)
	}
	counts, err := st.CountGivenUp(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[store.Kind]int{store.KindWelcome: 1, store.KindReply: 1}; !mapsEqual(counts, want) {
		t.Errorf("CountGivenUp since %v = %v, want %v", at, counts, want)
	}
	if counts, _ := st.CountGivenUp(ctx, t0); counts[store.KindReply] != 2 {
		t.Errorf("CountGivenUp since t0 = %v, want 2 replies", counts)
	}
	if _, sent, _ := st.SentEvent(ctx, "welcome:7"); sent {
		t.Error("a message given up counts as sent")
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Kind, request and event are columns: set by the caller, or derived from
// keys built the old way; read back by reactions (ack), quoted replies
// (reply) and pruning, whatever the key says.
func TestOutboxKinds(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	tests := []struct {
		msg       store.Outgoing
		kind      store.Kind
		request   int64
		regarding id.EventID
		recipient id.UserID
	}{
		{store.Outgoing{Key: "ack:$ann", RoomID: room, ReplyTo: "$ann"}, store.KindAck, 0, "$ann", ""},
		{store.Outgoing{Key: "welcome:12", DMUser: alice}, store.KindWelcome, 12, "", alice},
		{store.Outgoing{Key: "revoked:3", DMUser: bob}, store.KindRevoked, 3, "", bob},
		{store.Outgoing{Key: "rejected:4", RoomID: room, ReplyTo: "$ann4"}, store.KindRejected, 4, "$ann4", ""},
		{store.Outgoing{Key: "reply:$q1", RoomID: other, ReplyTo: "$q1"}, store.KindReply, 0, "$q1", ""},
		{store.Outgoing{Key: "notice:$q1:0", RoomID: other}, store.KindNotice, 0, "$q1", ""},
		{store.Outgoing{Key: "after:$q2:server.example:1", RoomID: other}, store.KindAfter, 0, "$q2:server.example", ""},
		{store.Outgoing{Key: "breaker:opened:1700", RoomID: room}, store.KindBreaker, 0, "", ""},
		{store.Outgoing{Key: "custom-key", RoomID: other, Kind: store.KindReply, Regarding: "$q3", Recipient: bob}, store.KindReply, 0, "$q3", bob},
		{store.Outgoing{Key: "ack:$looks-like-an-ack", RoomID: room, Kind: store.KindCmd}, store.KindCmd, 0, "", ""},
		{store.Outgoing{Key: "x", RoomID: room, Kind: store.KindWelcome, RequestID: 9, DMUser: alice}, store.KindWelcome, 9, "", alice},
	}
	for i, tt := range tests {
		tt.msg.CreatedAt, tt.msg.MsgType, tt.msg.Markdown = t0, "m.notice", "x"
		if err := st.Enqueue(ctx, tt.msg); err != nil {
			t.Fatal(err)
		}
		if err := st.MarkSent(ctx, tt.msg.Key, id.EventID(fmt.Sprintf("$sent%d", i)), t0); err != nil {
			t.Fatal(err)
		}
	}
	for i, tt := range tests {
		m, err := st.OutgoingByEvent(ctx, id.EventID(fmt.Sprintf("$sent%d", i)))
		if err != nil || m == nil {
			t.Fatalf("OutgoingByEvent(%s) = %v, %v", tt.msg.Key, m, err)
		}
		if m.Key != tt.msg.Key || m.Kind != tt.kind || m.RequestID != tt.request || m.Regarding != tt.regarding || m.Recipient != tt.recipient {
			t.Errorf("%s: kind %q request %d regarding %q recipient %q; want %q %d %q %q",
				tt.msg.Key, m.Kind, m.RequestID, m.Regarding, m.Recipient, tt.kind, tt.request, tt.regarding, tt.recipient)
		}
	}
	if m, err := st.OutgoingByEvent(ctx, "$never"); err != nil || m != nil {
		t.Errorf("OutgoingByEvent(unknown) = %v, %v", m, err)
	}

	// Pruning keeps acknowledgements by kind, not by key.
	if _, err := st.Prune(ctx, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		m, _ := st.OutgoingByEvent(ctx, id.EventID(fmt.Sprintf("$sent%d", i)))
		if kept := m != nil; kept != (tt.kind == store.KindAck) {
			t.Errorf("after Prune, %s (kind %s) kept: %v", tt.msg.Key, tt.kind, kept)
		}
	}
}

// Given-up rows are pruned after the retention like delivered ones (their
// text with them); rows still being tried never are.
func TestOutboxPruneGivenUp(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	enqueue(t, st,
		store.Outgoing{Key: "reply:$old", RoomID: room, CreatedAt: t0},
		store.Outgoing{Key: "ack:$old", RoomID: room, CreatedAt: t0},
		store.Outgoing{Key: "reply:$trying", RoomID: other, CreatedAt: t0},
	)
	fail(t, st, "reply:$old", t0, true)
	fail(t, st, "ack:$old", t0, true)
	fail(t, st, "reply:$trying", t0, false)
	if n, err := st.Prune(ctx, t0.Add(time.Hour)); err != nil || n != 2 {
		t.Errorf("Prune = %d, %v; want the 2 given-up rows", n, err)
	}
	if all, _ := st.Unsent(ctx, 10); !slices.Equal(keysOf(all), []string{"reply:$trying"}) {
		t.Errorf("Unsent after Prune = %v", keysOf(all))
	}
}

// The room opened for a message is recorded on it, and a dead DM is
// forgotten only if it is still the one recorded.
func TestOutboxDMCreatedAndForget(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	enqueue(t, st, store.Outgoing{Key: "welcome:1", DMUser: alice, CreatedAt: t0})
	if got, _ := st.Unsent(ctx, 10); !got[0].DMRequestedAt.IsZero() || got[0].DMCreated != "" {
		t.Fatalf("a new message has a room: %+v", got[0])
	}
	if err := st.DMRequested(ctx, "welcome:1", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := st.SetDMCreated(ctx, "welcome:1", "!new:x"); err != nil {
		t.Fatal(err)
	}
	fail(t, st, "welcome:1", t0, false)
	got, err := st.Unsent(ctx, 10)
	if err != nil || len(got) != 1 || got[0].DMCreated != "!new:x" || !got[0].DMRequestedAt.Equal(t0.Add(time.Second)) ||
		got[0].Attempts != 1 || got[0].LastError == "" {
		t.Fatalf("Unsent = %+v, %v; want the room asked for and created, one attempt and its error", got, err)
	}

	if err := st.SetDMRoom(ctx, alice, "!dead:x", t0); err != nil {
		t.Fatal(err)
	}
	if u, err := st.DMUserOf(ctx, "!dead:x"); err != nil || u != alice {
		t.Errorf("DMUserOf = %q, %v", u, err)
	}
	if err := st.ForgetDMRoom(ctx, alice, "!other:x"); err != nil {
		t.Fatal(err)
	}
	if r, _ := st.DMRoom(ctx, alice); r != "!dead:x" {
		t.Errorf("forgetting another room forgot %q", r)
	}
	if err := st.ForgetDMRoom(ctx, alice, "!dead:x"); err != nil {
		t.Fatal(err)
	}
	if r, _ := st.DMRoom(ctx, alice); r != "" {
		t.Errorf("DMRoom after ForgetDMRoom = %q", r)
	}
	if u, _ := st.DMUserOf(ctx, "!dead:x"); u != "" {
		t.Errorf("DMUserOf after ForgetDMRoom = %q", u)
	}
}

// TestUpgradeToOutboxColumns upgrades a v4 database whose outbox holds
// rows keyed the old way: kinds, requests and events come from the keys,
// a row given up by v4 stays given up, and pending rows are due at once.
func TestUpgradeToOutboxColumns(t *testing.T) {
	testdb.SQLiteOnly(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "guichet.db")
	v4 := fstest.MapFS{}
	for _, name := range []string{"00-latest.sql", "02-limits.sql", "03-outbox-index.sql", "04-limit-window.sql"} {
		data, err := os.ReadFile("upgrades/" + name)
		if err != nil {
			t.Fatal(err)
		}
		v4["upgrades/"+name] = &fstest.MapFile{Data: data}
	}
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Child(store.VersionTable, dbutil.BuildUpgradeTable().WithFSPath(v4, "upgrades").Finish(), dbutil.NoopLogger).Upgrade(ctx); err != nil {
		t.Fatalf("creating a v4 database: %v", err)
	}
	rows := []struct {
		key, room, dm, replyTo string
		sent                   bool
		attempts               int
	}{
		{"ack:$ann1", string(room), "", "$ann1", true, 0},
		{"cmd:$cmd1", string(room), "", "$cmd1", true, 0},
		{"welcome:12", "", string(alice), "", false, 3},
		{"revoked:5", "", string(bob), "", false, 20},
		{"reply:$q1", string(other), "", "$q1", true, 0},
		{"notice:$q1:0", string(other), "", "", true, 0},
		{"after:$q9:old.server:1", string(other), "", "", false, 0},
		{"breaker:opened:1700000000000", string(room), "", "", false, 0},
	}
	for i, r := range rows {
		var sent any
		if r.sent {
			sent = t0.UnixMilli()
		}
		_, err := db.Exec(ctx, `INSERT INTO outbox (key, room_id, dm_user, reply_to, msgtype, markdown, created_at, sent_at, event_id, attempts)
			VALUES ($1, $2, $3, $4, 'm.notice', 'x', $5, $6, $7, $8)`,
			r.key, r.room, r.dm, r.replyTo, t0.UnixMilli(), sent, fmt.Sprintf("$e%d", i), r.attempts)
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	st, db := openPath(t, path)
	var version int
	if err := db.QueryRow(ctx, "SELECT version FROM "+store.VersionTable).Scan(&version); err != nil || version < 5 {
		t.Fatalf("version = %d, %v; want 5 or later", version, err)
	}
	want := []struct {
		kind      store.Kind
		request   int64
		regarding id.EventID
		recipient id.UserID
	}{
		{store.KindAck, 0, "$ann1", ""},
		{store.KindCmd, 0, "$cmd1", ""},
		{store.KindWelcome, 12, "", alice},
		{store.KindRevoked, 5, "", bob},
		{store.KindReply, 0, "$q1", ""},
		{store.KindNotice, 0, "$q1", ""},
		{store.KindAfter, 0, "$q9:old.server", ""},
		{store.KindBreaker, 0, "", ""},
	}
	for i, w := range want {
		m, err := st.OutgoingByEvent(ctx, id.EventID(fmt.Sprintf("$e%d", i)))
		if err != nil || m == nil {
			t.Fatalf("row %s: %v, %v", rows[i].key, m, err)
		}
		if m.Kind != w.kind || m.RequestID != w.request || m.Regarding != w.regarding || m.Recipient != w.recipient {
			t.Errorf("row %s: kind %q request %d regarding %q recipient %q; want %+v", rows[i].key, m.Kind, m.RequestID, m.Regarding, m.Recipient, w)
		}
	}
	// Pending rows are due at once, in their order; the one v4 gave up stays so.
	if got := due(t, st, t0, 10); !slices.Equal(got, []string{"welcome:12", "after:$q9:old.server:1", "breaker:opened:1700000000000"}) {
		t.Errorf("Due after the upgrade = %v", got)
	}
	if counts, err := st.CountGivenUp(ctx, time.Time{}); err != nil || counts[store.KindRevoked] != 1 {
		t.Errorf("CountGivenUp = %v, %v; want the revocation v4 gave up", counts, err)
	}
}

// BenchmarkOutboxDue reads the due messages of an outbox holding 20,000
// delivered rows (two weeks of a busy desk before pruning), 300 rows held
// behind a failing one, and one due row in another room.
func BenchmarkOutboxDue(b *testing.B) {
	ctx := context.Background()
	db, err := store.Open(filepath.Join(b.TempDir(), "guichet.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	st := store.New(db, zerolog.Nop())
	if err := st.Upgrade(ctx); err != nil {
		b.Fatal(err)
	}
	err = st.InTx(ctx, func(ctx context.Context) error {
		for i := range 20000 {
			key := fmt.Sprintf("reply:$%d", i)
			if err := st.Enqueue(ctx, store.Outgoing{Key: key, RoomID: other, MsgType: "m.text", Markdown: "x", CreatedAt: t0}); err != nil {
				return err
			}
			if err := st.MarkSent(ctx, key, id.EventID("$s"+key), t0); err != nil {
				return err
			}
		}
		for i := range 300 {
			if err := st.Enqueue(ctx, store.Outgoing{Key: fmt.Sprintf("stuck:%d", i), RoomID: room, MsgType: "m.notice", Markdown: "x", CreatedAt: t0}); err != nil {
				return err
			}
		}
		return st.Enqueue(ctx, store.Outgoing{Key: "due", DMUser: alice, MsgType: "m.text", Markdown: "x", CreatedAt: t0})
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.Failed(ctx, "stuck:0", "M_LIMIT_EXCEEDED", t0, false); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		got, err := st.Due(ctx, t0, 200)
		if err != nil || len(got) != 1 {
			b.Fatalf("Due = %d rows, %v", len(got), err)
		}
	}
}
