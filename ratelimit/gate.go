package ratelimit

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
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
	// RequestsPerMinute and TokensPerMinute keep guichet under the API
	// key's own limits. Bursts are a tenth of a minute's worth (at least
	// 1), so no minute sees much more than the limit. Tokens are charged
	// when a call ends; while more were used than the rate allows, new
	// calls wait.
	RequestsPerMinute int
	TokensPerMinute   int
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
	requests *rate.Limiter          // nil: unlimited
	tokens   *rate.Limiter          // nil: unlimited
	waking   bool                   // a timer will dispatch again
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
	g := &Gate{cfg: cfg, now: now, after: time.After, agents: map[id.UserID]struct{}{}}
	if cfg.RequestsPerMinute > 0 {
		g.requests = rate.NewLimiter(rate.Limit(float64(cfg.RequestsPerMinute)/60), max(1, cfg.RequestsPerMinute/10))
	}
	if cfg.TokensPerMinute > 0 {
		g.tokens = rate.NewLimiter(rate.Limit(float64(cfg.TokensPerMinute)/60), max(1, cfg.TokensPerMinute/10))
	}
	return g
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
	if g.tokens != nil && tokens > 0 {
		// ReserveN refuses more than the burst at once: charge in
		// chunks, each pushing the limiter further into debt.
		now := g.now()
		for tokens > 0 {
			n := min(tokens, g.tokens.Burst())
			g.tokens.ReserveN(now, n)
			tokens -= n
		}
	}
	g.dispatchLocked()
}

func (g *Gate) slotFreeLocked() bool {
	return g.cfg.MaxConcurrent <= 0 || g.inFlight < g.cfg.MaxConcurrent
}

// rateDelayLocked is how long until the rate limits let one more call start.
func (g *Gate) rateDelayLocked(now time.Time) time.Duration {
	var d time.Duration
	if g.requests != nil {
		if have := g.requests.TokensAt(now); have < 1-epsilon {
			d = max(d, durationFor(1-have, g.requests.Limit()))
		}
	}
	if g.tokens != nil {
		if have := g.tokens.TokensAt(now); have < -epsilon {
			d = max(d, durationFor(-have, g.tokens.Limit()))
		}
	}
	return d
}

func durationFor(tokens float64, per rate.Limit) time.Duration {
	return time.Duration(math.Ceil(tokens / float64(per) * float64(time.Second)))
}

// startLocked takes a slot and a request from the rate limit. The caller
// checked that the rate allows it; ReserveN rather than AllowN so that a
// rounding error cannot refuse it.
func (g *Gate) startLocked(now time.Time) {
	g.inFlight++
	if g.requests != nil {
		g.requests.ReserveN(now, 1)
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

// wakeLocked dispatches again after d. One timer at a time is enough: the
// delay only grows while nothing starts (calls ending add token debt), so an
// armed timer never fires too late.
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
