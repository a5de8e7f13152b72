package ratelimit

import (
	"context"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"
)

// BenchmarkLimiterDecision measures one pure decision (refill, daily
// counters, warning) with 10,000 agents' states held in memory.
func BenchmarkLimiterDecision(b *testing.B) {
	const agents = 10_000
	const rounds = 20 // decisions per agent per iteration, so -benchtime 1x still means something
	cfg := Config{PerUser: Limits{MessagesPerMinute: 3, MessagesPerDay: 100, TokensPerDay: 50000}, Location: paris(b)}.withDefaults()
	users := make([]id.UserID, agents)
	states := make(map[id.UserID]State, agents)
	for i := range users {
		users[i] = agent(i)
		states[users[i]] = State{}
	}
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, cfg.Location)
	allowed := 0
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		for r := range rounds {
			for i, u := range users {
				at := now.Add(time.Duration(r)*time.Minute + time.Duration(i)*time.Millisecond)
				st, d := cfg.take(states[u], Limits{MessagesPerMinute: 3, MessagesPerDay: 100, TokensPerDay: 50000}, at)
				if d.Allowed {
					states[u] = st
					allowed++
				}
			}
		}
		now = now.Add(24 * time.Hour)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	decisions := b.N * rounds * agents
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(decisions), "ns/decision")
	b.ReportMetric(agents, "agents")
	if allowed == 0 {
		b.Fatal("nothing allowed")
	}
}

// BenchmarkGateFairness sends 1,000 questions from 200 agents (5 each, one
// after the other) through a Gate with C=8 slots, each call taking L=20 ms.
// It reports the total time over the ideal 1000*L/C (1.0 is perfect), and
// the longest total wait of one agent over its fair share, the mean total
// wait (1.0 is perfect; the target is under 2).
func BenchmarkGateFairness(b *testing.B) {
	const (
		agents    = 200
		perAgent  = 5
		slots     = 8
		latency   = 20 * time.Millisecond
		questions = agents * perAgent
	)
	ideal := time.Duration(questions) * latency / slots
	var totalRatio, fairRatio, maxOneRatio float64
	for range b.N {
		g := NewGate(GlobalConfig{MaxConcurrent: slots, QueueSize: agents}, time.Now)
		waits := make([]time.Duration, agents)
		var longest time.Duration
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for a := range agents {
			wg.Go(func() {
				for range perAgent {
					asked := time.Now()
					release, err := g.Acquire(context.Background(), agent(a), nil)
					if err != nil {
						b.Error(err)
						return
					}
					w := time.Since(asked)
					waits[a] += w
					mu.Lock()
					longest = max(longest, w)
					mu.Unlock()
					time.Sleep(latency)
					release(0)
				}
			})
		}
		wg.Wait()
		total := time.Since(start)
		var sum, worst time.Duration
		for _, w := range waits {
			sum += w
			worst = max(worst, w)
		}
		fair := sum / agents
		totalRatio = float64(total) / float64(ideal)
		fairRatio = float64(worst) / float64(fair)
		maxOneRatio = float64(longest) / float64(sum/questions)
	}
	b.ReportMetric(totalRatio, "total/ideal")
	b.ReportMetric(fairRatio, "maxagentwait/fair")
	b.ReportMetric(maxOneRatio, "maxwait/meanwait")
}
