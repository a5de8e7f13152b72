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
	// Failures is how many overload failures (per-minute 429, 503, 504),
	// with no success between them and all within Window, open the
	// breaker. A per-day 429 or a spent budget is no overload: see KeyPause.
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
//
// Every call that may go gets a Ticket, and reports its outcome on it. A
// ticket counts only in the state it was issued in: in half-open state only
// the probe's own ticket decides, so a call that was let through before the
// breaker opened, or a caller that never got the probe, cannot close it,
// reopen it or free the probe's place.
type Breaker struct {
	cfg      BreakerConfig
	now      func() time.Time
	onChange func(open bool)

	mu       sync.Mutex
	notifyMu sync.Mutex // keeps notifications in the order of the changes
	state    string
	epoch    uint64      // changes with every change of state
	failures []time.Time // recent overload failures while closed
	until    time.Time   // open: when a probe may go
	openFor  time.Duration
	probe    uint64    // half-open: the ticket number of the probe out; 0 if none
	probeAt  time.Time // half-open: when it went
	issued   uint64    // probe ticket numbers handed out
}

// Ticket is the right to make one call, handed out by Allow. Its holder
// reports the call's outcome with Success or Failure, or gives it back with
// Release when the call was not made; only the first of these counts. The
// zero Ticket reports nothing.
type Ticket struct {
	b     *Breaker
	epoch uint64
	probe uint64 // 0: not a probe
	used  *bool
}

// Probe reports whether the ticket is the half-open breaker's probe.
func (t Ticket) Probe() bool { return t.probe != 0 }

// NewBreaker returns a closed Breaker. now is the clock (time.Now in
// production). onChange (may be nil) is called once when the breaker opens
// and once when it closes again; a failed probe keeps it open without a new
// call. It runs synchronously and must not call Allow or a Ticket's methods.
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

// Allow reports whether a call may go to Albert now, with the ticket on
// which to report its outcome; if not, retryIn is when to ask again. In
// half-open state the ticket is the probe's.
func (b *Breaker) Allow() (t Ticket, ok bool, retryIn time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	switch b.state {
	case BreakerOpen:
		if now.Before(b.until) {
			return Ticket{}, false, b.until.Sub(now)
		}
		b.state = BreakerHalfOpen
		b.epoch++
		return b.issueProbe(now), true, 0
	case BreakerHalfOpen:
		if b.probe != 0 && now.Sub(b.probeAt) < b.cfg.ProbeTimeout {
			return Ticket{}, false, probeRetry
		}
		// No probe out, or the one out was lost: a new one replaces it.
		return b.issueProbe(now), true, 0
	}
	return Ticket{b: b, epoch: b.epoch, used: new(bool)}, true, 0
}

// Ready reports, without taking anything, whether Allow would let a call go
// now; if not, retryIn is when to ask again. It lets a caller wait for the
// breaker before queueing, and take its ticket only when it calls.
func (b *Breaker) Ready() (ok bool, retryIn time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	switch b.state {
	case BreakerOpen:
		if now.Before(b.until) {
			return false, b.until.Sub(now)
		}
	case BreakerHalfOpen:
		if b.probe != 0 && now.Sub(b.probeAt) < b.cfg.ProbeTimeout {
			return false, probeRetry
		}
	}
	return true, 0
}

func (b *Breaker) issueProbe(now time.Time) Ticket {
	b.issued++
	b.probe, b.probeAt = b.issued, now
	return Ticket{b: b, epoch: b.epoch, probe: b.probe, used: new(bool)}
}

// take marks the ticket used and reports whether it still speaks for the
// breaker's current state. b.mu is held.
func (t Ticket) take() bool {
	if t.b == nil || *t.used {
		return false
	}
	*t.used = true
	if t.epoch != t.b.epoch {
		return false // issued in an earlier state: a late result
	}
	return t.probe == t.b.probe // both 0 when closed
}

// Success records a call that Albert answered: it ends a run of failures,
// and the probe's success closes the breaker.
func (t Ticket) Success() {
	if t.b == nil {
		return
	}
	b := t.b
	b.mu.Lock()
	if !t.take() {
		b.mu.Unlock()
		return
	}
	switch b.state {
	case BreakerClosed:
		b.failures = b.failures[:0]
	case BreakerHalfOpen:
		b.state, b.probe, b.openFor = BreakerClosed, 0, b.cfg.OpenFor
		b.epoch++
		b.failures = b.failures[:0]
		b.notifyUnlock(false)
		return
	}
	b.mu.Unlock()
}

// Failure records a failed call. Only overload failures (per-minute 429,
// 503, 504) count; the probe failing for another reason frees its place
// for another probe. A failed probe opens the breaker again for twice as
// long.
func (t Ticket) Failure(overload bool) {
	if t.b == nil {
		return
	}
	b := t.b
	b.mu.Lock()
	if !t.take() {
		b.mu.Unlock()
		return
	}
	now := b.now()
	switch {
	case b.state == BreakerHalfOpen && !overload:
		b.probe = 0
	case b.state == BreakerHalfOpen:
		b.openFor = min(2*b.openFor, b.cfg.MaxOpenFor)
		b.state, b.until, b.probe = BreakerOpen, now.Add(b.openFor), 0
		b.epoch++
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
			b.epoch++
			b.failures = b.failures[:0]
			b.notifyUnlock(true)
			return
		}
	}
	b.mu.Unlock()
}

// Release gives back a ticket whose call was not made (the question was
// refused after all): a probe's place goes to the next caller.
func (t Ticket) Release() {
	if t.b == nil {
		return
	}
	t.b.mu.Lock()
	if t.take() && t.b.state == BreakerHalfOpen {
		t.b.probe = 0
	}
	t.b.mu.Unlock()
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

// DefaultPauseRecheck is how long a KeyPause lasts when nobody knows when
// the key works again (a spent budget, or a daily window that did not roll
// when expected): then one question tries again.
const DefaultPauseRecheck = time.Hour

// KeyPause stops every call made with an API key that Albert refuses for
// hours rather than seconds: its daily window is full, or its budget is
// spent. Retrying such a refusal only gets another one, and it says nothing
// about overload, so it goes neither to the retry loop nor to the Breaker.
// Once the pause has run out, calls go again; the first success ends it,
// and a new refusal extends it without counting as a new pause, so that
// people are told once when it starts and once when it ends.
type KeyPause struct {
	now     func() time.Time
	recheck time.Duration

	mu     sync.Mutex
	reason string    // "" when the key is not paused
	since  time.Time // when the pause started
	until  time.Time // when calls may go again
}

// NewKeyPause returns a KeyPause that is not paused. now is the clock;
// recheck <= 0 means DefaultPauseRecheck.
func NewKeyPause(now func() time.Time, recheck time.Duration) *KeyPause {
	if recheck <= 0 {
		recheck = DefaultPauseRecheck
	}
	return &KeyPause{now: now, recheck: recheck}
}

// Recheck is how long a pause lasts when nobody knows when it ends.
func (p *KeyPause) Recheck() time.Duration { return p.recheck }

// Paused reports whether calls must wait, why and until when. A pause that
// has run out says no, while it waits for a call to confirm it is over.
func (p *KeyPause) Paused() (reason string, until time.Time, paused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reason == "" || !p.now().Before(p.until) {
		return "", time.Time{}, false
	}
	return p.reason, p.until, true
}

// Stop pauses the key for reason until until; known says that until came
// from the server (Retry-After, x-ratelimit-reset-*) rather than a guess. It
// returns when the pause ends and whether it started now (so people are told
// once). Refused again after the pause ran out, the guess proved wrong: an
// unknown end is then pushed back by Recheck only.
func (p *KeyPause) Stop(reason string, until time.Time, known bool) (started bool, end time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	switch {
	case p.reason == "":
		p.reason, p.since, p.until = reason, now, until
		return true, p.until
	case now.Before(p.until):
		// Calls that were already out when the pause started.
		p.reason, p.until = reason, later(p.until, until)
	case known:
		p.reason, p.until = reason, until
	default:
		p.reason, p.until = reason, earlier(until, now.Add(p.recheck))
	}
	return false, p.until
}

// Resume records a call that started at callStart and succeeded: if the
// key was paused before that call started, the pause is over. It reports
// whether a pause ended, and its reason.
func (p *KeyPause) Resume(callStart time.Time) (ended bool, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reason == "" || callStart.Before(p.since) {
		return false, ""
	}
	reason, p.reason = p.reason, ""
	return true, reason
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
