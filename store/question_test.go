package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/ratelimit"
	"guichet/store"
)

// A question's admission is committed with the counters it changes, and a
// rolled-back transaction leaves neither: a replay then counts it once.
func TestQuestionAdmissionIsCommittedWithTheCounters(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	now := time.UnixMilli(1_700_000_000_000)
	lim := ratelimit.NewLimiter(ratelimit.Config{PerUser: ratelimit.Limits{MessagesPerDay: 10}}, st, func() time.Time { return now })
	const user, room, evt = id.UserID("@a:x"), id.RoomID("!r:x"), id.EventID("$q")

	count := func(fail bool) error {
		return st.InTx(ctx, func(ctx context.Context) error {
			q, err := st.Question(ctx, evt)
			if err != nil || !q.AdmittedAt.IsZero() {
				return err
			}
			if _, err := lim.Check(ctx, user, false); err != nil {
				return err
			}
			if err := st.SetAdmitted(ctx, evt, room, user, now, true); err != nil {
				return err
			}
			if fail {
				return errors.New("crash")
			}
			return nil
		})
	}
	if err := count(true); err == nil {
		t.Fatal("the failed transaction succeeded")
	}
	if q, _ := st.Question(ctx, evt); !q.AdmittedAt.IsZero() {
		t.Error("a rolled-back admission was kept")
	}
	for range 3 { // the question, then two replays
		if err := count(false); err != nil {
			t.Fatal(err)
		}
	}
	quota, err := lim.Quota(ctx, user, false)
	if err != nil {
		t.Fatal(err)
	}
	if quota.MessagesToday != 1 {
		t.Errorf("a question handled three times counted %d times", quota.MessagesToday)
	}
	if err := st.SetAdmitted(ctx, evt, room, user, now, false); err != nil {
		t.Fatal(err)
	}
	if q, _ := st.Question(ctx, evt); !q.AdmittedAt.IsZero() {
		t.Error("a question given back still reads as admitted")
	}
}

// The placeholder's send is recorded before its id; the first start is kept.
func TestQuestionPlaceholder(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	t0 := time.UnixMilli(1_700_000_000_000)
	if q, err := st.Question(ctx, "$q"); err != nil || q.EventID != "$q" || !q.PlaceholderAt.IsZero() || q.Placeholder != "" {
		t.Fatalf("unknown question = %+v, %v", q, err)
	}
	if err := st.PlaceholderSending(ctx, "$q", "!r:x", "@a:x", t0); err != nil {
		t.Fatal(err)
	}
	if err := st.PlaceholderSending(ctx, "$q", "!r:x", "@a:x", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	q, _ := st.Question(ctx, "$q")
	if !q.PlaceholderAt.Equal(t0) || q.Placeholder != "" {
		t.Errorf("after the send started: %+v", q)
	}
	if err := st.SetPlaceholder(ctx, "$q", "$p"); err != nil {
		t.Fatal(err)
	}
	if q, _ := st.Question(ctx, "$q"); q.Placeholder != "$p" {
		t.Errorf("placeholder = %q", q.Placeholder)
	}
}

// An encrypted event recorded while its key is missing is replaced by its
// decrypted form once, which counts as fresh; it stays out of the work to
// resume until then, and can be settled when never decrypted.
func TestInboxWaitingForKey(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	t0 := time.UnixMilli(1_700_000_000_000)
	enc := store.InboxItem{EventID: "$e", RoomID: "!r:x", Sender: "@a:x", EventJSON: []byte(`{"type":"m.room.encrypted"}`), ReceivedAt: t0, WaitingSession: "s1"}
	if err := st.AddUndecrypted(ctx, enc); err != nil {
		t.Fatal(err)
	}
	if err := st.AddUndecrypted(ctx, enc); err != nil {
		t.Fatal(err)
	}
	waiting, err := st.WaitingForKey(ctx, "s1")
	if err != nil || len(waiting) != 1 || waiting[0].WaitingSession != "s1" {
		t.Fatalf("waiting = %+v, %v", waiting, err)
	}
	if other, _ := st.WaitingForKey(ctx, "s2"); len(other) != 0 {
		t.Errorf("%d events wait for another session", len(other))
	}
	dec := enc
	dec.EventJSON, dec.WaitingSession = []byte(`{"type":"m.room.message"}`), ""
	for i, want := range []bool{true, false} {
		fresh, err := st.AddInbox(ctx, dec)
		if err != nil || fresh != want {
			t.Errorf("decrypted event recorded (%d): fresh %v, %v; want %v", i+1, fresh, err, want)
		}
	}
	if waiting, _ := st.WaitingForKey(ctx, ""); len(waiting) != 0 {
		t.Errorf("%d events still wait after decryption", len(waiting))
	}
	items, _ := st.UnfinishedInbox(ctx)
	if len(items) != 1 || string(items[0].EventJSON) != `{"type":"m.room.message"}` {
		t.Errorf("unfinished = %+v", items)
	}
	// Settling applies only to an event still waiting.
	if err := st.SettleWaiting(ctx, "$e", t0); err != nil {
		t.Fatal(err)
	}
	if _, done, _ := st.InboxDone(ctx, "$e"); done {
		t.Error("a decrypted event was settled as if never decrypted")
	}
	never := store.InboxItem{EventID: "$n", RoomID: "!r:x", Sender: "@a:x", EventJSON: []byte(`{}`), ReceivedAt: t0, WaitingSession: "s3"}
	if err := st.AddUndecrypted(ctx, never); err != nil {
		t.Fatal(err)
	}
	if err := st.SettleWaiting(ctx, "$n", t0); err != nil {
		t.Fatal(err)
	}
	if _, done, _ := st.InboxDone(ctx, "$n"); !done {
		t.Error("an event given up is not done")
	}
	if fresh, _ := st.AddInbox(ctx, store.InboxItem{EventID: "$n", RoomID: "!r:x", Sender: "@a:x", EventJSON: []byte(`{}`), ReceivedAt: t0}); fresh {
		t.Error("an event given up came back when decrypted")
	}
}
