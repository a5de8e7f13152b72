// Package store keeps guichet's state in SQLite through dbutil. The same
// database file holds mautrix's crypto and state stores; guichet's own tables
// have their own version table and numbered migrations in upgrades/.
package store

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	_ "github.com/lib/pq" // registers the postgres driver
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	_ "go.mau.fi/util/dbutil/litestream" // registers the sqlite3-fk-wal driver
)

//go:embed upgrades/*.sql
var upgrades embed.FS

// VersionTable is the table that tracks guichet's own migrations.
const VersionTable = "guichet_version"

// Dialects guichet runs on (config database.type).
const (
	// DialectSQLite is one SQLite file with WAL and foreign keys.
	DialectSQLite = "sqlite3-fk-wal"
	// DialectPostgres is a PostgreSQL server, through lib/pq.
	DialectPostgres = "postgres"
)

// OpenDatabase opens the database of a dialect: a SQLite path (see Open) or a
// postgres:// URI. maxOpen and maxIdle bound the connection pool; 0 takes
// the dialect's default (SQLite 4 and 4, PostgreSQL 10 and 2).
func OpenDatabase(dialect, uri string, maxOpen, maxIdle int) (*dbutil.Database, error) {
	switch dialect {
	case DialectSQLite, "sqlite3", "sqlite", "":
		db, err := Open(uri)
		if err != nil {
			return nil, err
		}
		if maxOpen > 0 {
			db.RawDB.SetMaxOpenConns(maxOpen)
			db.RawDB.SetMaxIdleConns(cmp.Or(maxIdle, maxOpen))
		}
		return db, nil
	case DialectPostgres:
		db, err := dbutil.NewWithDialect(uri, DialectPostgres)
		if err != nil {
			return nil, fmt.Errorf("failed to open the PostgreSQL database: %w", err)
		}
		db.RawDB.SetMaxOpenConns(cmp.Or(maxOpen, 10))
		db.RawDB.SetMaxIdleConns(cmp.Or(maxIdle, 2))
		db.RawDB.SetConnMaxIdleTime(5 * time.Minute)
		return db, nil
	}
	return nil, fmt.Errorf("unknown database type %q (sqlite3-fk-wal or postgres)", dialect)
}

// Open opens (or creates) the SQLite file at path with WAL, foreign keys,
// immediate transactions (so that concurrent writers queue instead of
// failing) and a cache of prepared statements.
func Open(path string) (*dbutil.Database, error) {
	uri := path
	if !strings.HasPrefix(uri, "file:") {
		// A plain path is a file name, even with characters that a SQLite
		// URI would read as its query or fragment.
		uri = "file:" + strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(uri)
	}
	uri = withDefault(uri, "_txlock", "immediate")
	// Each question runs the same few dozen statements: preparing them once
	// per connection saves a third of the time spent in SQLite.
	uri = withDefault(uri, "_stmt_cache_size", "128")
	// Deleted rows are overwritten with zeros, not left in free pages: what
	// guichet promises to forget (!oublier, a redacted question, expired
	// conversations) must not survive in the file or its backups.
	uri = withDefault(uri, "_secure_delete", "on")
	db, err := dbutil.NewWithDialect(uri, "sqlite3-fk-wal")
	if err != nil {
		return nil, fmt.Errorf("failed to open database %s: %w", path, err)
	}
	// SQLite writes one at a time anyway; a small pool of long-lived
	// connections keeps their prepared statements and page caches warm and
	// bounds the memory they use.
	db.RawDB.SetMaxOpenConns(maxConns)
	db.RawDB.SetMaxIdleConns(maxConns)
	return db, nil
}

// maxConns bounds the SQLite connections.
const maxConns = 4

// withDefault adds key=value to a SQLite URI that does not set key.
func withDefault(uri, key, value string) string {
	if strings.Contains(uri, key+"=") {
		return uri
	}
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
	}
	return uri + sep + key + "=" + value
}

// Store is guichet's persistence. Its methods join the transaction carried by
// ctx when there is one (see InTx).
type Store struct {
	db *dbutil.Database
	// seq is the column that orders the outbox: SQLite's rowid, a
	// BIGSERIAL on PostgreSQL.
	seq string
	// dueHint makes SQLite use the outbox's partial index (see Due).
	dueHint string
	// statements counts the statements run (see Statements).
	statements atomic.Int64
}

// Statements returns how many SQL statements (and transaction begins and
// ends) have run on the database since the store was made, mautrix's crypto
// and state stores included: the regression guard of the statements per
// answer.
func (s *Store) Statements() int64 { return s.statements.Load() }

// countingLogger counts the statements dbutil reports before logging them.
type countingLogger struct {
	dbutil.DatabaseLogger
	n *atomic.Int64
}

func (l countingLogger) QueryTiming(ctx context.Context, method, query string, args []any, nrows int, duration time.Duration, err error) {
	// Exec, Query, QueryRow, Begin, Commit, Rollback; not dbutil's reports
	// of a transaction's or a result's end.
	if method != "<Transaction>" && method != "EndRows" {
		l.n.Add(1)
	}
	l.DatabaseLogger.QueryTiming(ctx, method, query, args, nrows, duration, err)
}

// New wraps the shared database; call Upgrade before use.
func New(db *dbutil.Database, log zerolog.Logger) *Store {
	table := dbutil.BuildUpgradeTable().WithFSPath(upgrades, "upgrades").Finish()
	st := &Store{seq: "rowid", dueHint: "INDEXED BY outbox_due_idx"}
	// Statements outside transactions are logged by the shared database's
	// logger (dbutil's children share its LoggingDB): the count is the
	// database's, mautrix's crypto and state stores included.
	if db.Log == nil {
		db.Log = dbutil.NoopLogger
	}
	db.Log = countingLogger{DatabaseLogger: db.Log, n: &st.statements}
	st.db = db.Child(VersionTable, table, countingLogger{
		DatabaseLogger: dbutil.ZeroLogger(log.With().Str("db_section", "guichet").Logger()), n: &st.statements,
	})
	if db.Dialect == dbutil.Postgres {
		st.seq, st.dueHint = "seq", ""
	}
	return st
}

// Upgrade applies pending migrations.
func (s *Store) Upgrade(ctx context.Context) error {
	if err := s.db.Upgrade(ctx); err != nil {
		return fmt.Errorf("failed to upgrade guichet tables: %w", err)
	}
	return nil
}

// InTx runs fn in one transaction; nested calls share the outer one.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.db.DoTxn(ctx, nil, fn)
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

func nullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}

var errNoRows = sql.ErrNoRows

func isNoRows(err error) bool { return errors.Is(err, errNoRows) }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// Scrub removes from the write-ahead log the page images that still hold
// deleted data, by checkpointing it and truncating it to zero bytes. It
// retries while other connections hold it back (up to about a second) and
// returns an error if the log could not be emptied. Call it outside any
// transaction, after a deletion promised to people.
func (s *Store) Scrub(ctx context.Context) error {
	if s.db.Dialect != dbutil.SQLite {
		return nil // PostgreSQL: VACUUM and its WAL are the operator's
	}
	var busy, logFrames, checkpointed int
	for attempt := 0; attempt < 20; attempt++ {
		err := s.db.RawDB.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &checkpointed)
		if err != nil {
			return fmt.Errorf("failed to checkpoint the write-ahead log: %w", err)
		}
		if busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("failed to empty the write-ahead log: still in use (%d of %d frames checkpointed)", checkpointed, logFrames)
}
