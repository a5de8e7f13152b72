package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/internal/fakeclock"
)

func agent(i int) id.UserID { return id.UserID(fmt.Sprintf("@agent%d:agent.dinum.tchap.gouv.fr", i)) }

func newTestGate(cfg GlobalConfig) (*Gate, *fakeclock.Clock) {
	clock := fakeclock.New(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	g := NewGate(cfg, clock.Now)
	g.after = clock.After
	return g, clock
}

// acquired is the outcome of an Acquire run in the background.
type acquired struct {
	user    id.UserID
	release func(int)
	err     error
}

func acquireAsync(g *Gate, ctx context.Context, user id.UserID, onWait func(int), out chan<- acquired) {
	go func() {
		rel, err := g.Acquire(ctx, user, onWait)
		out <- acquired{user, rel, err}
	}()
}

func mustAcquire(t *testing.T, g *Gate, user id.UserID) func(int) {
	t.Helper()
	rel, err := g.Acquire(context.Background(), user, nil)
	if err != nil {
		t.Fatalf("Acquire(%s): %v", user, err)
	}
	return rel
}

func receive(t *testing.T, ch <-chan acquired) acquired {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for Acquire")
		return acquired{}
	}
}

func queued(g *Gate, n int) func() bool { return func() bool { return g.Stats().Queued == n } }

func TestGateFIFO(t *testing.T) {
	g, _ := newTestGate(GlobalConfig{MaxConcurrent: 1})
	first := mustAcquire(t, g, agent(0))
	out := make(chan acquired, 10)
	for i := 1; i <= 5; i++ {
		acquireAsync(g, context.Background(), agent(i), nil, out)
		waitFor(t, fmt.Sprintf("agent %d queued", i), queued(g, i))
	}
	if s := g.Stats(); s != (GateStats{InFlight: 1, Queued: 5}) {
		t.Errorf("Stats() = %+v", s)
	}
	first(0)
	var order []id.UserID
	for range 5 {
		a := receive(t, out)
		if a.err != nil {
			t.Fatalf("Acquire(%s): %v", a.user, a.err)
		}
		order = append(order, a.user)
		a.release(0)
	}
	want := []id.UserID{agent(1), agent(2), agent(3), agent(4), agent(5)}
	if !slices.Equal(order, want) {
		t.Errorf("order = %v, want %v", order, want)
	}
	if s := g.Stats(); s != (GateStats{}) {
		t.Errorf("Stats() after all = %+v", s)
	}
}

func TestGateOnePerAgent(t *testing.T) {
	g, _ := newTestGate(GlobalConfig{MaxConcurrent: 1})
	relA := mustAcquire(t, g, agent(1))
	if _, err := g.Acquire(context.Background(), agent(1), nil); !errors.Is(err, ErrBusyAgent) {
		t.Errorf("second Acquire in flight: %v, want ErrBusyAgent", err)
	}
	out := make(chan acquired, 1)
	acquireAsync(g, context.Background(), agent(2), nil, out)
	waitFor(t, "agent 2 queued", queued(g, 1))
	if _, err := g.Acquire(context.Background(), agent(2), nil); !errors.Is(err, ErrBusyAgent) {
		t.Errorf("second Acquire while queued: %v, want ErrBusyAgent", err)
	}
	relA(0)
	relA(0) // a second release does nothing
	b := receive(t, out)
	if s := g.Stats(); s != (GateStats{InFlight: 1}) {
		t.Errorf("Stats() = %+v, want one in flight", s)
	}
	b.release(0)
	mustAcquire(t, g, agent(1))(0)
}

func TestGateQueueFull(t *testing.T) {
	g, _ := newTestGate(GlobalConfig{MaxConcurrent: 1, QueueSize: 2})
	rel := mustAcquire(t, g, agent(0))
	out := make(chan acquired, 2)
	for i := 1; i <= 2; i++ {
		acquireAsync(g, context.Background(), agent(i), nil, out)
		waitFor(t, "queued", queued(g, i))
	}
	if _, err := g.Acquire(context.Background(), agent(3), nil); !errors.Is(err, ErrQueueFull) {
		t.Errorf("Acquire on a full queue: %v, want ErrQueueFull", err)
	}
	rel(0)
	receive(t, out).release(0)
	receive(t, out).release(0)
}

func TestGateUnlimited(t *testing.T) {
	g, _ := newTestGate(GlobalConfig{})
	var rels []func(int)
	for i := range 100 {
		rels = append(rels, mustAcquire(t, g, agent(i)))
	}
	if s := g.Stats(); s != (GateStats{InFlight: 100}) {
		t.Errorf("Stats() = %+v", s)
	}
	for _, r := range rels {
		r(1000)
	}
}

func TestGateOnWait(t *testing.T) {
	g, clock := newTestGate(GlobalConfig{MaxConcurrent: 1, WaitNotice: 3 * time.Second})
	rel := mustAcquire(t, g, agent(0))
	var mu sync.Mutex
	positions := map[id.UserID][]int{}
	onWait := func(user id.UserID) func(int) {
		return func(pos int) {
			mu.Lock()
			defer mu.Unlock()
			positions[user] = append(positions[user], pos)
		}
	}
	out := make(chan acquired, 3)
	for i := 1; i <= 3; i++ {
		acquireAsync(g, context.Background(), agent(i), onWait(agent(i)), out)
		waitFor(t, "queued", queued(g, i))
	}
	waitFor(t, "notice timers", func() bool { return clock.Pending() == 3 })
	// agent 1 gets its slot before the notice: it is never told.
	rel(0)
	first := receive(t, out)
	clock.Advance(3*time.Second - time.Millisecond)
	mu.Lock()
	if len(positions) != 0 {
		t.Errorf("notices before WaitNotice: %v", positions)
	}
	mu.Unlock()
	clock.Advance(time.Millisecond)
	waitFor(t, "notices", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(positions) == 2
	})
	clock.Advance(time.Hour) // at most one notice per Acquire
	first.release(0)
	receive(t, out).release(0)
	receive(t, out).release(0)
	mu.Lock()
	defer mu.Unlock()
	want := map[id.UserID][]int{agent(2): {1}, agent(3): {2}}
	for user, pos := range want {
		if !slices.Equal(positions[user], pos) {
			t.Errorf("positions of %s = %v, want %v", user, positions[user], pos)
		}
	}
	if len(positions) != len(want) {
		t.Errorf("positions = %v, want %v", positions, want)
	}
}

func TestGateCancel(t *testing.T) {
	g, _ := newTestGate(GlobalConfig{MaxConcurrent: 1})
	rel := mustAcquire(t, g, agent(0))
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan acquired, 2)
	acquireAsync(g, ctx, agent(1), nil, out)
	acquireAsync(g, context.Background(), agent(2), nil, out)
	waitFor(t, "queued", queued(g, 2))
	cancel()
	if a := receive(t, out); a.user != agent(1) || !errors.Is(a.err, context.Canceled) {
		t.Errorf("cancelled Acquire = %s, %v", a.user, a.err)
	}
	if s := g.Stats(); s != (GateStats{InFlight: 1, Queued: 1}) {
		t.Errorf("Stats() after cancel = %+v", s)
	}
	rel(0)
	b := receive(t, out)
	if b.user != agent(2) || b.err != nil {
		t.Errorf("next = %s, %v; want agent 2", b.user, b.err)
	}
	b.release(0)
	// The cancelled agent may ask again.
	mustAcquire(t, g, agent(1))(0)
}

func TestGateRequestsPerMinute(t *testing.T) {
	// 2 a minute, over any 60 s: the third waits for the first to leave.
	g, clock := newTestGate(GlobalConfig{MaxConcurrent: 100, RequestsPerMinute: 2})
	mustAcquire(t, g, agent(0))(0)
	clock.Advance(10 * time.Second)
	mustAcquire(t, g, agent(1))(0)
	out, later := make(chan acquired, 1), make(chan acquired, 1)
	acquireAsync(g, context.Background(), agent(2), nil, out)
	waitFor(t, "agent 2 queued", queued(g, 1))
	acquireAsync(g, context.Background(), agent(3), nil, later)
	waitFor(t, "both queued", queued(g, 2))
	waitFor(t, "rate timer", func() bool { return clock.Pending() == 1 })
	clock.Advance(50*time.Second - time.Millisecond)
	if s := g.Stats(); s.Queued != 2 {
		t.Fatalf("Stats() = %+v, want 2 queued until the first call is a minute old", s)
	}
	clock.Advance(time.Millisecond)
	a := receive(t, out)
	if a.user != agent(2) || a.err != nil {
		t.Fatalf("got %s, %v; want agent 2", a.user, a.err)
	}
	waitFor(t, "next rate timer", func() bool { return clock.Pending() == 1 })
	if s := g.Stats(); s != (GateStats{InFlight: 1, Queued: 1}) {
		t.Errorf("Stats() = %+v, want agent 3 still waiting for the rate", s)
	}
	clock.Advance(10*time.Second - time.Millisecond)
	if s := g.Stats(); s.Queued != 1 {
		t.Fatalf("Stats() = %+v, want agent 3 queued until the second call is a minute old", s)
	}
	clock.Advance(time.Millisecond)
	b := receive(t, later)
	if b.user != agent(3) || b.err != nil {
		t.Fatalf("got %s, %v; want agent 3", b.user, b.err)
	}
	a.release(0)
	b.release(0)
}

// TestGateRequestsPerMinuteProperty starts calls at random times and checks
// that no 60-second interval ever holds more than RequestsPerMinute starts.
func TestGateRequestsPerMinuteProperty(t *testing.T) {
	const perMinute = 3
	g, clock := newTestGate(GlobalConfig{MaxConcurrent: 100, RequestsPerMinute: perMinute})
	rng := rand.New(rand.NewPCG(2026, 9))
	var starts []time.Time
	for i := range 200 {
		clock.Advance(time.Duration(rng.IntN(40_000)) * time.Millisecond)
		out := make(chan acquired, 1)
		acquireAsync(g, context.Background(), agent(i), nil, out)
		var a acquired
		got := false
		waitFor(t, "granted or queued for the rate", func() bool {
			select {
			case a = <-out:
				got = true
				return true
			default:
				return g.Stats().Queued == 1 && clock.Pending() == 1
			}
		})
		if !got { // queued: move the clock to when the rate allows it
			g.mu.Lock()
			d := g.rateDelayLocked(clock.Now())
			g.mu.Unlock()
			if d <= 0 {
				t.Fatal("queued although the rate allows a call")
			}
			clock.Advance(d)
			a = receive(t, out)
		}
		if a.err != nil {
			t.Fatal(a.err)
		}
		starts = append(starts, clock.Now())
		a.release(0)
	}
	for i, s := range starts {
		j := i
		for j < len(starts) && starts[j].Before(s.Add(time.Minute)) {
			j++
		}
		if j-i > perMinute {
			t.Fatalf("%d calls started in the minute from %s: %v", j-i, s, starts[i:j])
		}
	}
}

func TestGateTokensPerMinute(t *testing.T) {
	// 600 tokens a minute, counted when calls end.
	g, clock := newTestGate(GlobalConfig{MaxConcurrent: 100, TokensPerMinute: 600})
	mustAcquire(t, g, agent(0))(200)
	clock.Advance(10 * time.Second)
	mustAcquire(t, g, agent(1))(500) // 700 in the last minute: wait
	out := make(chan acquired, 1)
	acquireAsync(g, context.Background(), agent(2), nil, out)
	waitFor(t, "queued", queued(g, 1))
	waitFor(t, "rate timer", func() bool { return clock.Pending() == 1 })
	// Once the 200 leave (60 s after they were charged), 500 < 600.
	clock.Advance(50*time.Second - time.Millisecond)
	if s := g.Stats(); s.Queued != 1 {
		t.Fatalf("Stats() = %+v, want still queued", s)
	}
	clock.Advance(time.Millisecond)
	receive(t, out).release(0)
	mustAcquire(t, g, agent(3))(0)
}
