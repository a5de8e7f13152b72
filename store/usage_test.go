package store_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"guichet/store"
)

func paris(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatalf("LoadLocation: %v", err)
	}
	return loc
}

// ledgerCall is one call of the billing fixture; at is Paris time.
type ledgerCall struct {
	partner, endpoint, outcome, question string
	at                                   string
	prompt, completion                   int
	estimated                            bool
	cost, kwh, kg                        float64
}

// billingFixture spans two DST changes (2026-03-29, 23 hours long, and
// 2026-10-25, 25 hours long), the edges of October 2026 in Paris and three
// profiles.
var billingFixture = []ledgerCall{
	// Spring: 00:30 CET and 23:30 CEST are both on March 29.
	{"", "chat", "ok", "$m1", "2026-03-29 00:30 CET", 10, 5, false, 0.01, 0.001, 0.0001},
	{"", "chat", "ok", "$m2", "2026-03-29 23:30 CEST", 20, 10, false, 0.02, 0.002, 0.0002},
	// October's first instant in Paris belongs to October.
	{"", "chat", "ok", "$d1", "2026-10-01 00:00 CEST", 1, 1, false, 0.5, 0.25, 0.125},
	// Autumn: 00:30 CEST and 23:45 CET are both on October 25.
	{"", "chat", "ok", "$q1", "2026-10-25 00:30 CEST", 100, 50, false, 0.001, 0.0002, 0.00001},
	{"", "search", "ok", "$q1", "2026-10-25 00:30 CEST", 20, 0, false, 0.0001, 0.00002, 0.000001},
	{"", "chat", "ok", "$q1", "2026-10-25 10:00 CET", 30, 15, false, 0.0003, 0.00006, 0.000003},
	{"", "chat", "overloaded", "$q2", "2026-10-25 23:30 CET", 80, 0, true, 0, 0, 0},
	{"", "chat", "ok", "$q3", "2026-10-25 23:45 CET", 90, 40, true, 0.002, 0.0004, 0.00002},
	// Rows before migration 06 name no question: each successful one counts.
	{"justice", "chat", "ok", "", "2026-10-03 12:00 CEST", 10, 10, false, 0.1, 0.01, 0.001},
	{"justice", "chat", "ok", "", "2026-10-03 12:05 CEST", 10, 10, false, 0.1, 0.01, 0.001},
	{"justice", "chat", "timeout", "", "2026-10-03 12:10 CEST", 10, 0, true, 0, 0, 0},
	// The month's last half hour, and the next month's first instants.
	{"justice", "chat", "ok", "$j1", "2026-10-31 23:30 CET", 200, 100, false, 0.2, 0.02, 0.002},
	{"justice", "chat", "ok", "$j2", "2026-11-01 00:00 CET", 300, 150, false, 0.3, 0.03, 0.003},
	{"justice", "chat", "ok", "$j3", "2026-11-01 00:10 CET", 400, 200, false, 0.4, 0.04, 0.004},
	// A search alone: billed, no question.
	{"ville-paris", "search", "ok", "$v1", "2026-10-03 09:00 CEST", 7, 0, false, 0.07, 0.007, 0.0007},
}

func fillLedger(t *testing.T, st *store.Store, calls []ledgerCall) {
	t.Helper()
	loc := paris(t)
	for i, c := range calls {
		local, zone, _ := strings.Cut(c.at, " C")
		at, err := time.ParseInLocation("2006-01-02 15:04", local, loc)
		if err != nil || at.Format("MST") != "C"+zone {
			t.Fatalf("fixture %d: %s is not a Paris time (%v)", i, c.at, err)
		}
		err = st.AddUsage(context.Background(), store.Usage{
			UserID: id.UserID(fmt.Sprintf("@agent%d-dinum.gouv.fr:agent.dinum.tchap.gouv.fr", i)), RoomID: "!dm:agent.dinum.tchap.gouv.fr",
			Model: "mistral-medium-2508", PromptTokens: c.prompt, CompletionTokens: c.completion, Estimated: c.estimated,
			Latency: time.Second, Outcome: c.outcome, At: at, Question: id.EventID(c.question), Endpoint: c.endpoint,
			Partner: c.partner, Cost: c.cost, KWh: c.kwh, KgCO2eq: c.kg,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// day is a PartnerDay in the test's terms: its day as a local date and
// offset, and its sums.
type day struct {
	partner, day       string
	questions, calls   int
	prompt, completion int64
	estimated          int
	cost, kwh, kg      float64
}

func TestUsageByPartnerDay(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	fillLedger(t, st, billingFixture)
	loc := paris(t)
	month := func(y int, m time.Month, loc *time.Location) (time.Time, time.Time) {
		from := time.Date(y, m, 1, 0, 0, 0, 0, loc)
		return from, from.AddDate(0, 1, 0)
	}
	ptr := func(s string) *string { return &s }
	octFrom, octTo := month(2026, time.October, loc)

	octDefault := []day{
		{"", "2026-10-01 00:00 +0200", 1, 1, 1, 1, 0, 0.5, 0.25, 0.125},
		// 25 hours: both CEST and CET rows; $q1 once although asked twice
		// (and searched once); $q2 failed.
		{"", "2026-10-25 00:00 +0200", 2, 5, 320, 105, 2, 0.0034, 0.00068, 0.000034},
	}
	octJustice := []day{
		{"justice", "2026-10-03 00:00 +0200", 2, 3, 30, 20, 1, 0.2, 0.02, 0.002},
		{"justice", "2026-10-31 00:00 +0100", 1, 1, 200, 100, 0, 0.2, 0.02, 0.002},
	}
	octVille := []day{{"ville-paris", "2026-10-03 00:00 +0200", 0, 1, 7, 0, 0, 0.07, 0.007, 0.0007}}
	concat := func(parts ...[]day) []day {
		var out []day
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}

	tests := []struct {
		name     string
		from, to time.Time
		partner  *string
		loc      *time.Location
		want     []day
	}{
		{"October, every partner, default profile first", octFrom, octTo, nil, loc, concat(octDefault, octJustice, octVille)},
		{"October, one partner", octFrom, octTo, ptr("justice"), loc, octJustice},
		{"October, the default profile", octFrom, octTo, ptr(""), loc, octDefault},
		{"October, a partner without calls", octFrom, octTo, ptr("culture"), loc, nil},
		{"November starts at Paris midnight", time.Date(2026, 11, 1, 0, 0, 0, 0, loc), time.Date(2026, 12, 1, 0, 0, 0, 0, loc), nil, loc,
			[]day{{"justice", "2026-11-01 00:00 +0100", 2, 2, 700, 350, 0, 0.7, 0.07, 0.007}}},
		{"March, a 23-hour day", time.Date(2026, 3, 1, 0, 0, 0, 0, loc), time.Date(2026, 4, 1, 0, 0, 0, 0, loc), nil, loc,
			[]day{{"", "2026-03-29 00:00 +0100", 2, 2, 30, 15, 0, 0.03, 0.003, 0.0003}}},
		{"the same calls on UTC days", time.Date(2026, 10, 24, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC), ptr(""), time.UTC,
			[]day{
				{"", "2026-10-24 00:00 +0000", 1, 2, 120, 50, 0, 0.0011, 0.00022, 0.000011},
				{"", "2026-10-25 00:00 +0000", 2, 3, 200, 55, 2, 0.0023, 0.00046, 0.000023},
			}},
		{"nothing in range", time.Date(2025, 1, 1, 0, 0, 0, 0, loc), time.Date(2025, 2, 1, 0, 0, 0, 0, loc), nil, loc, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := st.UsageByPartnerDay(ctx, tt.from, tt.to, tt.partner, tt.loc)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d rows, want %d:\n%s", len(got), len(tt.want), dump(got))
			}
			for i, w := range tt.want {
				checkDay(t, got[i], w)
			}
		})
	}
}

func checkDay(t *testing.T, g store.PartnerDay, w day) {
	t.Helper()
	gotDay := g.Day.Format("2006-01-02 15:04 -0700")
	if g.Partner != w.partner || gotDay != w.day || g.Questions != w.questions || g.Calls != w.calls ||
		g.PromptTokens != w.prompt || g.CompletionTokens != w.completion || g.EstimatedCalls != w.estimated {
		t.Errorf("got %q %s: %d questions, %d calls, %d+%d tokens, %d estimated\nwant %q %s: %d questions, %d calls, %d+%d tokens, %d estimated",
			g.Partner, gotDay, g.Questions, g.Calls, g.PromptTokens, g.CompletionTokens, g.EstimatedCalls,
			w.partner, w.day, w.questions, w.calls, w.prompt, w.completion, w.estimated)
	}
	for _, f := range []struct {
		name      string
		got, want float64
	}{{"cost", g.Cost, w.cost}, {"kWh", g.KWh, w.kwh}, {"kgCO2eq", g.KgCO2eq, w.kg}} {
		if math.Abs(f.got-f.want) > 1e-12 {
			t.Errorf("%q %s: %s %g, want %g", g.Partner, gotDay, f.name, f.got, f.want)
		}
	}
}

func dump(rows []store.PartnerDay) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "  %+v\n", r)
	}
	return b.String()
}

// TestUsageReadOnly reads the ledger as the usage command does: through a
// read-only handle, while the service holds the database open, and after
// it stopped; the handle writes nothing and creates no database.
func TestUsageReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "guichet.db")
	writable, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(writable, zerolog.Nop())
	if err := st.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	fillLedger(t, st, billingFixture[:2])
	from, to := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)

	read := func(t *testing.T) {
		t.Helper()
		db, err := store.OpenReadOnly(path)
		if err != nil {
			t.Fatalf("OpenReadOnly: %v", err)
		}
		defer db.Close()
		ro := store.New(db, zerolog.Nop())
		if err := ro.CheckVersion(ctx); err != nil {
			t.Fatalf("CheckVersion: %v", err)
		}
		rows, err := ro.UsageByPartnerDay(ctx, from, to, nil, paris(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Calls != 2 {
			t.Errorf("read %s", dump(rows))
		}
		if err := ro.AddUsage(ctx, store.Usage{UserID: alice, Outcome: "ok", At: from}); err == nil {
			t.Error("a read-only handle wrote to the ledger")
		}
	}
	t.Run("while the service runs", read)
	if err := writable.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-shm"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the shared-memory file outlived the service (stat: %v)", err)
	}
	t.Run("after it stopped", read)

	missing := filepath.Join(dir, "absent.db")
	db, err := store.OpenReadOnly(missing)
	if err == nil { // sql.Open connects lazily
		err = store.New(db, zerolog.Nop()).Ping(ctx)
		db.Close()
	}
	if err == nil {
		t.Error("a missing database opened read-only")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenReadOnly created %s (stat: %v)", missing, err)
	}
}

func TestCheckVersion(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name            string
		version, compat int // set after the upgrade; -1: no guichet tables
		want            string
	}{
		{"up to date", 0, 0, ""},
		{"older", 7, 7, "at v7 and this guichet expects v"},
		{"newer and compatible", 99, 1, ""},
		{"newer and incompatible", 99, 99, "a newer guichet wrote them (v99"},
		{"not a guichet database", -1, -1, "no guichet tables"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "guichet.db")
			db, err := store.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			st := store.New(db, zerolog.Nop())
			if tt.version >= 0 {
				if err := st.Upgrade(ctx); err != nil {
					t.Fatal(err)
				}
			} else if _, err := db.Exec(ctx, `CREATE TABLE other (x INTEGER)`); err != nil {
				t.Fatal(err)
			}
			if tt.version > 0 {
				if _, err := db.Exec(ctx, `UPDATE `+store.VersionTable+` SET version=$1, compat=$2`, tt.version, tt.compat); err != nil {
					t.Fatal(err)
				}
			}
			err = st.CheckVersion(ctx)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CheckVersion: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, store.ErrSchemaVersion)):
				t.Errorf("CheckVersion = %v, want an ErrSchemaVersion saying %q", err, tt.want)
			}
		})
	}
}
