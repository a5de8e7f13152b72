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
	// Cost (euros) and BilledTokens are what Albert charged for every call,
	// failed ones and searches included: the billing report's figures.
	Cost         float64
	BilledTokens int
	// Searches and SearchFailures count the searches in collections.
	Searches       int
	SearchFailures int
	ErrorsByClass  map[string]int
	LatencyP50     time.Duration
	LatencyP95     time.Duration
}

// AllPartners, given to StatsSince, sums every profile.
const AllPartners = "*"

// StatsSince reads the chat calls of the ledger since a time, of one
// profile (partner id, "" for the default profile) or of AllPartners.
func (s *Store) StatsSince(ctx context.Context, since time.Time, partner string) (Stats, error) {
	st := Stats{ErrorsByClass: map[string]int{}}
	// $2 is always bound, so that the statements stay the same (and
	// prepared) whatever the profile.
	const of = ` AND ($2 = '*' OR partner = $2)`
	err := s.db.QueryRow(ctx, `SELECT COUNT(DISTINCT user_id), COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0)
		FROM usage_ledger WHERE at >= $1 AND outcome='ok' AND endpoint='chat'`+of, ms(since), partner).Scan(&st.ActiveAgents, &st.Questions, &st.PromptTokens, &st.CompletionTokens)
	if err != nil {
		return st, fmt.Errorf("failed to sum usage: %w", err)
	}
	err = s.db.QueryRow(ctx, `SELECT COALESCE(SUM(cost), 0), COALESCE(SUM(prompt_tokens + completion_tokens), 0),
			COUNT(CASE WHEN endpoint='search' THEN 1 END), COUNT(CASE WHEN endpoint='search' AND outcome <> 'ok' THEN 1 END)
		FROM usage_ledger WHERE at >= $1`+of, ms(since), partner).Scan(&st.Cost, &st.BilledTokens, &st.Searches, &st.SearchFailures)
	if err != nil {
		return st, fmt.Errorf("failed to sum what was billed: %w", err)
	}
	rows, err := s.db.Query(ctx, `SELECT outcome, COUNT(*) FROM usage_ledger WHERE at >= $1 AND outcome <> 'ok' AND endpoint='chat'`+of+` GROUP BY outcome`, ms(since), partner)
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
	lat, err := s.db.Query(ctx, `SELECT latency_ms FROM usage_ledger WHERE at >= $1 AND outcome='ok' AND endpoint='chat'`+of, ms(since), partner)
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
