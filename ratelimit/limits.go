package ratelimit

import (
	"math"
	"path"
	"slices"
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
//
// MessagesPerMinute: N holds over any 60 seconds: never more than N questions
// admitted in any interval of 60 s (a sliding window, see Config.take). The
// daily limits hold over the calendar day in Config.Location.
type Limits struct {
	MessagesPerMinute int
	MessagesPerDay    int
	TokensPerDay      int
}

// IsZero reports whether no dimension is set.
func (l Limits) IsZero() bool { return l == Limits{} }

// Window is the span over which MessagesPerMinute holds: a question is
// admitted only while fewer than MessagesPerMinute were admitted in the
// Window before it.
const Window = time.Minute

// Defaults applied by NewLimiter to the zero fields of Config.
const (
	DefaultOverloadFactor = 0.5
	DefaultWarnAt         = 0.8
	DefaultTimezone       = "Europe/Paris"
)

// Config is the per-agent policy.
type Config struct {
	// PerUser are the default limits of every agent.
	PerUser Limits
	// Burst, when positive, also spaces an agent's questions out: at most
	// Burst back to back, then one every Window/MessagesPerMinute (a token
	// bucket of that capacity, refilled at MessagesPerMinute a minute). It
	// only ever refuses more than the sliding window does, never less, and
	// it is clamped to the effective MessagesPerMinute (overrides, overload
	// mode). 0 means no spacing: up to MessagesPerMinute at once.
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

func (c Config) withDefaults() Config {
	c.Burst = max(c.Burst, 0)
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
// an agent never seen: nothing admitted lately, a full bucket and nothing
// used today.
type State struct {
	// Admitted are the times of the questions admitted in the last Window
	// (older ones may linger until the next Check), oldest first and never
	// decreasing. Each is recorded rounded up to the millisecond, the
	// precision the Store keeps, so that it is never earlier than the real
	// admission.
	Admitted []time.Time
	// Bucket is how many questions the Burst bucket held at RefilledAt.
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
	// for the per-minute limit, the moment enough of the admissions in the
	// window leave it (and the Burst bucket, if any, holds one question
	// again); for a daily limit, the next midnight.
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
// continuously, up to capacity. A clock that went back adds nothing.
func refill(st State, capacity, perMinute int, now time.Time) State {
	full := float64(capacity)
	switch {
	case st.RefilledAt.IsZero():
		st.Bucket = full
	case now.After(st.RefilledAt):
		st.Bucket += now.Sub(st.RefilledAt).Minutes() * float64(perMinute)
	}
	st.Bucket = min(st.Bucket, full)
	if now.After(st.RefilledAt) {
		st.RefilledAt = now
	}
	return st
}

// burst is the capacity of the spacing bucket under a per-minute limit of
// perMinute, or 0 when there is none: a bucket as large as the window
// spaces nothing out that the window does not already refuse.
func (c *Config) burst(perMinute int) int {
	if c.Burst <= 0 || c.Burst >= perMinute {
		return 0
	}
	return c.Burst
}

// recent drops the admissions that left the window ending at now: an
// admission at a is in it while now < a + Window.
func recent(admitted []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(admitted) && !now.Before(admitted[i].Add(Window)) {
		i++
	}
	return admitted[i:]
}

// epsilon absorbs float rounding, so that a question at exactly RetryAt passes.
const epsilon = 1e-9

// take decides on one question at now under lim and returns the new state.
// A refused question uses nothing: the caller need not save the state.
// Daily limits are checked first: their RetryAt is the later one.
//
// The per-minute limit is a sliding log: with N = lim.MessagesPerMinute, a
// question at t is admitted only if fewer than N admissions lie in
// (t - Window, t]. That holds over every interval [s, s + Window): let b be
// the last admission in it; every other admission a in it has
// b - Window < s <= a <= b, so it was in b's window when b was admitted,
// which held at most N - 1 of them. Admissions are recorded at or after
// their real time (rounded up to the millisecond, never before the previous
// one), so the log can only refuse early, never admit late. When the log
// holds k >= N admissions (k > N after N was lowered), the question can be
// asked again once k - N + 1 of them left: at Admitted[k-N] + Window.
func (c *Config) take(st State, lim Limits, now time.Time) (State, Decision) {
	st = c.today(st, now)
	st.Admitted = recent(st.Admitted, now)
	if lim.MessagesPerDay > 0 && st.Messages >= lim.MessagesPerDay {
		return st, Decision{Limit: PerDay, RetryAt: NextMidnight(now, c.Location)}
	}
	if lim.TokensPerDay > 0 && st.Tokens >= lim.TokensPerDay {
		return st, Decision{Limit: TokensPerDay, RetryAt: NextMidnight(now, c.Location)}
	}
	if n := lim.MessagesPerMinute; n > 0 {
		var retry time.Time
		if k := len(st.Admitted); k >= n {
			retry = st.Admitted[k-n].Add(Window)
		}
		burst := c.burst(n)
		if burst > 0 {
			st = refill(st, burst, n, now)
			if st.Bucket < 1-epsilon {
				// Rounded to the nanosecond first: float noise must not
				// push RetryAt to the next millisecond.
				wait := time.Duration(math.Round((1 - st.Bucket) / float64(n) * float64(time.Minute)))
				if at := ceilMilli(st.RefilledAt.Add(wait)); at.After(retry) {
					retry = at
				}
			}
		}
		if !retry.IsZero() {
			return st, Decision{Limit: PerMinute, RetryAt: retry}
		}
		if burst > 0 {
			st.Bucket = max(0, st.Bucket-1)
		}
		at := ceilMilli(now)
		if k := len(st.Admitted); k > 0 && st.Admitted[k-1].After(at) {
			at = st.Admitted[k-1] // a clock that went back
		}
		// Clipped so that appending never writes into the caller's array.
		st.Admitted = append(slices.Clip(st.Admitted), at)
	}
	st.Messages++
	var d Decision
	d.Allowed = true
	st, d.Warn = c.warn(st, lim)
	return st, d
}

// refund gives back one question that take admitted, and reports whether
// anything changed. The question given back is the agent's latest
// admission: an agent's questions are handled one at a time (one worker
// per DM, one question per agent in the Gate), so the refund of a question
// comes before the next one is checked. (A question admitted without a
// per-minute limit records no admission, so its refund takes off an
// earlier one, if any is less than a minute old: that can only matter if a
// moderator removes a per-minute override and sets one again within that
// minute.) Its admission leaves the window
// (unless it already did), its place in the bucket comes back (adding it to
// the bucket as it was at RefilledAt, capped, is the same as adding it now:
// the level is min(capacity, Bucket + elapsed*rate) either way), and it no
// longer counts today unless the day changed since. A warning already given
// stays given.
func (c *Config) refund(st State, now time.Time) (State, bool) {
	changed := false
	if k := len(st.Admitted); k > 0 && now.Before(st.Admitted[k-1].Add(Window)) {
		st.Admitted = slices.Clone(st.Admitted[:k-1])
		if !st.RefilledAt.IsZero() && c.Burst > 0 {
			st.Bucket = min(st.Bucket+1, float64(c.Burst))
		}
		changed = true
	}
	if st.Day == DayKey(now, c.Location) && st.Messages > 0 {
		st.Messages--
		changed = true
	}
	return st, changed
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
