package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"

	"guichet/ratelimit"
)

var _ ratelimit.Store = (*Store)(nil)

const (
	// agentLimitsQuery reads an agent's counters and override in one
	// statement: one row, with NULLs for what is not there.
	agentLimitsQuery = `SELECT s.admitted, s.bucket, s.refilled_at, s.day, s.messages, s.tokens, s.warned_messages, s.warned_tokens,
			o.messages_per_minute, o.messages_per_day, o.tokens_per_day
		FROM (SELECT CAST($1 AS TEXT) AS user_id) AS agent
		LEFT JOIN limit_state AS s ON s.user_id=agent.user_id
		LEFT JOIN limit_override AS o ON o.user_id=agent.user_id`
	// The read-modify-write runs in the limiter's transaction, which SQLite
	// takes as immediate: no other writer can come between. PostgreSQL
	// serialises it with limitLockQuery.
	saveLimitStateQuery = `
		INSERT INTO limit_state (user_id, admitted, bucket, refilled_at, day, messages, tokens, warned_messages, warned_tokens)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (user_id) DO UPDATE SET admitted=excluded.admitted, bucket=excluded.bucket,
			refilled_at=excluded.refilled_at, day=excluded.day, messages=excluded.messages, tokens=excluded.tokens,
			warned_messages=excluded.warned_messages, warned_tokens=excluded.warned_tokens`
	setLimitOverrideQuery = `
		INSERT INTO limit_override (user_id, messages_per_minute, messages_per_day, tokens_per_day, set_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (user_id) DO UPDATE SET messages_per_minute=excluded.messages_per_minute,
			messages_per_day=excluded.messages_per_day, tokens_per_day=excluded.tokens_per_day, set_at=excluded.set_at`
	deleteLimitOverrideQuery = `DELETE FROM limit_override WHERE user_id=$1`
	// limitLockQuery holds, until the transaction ends, a lock on one
	// agent's counters (PostgreSQL only: its transactions do not exclude
	// each other as SQLite's immediate ones do, and a row lock cannot cover
	// the agent's first row, not there yet).
	limitLockQuery = `SELECT pg_advisory_xact_lock(hashtext('guichet.limit_state:' || $1))`
)

// AgentLimits returns, in one statement, user's rate-limit counters (the
// zero State for an agent never seen) and the limits a moderator set for
// them (override is false when there are none). On PostgreSQL it first
// locks user's counters until the transaction ends (see limitLockQuery).
func (s *Store) AgentLimits(ctx context.Context, user id.UserID) (st ratelimit.State, set ratelimit.Limits, override bool, err error) {
	if s.db.Dialect == dbutil.Postgres {
		if _, err := s.db.Exec(ctx, limitLockQuery, user); err != nil {
			return st, set, false, fmt.Errorf("failed to lock the limits of %s: %w", user, err)
		}
	}
	var admitted, day sql.NullString
	var bucket sql.NullFloat64
	var refilled, messages, tokens, perMinute, perDay, tokensPerDay sql.NullInt64
	var warnedMessages, warnedTokens sql.NullBool
	err = s.db.QueryRow(ctx, agentLimitsQuery, user).Scan(&admitted, &bucket, &refilled, &day, &messages, &tokens,
		&warnedMessages, &warnedTokens, &perMinute, &perDay, &tokensPerDay)
	if err != nil {
		return st, set, false, fmt.Errorf("failed to read the limits and counters of %s: %w", user, err)
	}
	if day.Valid {
		if st.Admitted, err = parseAdmitted(admitted.String); err != nil {
			return ratelimit.State{}, set, false, fmt.Errorf("failed to read counters of %s: %w", user, err)
		}
		st.Bucket, st.RefilledAt, st.Day = bucket.Float64, fromMS(refilled.Int64), day.String
		st.Messages, st.Tokens = int(messages.Int64), int(tokens.Int64)
		st.WarnedMessages, st.WarnedTokens = warnedMessages.Bool, warnedTokens.Bool
	}
	if perMinute.Valid {
		override = true
		set = ratelimit.Limits{MessagesPerMinute: int(perMinute.Int64), MessagesPerDay: int(perDay.Int64), TokensPerDay: int(tokensPerDay.Int64)}
	}
	return st, set, override, nil
}

// LimitState returns user's rate-limit counters, or the zero State for an
// agent never seen.
func (s *Store) LimitState(ctx context.Context, user id.UserID) (ratelimit.State, error) {
	st, _, _, err := s.AgentLimits(ctx, user)
	return st, err
}

// SaveLimitState records user's rate-limit counters.
func (s *Store) SaveLimitState(ctx context.Context, user id.UserID, st ratelimit.State) error {
	_, err := s.db.Exec(ctx, saveLimitStateQuery, user, formatAdmitted(st.Admitted), st.Bucket, ms(st.RefilledAt), st.Day,
		st.Messages, st.Tokens, st.WarnedMessages, st.WarnedTokens)
	if err != nil {
		return fmt.Errorf("failed to save counters of %s: %w", user, err)
	}
	return nil
}

// formatAdmitted writes admission times as limit_state.admitted holds them:
// unix milliseconds separated by commas. The limiter records them rounded up
// to the millisecond already, so nothing is lost.
func formatAdmitted(times []time.Time) string {
	var b strings.Builder
	for i, t := range times {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(t.UnixMilli(), 10))
	}
	return b.String()
}

func parseAdmitted(s string) ([]time.Time, error) {
	if s == "" {
		return nil, nil
	}
	fields := strings.Split(s, ",")
	times := make([]time.Time, len(fields))
	for i, f := range fields {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("failed to parse admission time %q: %w", f, err)
		}
		times[i] = time.UnixMilli(v)
	}
	return times, nil
}

// LimitOverride returns the limits a moderator set for user; ok is false
// when there are none.
func (s *Store) LimitOverride(ctx context.Context, user id.UserID) (ratelimit.Limits, bool, error) {
	_, set, ok, err := s.AgentLimits(ctx, user)
	return set, ok, err
}

// SetLimitOverride records a moderator's limits for user, replacing earlier
// ones; the zero Limits deletes them.
func (s *Store) SetLimitOverride(ctx context.Context, user id.UserID, lim ratelimit.Limits, at time.Time) error {
	var err error
	if lim.IsZero() {
		_, err = s.db.Exec(ctx, deleteLimitOverrideQuery, user)
	} else {
		_, err = s.db.Exec(ctx, setLimitOverrideQuery, user, lim.MessagesPerMinute, lim.MessagesPerDay, lim.TokensPerDay, ms(at))
	}
	if err != nil {
		return fmt.Errorf("failed to set limits of %s: %w", user, err)
	}
	return nil
}
