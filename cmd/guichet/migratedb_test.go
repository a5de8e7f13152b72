package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"guichet/approvals"
	"guichet/internal/pgtest"
	"guichet/store"
)

// migrateConfig is a service configuration; its secrets come from
// migrateEnv, its database from GUICHET_DATABASE_*.
const migrateConfig = `matrix:
  homeserver: https://matrix.agent.dinum.tchap.gouv.fr
  user_id: "@assistant-ia:agent.dinum.tchap.gouv.fr"
support_room: "!support:agent.dinum.tchap.gouv.fr"
policy:
  url: https://assistant.numerique.gouv.fr/politique
  version: "2026-11"
`

func migrateEnv(vars map[string]string, secrets bool) func(string) (string, bool) {
	env := map[string]string{}
	if secrets {
		env["GUICHET_MATRIX_PASSWORD"] = "bot-password"
		env["GUICHET_MATRIX_PICKLE_KEY"] = "pickle-key-0123456789abcdef"
		env["GUICHET_ALBERT_API_KEY"] = "albert-key"
	}
	for k, v := range vars {
		env[k] = v
	}
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// migrateSource writes a SQLite deployment with one pending request.
func migrateSource(t *testing.T, path string) {
	t.Helper()
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := store.New(db, zerolog.Nop())
	if err := st.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	err = st.CreateRequest(context.Background(), &approvals.Request{UserID: "@bob-interieur.gouv.fr:agent.interieur.tchap.gouv.fr",
		Status: approvals.StatusPending, RoomID: "!support:agent.dinum.tchap.gouv.fr", EventID: "$demande", CreatedAt: now, UpdatedAt: now, LastSeenAt: now})
	if err != nil {
		t.Fatal(err)
	}
}

type migrateCase struct {
	name       string
	args       []string
	env        func(string) (string, bool)
	wantCode   int
	wantStdout []string
	wantStderr []string
}

func (tt migrateCase) run(t *testing.T) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"migrate-db"}, tt.args...), tt.env, &stdout, &stderr)
	if testing.Verbose() {
		t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	if code != tt.wantCode {
		t.Errorf("exit code %d, want %d (stderr: %s)", code, tt.wantCode, stderr.String())
	}
	for _, w := range tt.wantStdout {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
		}
	}
	if tt.wantStdout == nil && stdout.Len() > 0 {
		t.Errorf("stdout: %s", stdout.String())
	}
	for _, w := range tt.wantStderr {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
		}
	}
	if tt.wantStderr == nil && stderr.Len() > 0 {
		t.Errorf("stderr: %s", stderr.String())
	}
	for _, secret := range []string{"s3cret", "bot-password", "pickle-key-0123456789abcdef"} {
		if strings.Contains(stdout.String()+stderr.String(), secret) {
			t.Errorf("the output shows a secret, %q:\n%s%s", secret, stdout.String(), stderr.String())
		}
	}
}

// Flags, configuration and databases that stop migrate-db before it copies,
// each with its exit code; no PostgreSQL server is needed.
func TestMigrateDBRefusals(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(migrateConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	source := filepath.Join(dir, "guichet.db")
	migrateSource(t, source)
	sqlite := map[string]string{"GUICHET_DATABASE_URI": source}
	unreachable := "postgres://guichet:s3cret@127.0.0.1:1/guichet?sslmode=disable&connect_timeout=2"
	cfg := []string{"-config", file}

	for _, tt := range []migrateCase{
		{"an unknown flag", append(cfg, "-from", source), migrateEnv(sqlite, true), exitUsage, nil, []string{"flag provided but not defined", "Usage: guichet migrate-db"}},
		{"no target", cfg, migrateEnv(sqlite, true), exitUsage, nil, []string{"-to is required"}},
		{"a target that is not PostgreSQL", append(cfg, "-to", "mysql://guichet:s3cret@db/guichet"), migrateEnv(sqlite, true), exitUsage, nil,
			[]string{"-to must be a postgres:// URI", "mysql://guichet:xxxxx@db/guichet"}},
		{"a stray argument", append(cfg, "-to", unreachable, "now"), migrateEnv(sqlite, true), exitUsage, nil, []string{`unexpected argument "now"`}},

		{"a missing configuration file", []string{"-config", filepath.Join(dir, "absent.yaml"), "-to", unreachable}, migrateEnv(sqlite, true), exitConfig, nil,
			[]string{"failed to read config file"}},
		{"a PostgreSQL deployment already", append(cfg, "-to", unreachable),
			migrateEnv(map[string]string{"GUICHET_DATABASE_TYPE": "postgres", "GUICHET_DATABASE_URI": "postgres://guichet@db/guichet"}, true), exitConfig, nil,
			[]string{`database.type is "postgres": migrate-db copies a SQLite deployment`}},
		{"an invalid database setting", append(cfg, "-to", unreachable),
			migrateEnv(map[string]string{"GUICHET_DATABASE_TYPE": "sqlite3-fk-wal", "GUICHET_DATABASE_URI": "postgres://guichet@db/guichet"}, false), exitConfig, nil,
			[]string{"database.uri", "the SQLite file's path"}},

		{"a missing SQLite file", append(cfg, "-to", unreachable),
			migrateEnv(map[string]string{"GUICHET_DATABASE_URI": filepath.Join(dir, "absent.db")}, true), exitStartup, nil,
			[]string{"absent.db", "no such file"}},
		{"an unreachable PostgreSQL, without the service's secrets", append(cfg, "-to", unreachable), migrateEnv(sqlite, false), exitStartup, nil,
			[]string{"invalid for the service (matrix.password, matrix.pickle_key, albert.api_key)", "not for this copy",
				"failed to connect to the PostgreSQL database", "postgres://guichet:xxxxx@127.0.0.1:1/guichet"}},
	} {
		t.Run(tt.name, tt.run)
	}
	if _, err := os.Stat(filepath.Join(dir, "absent.db")); !os.IsNotExist(err) {
		t.Errorf("migrate-db created the missing SQLite file (stat: %v)", err)
	}
}

// A copy into PostgreSQL, then the refusals that need it: the same
// database again (not empty), a SQLite file in use, a copy that fails.
func TestMigrateDBCopies(t *testing.T) {
	if _, err := pgtest.BinDir(); err != nil {
		t.Skip("PostgreSQL is needed:", err)
	}
	srv, err := pgtest.Shared()
	if err != nil {
		t.Fatalf("PostgreSQL for the tests: %v", err)
	}
	newDB := func() string {
		uri, err := srv.NewDatabase(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return uri
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(migrateConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	source := filepath.Join(dir, "guichet.db")
	migrateSource(t, source)
	env := migrateEnv(map[string]string{"GUICHET_DATABASE_URI": source}, true)
	target := newDB()

	t.Run("copied", migrateCase{"", []string{"-config", file, "-to", target}, env, exitOK,
		[]string{"Copied " + source + " into ", "tables", "access_request", "crypto_account", "mx_room_state",
			"guichet_version v", "crypto_version v", "mx_version v", "set database.type: postgres", "never start guichet on it again"}, nil}.run)
	pg, err := dbutil.NewWithDialect(target, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	var user string
	if err := pg.RawDB.QueryRow("SELECT user_id FROM access_request WHERE status = 'pending'").Scan(&user); err != nil || user != "@bob-interieur.gouv.fr:agent.interieur.tchap.gouv.fr" {
		t.Errorf("the pending request on PostgreSQL: %q, %v", user, err)
	}

	t.Run("the same target again", migrateCase{"", []string{"-config", file, "-to", target}, env, exitStartup, nil,
		[]string{"the PostgreSQL database is not empty", "access_request", "a new, empty database"}}.run)

	running, err := store.Open(source)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.New(running, zerolog.Nop()).Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Run("guichet still running", migrateCase{"", []string{"-config", file, "-to", newDB()}, env, exitStartup, nil,
		[]string{"the SQLite database is in use", "stop guichet"}}.run)
	if _, err := running.RawDB.Exec("UPDATE access_request SET reason = ?", "nul\x00"); err != nil {
		t.Fatal(err)
	}
	running.Close()
	t.Run("a failed copy", migrateCase{"", []string{"-config", file, "-to", newDB()}, env, exitRuntime, nil,
		[]string{"the copy failed and was rolled back", "access_request", "nothing was copied"}}.run)
}
