package ratelimit

import (
	"context"
	"errors"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"
)

// Gate errors, checked with errors.Is.
var (
	// ErrBusyAgent: the agent already has a question in flight or queued.
	ErrBusyAgent = errors.New("agent already has a question in flight or queued")
	// ErrQueueFull: the queue is full; the service is saturated.
	ErrQueueFull = errors.New("queue full")
)

// DefaultWaitNotice is how long an agent waits before being told their place.
const DefaultWaitNotice = 3 * time.Second

// GlobalConfig bounds the calls to Albert from all agents together. A zero
// limit is unlimited.
type GlobalConfig struct {
	// MaxConcurrent is how many calls may be in flight at once.
	MaxConcurrent int
	// QueueSize is how many questions may wait for a slot.
	QueueSize int
	// RequestsPerMinute keeps guichet under the API key's own limit: at
	// most that many calls start in any Window (60 s), counted since the
	// Gate was made. A call is one question; the retries the caller makes
	// inside it are not counted again.
	RequestsPerMinute int
	// TokensPerMinute: no call starts while the calls that ended in the
	// last Window used that many tokens or more. A call's tokens are known
	// only when it ends, so the tokens of a Window can exceed the limit by
	// what the calls in flight then use; the next calls wait until enough
	// of them left the Window.
	TokensPerMinute int
	// WaitNotice is how long a question waits before Acquire's onWait is
	// called with its place (default 3 s).
	WaitNotice time.Duration
}

// GateStats is a snapshot of the Gate, for !stats.
type GateStats struct {
	InFlight int
	Queued   int
}

// Gate lets at most MaxConcurrent calls to Albert run at once, in first
// come, first served order, with at most one question per agent in flight
// or queued so that one agent cannot take several places.
type Gate struct {
	cfg   GlobalConfig
	now   func() time.Time
	after func(time.Duration) <-chan time.Time // time.After; tests drive it

	mu       sync.Mutex
	inFlight int
	queue    []*waiter
	agents   map[id.UserID]struct{} // in flight or queued
	starts   []time.Time            // calls started in the last Window, oldest first
	spent    []spending             // tokens of the calls that ended in the last Window
	spentSum int                    // the sum of spent
	waking   bool                   // a timer will dispatch again
}

// spending is the tokens a call used, charged when it ended.
type spending struct {
	at     time.Time
	tokens int
}

type waiter struct {
	user    id.UserID
	ready   chan struct{} // closed when the slot is granted
	granted bool
}

// NewGate returns a Gate; now is the clock the rate limits are computed with
// (time.Now in production).
func NewGate(cfg GlobalConfig, now func() time.Time) *Gate {
	if cfg.WaitNotice <= 0 {
		cfg.WaitNotice = DefaultWaitNotice
	}
	return &Gate{cfg: cfg, now: now, after: time.After, agents: map[id.UserID]struct{}{}}
}

// Acquire waits for a slot to call Albert for user, in FIFO order. It
// returns ErrBusyAgent at once if user already has a question in flight or
// queued, ErrQueueFull at once if the queue is full, and ctx's error if ctx
// ends first. onWait (may be nil) is called at most once, from Acquire's
// goroutine, with user's 1-based place in the queue when the question has
// waited WaitNotice. The caller must call release exactly once when the call
// ends, with the tokens it used (0 if unknown); later calls do nothing.
func (g *Gate) Acquire(ctx context.Context, user id.UserID, onWait func(position int)) (release func(tokens int), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g.mu.Lock()
	if _, busy := g.agents[user]; busy {
		g.mu.Unlock()
		return nil, ErrBusyAgent
	}
	if now := g.now(); len(g.queue) == 0 && g.slotFreeLocked() && g.rateDelayLocked(now) == 0 {
		g.agents[user] = struct{}{}
		g.startLocked(now)
		g.mu.Unlock()
		return g.releaser(user), nil
	}
	if g.cfg.QueueSize > 0 && len(g.queue) >= g.cfg.QueueSize {
		g.mu.Unlock()
		return nil, ErrQueueFull
	}
	w := &waiter{user: user, ready: make(chan struct{})}
	g.queue = append(g.queue, w)
	g.agents[user] = struct{}{}
	g.dispatchLocked()
	g.mu.Unlock()

	var notice <-chan time.Time
	if onWait != nil {
		notice = g.after(g.cfg.WaitNotice)
	}
	for {
		select {
		case <-w.ready:
			return g.releaser(user), nil
		case <-notice:
			notice = nil
			g.mu.Lock()
			pos := g.positionLocked(w)
			g.mu.Unlock()
			if pos > 0 {
				onWait(pos)
			}
		case <-ctx.Done():
			g.mu.Lock()
			if w.granted {
				g.mu.Unlock()
				g.release(user, 0)
				return nil, ctx.Err()
			}
			g.removeLocked(w)
			delete(g.agents, user)
			g.mu.Unlock()
			return nil, ctx.Err()
		}
	}
}

// Stats returns the calls in flight and the questions waiting.
func (g *Gate) Stats() GateStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return GateStats{InFlight: g.inFlight, Queued: len(g.queue)}
}

func (g *Gate) releaser(user id.UserID) func(int) {
	var once sync.Once
	return func(tokens int) { once.Do(func() { g.release(user, tokens) }) }
}

func (g *Gate) release(user id.UserID, tokens int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight--
	delete(g.agents, user)
	if g.cfg.TokensPerMinute > 0 && tokens > 0 {
		g.spent = append(g.spent, spending{at: g.latestLocked(g.now()), tokens: tokens})
		g.spentSum += tokens
	}
	g.dispatchLocked()
}

func (g *Gate) slotFreeLocked() bool {
	return g.cfg.MaxConcurrent <= 0 || g.inFlight < g.cfg.MaxConcurrent
}

// latestLocked is now, or the latest time already recorded if the clock went
// back: the windows stay in order, and a call counts no earlier than it did.
func (g *Gate) latestLocked(now time.Time) time.Time {
	if n := len(g.starts); n > 0 && g.starts[n-1].After(now) {
		now = g.starts[n-1]
	}
	if n := len(g.spent); n > 0 && g.spent[n-1].at.After(now) {
		now = g.spent[n-1].at
	}
	return now
}

// rateDelayLocked is how long until the rate limits let one more call start:
// until enough starts left the Window that fewer than RequestsPerMinute lie
// in it, and enough spent tokens left it that they sum to less than
// TokensPerMinute. It first forgets what already left the Window.
func (g *Gate) rateDelayLocked(now time.Time) time.Duration {
	gone := func(at time.Time) bool { return !now.Before(at.Add(Window)) }
	i := 0
	for i < len(g.starts) && gone(g.starts[i]) {
		i++
	}
	g.starts = g.starts[i:]
	i = 0
	for i < len(g.spent) && gone(g.spent[i].at) {
		g.spentSum -= g.spent[i].tokens
		i++
	}
	g.spent = g.spent[i:]

	var until time.Time
	if n, k := g.cfg.RequestsPerMinute, len(g.starts); n > 0 && k >= n {
		until = g.starts[k-n].Add(Window)
	}
	if limit := g.cfg.TokensPerMinute; limit > 0 && g.spentSum >= limit {
		sum := g.spentSum
		for _, sp := range g.spent {
			sum -= sp.tokens
			if sum < limit {
				if at := sp.at.Add(Window); at.After(until) {
					until = at
				}
				break
			}
		}
	}
	return max(until.Sub(now), 0)
}

// startLocked takes a slot and records the start for the rate limit. The
// caller checked that the rate allows it.
func (g *Gate) startLocked(now time.Time) {
	g.inFlight++
	if g.cfg.RequestsPerMinute > 0 {
		g.starts = append(g.starts, g.latestLocked(now))
	}
}

// dispatchLocked grants free slots to the head of the queue, or arranges to
// try again when only the rate limits stand in the way.
func (g *Gate) dispatchLocked() {
	for len(g.queue) > 0 && g.slotFreeLocked() {
		now := g.now()
		if d := g.rateDelayLocked(now); d > 0 {
			g.wakeLocked(d)
			return
		}
		w := g.queue[0]
		g.queue[0] = nil
		g.queue = g.queue[1:]
		g.startLocked(now)
		w.granted = true
		close(w.ready)
	}
}

// wakeLocked dispatches again after d. One timer at a time is enough: while
// nothing starts, the moment a call may start only moves later (calls
// ending add tokens to the Window), so an armed timer never fires too late;
// firing early, it arms the next one.
func (g *Gate) wakeLocked(d time.Duration) {
	if g.waking {
		return
	}
	g.waking = true
	ch := g.after(d)
	go func() {
		<-ch
		g.mu.Lock()
		defer g.mu.Unlock()
		g.waking = false
		g.dispatchLocked()
	}()
}

func (g *Gate) positionLocked(w *waiter) int {
	for i, q := range g.queue {
		if q == w {
			return i + 1
		}
	}
	return 0
}

func (g *Gate) removeLocked(w *waiter) {
	for i, q := range g.queue {
		if q == w {
			g.queue = append(g.queue[:i], g.queue[i+1:]...)
			return
		}
	}
}
