// Package ratelimit shares a limited Albert budget among agents: per-agent
// limits persisted through a Store (Limiter), a global gate on calls in
// flight with a FIFO queue (Gate), and a circuit breaker that stops calls
// while Albert is overloaded (Breaker). It knows nothing of Matrix or SQL,
// and takes its clock as a function so that every boundary can be tested
// without sleeping.
package ratelimit

import (
	"context"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"
)

// Store keeps the per-agent counters and overrides. store.Store implements it.
type Store interface {
	// InTx runs fn in one transaction, serialized with other writers; the
	// methods below join it when called with the context fn receives.
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	// AgentLimits returns, in one read, user's counters (the zero State
	// for an agent never seen) and the limits a moderator set for user
	// (override is false when there are none). In a transaction it also
	// holds user's counters until the transaction ends.
	AgentLimits(ctx context.Context, user id.UserID) (st State, set Limits, override bool, err error)
	// SaveLimitState records user's counters.
	SaveLimitState(ctx context.Context, user id.UserID, st State) error
	// SetLimitOverride records a moderator's limits for user, replacing
	// earlier ones; the zero Limits deletes them.
	SetLimitOverride(ctx context.Context, user id.UserID, lim Limits, at time.Time) error
}

// Limiter applies the per-agent limits. It is safe for concurrent use: each
// read-modify-write runs in one store transaction.
type Limiter struct {
	cfg   Config
	store Store
	now   func() time.Time
}

// NewLimiter returns a Limiter; zero fields of cfg get the defaults (see
// Config), and now is the clock (time.Now in production).
func NewLimiter(cfg Config, store Store, now func() time.Time) *Limiter {
	return &Limiter{cfg: cfg.withDefaults(), store: store, now: now}
}

// Location is where the Limiter's days start, for showing ResetAt and RetryAt.
func (l *Limiter) Location() *time.Location { return l.cfg.Location }

// Exempt reports whether user matches Config.Exempt.
func (l *Limiter) Exempt(user id.UserID) bool { return matchAny(l.cfg.Exempt, user) }

// load returns user's effective limits (all zero when exempt), whether a
// moderator set an override, and user's counters.
func (l *Limiter) load(ctx context.Context, user id.UserID, overloaded bool) (lim Limits, override bool, st State, err error) {
	st, set, override, err := l.store.AgentLimits(ctx, user)
	if err != nil {
		return Limits{}, false, State{}, fmt.Errorf("failed to read limits of %s: %w", user, err)
	}
	if !l.Exempt(user) {
		lim = l.cfg.effective(set, overloaded)
	}
	return lim, override, st, nil
}

// Check is called before a question goes to Albert. When the question is
// allowed it counts one message; when it is refused nothing changes and the
// Decision says which limit refused it and when the agent can ask again.
// overloaded is the manual overload mode (!surcharge), which tightens the
// limits by Config.OverloadFactor.
func (l *Limiter) Check(ctx context.Context, user id.UserID, overloaded bool) (Decision, error) {
	var d Decision
	err := l.store.InTx(ctx, func(ctx context.Context) error {
		lim, _, st, err := l.load(ctx, user, overloaded)
		if err != nil {
			return err
		}
		// The clock is read inside the transaction, once it holds the
		// write lock, so that concurrent checks see increasing times.
		var next State
		next, d = l.cfg.take(st, lim, l.now())
		if !d.Allowed {
			return nil
		}
		return l.store.SaveLimitState(ctx, user, next)
	})
	if err != nil {
		return Decision{}, fmt.Errorf("failed to check limits of %s: %w", user, err)
	}
	return d, nil
}

// Record adds the tokens of an answer (prompt and completion, from Albert's
// usage or estimated) to today's count, after the fact: an answer is never
// cut, but once the daily token limit is reached the next Check refuses. It
// returns the daily limits that just crossed Config.WarnAt. The tokens count
// on the day Record is called.
func (l *Limiter) Record(ctx context.Context, user id.UserID, tokens int, overloaded bool) (warn []Kind, err error) {
	if tokens <= 0 {
		return nil, nil
	}
	err = l.store.InTx(ctx, func(ctx context.Context) error {
		lim, _, st, err := l.load(ctx, user, overloaded)
		if err != nil {
			return err
		}
		st, warn = l.cfg.record(st, lim, tokens, l.now())
		return l.store.SaveLimitState(ctx, user, st)
	})
	if err != nil {
		return nil, fmt.Errorf("failed to record %d tokens of %s: %w", tokens, user, err)
	}
	return warn, nil
}

// Refund gives back the question counted by the agent's latest allowed
// Check when it got no answer after all (queue full, breaker open, Albert
// failed), so that the agent is not charged for it: it leaves the
// per-minute window at once. A question counted before midnight is not
// taken off the daily count after it.
func (l *Limiter) Refund(ctx context.Context, user id.UserID) error {
	err := l.store.InTx(ctx, func(ctx context.Context) error {
		st, _, _, err := l.store.AgentLimits(ctx, user)
		if err != nil {
			return err
		}
		next, changed := l.cfg.refund(st, l.now())
		if !changed {
			return nil
		}
		return l.store.SaveLimitState(ctx, user, next)
	})
	if err != nil {
		return fmt.Errorf("failed to give back a question of %s: %w", user, err)
	}
	return nil
}

// Quota reports what user used today, their effective limits and when the
// daily counters start again.
func (l *Limiter) Quota(ctx context.Context, user id.UserID, overloaded bool) (Quota, error) {
	lim, override, st, err := l.load(ctx, user, overloaded)
	if err != nil {
		return Quota{}, err
	}
	now := l.now()
	st = l.cfg.today(st, now)
	return Quota{
		Limits:        lim,
		MessagesToday: st.Messages,
		TokensToday:   st.Tokens,
		ResetAt:       NextMidnight(now, l.cfg.Location),
		Exempt:        l.Exempt(user),
		Override:      override,
	}, nil
}

// SetOverride sets a moderator's limits for user, replacing any earlier
// override as a whole: a zero field means the configured default, and the
// zero Limits removes the override. Overrides are tightened in overload
// mode like the defaults.
func (l *Limiter) SetOverride(ctx context.Context, user id.UserID, lim Limits) error {
	if lim.MessagesPerMinute < 0 || lim.MessagesPerDay < 0 || lim.TokensPerDay < 0 {
		return fmt.Errorf("failed to set limits of %s: %w", user, ErrBadOverride)
	}
	if err := l.store.SetLimitOverride(ctx, user, lim, l.now()); err != nil {
		return fmt.Errorf("failed to set limits of %s: %w", user, err)
	}
	return nil
}

// Override returns the limits a moderator set for user (ok is false when
// there are none), as set: defaults and overload mode not applied.
func (l *Limiter) Override(ctx context.Context, user id.UserID) (Limits, bool, error) {
	_, lim, ok, err := l.store.AgentLimits(ctx, user)
	if err != nil {
		return Limits{}, false, fmt.Errorf("failed to read limits of %s: %w", user, err)
	}
	return lim, ok, nil
}
