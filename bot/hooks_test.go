package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/approvals"
	"guichet/hooks"
	"guichet/store"
)

// fakeHooks records deliveries and answers err.
type fakeHooks struct {
	mu   sync.Mutex
	got  []string // delivery ids
	body []string
	err  error
}

func (f *fakeHooks) Send(_ context.Context, delivery string, body []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.got, f.body = append(f.got, delivery), append(f.body, string(body))
	return nil
}

func TestHookPermanentErrors(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("failed to deliver decision hook x: %w", &hooks.StatusError{Code: 410}), true},
		{fmt.Errorf("failed to deliver decision hook x: %w", &hooks.StatusError{Code: 400}), true},
		{fmt.Errorf("failed to deliver decision hook x: %w", &hooks.StatusError{Code: 429}), false},
		{fmt.Errorf("failed to deliver decision hook x: %w", &hooks.StatusError{Code: 408}), false},
		{fmt.Errorf("failed to deliver decision hook x: %w", &hooks.StatusError{Code: 503}), false},
		{errHooksOff, true},
	} {
		if got := permanent(tt.err); got != tt.want {
			t.Errorf("permanent(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// A decision is queued with its exact body, delivered by the outbox with
// the delivery id of its key, and recorded sent; without hooks nothing is
// queued.
func TestHookQueuedAndDelivered(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	b, st := outboxBot(t, &now)
	req := &approvals.Request{ID: 4, UserID: "@agent:example.org"}
	if err := b.hookDecision(ctx, req, hooks.Rejected, "@mod:example.org", "non"); err != nil {
		t.Fatal(err)
	}
	if due, _ := st.Due(ctx, now, 10); len(due) != 0 {
		t.Fatalf("queued %+v with hooks off", due)
	}
	f := &fakeHooks{}
	b.hooks = f
	if err := b.hookDecision(ctx, req, hooks.Rejected, "@mod:example.org", "non"); err != nil {
		t.Fatal(err)
	}
	due, _ := st.Due(ctx, now, 10)
	if len(due) != 1 || due[0].Kind != store.KindHook || due[0].RequestID != 4 {
		t.Fatalf("due = %+v, want one hook", due)
	}
	var p hooks.Payload
	if err := json.Unmarshal([]byte(due[0].Markdown), &p); err != nil {
		t.Fatal(err)
	}
	want := hooks.NewPayload(p.DeliveryID, 4, "@agent:example.org", hooks.Rejected, "@mod:example.org", "non", now)
	if p != want || due[0].Key != "hook:"+p.DeliveryID {
		t.Errorf("payload %+v under %s, want %+v", p, due[0].Key, want)
	}
	b.deliverPending(ctx)
	if len(f.got) != 1 || f.got[0] != p.DeliveryID || f.body[0] != due[0].Markdown {
		t.Errorf("delivered %v %v", f.got, f.body)
	}
	if due, _ := st.Due(ctx, now, 10); len(due) != 0 {
		t.Errorf("still due after delivery: %+v", due)
	}
}

// One agent's decisions reach the receiver in order: a failing one holds
// back that agent's later ones, not another agent's.
func TestHookOrderPerAgent(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	b, st := outboxBot(t, &now)
	b.hooks = &fakeHooks{}
	a := &approvals.Request{ID: 1, UserID: "@a:example.org"}
	c := &approvals.Request{ID: 2, UserID: "@c:example.org"}
	for _, d := range []struct {
		req      *approvals.Request
		decision string
	}{{a, hooks.Rejected}, {a, hooks.Reversed}, {c, hooks.Approved}} {
		if err := b.hookDecision(ctx, d.req, d.decision, "@mod:example.org", ""); err != nil {
			t.Fatal(err)
		}
	}
	due, _ := st.Due(ctx, now, 10)
	if len(due) != 3 {
		t.Fatalf("due %d, want 3", len(due))
	}
	if _, ok := b.failed(ctx, due[0], &hooks.StatusError{Code: 503}); !ok {
		t.Fatal("failure not recorded")
	}
	due, _ = st.Due(ctx, now, 10)
	if len(due) != 1 || due[0].RequestID != 2 {
		t.Errorf("due after a's first failed = %+v, want only c's", due)
	}
}

// A receiver that keeps failing is reported once in the support room (a
// notice after hookAlertAttempts failures; none again when the delivery
// is given up, nor for other deliveries that day).
func TestHookDownReportedOnce(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	b, st := outboxBot(t, &now)
	b.hooks = &fakeHooks{}
	for _, user := range []id.UserID{"@a:example.org", "@c:example.org"} {
		if err := b.hookDecision(ctx, &approvals.Request{ID: 3, UserID: user}, hooks.Approved, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	reports := func() []store.Outgoing {
		var out []store.Outgoing
		list, _ := st.Unsent(ctx, 100)
		for _, m := range list {
			if m.Kind == store.KindUndelivered {
				out = append(out, m)
			}
		}
		return out
	}
	down := &hooks.StatusError{Code: 502}
	for i := 1; i <= store.MaxAttempts; i++ {
		due, _ := st.Due(ctx, now, 10)
		for _, m := range due {
			if m.Kind == store.KindHook {
				b.failed(ctx, m, down)
			}
		}
		if n := len(reports()); i < hookAlertAttempts && n != 0 {
			t.Fatalf("attempt %d: %d reports, want none yet", i, n)
		}
		now = now.Add(store.RetryDelay(i))
	}
	got := reports()
	if len(got) != 1 || got[0].RoomID != b.supportRoom || !strings.Contains(got[0].Markdown, "hooks.decisions_url") {
		t.Fatalf("reports = %+v, want one in the support room", got)
	}
	if counts, _ := st.CountGivenUp(ctx, time.Time{}); counts[store.KindHook] != 2 {
		t.Errorf("given up = %v, want both hooks", counts)
	}
}

// A delivery the receiver refuses (4xx) is given up at once and reported.
func TestHookRefusedGivenUp(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	b, st := outboxBot(t, &now)
	b.hooks = &fakeHooks{err: &hooks.StatusError{Code: 400}}
	if err := b.hookDecision(ctx, &approvals.Request{ID: 5, UserID: "@a:example.org"}, hooks.Denied, "", ""); err != nil {
		t.Fatal(err)
	}
	b.deliverPending(ctx)
	if counts, _ := st.CountGivenUp(ctx, time.Time{}); counts[store.KindHook] != 1 {
		t.Errorf("given up = %v, want the hook", counts)
	}
	due, _ := st.Due(ctx, now, 10)
	if len(due) != 1 || due[0].Kind != store.KindUndelivered || !strings.Contains(due[0].Markdown, "n° 5") {
		t.Errorf("due = %+v, want the report", due)
	}
}
