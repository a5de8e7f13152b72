package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"guichet/internal/pgtest"
	"guichet/store"
)

// usageConfig is a configuration with two partners; the secrets come from
// usageEnv.
const usageConfig = `matrix:
  homeserver: https://matrix.agent.dinum.tchap.gouv.fr
  user_id: "@assistant-ia:agent.dinum.tchap.gouv.fr"
support_room: "!support:agent.dinum.tchap.gouv.fr"
policy:
  url: https://assistant.numerique.gouv.fr/politique
  version: "2026-11"
partners:
  - id: justice
    name: "Ministère de la Justice, DACG"
    match: ["@*-justice.gouv.fr:*"]
  - id: ville-paris
    name: Ville de Paris
    match: ["@*-paris.fr:*"]
`

// usageCall is a ledger row; at is Paris time, in October 2026 unless the
// day says otherwise.
type usageCall struct {
	user, partner, endpoint, outcome, question, at string
	prompt, completion                             int
	estimated                                      bool
	cost, kwh, kg                                  float64
}

const (
	jeanne = "@jeanne.martin-justice.gouv.fr:agent.justice.tchap.gouv.fr"
	paul   = "@paul.durand-dinum.gouv.fr:agent.dinum.tchap.gouv.fr"
	lea    = "@lea.petit-paris.fr:agent.collectivites.tchap.gouv.fr"
	hugo   = "@hugo.bernard-culture.gouv.fr:agent.culture.tchap.gouv.fr"
)

var usageCalls = []usageCall{
	{paul, "", "chat", "ok", "$x0", "2026-09-30 23:59", 9, 9, false, 9, 9, 9}, // September
	// October 25 lasts 25 hours: both rows are on it.
	{paul, "", "chat", "ok", "$a1", "2026-10-25 00:30", 100, 50, false, 0.001, 0.0002, 0.00001},
	{paul, "", "search", "ok", "$a1", "2026-10-25 00:30", 20, 0, false, 0.0001, 0.00002, 0.000001},
	{paul, "", "chat", "overloaded", "$a2", "2026-10-25 23:30", 80, 0, true, 0, 0, 0},
	// Floats summed: 0.1 + 0.2 is printed 0.3.
	{jeanne, "justice", "chat", "ok", "$j1", "2026-10-03 10:00", 10, 5, false, 0.1, 0.01, 0.001},
	{jeanne, "justice", "chat", "ok", "$j2", "2026-10-03 11:00", 20, 10, true, 0.2, 0.02, 0.002},
	// The month's last half hour is in it, the next month's first minutes not.
	{jeanne, "justice", "chat", "ok", "$j3", "2026-10-31 23:30", 200, 100, false, 0.2, 0.02, 0.002},
	{jeanne, "justice", "chat", "ok", "$j4", "2026-11-01 00:10", 400, 200, false, 0.4, 0.04, 0.004},
	{lea, "ville-paris", "search", "ok", "$v1", "2026-10-03 09:00", 7, 0, false, 0.07, 0.007, 0.0007},
	// A partner since removed from the configuration: billed, unnamed.
	{hugo, "culture", "chat", "ok", "$c1", "2026-10-02 14:00", 30, 20, false, 0.03, 0.003, 0.0003},
}

const octoberCSV = `partner,partner_name,day,questions,prompt_tokens,completion_tokens,estimated_calls,cost_eur,kwh,kgco2eq
default,Profil par défaut,2026-10-25,1,200,50,1,0.0011,0.00022,0.000011
culture,,2026-10-02,1,30,20,0,0.03,0.003,0.0003
justice,"Ministère de la Justice, DACG",2026-10-03,2,30,15,1,0.3,0.03,0.003
justice,"Ministère de la Justice, DACG",2026-10-31,1,200,100,0,0.2,0.02,0.002
ville-paris,Ville de Paris,2026-10-03,0,7,0,0,0.07,0.007,0.0007
`

const usageHeaderLine = "partner,partner_name,day,questions,prompt_tokens,completion_tokens,estimated_calls,cost_eur,kwh,kgco2eq\n"

// fillUsageDB writes calls to a new, upgraded database at path, closed
// when it returns as after the service stopped.
func fillUsageDB(t *testing.T, path string, calls []usageCall) {
	t.Helper()
	fillUsageDatabase(t, store.DialectSQLite, path, calls)
}

func fillUsageDatabase(t *testing.T, dialect, uri string, calls []usageCall) {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenDatabase(dialect, uri, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := store.New(db, zerolog.Nop())
	if err := st.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		at, err := time.ParseInLocation("2006-01-02 15:04", c.at, loc)
		if err != nil {
			t.Fatal(err)
		}
		err = st.AddUsage(ctx, store.Usage{
			UserID: id.UserID(c.user), RoomID: id.RoomID("!dm-" + c.question[1:] + ":agent.dinum.tchap.gouv.fr"),
			Model: "mistral-medium-2508", PromptTokens: c.prompt, CompletionTokens: c.completion, Estimated: c.estimated,
			Latency: 2 * time.Second, Outcome: c.outcome, At: at, Question: id.EventID(c.question), Endpoint: c.endpoint,
			Partner: c.partner, Cost: c.cost, KWh: c.kwh, KgCO2eq: c.kg,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func usageEnv(db string, secrets bool, extra map[string]string) func(string) (string, bool) {
	env := map[string]string{}
	if db != "" {
		env["GUICHET_DATABASE_URI"] = db
	}
	if secrets {
		env = merge(env, map[string]string{
			"GUICHET_MATRIX_PASSWORD":                     "bot-password",
			"GUICHET_MATRIX_PICKLE_KEY":                   "pickle-key-0123456789abcdef",
			"GUICHET_ALBERT_API_KEY":                      "albert-key",
			"GUICHET_PARTNERS_JUSTICE_ALBERT_API_KEY":     "justice-key",
			"GUICHET_PARTNERS_VILLE_PARIS_ALBERT_API_KEY": "paris-key",
		})
	}
	env = merge(env, extra)
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// usageSetup writes usageConfig and a database holding usageCalls in dir.
func usageSetup(t *testing.T, dir string) (file, db string) {
	t.Helper()
	file = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(usageConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	db = filepath.Join(dir, "guichet.db")
	fillUsageDB(t, db, usageCalls)
	return file, db
}

func TestUsageCommand(t *testing.T) {
	dir := t.TempDir()
	file, db := usageSetup(t, dir)
	before := fileSum(t, db)
	old := filepath.Join(dir, "old.db")
	fillUsageDB(t, old, nil)
	setVersion(t, old, 7)

	justice := `justice,"Ministère de la Justice, DACG",2026-10-03,2,30,15,1,0.3,0.03,0.003
justice,"Ministère de la Justice, DACG",2026-10-31,1,200,100,0,0.2,0.02,0.002
`
	dbFile := filepath.Join(dir, "database-uri")
	if err := os.WriteFile(dbFile, []byte(db+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unnamed := filepath.Join(dir, "unnamed.yaml")
	if err := os.WriteFile(unnamed, []byte(strings.Replace(usageConfig, `    name: "Ministère de la Justice, DACG"`+"\n", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		args       []string
		env        func(string) (string, bool)
		wantCode   int
		wantStdout string   // exactly
		wantStderr []string // fragments
	}{
		{"every partner", []string{"-month", "2026-10"}, usageEnv(db, true, nil), exitOK, octoberCSV, nil},
		{"without the service's secrets", []string{"-month", "2026-10"}, usageEnv(db, false, nil), exitOK, octoberCSV,
			[]string{"invalid for the service (matrix.password, matrix.pickle_key, albert.api_key, partners.justice.albert.api_key", "not for this report"}},
		{"one partner", []string{"-month", "2026-10", "-partner", "justice"}, usageEnv(db, true, nil), exitOK, usageHeaderLine + justice, nil},
		{"the default profile", []string{"-partner", "default", "-month", "2026-10"}, usageEnv(db, true, nil), exitOK,
			usageHeaderLine + "default,Profil par défaut,2026-10-25,1,200,50,1,0.0011,0.00022,0.000011\n", nil},
		{"November", []string{"-month", "2026-11"}, usageEnv(db, true, nil), exitOK,
			usageHeaderLine + `justice,"Ministère de la Justice, DACG",2026-11-01,1,400,200,0,0.4,0.04,0.004` + "\n", nil},
		{"UTC days", []string{"-month", "2026-10"}, usageEnv(db, true, map[string]string{"GUICHET_LIMITS_TIMEZONE": "UTC"}), exitOK,
			usageHeaderLine +
				"default,Profil par défaut,2026-10-24,1,120,50,0,0.0011,0.00022,0.000011\n" +
				"default,Profil par défaut,2026-10-25,0,80,0,1,0,0,0\n" +
				"culture,,2026-10-02,1,30,20,0,0.03,0.003,0.0003\n" +
				`justice,"Ministère de la Justice, DACG",2026-10-03,2,30,15,1,0.3,0.03,0.003` + "\n" +
				// 2026-11-01 00:10 in Paris is still October 31 in UTC.
				`justice,"Ministère de la Justice, DACG",2026-10-31,2,600,300,0,0.6,0.06,0.006` + "\n" +
				"ville-paris,Ville de Paris,2026-10-03,0,7,0,0,0.07,0.007,0.0007\n", nil},
		{"a month without usage", []string{"-month", "2025-01"}, usageEnv(db, true, nil), exitOK, usageHeaderLine, nil},

		{"the database from a file, without the secrets", []string{"-month", "2026-10"},
			usageEnv("", false, map[string]string{"GUICHET_DATABASE_URI_FILE": dbFile}), exitOK, octoberCSV, []string{"not for this report"}},

		{"no month", nil, usageEnv(db, true, nil), exitUsage, "", []string{"-month is required"}},
		{"a month out of range", []string{"-month", "2026-13"}, usageEnv(db, true, nil), exitUsage, "", []string{`YYYY-MM such as 2026-11, got "2026-13"`}},
		{"a month in one digit", []string{"-month", "2026-1"}, usageEnv(db, true, nil), exitUsage, "", []string{"YYYY-MM"}},
		{"an unknown partner", []string{"-month", "2026-10", "-partner", "culture"}, usageEnv(db, true, nil), exitUsage, "",
			[]string{`-partner "culture" is not in the configuration; known: default, justice, ville-paris`}},
		{"a stray argument", []string{"-month", "2026-10", "justice"}, usageEnv(db, true, nil), exitUsage, "", []string{`unexpected argument "justice"`}},
		{"an unknown flag", []string{"-month", "2026-10", "-user", paul}, usageEnv(db, true, nil), exitUsage, "", []string{"flag provided but not defined"}},

		{"a time zone the report needs", []string{"-month", "2026-10"}, usageEnv(db, false, map[string]string{"GUICHET_LIMITS_TIMEZONE": "Mars/Olympus"}),
			exitConfig, "", []string{"limits.timezone", "matrix.password"}},
		{"a partner without a name", []string{"-config", unnamed, "-month", "2026-10"}, usageEnv(db, false, nil),
			exitConfig, "", []string{"partners.justice.name", "matrix.password"}},
		{"a missing configuration file", []string{"-config", filepath.Join(dir, "absent.yaml"), "-month", "2026-10"}, usageEnv(db, true, nil),
			exitConfig, "", []string{"failed to read config file"}},
		{"a missing database", []string{"-month", "2026-10"}, usageEnv(filepath.Join(dir, "absent.db"), true, nil), exitStartup, "",
			[]string{"unable to open database file"}},
		{"a database not upgraded", []string{"-month", "2026-10"}, usageEnv(old, true, nil), exitStartup, "",
			[]string{"at v7 and this guichet expects v", "starting the service upgrades them"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			// A later -config wins.
			args := append([]string{"-config", file}, tt.args...)
			if code := runUsage(args, tt.env, &stdout, &stderr); code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr: %s)", code, tt.wantCode, stderr.String())
			}
			if stdout.String() != tt.wantStdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), tt.wantStdout)
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if tt.wantStderr == nil && stderr.Len() > 0 {
				t.Errorf("stderr: %s", stderr.String())
			}
			// Billing names partners and days, never an agent or a room.
			for _, never := range []string{"@", "!", jeanne, paul, lea, hugo, "agent.", "tchap", "$"} {
				if strings.Contains(stdout.String(), never) {
					t.Errorf("stdout shows %q:\n%s", never, stdout.String())
				}
			}
		})
	}
	if fileSum(t, db) != before {
		t.Error("the report changed the database file")
	}
	if _, err := os.Stat(filepath.Join(dir, "absent.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the report created a database (stat: %v)", err)
	}
}

func TestDecimal(t *testing.T) {
	for _, tt := range []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{0.1 + 0.2, "0.3"},
		{12, "12"},
		{0.000011, "0.000011"},
		{1e-10, "0"},
		{-1e-10, "0"},
		{0.0000000015, "0.000000002"},
		{1234.5678901234, "1234.567890123"},
		{1e7 + 0.25, "10000000.25"},
	} {
		if got := decimal(tt.in); got != tt.want {
			t.Errorf("decimal(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func setVersion(t *testing.T, path string, version int) {
	t.Helper()
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(context.Background(), `UPDATE `+store.VersionTable+` SET version=$1, compat=$1`, version); err != nil {
		t.Fatal(err)
	}
}

// TestUsageSubcommand runs the report as an operator does, through run:
// "usage" first, then its own flags.
func TestUsageSubcommand(t *testing.T) {
	file, db := usageSetup(t, t.TempDir())
	var stdout, stderr bytes.Buffer
	if code := run([]string{"usage", "-config", file, "-month", "2026-10"}, usageEnv(db, true, nil), &stdout, &stderr); code != exitOK {
		t.Fatalf("exit code %d, stderr: %s", code, stderr.String())
	}
	if stdout.String() != octoberCSV {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), octoberCSV)
	}
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"usage", "-config", file}, usageEnv(db, true, nil), &stdout, &stderr); code != exitUsage {
		t.Errorf("without -month: exit code %d, want %d", code, exitUsage)
	}
	if !strings.Contains(stderr.String(), "-month is required") || stdout.Len() > 0 {
		t.Errorf("without -month: stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}

// The report reads a PostgreSQL deployment too (database.type postgres),
// in read-only transactions.
func TestUsageCommandOnPostgres(t *testing.T) {
	if _, err := pgtest.BinDir(); err != nil {
		t.Skip(err)
	}
	srv, err := pgtest.Shared()
	if err != nil {
		t.Fatal(err)
	}
	uri, err := srv.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(usageConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	fillUsageDatabase(t, store.DialectPostgres, uri, usageCalls)
	var out, errOut bytes.Buffer
	env := usageEnv(uri, true, map[string]string{"GUICHET_DATABASE_TYPE": "postgres"})
	if code := run([]string{"usage", "-config", file, "-month", "2026-10", "-partner", "justice"}, env, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want := `justice,"Ministère de la Justice, DACG",2026-10-03,2,30,15,1,0.3,0.03,0.003`
	if !strings.Contains(out.String(), want) {
		t.Errorf("CSV =\n%s\nwant a line %s", out.String(), want)
	}
}
