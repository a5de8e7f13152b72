package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"guichet/internal/fakeclock"
	"guichet/internal/testdb"
	"guichet/ratelimit"
	"guichet/store"
)

const (
	alice = id.UserID("@alice-dinum.gouv.fr:agent.dinum.tchap.gouv.fr")
	bob   = id.UserID("@bob-interieur.gouv.fr:agent.interieur.tchap.gouv.fr")
	ops   = id.UserID("@ops-carol:agent.dinum.tchap.gouv.fr")
)

func openStore(t testing.TB, path string) *store.Store {
	t.Helper()
	db := testdb.OpenPath(t, path)
	st := store.New(db, zerolog.Nop())
	if err := st.Upgrade(context.Background()); err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	return st
}

func paris(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func testConfig(t testing.TB) ratelimit.Config {
	return ratelimit.Config{
		PerUser:  ratelimit.Limits{MessagesPerMinute: 2, MessagesPerDay: 10, TokensPerDay: 10000},
		Burst:    2,
		Exempt:   []string{"@ops-*:*"},
		Location: paris(t),
	}
}

func mustCheck(t *testing.T, l *ratelimit.Limiter, user id.UserID, overloaded bool) ratelimit.Decision {
	t.Helper()
	d, err := l.Check(context.Background(), user, overloaded)
	if err != nil {
		t.Fatalf("Check(%s): %v", user, err)
	}
	return d
}

func TestLimiterSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	loc := paris(t)
	path := filepath.Join(t.TempDir(), "guichet.db")
	clk := fakeclock.New(time.Date(2026, 3, 29, 9, 0, 0, 0, loc))
	l := ratelimit.NewLimiter(testConfig(t), openStore(t, path), clk.Now)

	for i := range 2 {
		if d := mustCheck(t, l, alice, false); !d.Allowed {
			t.Fatalf("question %d refused: %+v", i, d)
		}
	}
	if _, err := l.Record(ctx, alice, 9000, false); err != nil {
		t.Fatal(err)
	}
	if err := l.SetOverride(ctx, bob, ratelimit.Limits{MessagesPerDay: 1}); err != nil {
		t.Fatal(err)
	}

	// A new Limiter on a new Store on the same file: nothing forgotten.
	l = ratelimit.NewLimiter(testConfig(t), openStore(t, path), clk.Now)
	d := mustCheck(t, l, alice, false)
	if d.Allowed || d.Limit != ratelimit.PerMinute || !d.RetryAt.Equal(clk.Now().Add(time.Minute)) {
		t.Errorf("after restart: %+v, want refused per minute for 60 s", d)
	}
	q, err := l.Quota(ctx, alice, false)
	if err != nil {
		t.Fatal(err)
	}
	midnight := time.Date(2026, 3, 30, 0, 0, 0, 0, loc)
	if !q.ResetAt.Equal(midnight) {
		t.Errorf("ResetAt = %s, want %s", q.ResetAt, midnight)
	}
	q.ResetAt = time.Time{}
	want := ratelimit.Quota{Limits: testConfig(t).PerUser, MessagesToday: 2, TokensToday: 9000}
	if q != want {
		t.Errorf("Quota = %+v, want %+v", q, want)
	}
	if lim, ok, err := l.Override(ctx, bob); err != nil || !ok || lim != (ratelimit.Limits{MessagesPerDay: 1}) {
		t.Errorf("Override(bob) = %+v, %v, %v", lim, ok, err)
	}

	// Tokens went over 80 % before the restart: the warning came then.
	clk.Advance(time.Minute)
	if d := mustCheck(t, l, alice, false); !d.Allowed || len(d.Warn) != 0 {
		t.Errorf("after 60 s: %+v, want allowed without warning", d)
	}
	// The next day (23 hours long) starts from zero.
	clk.Set(midnight)
	if q, _ := l.Quota(ctx, alice, false); q.MessagesToday != 0 || q.TokensToday != 0 {
		t.Errorf("Quota at midnight = %+v, want zero", q)
	}
}

func TestLimiterRecordAndWarn(t *testing.T) {
	ctx := context.Background()
	loc := paris(t)
	clk := fakeclock.New(time.Date(2026, 10, 25, 1, 30, 0, 0, loc))
	l := ratelimit.NewLimiter(testConfig(t), openStore(t, filepath.Join(t.TempDir(), "g.db")), clk.Now)
	mustCheck(t, l, alice, false)
	if warn, err := l.Record(ctx, alice, 7999, false); err != nil || len(warn) != 0 {
		t.Errorf("Record(7999) = %v, %v", warn, err)
	}
	if warn, err := l.Record(ctx, alice, 1, false); err != nil || !slices.Equal(warn, []ratelimit.Kind{ratelimit.TokensPerDay}) {
		t.Errorf("Record(1) at 80 %% = %v, %v; want the warning", warn, err)
	}
	if warn, err := l.Record(ctx, alice, 3000, false); err != nil || len(warn) != 0 {
		t.Errorf("Record over the limit = %v, %v; want no second warning", warn, err)
	}
	if warn, err := l.Record(ctx, alice, 0, false); err != nil || warn != nil {
		t.Errorf("Record(0) = %v, %v", warn, err)
	}
	clk.Advance(time.Hour)
	d := mustCheck(t, l, alice, false)
	// 2026-10-25 lasts 25 hours: midnight is 23:00 UTC.
	if d.Allowed || d.Limit != ratelimit.TokensPerDay || !d.RetryAt.Equal(time.Date(2026, 10, 25, 23, 0, 0, 0, time.UTC)) {
		t.Errorf("after the token limit: %+v", d)
	}
}

func TestLimiterOverridesExemptionsOverload(t *testing.T) {
	ctx := context.Background()
	clk := fakeclock.New(time.Date(2026, 11, 2, 9, 0, 0, 0, paris(t)))
	cfg := testConfig(t)
	cfg.PerUser.MessagesPerMinute = 0 // only the daily limits here
	l := ratelimit.NewLimiter(cfg, openStore(t, filepath.Join(t.TempDir(), "g.db")), clk.Now)

	count := func(user id.UserID, overloaded bool) int {
		n := 0
		for range 30 {
			if mustCheck(t, l, user, overloaded).Allowed {
				n++
			}
		}
		return n
	}
	if err := l.SetOverride(ctx, alice, ratelimit.Limits{MessagesPerDay: 3}); err != nil {
		t.Fatal(err)
	}
	if n := count(alice, false); n != 3 {
		t.Errorf("alice with an override of 3/day asked %d times", n)
	}
	if n := count(bob, true); n != 5 {
		t.Errorf("bob in overload (10/day * 0.5) asked %d times", n)
	}
	if n := count(ops, true); n != 30 {
		t.Errorf("exempt ops asked %d times, want all", n)
	}
	q, err := l.Quota(ctx, ops, true)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Exempt || q.Limits != (ratelimit.Limits{}) || q.MessagesToday != 30 {
		t.Errorf("Quota(ops) = %+v, want exempt, unlimited, 30 counted", q)
	}
	q, _ = l.Quota(ctx, alice, true)
	if !q.Override || q.Limits.MessagesPerDay != 1 || q.Limits.TokensPerDay != 5000 {
		t.Errorf("Quota(alice) in overload = %+v, want override 3*0.5 -> 1 and tokens 5000", q)
	}

	// Removing the override brings the default back.
	if err := l.SetOverride(ctx, alice, ratelimit.Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := l.Override(ctx, alice); ok {
		t.Error("override still there after SetOverride(zero)")
	}
	if n := count(alice, false); n != 7 {
		t.Errorf("alice back to 10/day asked %d more times, want 7", n)
	}
	// A question that got no answer is given back.
	if err := l.Refund(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if n := count(alice, false); n != 1 {
		t.Errorf("after a refund alice asked %d more times, want 1", n)
	}
	if err := l.SetOverride(ctx, alice, ratelimit.Limits{TokensPerDay: -1}); !errors.Is(err, ratelimit.ErrBadOverride) {
		t.Errorf("negative override: %v, want ErrBadOverride", err)
	}
}

func TestLimiterConcurrentChecks(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 11, 2, 9, 0, 0, 0, paris(t)))
	cfg := ratelimit.Config{PerUser: ratelimit.Limits{MessagesPerMinute: 1}, Burst: 1, Location: paris(t)}
	l := ratelimit.NewLimiter(cfg, openStore(t, filepath.Join(t.TempDir(), "g.db")), clk.Now)
	for round := range 5 {
		clk.Advance(time.Minute) // one question available again
		var wg sync.WaitGroup
		var mu sync.Mutex
		allowed := 0
		for range 8 {
			wg.Go(func() {
				d, err := l.Check(context.Background(), alice, false)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if allowed != 1 {
			t.Errorf("round %d: %d concurrent checks allowed, want exactly 1", round, allowed)
		}
	}
	q, _ := l.Quota(context.Background(), alice, false)
	if q.MessagesToday != 5 {
		t.Errorf("MessagesToday = %d, want 5", q.MessagesToday)
	}
}

// TestLimiterPerMinuteWindow checks that messages_per_minute: N means at
// most N questions in any 60 seconds, whatever sets N: the configuration, a
// moderator's override, overload mode.
func TestLimiterPerMinuteWindow(t *testing.T) {
	type ask struct {
		after      time.Duration // since the previous step
		overloaded bool
		refund     bool // give back the latest question instead of asking
		allowed    bool
		retryIn    time.Duration // from this step, when refused
	}
	yes := func(after time.Duration) ask { return ask{after: after, allowed: true} }
	no := func(after, retryIn time.Duration) ask { return ask{after: after, retryIn: retryIn} }
	s := time.Second
	tests := []struct {
		name     string
		perMin   int
		burst    int
		override string // as a moderator types it after !quota @agent
		steps    []ask
	}{
		{
			name: "N=2: the third question within a minute is refused", perMin: 2, burst: 2,
			steps: []ask{yes(0), yes(20 * s), no(20*s, 20*s), no(19*s, s), yes(s), no(0, 20*s), yes(20 * s)},
		},
		{
			name: "a burst larger than N in the past lets no more through", perMin: 2, burst: 0,
			steps: []ask{yes(0), yes(0), no(0, 60*s), no(30*s, 30*s), yes(30 * s), yes(0), no(59*s, s)},
		},
		{
			name: "!quota 10/min holds over any 60 s", perMin: 2, override: "10/min",
			steps: []ask{
				yes(0), yes(s), yes(s), yes(s), yes(s), yes(s), yes(s), yes(s), yes(s), yes(s),
				no(s, 50*s), no(49*s, s), yes(s), no(0, s), yes(s),
			},
		},
		{
			name: "overload halves N, counting what was admitted before", perMin: 4,
			steps: []ask{
				yes(0), yes(s), yes(s),
				{after: s, overloaded: true, retryIn: 58 * s}, // 3 in the window, 2 allowed: wait for 2 to leave
				{after: 58 * s, overloaded: true, allowed: true},
				{after: 0, overloaded: true, retryIn: s},
				yes(0), // overload off: 4 again
			},
		},
		{
			name: "a refunded question leaves the window", perMin: 2,
			steps: []ask{
				yes(0), yes(10 * s), no(0, 50*s),
				{after: 5 * s, refund: true},
				yes(0), no(0, 45*s),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			clk := fakeclock.New(time.Date(2026, 11, 2, 9, 0, 0, 0, paris(t)))
			cfg := ratelimit.Config{PerUser: ratelimit.Limits{MessagesPerMinute: tt.perMin}, Burst: tt.burst, Location: paris(t)}
			l := ratelimit.NewLimiter(cfg, openStore(t, filepath.Join(t.TempDir(), "g.db")), clk.Now)
			if tt.override != "" {
				lim, err := ratelimit.ParseOverride(tt.override)
				if err != nil {
					t.Fatal(err)
				}
				if err := l.SetOverride(ctx, alice, lim); err != nil {
					t.Fatal(err)
				}
			}
			for i, st := range tt.steps {
				now := clk.Advance(st.after)
				if st.refund {
					if err := l.Refund(ctx, alice); err != nil {
						t.Fatal(err)
					}
					continue
				}
				d := mustCheck(t, l, alice, st.overloaded)
				if d.Allowed != st.allowed {
					t.Fatalf("step %d at +%s: %+v, want allowed=%v", i, now.Sub(time.Date(2026, 11, 2, 9, 0, 0, 0, paris(t))), d, st.allowed)
				}
				if !st.allowed && (d.Limit != ratelimit.PerMinute || !d.RetryAt.Equal(now.Add(st.retryIn))) {
					t.Errorf("step %d: %+v, want refused per minute until %s", i, d, now.Add(st.retryIn))
				}
			}
		})
	}
}

// TestLimiterWindowProperty asks at random times, from bursts in the same
// millisecond to long pauses, with random refunds, and checks on the real
// admission times that no 60-second interval ever holds more than N
// questions that were kept, and that every RetryAt is exact: refused just
// before it, allowed at it.
func TestLimiterWindowProperty(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(2026, 11))
	for run := range 12 {
		n := 1 + rng.IntN(5)
		burst := rng.IntN(n + 1)
		t.Run(fmt.Sprintf("run %d: N=%d burst=%d", run, n, burst), func(t *testing.T) {
			start := time.Date(2026, 11, 2, 9, 0, 0, 0, paris(t))
			clk := fakeclock.New(start)
			cfg := ratelimit.Config{PerUser: ratelimit.Limits{MessagesPerMinute: n}, Burst: burst, Location: paris(t)}
			st := openStore(t, filepath.Join(t.TempDir(), "g.db"))
			l := ratelimit.NewLimiter(cfg, st, clk.Now)
			var kept []time.Time
			for range 150 {
				switch r := rng.IntN(10); {
				case r < 4: // same instant, or within the millisecond
					clk.Advance(time.Duration(rng.IntN(1000)) * time.Microsecond)
				case r < 9:
					clk.Advance(time.Duration(rng.IntN(30_000)) * time.Millisecond)
				default:
					clk.Advance(time.Duration(30+rng.IntN(60)) * time.Second)
				}
				now := clk.Now()
				d := mustCheck(t, l, alice, false)
				if !d.Allowed {
					if !d.RetryAt.After(now) {
						t.Fatalf("refused at %s with RetryAt %s, not later", now, d.RetryAt)
					}
					// A probe just before RetryAt is refused, and the
					// question asked again at RetryAt is allowed.
					if before := d.RetryAt.Add(-time.Millisecond); before.After(now) {
						clk.Set(before)
						if d := mustCheck(t, l, alice, false); d.Allowed {
							t.Fatalf("allowed at RetryAt-1ms (%s)", before)
						}
					}
					clk.Set(d.RetryAt)
					if d2 := mustCheck(t, l, alice, false); !d2.Allowed {
						t.Fatalf("refused at its RetryAt %s: %+v", d.RetryAt, d2)
					}
					kept = append(kept, d.RetryAt)
					continue
				}
				kept = append(kept, now)
				if rng.IntN(5) == 0 { // the question got no answer
					clk.Advance(time.Duration(rng.IntN(2000)) * time.Millisecond)
					if err := l.Refund(ctx, alice); err != nil {
						t.Fatal(err)
					}
					kept = kept[:len(kept)-1]
				}
			}
			if len(kept) < 2*n {
				t.Fatalf("only %d questions kept: the schedule tests nothing", len(kept))
			}
			// The most admissions in an interval [s, s+60s) is reached
			// with s at an admission: count from each.
			for i, a := range kept {
				j := i
				for j < len(kept) && kept[j].Before(a.Add(time.Minute)) {
					j++
				}
				if j-i > n {
					t.Fatalf("%d questions in the minute from %s (N=%d): %v", j-i, a.Sub(start), n, kept[i:j])
				}
			}
		})
	}
}
