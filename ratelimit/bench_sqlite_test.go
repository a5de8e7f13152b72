package ratelimit_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/ratelimit"
)

// BenchmarkLimiterCheckSQLite measures one persisted Check (a transaction:
// read the override and the counters, decide, write) with 10,000 agents in
// the table, one goroutine after the other and from 8 at once.
func BenchmarkLimiterCheckSQLite(b *testing.B) {
	const agents = 10_000
	const checks = 2_000 // per iteration, so -benchtime 1x still means something
	ctx := context.Background()
	loc := paris(b)
	st := openStore(b, filepath.Join(b.TempDir(), "bench.db"))
	users := make([]id.UserID, agents)
	day := ratelimit.DayKey(time.Now(), loc)
	err := st.InTx(ctx, func(ctx context.Context) error {
		for i := range users {
			users[i] = id.UserID(fmt.Sprintf("@agent%d:agent.dinum.tchap.gouv.fr", i))
			if err := st.SaveLimitState(ctx, users[i], ratelimit.State{Bucket: 2, RefilledAt: time.Now(), Day: day, Messages: i % 50}); err != nil {
				return err
			}
			if i%100 == 0 {
				if err := st.SetLimitOverride(ctx, users[i], ratelimit.Limits{MessagesPerDay: 500}, time.Now()); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	cfg := ratelimit.Config{PerUser: ratelimit.Limits{MessagesPerMinute: 3, MessagesPerDay: 100, TokensPerDay: 50000}, Location: loc}
	l := ratelimit.NewLimiter(cfg, st, time.Now)

	var serial, parallel time.Duration
	next := 0
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		for range checks {
			if _, err := l.Check(ctx, users[next%agents], false); err != nil {
				b.Fatal(err)
			}
			next += 7919 // a prime: spread over the table
		}
		serial += time.Since(start)

		start = time.Now()
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := range checks / 8 {
					if _, err := l.Check(ctx, users[(w*checks/8+i)*13%agents], false); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		parallel += time.Since(start)
	}
	b.StopTimer()
	n := float64(b.N * checks)
	b.ReportMetric(float64(serial.Nanoseconds())/n, "ns/check")
	b.ReportMetric(n/parallel.Seconds(), "checks/s-8goroutines")
	b.ReportMetric(agents, "agents")
}
