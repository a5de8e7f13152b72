package ratelimit

import (
	"fmt"
	"math"
	"path"
	"time"
	_ "time/tzdata" // days start at midnight in Europe/Paris wherever guichet runs

	"maunium.net/go/mautrix/id"
)

// Kind names one per-agent limit.
type Kind string

// The per-agent limits, as they appear in Decision.Limit and Decision.Warn.
const (
	PerMinute    Kind = "per_minute"
	PerDay       Kind = "per_day"
	TokensPerDay Kind = "tokens_per_day"
)

// Limits are per-agent limits. 0 means unlimited for that dimension (and, in
// a moderator's override, "the configured default").
type Limits struct {
	MessagesPerMinute int
	MessagesPerDay    int
	TokensPerDay      int
}

// IsZero reports whether no dimension is set.
func (l Limits) IsZero() bool { return l == Limits{} }

// Defaults applied by NewLimiter to the zero fields of Config.
const (
	DefaultBurst          = 3
	DefaultOverloadFactor = 0.5
	DefaultWarnAt         = 0.8
	DefaultTimezone       = "Europe/Paris"
)

// Config is the per-agent policy.
type Config struct {
	// PerUser are the default limits of every agent.
	PerUser Limits
	// Burst is the capacity of the per-minute token bucket: how many
	// questions an agent who was silent may send at once (default 3).
	Burst int
	// Exempt lists user-id globs (path.Match syntax) with no per-agent
	// limits, even in overload mode. Their use is still counted.
	Exempt []string
	// OverloadFactor multiplies every per-agent limit (defaults and
	// overrides) in overload mode; a limit never drops below 1. It is
	// clamped to (0, 1]; 0 means the default 0.5.
	OverloadFactor float64
	// Location is where days start at midnight (default Europe/Paris).
	Location *time.Location
	// WarnAt is the share of a daily limit at which the agent is warned,
	// once per day and per limit (default 0.8; negative: never).
	WarnAt float64
}

// Validate reports a configuration that cannot work (for the config loader,
// so that a typo fails at start rather than exempting nobody).
func (c Config) Validate() error {
	if c.PerUser.MessagesPerMinute < 0 || c.PerUser.MessagesPerDay < 0 || c.PerUser.TokensPerDay < 0 {
		return fmt.Errorf("per-agent limits must not be negative")
	}
	if c.Burst < 0 {
		return fmt.Errorf("burst must not be negative")
	}
	if c.OverloadFactor < 0 || c.OverloadFactor > 1 {
		return fmt.Errorf("overload factor %v must be between 0 and 1", c.OverloadFactor)
	}
	if c.WarnAt > 1 {
		return fmt.Errorf("warning threshold %v must not exceed 1", c.WarnAt)
	}
	for _, g := range c.Exempt {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("bad exempt pattern %q: %w", g, err)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Burst <= 0 {
		c.Burst = DefaultBurst
	}
	if c.OverloadFactor <= 0 {
		c.OverloadFactor = DefaultOverloadFactor
	} else if c.OverloadFactor > 1 {
		c.OverloadFactor = 1
	}
	if c.WarnAt == 0 {
		c.WarnAt = DefaultWarnAt
	}
	if c.Location == nil {
		loc, err := time.LoadLocation(DefaultTimezone)
		if err != nil {
			loc = time.UTC // unreachable: time/tzdata is embedded
		}
		c.Location = loc
	}
	return c
}

// State is one agent's counters, as the Store keeps them. The zero State is
// an agent never seen: a full bucket and nothing used today.
type State struct {
	// Bucket is how many questions the per-minute bucket held at RefilledAt.
	Bucket float64
	// RefilledAt is when Bucket was last brought up to date.
	RefilledAt time.Time
	// Day is the local date ("2006-01-02" in Config.Location) the daily
	// counters below belong to; another day means they start from zero.
	Day string
	// Messages and Tokens are what the agent used on Day.
	Messages int
	Tokens   int
	// WarnedMessages and WarnedTokens record that the warning at WarnAt
	// of the daily limit was given on Day.
	WarnedMessages bool
	WarnedTokens   bool
}

// Decision is the answer of Limiter.Check.
type Decision struct {
	// Allowed is true when the question may go to Albert (one message was
	// counted).
	Allowed bool
	// Limit is the limit that refused the question ("" when allowed).
	Limit Kind
	// RetryAt is the exact time the agent can ask again (zero when allowed):
	// when the bucket holds one question again, or the next midnight.
	RetryAt time.Time
	// Warn lists the daily limits that just crossed Config.WarnAt; each is
	// reported once per day.
	Warn []Kind
}

// Quota is where an agent stands today, for !quota.
type Quota struct {
	// Limits are the effective limits (default or override, overload
	// applied); 0 is unlimited, and all are 0 for an exempt agent.
	Limits        Limits
	MessagesToday int
	TokensToday   int
	// ResetAt is the next midnight, when the daily counters start again.
	ResetAt time.Time
	// Exempt is true when the agent matches Config.Exempt.
	Exempt bool
	// Override is true when a moderator set limits for this agent.
	Override bool
}

// DayKey is the local date of t in loc, as State.Day holds it.
func DayKey(t time.Time, loc *time.Location) string {
	return t.In(loc).Format(time.DateOnly)
}

// NextMidnight is the start of the day after t's in loc. Days are 23 or 25
// hours long when daylight saving time starts or ends, so it is computed
// from the calendar date, never by adding 24 hours or truncating.
func NextMidnight(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
}

func matchAny(globs []string, user id.UserID) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, string(user)); ok {
			return true
		}
	}
	return false
}

// effective merges a moderator's override into the defaults (a field of the
// override replaces the default when it is positive) and applies overload
// mode.
func (c *Config) effective(override Limits, overloaded bool) Limits {
	lim := c.PerUser
	if override.MessagesPerMinute > 0 {
		lim.MessagesPerMinute = override.MessagesPerMinute
	}
	if override.MessagesPerDay > 0 {
		lim.MessagesPerDay = override.MessagesPerDay
	}
	if override.TokensPerDay > 0 {
		lim.TokensPerDay = override.TokensPerDay
	}
	if overloaded {
		lim.MessagesPerMinute = scale(lim.MessagesPerMinute, c.OverloadFactor)
		lim.MessagesPerDay = scale(lim.MessagesPerDay, c.OverloadFactor)
		lim.TokensPerDay = scale(lim.TokensPerDay, c.OverloadFactor)
	}
	return lim
}

func scale(v int, factor float64) int {
	if v <= 0 {
		return v // unlimited stays unlimited
	}
	return max(1, int(float64(v)*factor))
}

// today starts the daily counters again when st belongs to an earlier day.
func (c *Config) today(st State, now time.Time) State {
	if day := DayKey(now, c.Location); st.Day != day {
		st.Day, st.Messages, st.Tokens = day, 0, 0
		st.WarnedMessages, st.WarnedTokens = false, false
	}
	return st
}

// refill brings the bucket to now: it gains perMinute questions a minute,
// continuously, up to Burst. A clock that went back adds nothing.
func (c *Config) refill(st State, perMinute int, now time.Time) State {
	capacity := float64(c.Burst)
	switch {
	case st.RefilledAt.IsZero():
		st.Bucket = capacity
	case now.After(st.RefilledAt):
		st.Bucket += now.Sub(st.RefilledAt).Minutes() * float64(perMinute)
	}
	st.Bucket = min(st.Bucket, capacity)
	if now.After(st.RefilledAt) {
		st.RefilledAt = now
	}
	return st
}

// epsilon absorbs float rounding, so that a question at exactly RetryAt passes.
const epsilon = 1e-9

// take decides on one question at now under lim and returns the new state.
// A refused question uses nothing: the caller need not save the state.
// Daily limits are checked first: their RetryAt is the later one.
func (c *Config) take(st State, lim Limits, now time.Time) (State, Decision) {
	st = c.today(st, now)
	if lim.MessagesPerDay > 0 && st.Messages >= lim.MessagesPerDay {
		return st, Decision{Limit: PerDay, RetryAt: NextMidnight(now, c.Location)}
	}
	if lim.TokensPerDay > 0 && st.Tokens >= lim.TokensPerDay {
		return st, Decision{Limit: TokensPerDay, RetryAt: NextMidnight(now, c.Location)}
	}
	if lim.MessagesPerMinute > 0 {
		st = c.refill(st, lim.MessagesPerMinute, now)
		if st.Bucket < 1-epsilon {
			wait := time.Duration(math.Ceil((1 - st.Bucket) / float64(lim.MessagesPerMinute) * float64(time.Minute)))
			return st, Decision{Limit: PerMinute, RetryAt: ceilMilli(st.RefilledAt.Add(wait))}
		}
		st.Bucket = max(0, st.Bucket-1)
	}
	st.Messages++
	var d Decision
	d.Allowed = true
	st, d.Warn = c.warn(st, lim)
	return st, d
}

// refund gives back one question that take counted today. Adding it to
// the bucket as it was at RefilledAt, capped, is the same as adding it now:
// the level is min(Burst, Bucket + elapsed*rate) either way. A warning
// already given stays given.
func (c *Config) refund(st State, now time.Time) State {
	if st.Day != DayKey(now, c.Location) || st.Messages == 0 {
		return st // the counters started again since
	}
	st.Messages--
	if !st.RefilledAt.IsZero() {
		st.Bucket = min(st.Bucket+1, float64(c.Burst))
	}
	return st
}

// record adds the tokens of an answer to today's count.
func (c *Config) record(st State, lim Limits, tokens int, now time.Time) (State, []Kind) {
	st = c.today(st, now)
	if tokens > 0 {
		st.Tokens += tokens
	}
	return c.warn(st, lim)
}

// warn reports the daily limits that reached WarnAt and were not reported
// yet today. Both are looked at: overload mode can lower a limit under
// what was already used.
func (c *Config) warn(st State, lim Limits) (State, []Kind) {
	if c.WarnAt <= 0 {
		return st, nil
	}
	var out []Kind
	if !st.WarnedMessages && reached(st.Messages, lim.MessagesPerDay, c.WarnAt) {
		st.WarnedMessages = true
		out = append(out, PerDay)
	}
	if !st.WarnedTokens && reached(st.Tokens, lim.TokensPerDay, c.WarnAt) {
		st.WarnedTokens = true
		out = append(out, TokensPerDay)
	}
	return st, out
}

func reached(used, limit int, share float64) bool {
	if limit <= 0 {
		return false
	}
	// An integer threshold: 0.7*10 is 7.000000000000001 in floating point.
	threshold := max(1, int(math.Ceil(share*float64(limit)-epsilon)))
	return used >= threshold
}

func ceilMilli(t time.Time) time.Time {
	if r := t.Truncate(time.Millisecond); !r.Equal(t) {
		return r.Add(time.Millisecond)
	}
	return t
}
