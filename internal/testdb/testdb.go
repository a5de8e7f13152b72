// Package testdb gives tests a fresh, real database: a SQLite file in the
// test's folder, or, with GUICHET_TEST_DATABASE=postgres, a new database on
// a PostgreSQL server that internal/pgtest starts once per test binary. The
// same tests thus run on both dialects (make test runs them twice).
package testdb

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.mau.fi/util/dbutil"

	"guichet/internal/pgtest"
	"guichet/store"
)

// Postgres reports whether the tests run on PostgreSQL.
func Postgres() bool { return pgtest.Wanted() }

// SQLiteOnly skips a test of SQLite's own behaviour (its files, upgrades of
// deployments that predate PostgreSQL support) on PostgreSQL.
func SQLiteOnly(t testing.TB) {
	t.Helper()
	if pgtest.Wanted() {
		t.Skip("SQLite's own behaviour")
	}
}

// New returns the dialect and URI of a fresh database: sqlitePath on SQLite
// (not created yet), a new empty database on PostgreSQL.
func New(t testing.TB, sqlitePath string) (dialect, uri string) {
	t.Helper()
	if !pgtest.Wanted() {
		return store.DialectSQLite, sqlitePath
	}
	srv, err := pgtest.Shared()
	if err != nil {
		t.Fatalf("PostgreSQL for the tests: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	uri, err = srv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return store.DialectPostgres, uri
}

// Open opens a fresh database (see New), closed when the test ends.
func Open(t testing.TB) *dbutil.Database {
	t.Helper()
	return OpenPath(t, filepath.Join(t.TempDir(), "guichet.db"))
}

var (
	mu    sync.Mutex
	paths = map[string]string{} // SQLite path -> PostgreSQL URI standing for it
)

// OpenPath opens the database that path names: the SQLite file, or on
// PostgreSQL the database created the first time path was given, so that a
// test that reopens "the same file" (a restart) reopens the same database.
// Closed when the test ends.
func OpenPath(t testing.TB, path string) *dbutil.Database {
	t.Helper()
	dialect, uri := store.DialectSQLite, path
	if pgtest.Wanted() {
		mu.Lock()
		known, ok := paths[path]
		mu.Unlock()
		if ok {
			dialect, uri = store.DialectPostgres, known
		} else {
			dialect, uri = New(t, path)
			mu.Lock()
			paths[path] = uri
			mu.Unlock()
		}
	}
	db, err := store.OpenDatabase(dialect, uri, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}
