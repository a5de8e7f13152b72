package store

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Stats sums the usage ledger since a time, for moderators' !stats.
type Stats struct {
	ActiveAgents     int
	Questions        int
	PromptTokens     int
	CompletionTokens int
	ErrorsByClass    map[string]int
	LatencyP50       time.Duration
	LatencyP95       time.Duration
}

// StatsSince reads the ledger since a time.
func (s *Store) StatsSince(ctx context.Context, since time.Time) (Stats, error) {
	st := Stats{ErrorsByClass: map[string]int{}}
	err := s.db.QueryRow(ctx, `SELECT COUNT(DISTINCT user_id), COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0)
		FROM usage_ledger WHERE at >= $1 AND outcome='ok' AND endpoint='chat'`, ms(since)).Scan(&st.ActiveAgents, &st.Questions, &st.PromptTokens, &st.CompletionTokens)
	if err != nil {
		return st, fmt.Errorf("failed to sum usage: %w", err)
	}
	rows, err := s.db.Query(ctx, `SELECT outcome, COUNT(*) FROM usage_ledger WHERE at >= $1 AND outcome <> 'ok' AND endpoint='chat' GROUP BY outcome`, ms(since))
	if err != nil {
		return st, err
	}
	for rows.Next() {
		var class string
		var n int
		if err := rows.Scan(&class, &n); err != nil {
			rows.Close()
			return st, err
		}
		st.ErrorsByClass[class] = n
	}
	rows.Close()
	lat, err := s.db.Query(ctx, `SELECT latency_ms FROM usage_ledger WHERE at >= $1 AND outcome='ok' AND endpoint='chat'`, ms(since))
	if err != nil {
		return st, err
	}
	defer lat.Close()
	var latencies []int64
	for lat.Next() {
		var v int64
		if err := lat.Scan(&v); err != nil {
			return st, err
		}
		latencies = append(latencies, v)
	}
	if len(latencies) > 0 {
		slices.Sort(latencies)
		pick := func(q float64) time.Duration {
			return time.Duration(latencies[int(q*float64(len(latencies)-1)+0.5)]) * time.Millisecond
		}
		st.LatencyP50, st.LatencyP95 = pick(0.50), pick(0.95)
	}
	return st, lat.Err()
}
