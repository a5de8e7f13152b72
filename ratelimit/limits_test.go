package ratelimit

import (
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"
)

func paris(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// step is one question (or, with tokens, one recorded answer) at a time.
type step struct {
	at      time.Time
	tokens  int  // > 0: Record these tokens instead of asking
	allowed bool // for a question
	limit   Kind
	retryAt time.Time
	warn    []Kind
}

func runSteps(t *testing.T, cfg Config, lim Limits, steps []step) {
	t.Helper()
	cfg = cfg.withDefaults()
	var st State
	for i, s := range steps {
		if s.tokens > 0 {
			var warn []Kind
			st, warn = cfg.record(st, lim, s.tokens, s.at)
			if !slices.Equal(warn, s.warn) {
				t.Errorf("step %d: record %d at %s: warn = %v, want %v", i, s.tokens, s.at, warn, s.warn)
			}
			continue
		}
		next, d := cfg.take(st, lim, s.at)
		if d.Allowed != s.allowed || d.Limit != s.limit || !d.RetryAt.Equal(s.retryAt) || !slices.Equal(d.Warn, s.warn) {
			t.Errorf("step %d at %s: got allowed=%v limit=%q retry=%s warn=%v, want allowed=%v limit=%q retry=%s warn=%v",
				i, s.at.Format(time.RFC3339Nano), d.Allowed, d.Limit, d.RetryAt.Format(time.RFC3339Nano), d.Warn,
				s.allowed, s.limit, s.retryAt.Format(time.RFC3339Nano), s.warn)
		}
		if d.Allowed {
			st = next
		} else if next.Messages != st.Messages && next.Day == st.Day {
			t.Errorf("step %d: a refused question changed the count", i)
		}
	}
}

func ok(at time.Time, warn ...Kind) step { return step{at: at, allowed: true, warn: warn} }
func refused(at time.Time, limit Kind, retry time.Time) step {
	return step{at: at, limit: limit, retryAt: retry}
}
func tokens(at time.Time, n int, warn ...Kind) step { return step{at: at, tokens: n, warn: warn} }

func TestTake(t *testing.T) {
	loc := paris(t)
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, loc)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	midnight := time.Date(2026, 11, 3, 0, 0, 0, 0, loc)
	ms := time.Millisecond

	tests := []struct {
		name  string
		cfg   Config
		lim   Limits
		steps []step
	}{
		{
			name: "N=2: the third question within a minute waits for the first to leave the window",
			lim:  Limits{MessagesPerMinute: 2},
			steps: []step{
				ok(at(0)), ok(at(10 * time.Second)),
				refused(at(20*time.Second), PerMinute, at(time.Minute)),
				refused(at(time.Minute-ms), PerMinute, at(time.Minute)),
				ok(at(time.Minute)),
				refused(at(time.Minute+ms), PerMinute, at(70*time.Second)),
				ok(at(70 * time.Second)),
			},
		},
		{
			name: "N at once, then nothing until the first leaves",
			lim:  Limits{MessagesPerMinute: 3},
			steps: []step{
				ok(at(0)), ok(at(0)), ok(at(0)),
				refused(at(0), PerMinute, at(time.Minute)),
				refused(at(59*time.Second), PerMinute, at(time.Minute)),
				ok(at(time.Minute)), ok(at(time.Minute)), ok(at(time.Minute)),
				refused(at(time.Minute), PerMinute, at(2*time.Minute)),
			},
		},
		{
			name: "burst spaces questions out, the window still caps them",
			cfg:  Config{Burst: 3},
			lim:  Limits{MessagesPerMinute: 6},
			steps: []step{
				ok(at(0)), ok(at(0)), ok(at(0)),
				refused(at(0), PerMinute, at(10*time.Second)),
				refused(at(10*time.Second-ms), PerMinute, at(10*time.Second)),
				ok(at(10 * time.Second)),
				refused(at(10*time.Second), PerMinute, at(20*time.Second)),
				// 45 s later the bucket holds 3 again, but only two
				// more fit in the window that started at 0.
				ok(at(55 * time.Second)), ok(at(55 * time.Second)),
				refused(at(55*time.Second), PerMinute, at(time.Minute)),
				// At 60 s the three from 0 left; the bucket gained 0.5.
				ok(at(time.Minute)),
				refused(at(time.Minute), PerMinute, at(65*time.Second)),
			},
		},
		{
			name: "a burst as large as the limit adds nothing",
			cfg:  Config{Burst: 2},
			lim:  Limits{MessagesPerMinute: 2},
			steps: []step{
				ok(at(0)), ok(at(59 * time.Second)),
				ok(at(time.Minute)),
				refused(at(time.Minute), PerMinute, at(119*time.Second)),
			},
		},
		{
			name: "one a minute",
			lim:  Limits{MessagesPerMinute: 1},
			steps: []step{
				ok(at(0)),
				refused(at(30*time.Second), PerMinute, at(time.Minute)),
				refused(at(time.Minute-ms), PerMinute, at(time.Minute)),
				ok(at(time.Minute)),
				// A refusal consumes nothing: asking again at the
				// announced time works.
				refused(at(time.Minute+ms), PerMinute, at(2*time.Minute)),
				ok(at(2 * time.Minute)),
			},
		},
		{
			name: "an admission is recorded rounded up to the millisecond",
			lim:  Limits{MessagesPerMinute: 1},
			steps: []step{
				ok(at(400 * time.Microsecond)),
				refused(at(time.Minute), PerMinute, at(time.Minute+ms)),
				ok(at(time.Minute + ms)),
			},
		},
		{
			name: "burst RetryAt rounded up to the millisecond",
			cfg:  Config{Burst: 1},
			lim:  Limits{MessagesPerMinute: 7}, // 8571.43 ms per question
			steps: []step{
				ok(at(0)),
				refused(at(0), PerMinute, at(8572*ms)),
				refused(at(8571*ms), PerMinute, at(8572*ms)),
				ok(at(8572 * ms)),
			},
		},
		{
			name: "messages per day until midnight in Paris",
			lim:  Limits{MessagesPerDay: 2},
			steps: []step{
				ok(at(0)), ok(at(time.Hour), PerDay),
				refused(at(2*time.Hour), PerDay, midnight),
				refused(midnight.Add(-ms), PerDay, midnight),
				ok(midnight),
			},
		},
		{
			name: "daily limit before the per-minute one",
			lim:  Limits{MessagesPerMinute: 1, MessagesPerDay: 1},
			steps: []step{
				ok(at(0), PerDay), // the only question of the day is also 80 % of it
				refused(at(time.Second), PerDay, midnight),
			},
		},
		{
			name: "tokens recorded after the answer refuse the next question",
			lim:  Limits{TokensPerDay: 1000},
			steps: []step{
				ok(at(0)),
				tokens(at(time.Second), 1200, TokensPerDay),
				refused(at(time.Minute), TokensPerDay, midnight),
				ok(midnight),
			},
		},
		{
			name: "tokens just under the limit still allow a question",
			lim:  Limits{TokensPerDay: 1000},
			cfg:  Config{WarnAt: -1},
			steps: []step{
				ok(at(0)),
				tokens(at(time.Second), 999),
				ok(at(time.Minute)),
				tokens(at(time.Minute), 1),
				refused(at(2*time.Minute), TokensPerDay, midnight),
			},
		},
		{
			name: "warning at 80 % of messages, once per day",
			lim:  Limits{MessagesPerDay: 5},
			steps: []step{
				ok(at(0)), ok(at(1)), ok(at(2)),
				ok(at(3), PerDay), // 4 of 5
				ok(at(4)),
				refused(at(5), PerDay, midnight),
				ok(midnight), ok(midnight), ok(midnight),
				ok(midnight, PerDay),
			},
		},
		{
			name: "warning at 80 % of tokens, once per day",
			lim:  Limits{TokensPerDay: 1000},
			steps: []step{
				tokens(at(0), 700),
				tokens(at(1), 100, TokensPerDay),
				tokens(at(2), 150),
				tokens(midnight, 900, TokensPerDay),
			},
		},
		{
			name: "a threshold that is not a whole number is rounded up",
			cfg:  Config{WarnAt: 0.7},
			lim:  Limits{MessagesPerDay: 10},
			steps: []step{
				ok(at(0)), ok(at(0)), ok(at(0)), ok(at(0)), ok(at(0)), ok(at(0)),
				ok(at(0), PerDay), // 7 of 10, although 0.7*10 is 7.000000000000001
			},
		},
		{
			name: "warnings off",
			cfg:  Config{WarnAt: -1},
			lim:  Limits{MessagesPerDay: 1},
			steps: []step{
				ok(at(0)),
				refused(at(1), PerDay, midnight),
			},
		},
		{
			name: "unlimited",
			steps: []step{
				ok(at(0)), ok(at(0)), ok(at(0)), ok(at(0)), ok(at(0)),
				tokens(at(0), 1_000_000),
				ok(at(0)),
			},
		},
		{
			name: "a clock that goes back frees nothing",
			lim:  Limits{MessagesPerMinute: 2},
			steps: []step{
				ok(at(time.Minute)),
				// Recorded at 60 s, not 0: never earlier than the last.
				ok(at(0)),
				refused(at(30*time.Second), PerMinute, at(2*time.Minute)),
				ok(at(2 * time.Minute)),
			},
		},
		{
			name: "a clock that goes back adds nothing to the bucket",
			cfg:  Config{Burst: 1},
			lim:  Limits{MessagesPerMinute: 2},
			steps: []step{
				ok(at(time.Minute)),
				refused(at(0), PerMinute, at(90*time.Second)),
				ok(at(90 * time.Second)),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Location = loc
			runSteps(t, tt.cfg, tt.lim, tt.steps)
		})
	}
}

func TestRefund(t *testing.T) {
	loc := paris(t)
	lim := Limits{MessagesPerMinute: 2, MessagesPerDay: 3}
	t0 := time.Date(2026, 3, 29, 23, 59, 0, 0, loc)
	tests := []struct {
		name  string
		burst int
	}{{"window only", 0}, {"window and bucket", 1}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Burst: tt.burst, Location: loc}.withDefaults()
			st, _ := cfg.take(State{}, lim, t0)
			if tt.burst == 0 {
				st, _ = cfg.take(st, lim, t0.Add(10*time.Second))
			} else {
				st, _ = cfg.take(st, lim, t0.Add(30*time.Second))
			}
			if _, d := cfg.take(st, lim, t0.Add(40*time.Second)); d.Allowed {
				t.Fatal("third question allowed")
			}
			refunded, changed := cfg.refund(st, t0.Add(40*time.Second))
			if !changed || refunded.Messages != 1 || len(refunded.Admitted) != 1 || !refunded.Admitted[0].Equal(t0) {
				t.Errorf("after refund: %+v (changed %v), want 1 message, admitted at %s only", refunded, changed, t0)
			}
			d := Decision{}
			if refunded, d = cfg.take(refunded, lim, t0.Add(40*time.Second)); !d.Allowed {
				t.Errorf("after refund: %+v, want allowed", d)
			}
			// The refund did not free the first admission's place.
			if _, d := cfg.take(refunded, lim, t0.Add(50*time.Second)); d.Allowed || d.RetryAt.Before(t0.Add(time.Minute)) {
				t.Errorf("after refund and a new question: %+v, want refused until %s at least", d, t0.Add(time.Minute))
			}
		})
	}
	cfg := Config{Burst: 2, Location: loc}.withDefaults()
	// The bucket never holds more than Burst.
	full, _ := cfg.refund(State{Admitted: []time.Time{t0}, Bucket: 2, RefilledAt: t0, Day: DayKey(t0, loc), Messages: 1}, t0)
	if full.Bucket != 2 || full.Messages != 0 || len(full.Admitted) != 0 {
		t.Errorf("refund on a full bucket: %+v", full)
	}
	// After midnight (2026-03-30 00:00 CEST) the daily count stays, but
	// the question still leaves the window.
	st := State{Admitted: []time.Time{t0.Add(50 * time.Second)}, Day: DayKey(t0, loc), Messages: 1}
	got, changed := cfg.refund(st, t0.Add(time.Minute+time.Second))
	if !changed || got.Messages != 1 || len(got.Admitted) != 0 {
		t.Errorf("refund after midnight changed %+v into %+v, want the window emptied only", st, got)
	}
	// An admission that already left the window is not taken back.
	if _, changed := cfg.refund(State{Admitted: []time.Time{t0}}, t0.Add(time.Minute)); changed {
		t.Error("refund of an admission out of the window changed the state")
	}
	if _, changed := cfg.refund(State{Day: DayKey(t0, loc)}, t0); changed {
		t.Error("refund of nothing changed the state")
	}
}

func TestMidnightParis(t *testing.T) {
	loc := paris(t)
	utc := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, time.UTC) }
	tests := []struct {
		name    string
		now     time.Time
		day     string
		reset   time.Time
		dayLong time.Duration
	}{
		{"winter day", utc(2026, 1, 15, 12, 0), "2026-01-15", utc(2026, 1, 15, 23, 0), 24 * time.Hour},
		{"summer day", utc(2026, 7, 14, 12, 0), "2026-07-14", utc(2026, 7, 14, 22, 0), 24 * time.Hour},
		{"spring forward, just after midnight", utc(2026, 3, 28, 23, 30), "2026-03-29", utc(2026, 3, 29, 22, 0), 23 * time.Hour},
		{"spring forward, after the jump", utc(2026, 3, 29, 1, 30), "2026-03-29", utc(2026, 3, 29, 22, 0), 23 * time.Hour},
		{"spring forward, last minute", utc(2026, 3, 29, 21, 59), "2026-03-29", utc(2026, 3, 29, 22, 0), 23 * time.Hour},
		{"day before spring forward, late", utc(2026, 3, 28, 22, 59), "2026-03-28", utc(2026, 3, 28, 23, 0), 24 * time.Hour},
		{"fall back, just after midnight", utc(2026, 10, 24, 22, 30), "2026-10-25", utc(2026, 10, 25, 23, 0), 25 * time.Hour},
		{"fall back, in the repeated hour", utc(2026, 10, 25, 0, 30), "2026-10-25", utc(2026, 10, 25, 23, 0), 25 * time.Hour},
		{"fall back, repeated hour again", utc(2026, 10, 25, 1, 30), "2026-10-25", utc(2026, 10, 25, 23, 0), 25 * time.Hour},
		{"fall back, last minute", utc(2026, 10, 25, 22, 59), "2026-10-25", utc(2026, 10, 25, 23, 0), 25 * time.Hour},
		{"day after fall back starts at 23:00 UTC", utc(2026, 10, 25, 23, 0), "2026-10-26", utc(2026, 10, 26, 23, 0), 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DayKey(tt.now, loc); got != tt.day {
				t.Errorf("DayKey(%s) = %s, want %s", tt.now, got, tt.day)
			}
			reset := NextMidnight(tt.now, loc)
			if !reset.Equal(tt.reset) {
				t.Errorf("NextMidnight(%s) = %s, want %s", tt.now, reset.UTC(), tt.reset)
			}
			y, mo, dd := tt.now.In(loc).Date()
			start := time.Date(y, mo, dd, 0, 0, 0, 0, loc)
			if got := reset.Sub(start); got != tt.dayLong {
				t.Errorf("day of %s lasts %s, want %s", tt.now, got, tt.dayLong)
			}
			// The daily counter of a question just before midnight is
			// full at the last millisecond and free at midnight.
			cfg := Config{Location: loc}.withDefaults()
			lim := Limits{MessagesPerDay: 1}
			st, d := cfg.take(State{}, lim, tt.now)
			if !d.Allowed {
				t.Fatalf("first question refused: %+v", d)
			}
			if _, d := cfg.take(st, lim, reset.Add(-time.Millisecond)); d.Allowed || !d.RetryAt.Equal(tt.reset) {
				t.Errorf("just before midnight: %+v, want refused until %s", d, tt.reset)
			}
			if _, d := cfg.take(st, lim, reset); !d.Allowed {
				t.Errorf("at midnight: %+v, want allowed", d)
			}
		})
	}
}

func TestEffective(t *testing.T) {
	def := Limits{MessagesPerMinute: 3, MessagesPerDay: 100, TokensPerDay: 50000}
	tests := []struct {
		name       string
		factor     float64
		override   Limits
		overloaded bool
		want       Limits
	}{
		{"defaults", 0, Limits{}, false, def},
		{"override replaces one field", 0, Limits{MessagesPerDay: 500}, false, Limits{3, 500, 50000}},
		{"override of every field", 0, Limits{10, 20, 30}, false, Limits{10, 20, 30}},
		{"overload halves by default", 0, Limits{}, true, Limits{1, 50, 25000}},
		{"overload applies to overrides", 0.1, Limits{MessagesPerDay: 500}, true, Limits{1, 50, 5000}},
		{"overload never below 1", 0.01, Limits{}, true, Limits{1, 1, 500}},
		{"factor above 1 is 1", 3, Limits{}, true, def},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{PerUser: def, OverloadFactor: tt.factor}.withDefaults()
			if got := cfg.effective(tt.override, tt.overloaded); got != tt.want {
				t.Errorf("effective = %+v, want %+v", got, tt.want)
			}
		})
	}
	unlimited := Config{}.withDefaults()
	if got := unlimited.effective(Limits{}, true); got != (Limits{}) {
		t.Errorf("overload of unlimited = %+v, want unlimited", got)
	}
}

func TestExemptGlobs(t *testing.T) {
	globs := []string{"@*:agent.dinum.tchap.gouv.fr", "@ops-*:*"}
	tests := []struct {
		user id.UserID
		want bool
	}{
		{"@alice-dinum.gouv.fr:agent.dinum.tchap.gouv.fr", true},
		{"@ops-bob:agent.interieur.tchap.gouv.fr", true},
		{"@bob-interieur.gouv.fr:agent.interieur.tchap.gouv.fr", false},
		{"@alice:agent.dinum.tchap.gouv.fr.evil.org", false},
	}
	for _, tt := range tests {
		if got := matchAny(globs, tt.user); got != tt.want {
			t.Errorf("matchAny(%s) = %v, want %v", tt.user, got, tt.want)
		}
	}
}
