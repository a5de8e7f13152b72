package ratelimit

import (
	"slices"
	"sync"
	"testing"
	"time"

	"guichet/internal/fakeclock"
)

// bstep is one thing that happens to a breaker, and what it should answer.
type bstep struct {
	op        string // "take", "fail", "other", "ok", "release", "ready", "wait", "state"
	ticket    string // the ticket taken or used
	d         time.Duration
	wantOK    bool          // take, ready
	wantRetry time.Duration // take, ready
	state     string        // checked after the step when set
}

// take is an Allow that must succeed, keeping its ticket as name.
func take(name, state string) bstep {
	return bstep{op: "take", ticket: name, wantOK: true, state: state}
}
func denied(retry time.Duration) bstep {
	return bstep{op: "take", wantRetry: retry}
}
func fail(name string) bstep    { return bstep{op: "fail", ticket: name} }
func other(name string) bstep   { return bstep{op: "other", ticket: name} }
func success(name string) bstep { return bstep{op: "ok", ticket: name} }
func release(name string) bstep { return bstep{op: "release", ticket: name} }
func ready(ok bool, retry time.Duration) bstep {
	return bstep{op: "ready", wantOK: ok, wantRetry: retry}
}
func wait(d time.Duration) bstep { return bstep{op: "wait", d: d} }
func is(state string) bstep      { return bstep{op: "state", state: state} }

// openIt takes three tickets and fails them: the breaker of TestBreaker opens.
func openIt() []bstep {
	return []bstep{take("o1", BreakerClosed), take("o2", BreakerClosed), take("o3", BreakerClosed), fail("o1"), fail("o2"), fail("o3")}
}

func steps(parts ...[]bstep) []bstep {
	var out []bstep
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestBreaker(t *testing.T) {
	cfg := BreakerConfig{Failures: 3, Window: time.Minute, OpenFor: 30 * time.Second, MaxOpenFor: 100 * time.Second, ProbeTimeout: 2 * time.Minute}
	tests := []struct {
		name    string
		steps   []bstep
		changes []bool
	}{
		{
			name: "opens after N overload failures",
			steps: []bstep{
				take("a", BreakerClosed), take("b", BreakerClosed), take("c", BreakerClosed), take("d", BreakerClosed),
				fail("a"), fail("b"), is(BreakerClosed), fail("c"), is(BreakerOpen), denied(30 * time.Second),
			},
			changes: []bool{true},
		},
		{
			name: "other failures do not count",
			steps: []bstep{
				take("a", BreakerClosed), take("b", BreakerClosed), take("c", BreakerClosed), take("d", BreakerClosed),
				other("a"), other("b"), fail("c"), fail("d"), is(BreakerClosed),
			},
		},
		{
			name: "a success ends the run",
			steps: []bstep{
				take("a", BreakerClosed), take("b", BreakerClosed), take("c", BreakerClosed), take("d", BreakerClosed), take("e", BreakerClosed),
				fail("a"), fail("b"), success("c"), fail("d"), fail("e"), is(BreakerClosed),
			},
		},
		{
			name: "a ticket counts once",
			steps: []bstep{
				take("a", BreakerClosed), fail("a"), fail("a"), fail("a"), success("a"), is(BreakerClosed),
				take("b", BreakerClosed), take("c", BreakerClosed), fail("b"), fail("c"), is(BreakerOpen),
			},
			changes: []bool{true},
		},
		{
			name: "failures older than the window are forgotten",
			steps: []bstep{
				take("a", BreakerClosed), fail("a"), wait(30 * time.Second), take("b", BreakerClosed), fail("b"),
				wait(31 * time.Second), take("c", BreakerClosed), fail("c"), is(BreakerClosed),
				wait(time.Second), take("d", BreakerClosed), fail("d"), is(BreakerOpen),
			},
			changes: []bool{true},
		},
		{
			name: "half-open lets exactly one probe through, which closes it",
			steps: steps(openIt(), []bstep{
				wait(30*time.Second - time.Millisecond), denied(time.Millisecond), ready(false, time.Millisecond),
				wait(time.Millisecond), ready(true, 0), ready(true, 0), take("p", BreakerHalfOpen),
				denied(probeRetry), ready(false, probeRetry), is(BreakerHalfOpen),
				success("p"), is(BreakerClosed), take("a", BreakerClosed), take("b", BreakerClosed),
			}),
			changes: []bool{true, false},
		},
		{
			name: "failed probes double the wait up to the maximum, without new notices",
			steps: steps(openIt(), []bstep{
				wait(30 * time.Second), take("p1", BreakerHalfOpen),
				fail("p1"), is(BreakerOpen), denied(60 * time.Second),
				wait(60 * time.Second), take("p2", BreakerHalfOpen), fail("p2"), denied(100 * time.Second),
				wait(100 * time.Second), take("p3", BreakerHalfOpen), fail("p3"), denied(100 * time.Second),
				wait(100 * time.Second), take("p4", BreakerHalfOpen), success("p4"), is(BreakerClosed),
			}, openIt(), []bstep{
				// Closed again: the next opening waits OpenFor again.
				denied(30 * time.Second),
			}),
			changes: []bool{true, false, true},
		},
		{
			name: "the probe failing for another reason frees its place",
			steps: steps(openIt(), []bstep{
				wait(30 * time.Second), take("p", BreakerHalfOpen), denied(probeRetry),
				other("p"), is(BreakerHalfOpen), take("q", BreakerHalfOpen), denied(probeRetry),
			}),
			changes: []bool{true},
		},
		{
			name: "a released probe frees its place",
			steps: steps(openIt(), []bstep{
				wait(30 * time.Second), take("p", BreakerHalfOpen), release("p"), take("q", BreakerHalfOpen),
				release("p"), denied(probeRetry), success("q"), is(BreakerClosed),
			}),
			changes: []bool{true, false},
		},
		{
			name: "only the probe's holder decides: late tickets neither close, reopen nor free it",
			steps: steps([]bstep{take("late1", BreakerClosed), take("late2", BreakerClosed), take("late3", BreakerClosed)}, openIt(), []bstep{
				wait(30 * time.Second), take("p", BreakerHalfOpen),
				success("late1"), is(BreakerHalfOpen),
				fail("late2"), is(BreakerHalfOpen),
				other("late3"), denied(probeRetry),
				release("late3"), denied(probeRetry),
				fail("p"), is(BreakerOpen), denied(60 * time.Second),
			}),
			changes: []bool{true},
		},
		{
			name: "a lost probe is replaced after ProbeTimeout, and its late result is ignored",
			steps: steps(openIt(), []bstep{
				wait(30 * time.Second), take("lost", BreakerHalfOpen),
				wait(2*time.Minute - time.Millisecond), denied(probeRetry),
				wait(time.Millisecond), take("p", BreakerHalfOpen),
				success("lost"), is(BreakerHalfOpen), denied(probeRetry),
				success("p"), is(BreakerClosed),
			}),
			changes: []bool{true, false},
		},
		{
			name: "tickets from before the breaker closed do not count after",
			steps: steps([]bstep{take("old", BreakerClosed)}, openIt(), []bstep{
				wait(30 * time.Second), take("p", BreakerHalfOpen), success("p"), is(BreakerClosed),
				take("a", BreakerClosed), take("b", BreakerClosed),
				fail("old"), fail("a"), fail("b"), is(BreakerClosed),
			}),
			changes: []bool{true, false},
		},
		{
			name: "late results while open change nothing",
			steps: steps([]bstep{take("a", BreakerClosed), take("b", BreakerClosed), take("c", BreakerClosed)}, openIt(), []bstep{
				success("a"), fail("b"), other("c"), is(BreakerOpen), denied(30 * time.Second),
			}),
			changes: []bool{true},
		},
		{
			name:  "the zero ticket reports nothing",
			steps: []bstep{fail(""), fail(""), fail(""), success(""), release(""), is(BreakerClosed)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := fakeclock.New(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
			var changes []bool
			b := NewBreaker(cfg, clock.Now, func(open bool) { changes = append(changes, open) })
			tickets := map[string]Ticket{}
			for i, s := range tt.steps {
				switch s.op {
				case "take":
					tk, ok, retry := b.Allow()
					if ok != s.wantOK || retry != s.wantRetry {
						t.Errorf("step %d: Allow() = %v, %s; want %v, %s", i, ok, retry, s.wantOK, s.wantRetry)
					}
					if ok && tk.Probe() != (b.State() == BreakerHalfOpen) {
						t.Errorf("step %d: Probe() = %v in state %s", i, tk.Probe(), b.State())
					}
					if s.ticket != "" {
						tickets[s.ticket] = tk
					}
				case "ready":
					ok, retry := b.Ready()
					if ok != s.wantOK || retry != s.wantRetry {
						t.Errorf("step %d: Ready() = %v, %s; want %v, %s", i, ok, retry, s.wantOK, s.wantRetry)
					}
				case "fail":
					tickets[s.ticket].Failure(true)
				case "other":
					tickets[s.ticket].Failure(false)
				case "ok":
					tickets[s.ticket].Success()
				case "release":
					tickets[s.ticket].Release()
				case "wait":
					clock.Advance(s.d)
				}
				if s.state != "" && b.State() != s.state {
					t.Errorf("step %d (%s %s): state %s, want %s", i, s.op, s.ticket, b.State(), s.state)
				}
			}
			if !slices.Equal(changes, tt.changes) {
				t.Errorf("onChange calls = %v, want %v", changes, tt.changes)
			}
		})
	}
}

func TestBreakerDefaults(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	b := NewBreaker(BreakerConfig{}, clock.Now, nil)
	for range DefaultBreakerFailures {
		tk, _, _ := b.Allow()
		tk.Failure(true)
	}
	if _, ok, retry := b.Allow(); ok || retry != DefaultBreakerOpenFor {
		t.Errorf("Allow() = %v, %s; want false, %s", ok, retry, DefaultBreakerOpenFor)
	}
}

func TestBreakerNotifiesOnceUnderConcurrency(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	var changes []bool
	b := NewBreaker(BreakerConfig{Failures: 5}, clock.Now, func(open bool) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, open)
	})
	var wg sync.WaitGroup
	var late []Ticket
	for range 50 {
		tk, _, _ := b.Allow()
		late = append(late, tk)
	}
	for _, tk := range late {
		wg.Go(func() { tk.Failure(true) })
	}
	wg.Wait()
	clock.Advance(DefaultBreakerOpenFor)
	var probes sync.WaitGroup
	var got []Ticket
	for range 50 {
		probes.Go(func() {
			if tk, ok, _ := b.Allow(); ok {
				mu.Lock()
				got = append(got, tk)
				mu.Unlock()
			}
		})
	}
	probes.Wait()
	if len(got) != 1 {
		t.Fatalf("%d probes allowed, want 1", len(got))
	}
	for _, tk := range late {
		wg.Go(tk.Success) // late: ignored
	}
	for range 50 {
		wg.Go(got[0].Success) // the probe, reported many times: counts once
	}
	wg.Wait()
	if !slices.Equal(changes, []bool{true, false}) {
		t.Errorf("onChange calls = %v, want [true false]", changes)
	}
}

// pstep is one thing that happens to a KeyPause.
type pstep struct {
	op      string // "stop", "resume", "check", "wait"
	reason  string
	until   time.Duration // stop: from now; check: want until from the start
	known   bool
	d       time.Duration // wait; resume: call started d before now
	want    bool          // stop: started; resume: ended; check: paused
	wantEnd time.Duration // stop: the end it returns, from the start
	wantWhy string        // resume, check
}

func TestKeyPause(t *testing.T) {
	const h = time.Hour
	tests := []struct {
		name  string
		steps []pstep
	}{
		{
			name: "a daily limit pauses until the window rolls, then a success ends it once",
			steps: []pstep{
				{op: "check", want: false},
				{op: "stop", reason: "daily_limit", until: 10 * h, want: true, wantEnd: 10 * h},
				{op: "check", want: true, wantWhy: "daily_limit", until: 10 * h},
				{op: "wait", d: 10*h - time.Second},
				{op: "check", want: true, wantWhy: "daily_limit", until: 10 * h},
				{op: "wait", d: time.Second},
				{op: "check", want: false},
				{op: "resume", want: true, wantWhy: "daily_limit"},
				{op: "resume", want: false},
				{op: "stop", reason: "daily_limit", until: 5 * h, want: true, wantEnd: 15 * h},
			},
		},
		{
			name: "refusals of calls already out extend the pause without starting another",
			steps: []pstep{
				{op: "stop", reason: "daily_limit", until: 10 * h, want: true, wantEnd: 10 * h},
				{op: "stop", reason: "daily_limit", until: 8 * h, want: false, wantEnd: 10 * h},
				{op: "stop", reason: "budget", until: 12 * h, want: false, wantEnd: 12 * h},
				{op: "check", want: true, wantWhy: "budget", until: 12 * h},
			},
		},
		{
			name: "a success of a call that started before the pause does not end it",
			steps: []pstep{
				{op: "wait", d: time.Minute},
				{op: "stop", reason: "daily_limit", until: 10 * h, want: true, wantEnd: 10*h + time.Minute},
				{op: "resume", d: time.Second, want: false},
				{op: "check", want: true, wantWhy: "daily_limit", until: 10*h + time.Minute},
			},
		},
		{
			name: "refused again after a guessed end: paused for Recheck only, and not announced again",
			steps: []pstep{
				{op: "stop", reason: "daily_limit", until: 10 * h, want: true, wantEnd: 10 * h},
				{op: "wait", d: 10 * h},
				{op: "stop", reason: "daily_limit", until: 24 * h, want: false, wantEnd: 11 * h},
				{op: "wait", d: h},
				{op: "check", want: false},
				{op: "resume", want: true, wantWhy: "daily_limit"},
			},
		},
		{
			name: "refused again after the pause ran out with an end the server gave: that end",
			steps: []pstep{
				{op: "stop", reason: "daily_limit", until: 10 * h, want: true, wantEnd: 10 * h},
				{op: "wait", d: 10 * h},
				{op: "stop", reason: "daily_limit", until: 3 * h, known: true, want: false, wantEnd: 13 * h},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC)
			clock := fakeclock.New(start)
			p := NewKeyPause(clock.Now, time.Hour)
			for i, s := range tt.steps {
				now := clock.Now()
				switch s.op {
				case "stop":
					started, end := p.Stop(s.reason, now.Add(s.until), s.known)
					if started != s.want || !end.Equal(start.Add(s.wantEnd)) {
						t.Errorf("step %d: Stop = %v, %s; want %v, %s", i, started, end.Sub(start), s.want, s.wantEnd)
					}
				case "resume":
					ended, why := p.Resume(now.Add(-s.d))
					if ended != s.want || why != s.wantWhy {
						t.Errorf("step %d: Resume = %v, %q; want %v, %q", i, ended, why, s.want, s.wantWhy)
					}
				case "check":
					why, until, paused := p.Paused()
					if paused != s.want || why != s.wantWhy || (paused && !until.Equal(start.Add(s.until))) {
						t.Errorf("step %d: Paused = %q, %s, %v; want %q, %s, %v", i, why, until.Sub(start), paused, s.wantWhy, s.until, s.want)
					}
				case "wait":
					clock.Advance(s.d)
				}
			}
		})
	}
}
