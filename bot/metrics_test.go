package bot

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/approvals"
	"guichet/ratelimit"
	"guichet/store"
)

// recorder is a Metrics that keeps the calls it got, as "Method:label".
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *recorder) Decision(d string)              { r.add("Decision:" + d) }
func (r *recorder) Question(o string)              { r.add("Question:" + o) }
func (r *recorder) Answered(time.Duration)         { r.add("Answered") }
func (r *recorder) AlbertFirstToken(time.Duration) { r.add("AlbertFirstToken") }
func (r *recorder) AlbertError(c string)           { r.add("AlbertError:" + c) }
func (r *recorder) AlbertTokens(int, int)          { r.add("AlbertTokens") }
func (r *recorder) QueueWait(time.Duration)        { r.add("QueueWait") }
func (r *recorder) OutboxGivenUp(k string)         { r.add("OutboxGivenUp:" + k) }
func (r *recorder) Synced(time.Time)               { r.add("Synced") }
func (r *recorder) SyncFailed(time.Time)           { r.add("SyncFailed") }

func (r *recorder) only(t *testing.T, want ...string) {
	t.Helper()
	r.check(t, want)
}

func (r *recorder) check(t *testing.T, want []string) {
	t.Helper()
	if got := r.got(); !slices.Equal(got, want) {
		t.Errorf("metrics got %q, want %q", got, want)
	}
}

// A bot built without Metrics records nothing and does not fail.
func TestNoMetricsByDefault(t *testing.T) {
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	b, _ := outboxBot(t, &now)
	if _, ok := b.metrics.(noMetrics); !ok {
		t.Fatalf("metrics = %T, want noMetrics", b.metrics)
	}
	b.reportQuestion(context.Background(), &reply{outcome: outcomeAnswered}, nil)
}

// A message given up is counted once, by kind; a temporary failure is not.
func TestMetricsOutboxGivenUp(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	b, st := outboxBot(t, &now)
	rec := &recorder{}
	b.metrics = rec
	const agent = id.UserID("@agent:example.org")
	if err := st.Enqueue(ctx, store.Outgoing{Key: "welcome:1", DMUser: agent, MsgType: "m.text", Markdown: "x", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	due, _ := st.Due(ctx, now, 10)
	if gaveUp, _ := b.failed(ctx, due[0], httpErr(502, nil)); gaveUp {
		t.Fatal("a 502 gave the message up at once")
	}
	rec.only(t)
	now = now.Add(store.RetryDelay(1))
	due, _ = st.Due(ctx, now, 10)
	if gaveUp, _ := b.failed(ctx, due[0], errRoomGone); !gaveUp {
		t.Fatal("a dead room did not give the message up")
	}
	rec.only(t, "OutboxGivenUp:welcome")
}

func TestReportQuestion(t *testing.T) {
	live := context.Background()
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		r    *reply
		err  error
		want []string
	}{
		{"answered", live, &reply{outcome: outcomeAnswered}, nil, []string{"Question:answered"}},
		{"cut", live, &reply{outcome: outcomeCut}, nil, []string{"Question:cut"}},
		{"refused by a limit", live, &reply{outcome: outcomeLimited}, nil, []string{"Question:limited"}},
		{"failure of guichet", live, nil, errors.New("database is locked"), []string{"Question:failed"}},
		{"given back while stopping", stopped, &reply{}, context.Canceled, nil},
		{"cancelled call, given back", live, &reply{}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			b := &Bot{metrics: rec}
			b.reportQuestion(tt.ctx, tt.r, tt.err)
			rec.check(t, tt.want)
		})
	}
}

func TestGrantDecision(t *testing.T) {
	for _, tt := range []struct {
		status approvals.Status
		want   string
	}{
		{approvals.StatusApproved, decisionApproved},
		{approvals.StatusWaitlisted, decisionWaitlisted},
	} {
		if got := grantDecision(&approvals.Request{Status: tt.status}, decisionApproved); got != tt.want {
			t.Errorf("grantDecision(%s) = %s, want %s", tt.status, got, tt.want)
		}
	}
}

// The breaker gauge follows the breaker: open (and probing) is 1.
func TestBreakerOpen(t *testing.T) {
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	b := New(Config{Breaker: ratelimit.BreakerConfig{Failures: 1, OpenFor: time.Minute}}, Deps{Now: func() time.Time { return now }})
	if b.BreakerOpen() {
		t.Fatal("open at start")
	}
	ticket, ok, _ := b.defaultProfile().breaker.Allow()
	if !ok {
		t.Fatal("closed breaker refused a call")
	}
	ticket.Failure(true)
	if !b.BreakerOpen() {
		t.Error("not open after an overload with Failures 1")
	}
}
