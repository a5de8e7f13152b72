package e2e

import (
	"testing"
	"time"
)

// BenchmarkCrashLoop is TestCrashLoop for longer: 40 kills -9 at random
// moments, six agents asking and eight newcomers approved meanwhile. It
// prints the same figures (lost, doubled, stuck, counters).
func BenchmarkCrashLoop(b *testing.B) {
	f := crashLoop{Kills: 40, Agents: 6, Newcomers: 8, Seed: uint64(time.Now().UnixNano())}.run(b)
	b.ReportMetric(float64(f.Kills), "kills")
	b.ReportMetric(float64(f.Questions), "questions")
	b.ReportMetric(float64(f.Lost), "lost")
	b.ReportMetric(float64(f.Doubled+f.WelcomesDoubled+f.DecisionsDoubled), "doubled")
	b.ReportMetric(float64(f.Stuck), "stuck")
	b.ReportMetric(float64(f.Counted-f.Questions), "miscounted")
	b.ReportMetric(0, "ns/op")
	b.Log("kill -9 loop with the real binary: " + f.String())
}
