package pgtest_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"guichet/internal/pgtest"
)

// The server starts, gives fresh databases, and stops.
func TestServer(t *testing.T) {
	if _, err := pgtest.BinDir(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := pgtest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := s.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.NewDatabase(ctx)
	if err != nil || a == b {
		t.Fatalf("second database %q, %v (first %q)", b, err, a)
	}
	db, err := sql.Open("postgres", a)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRowContext(ctx, "SHOW server_version").Scan(&v); err != nil || v == "" {
		t.Fatalf("server_version = %q, %v", v, err)
	}
}
