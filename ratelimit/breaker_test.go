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
	op        string // "fail", "other", "ok", "allow", "wait"
	d         time.Duration
	wantOK    bool          // allow
	wantRetry time.Duration // allow
	state     string        // checked after the step when set
}

func fail() bstep                { return bstep{op: "fail"} }
func other() bstep               { return bstep{op: "other"} }
func success() bstep             { return bstep{op: "ok"} }
func wait(d time.Duration) bstep { return bstep{op: "wait", d: d} }
func allowed(state string) bstep { return bstep{op: "allow", wantOK: true, state: state} }
func denied(retry time.Duration) bstep {
	return bstep{op: "allow", wantRetry: retry}
}
func is(state string) bstep { return bstep{op: "state", state: state} }

func TestBreaker(t *testing.T) {
	cfg := BreakerConfig{Failures: 3, Window: time.Minute, OpenFor: 30 * time.Second, MaxOpenFor: 100 * time.Second, ProbeTimeout: 2 * time.Minute}
	tests := []struct {
		name    string
		steps   []bstep
		changes []bool
	}{
		{
			name:    "opens after N overload failures",
			steps:   []bstep{fail(), fail(), is(BreakerClosed), allowed(BreakerClosed), fail(), is(BreakerOpen), denied(30 * time.Second)},
			changes: []bool{true},
		},
		{
			name:  "other failures do not count",
			steps: []bstep{other(), other(), other(), other(), fail(), fail(), other(), is(BreakerClosed), allowed(BreakerClosed)},
		},
		{
			name:  "a success ends the run",
			steps: []bstep{fail(), fail(), success(), fail(), fail(), is(BreakerClosed)},
		},
		{
			name: "failures older than the window are forgotten",
			steps: []bstep{
				fail(), wait(30 * time.Second), fail(), wait(31 * time.Second), fail(), is(BreakerClosed),
				wait(time.Second), fail(), is(BreakerOpen),
			},
			changes: []bool{true},
		},
		{
			name: "half-open lets exactly one probe through, which closes it",
			steps: []bstep{
				fail(), fail(), fail(),
				wait(30*time.Second - time.Millisecond), denied(time.Millisecond),
				wait(time.Millisecond), allowed(BreakerHalfOpen),
				denied(probeRetry), denied(probeRetry), is(BreakerHalfOpen),
				success(), is(BreakerClosed), allowed(BreakerClosed), allowed(BreakerClosed),
			},
			changes: []bool{true, false},
		},
		{
			name: "failed probes double the wait up to the maximum, without new notices",
			steps: []bstep{
				fail(), fail(), fail(), wait(30 * time.Second), allowed(BreakerHalfOpen),
				fail(), is(BreakerOpen), denied(60 * time.Second),
				wait(60 * time.Second), allowed(BreakerHalfOpen), fail(), denied(100 * time.Second),
				wait(100 * time.Second), allowed(BreakerHalfOpen), fail(), denied(100 * time.Second),
				wait(100 * time.Second), allowed(BreakerHalfOpen), success(), is(BreakerClosed),
				// Closed again: the next opening waits OpenFor again.
				fail(), fail(), fail(), denied(30 * time.Second),
			},
			changes: []bool{true, false, true},
		},
		{
			name: "a probe that fails for another reason frees its place",
			steps: []bstep{
				fail(), fail(), fail(), wait(30 * time.Second), allowed(BreakerHalfOpen), denied(probeRetry),
				other(), is(BreakerHalfOpen), allowed(BreakerHalfOpen), denied(probeRetry),
			},
			changes: []bool{true},
		},
		{
			name: "a lost probe is replaced after ProbeTimeout",
			steps: []bstep{
				fail(), fail(), fail(), wait(30 * time.Second), allowed(BreakerHalfOpen),
				wait(2*time.Minute - time.Millisecond), denied(probeRetry),
				wait(time.Millisecond), allowed(BreakerHalfOpen),
			},
			changes: []bool{true},
		},
		{
			name: "late results while open change nothing",
			steps: []bstep{
				fail(), fail(), fail(), success(), fail(), other(), is(BreakerOpen), denied(30 * time.Second),
			},
			changes: []bool{true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := fakeclock.New(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
			var changes []bool
			b := NewBreaker(cfg, clock.Now, func(open bool) { changes = append(changes, open) })
			for i, s := range tt.steps {
				switch s.op {
				case "fail":
					b.Failure(true)
				case "other":
					b.Failure(false)
				case "ok":
					b.Success()
				case "wait":
					clock.Advance(s.d)
				case "allow":
					ok, retry := b.Allow()
					if ok != s.wantOK || retry != s.wantRetry {
						t.Errorf("step %d: Allow() = %v, %s; want %v, %s", i, ok, retry, s.wantOK, s.wantRetry)
					}
				}
				if s.state != "" && b.State() != s.state {
					t.Errorf("step %d (%s): state %s, want %s", i, s.op, b.State(), s.state)
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
		b.Failure(true)
	}
	if ok, retry := b.Allow(); ok || retry != DefaultBreakerOpenFor {
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
	for range 50 {
		wg.Go(func() { b.Failure(true) })
	}
	wg.Wait()
	clock.Advance(DefaultBreakerOpenFor)
	var probes sync.WaitGroup
	var allowedN int
	for range 50 {
		probes.Go(func() {
			if ok, _ := b.Allow(); ok {
				mu.Lock()
				allowedN++
				mu.Unlock()
			}
		})
	}
	probes.Wait()
	if allowedN != 1 {
		t.Errorf("%d probes allowed, want 1", allowedN)
	}
	for range 50 {
		wg.Go(b.Success)
	}
	wg.Wait()
	if !slices.Equal(changes, []bool{true, false}) {
		t.Errorf("onChange calls = %v, want [true false]", changes)
	}
}
