package ratelimit

import (
	"sync"
	"time"
)

// Breaker states, as State returns them.
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half_open"
)

// Breaker defaults, applied by NewBreaker to zero fields.
const (
	DefaultBreakerFailures     = 5
	DefaultBreakerWindow       = time.Minute
	DefaultBreakerOpenFor      = 30 * time.Second
	DefaultBreakerMaxOpenFor   = 5 * time.Minute
	DefaultBreakerProbeTimeout = 2 * time.Minute
)

// probeRetry is the retryIn Allow gives while a probe is out: the probe
// may end any moment.
const probeRetry = time.Second

// BreakerConfig says when Albert counts as overloaded. Zero fields get the
// defaults above.
type BreakerConfig struct {
	// Failures is how many overload failures (429, 503, 504), with no
	// success between them and all within Window, open the breaker.
	Failures int
	Window   time.Duration
	// OpenFor is how long the breaker stays open before it lets one probe
	// through; it doubles after each failed probe, up to MaxOpenFor, and
	// goes back to OpenFor when the breaker closes.
	OpenFor    time.Duration
	MaxOpenFor time.Duration
	// ProbeTimeout is how long a probe may go without reporting before
	// another one is let through (the first was lost).
	ProbeTimeout time.Duration
}

// Breaker stops calls to Albert while it is overloaded, so that one API key
// is not rate-limited further for everyone. Closed, every call goes; open,
// none does until OpenFor has passed; then half-open, one probe at a time
// goes, and its outcome closes the breaker or opens it again.
type Breaker struct {
	cfg      BreakerConfig
	now      func() time.Time
	onChange func(open bool)

	mu       sync.Mutex
	notifyMu sync.Mutex // keeps notifications in the order of the changes
	state    string
	failures []time.Time // recent overload failures while closed
	until    time.Time   // open: when a probe may go
	openFor  time.Duration
	probeAt  time.Time // half-open: when the probe out went; zero if none
}

// NewBreaker returns a closed Breaker. now is the clock (time.Now in
// production). onChange (may be nil) is called once when the breaker opens
// and once when it closes again; a failed probe keeps it open without a new
// call. It runs synchronously and must not call Allow, Success or Failure.
func NewBreaker(cfg BreakerConfig, now func() time.Time, onChange func(open bool)) *Breaker {
	if cfg.Failures <= 0 {
		cfg.Failures = DefaultBreakerFailures
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultBreakerWindow
	}
	if cfg.OpenFor <= 0 {
		cfg.OpenFor = DefaultBreakerOpenFor
	}
	if cfg.MaxOpenFor < cfg.OpenFor {
		cfg.MaxOpenFor = max(cfg.OpenFor, DefaultBreakerMaxOpenFor)
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = DefaultBreakerProbeTimeout
	}
	return &Breaker{cfg: cfg, now: now, onChange: onChange, state: BreakerClosed, openFor: cfg.OpenFor}
}

// Allow reports whether a call may go to Albert now; if not, retryIn is
// when to ask again. A call that was allowed must end with Success or
// Failure (in half-open state it is the probe).
func (b *Breaker) Allow() (ok bool, retryIn time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	switch b.state {
	case BreakerOpen:
		if now.Before(b.until) {
			return false, b.until.Sub(now)
		}
		b.state, b.probeAt = BreakerHalfOpen, now
		return true, 0
	case BreakerHalfOpen:
		if !b.probeAt.IsZero() && now.Sub(b.probeAt) < b.cfg.ProbeTimeout {
			return false, probeRetry
		}
		b.probeAt = now
		return true, 0
	}
	return true, 0
}

// Success records a call that Albert answered: it ends a run of failures,
// and a successful probe closes the breaker.
func (b *Breaker) Success() {
	b.mu.Lock()
	switch b.state {
	case BreakerClosed:
		b.failures = b.failures[:0]
	case BreakerHalfOpen:
		b.state, b.probeAt, b.openFor = BreakerClosed, time.Time{}, b.cfg.OpenFor
		b.failures = b.failures[:0]
		b.notifyUnlock(false)
		return
	}
	b.mu.Unlock()
}

// Failure records a failed call. Only overload failures (429, 503, 504)
// count; any other failure only frees the probe's place when half-open. A
// failed probe opens the breaker again for twice as long.
func (b *Breaker) Failure(overload bool) {
	b.mu.Lock()
	now := b.now()
	switch {
	case b.state == BreakerHalfOpen && !overload:
		b.probeAt = time.Time{}
	case b.state == BreakerHalfOpen:
		b.openFor = min(2*b.openFor, b.cfg.MaxOpenFor)
		b.state, b.until, b.probeAt = BreakerOpen, now.Add(b.openFor), time.Time{}
	case b.state == BreakerClosed && overload:
		kept := b.failures[:0]
		for _, at := range b.failures {
			if now.Sub(at) < b.cfg.Window {
				kept = append(kept, at)
			}
		}
		b.failures = append(kept, now)
		if len(b.failures) >= b.cfg.Failures {
			b.state, b.until, b.openFor = BreakerOpen, now.Add(b.cfg.OpenFor), b.cfg.OpenFor
			b.failures = b.failures[:0]
			b.notifyUnlock(true)
			return
		}
	}
	b.mu.Unlock()
}

// State returns "closed", "open" or "half_open". An open breaker whose
// OpenFor has passed still says "open" until the next Allow.
func (b *Breaker) State() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// notifyUnlock releases b.mu and calls onChange. notifyMu is taken before
// b.mu is released, so notifications come in the order of the changes.
func (b *Breaker) notifyUnlock(open bool) {
	if b.onChange == nil {
		b.mu.Unlock()
		return
	}
	b.notifyMu.Lock()
	b.mu.Unlock()
	defer b.notifyMu.Unlock()
	b.onChange(open)
}
