package store

// Moving a SQLite deployment to PostgreSQL (guichet migrate-db).
//
// The copy keeps everything the bot needs to go on as the same device:
// guichet's tables, mautrix's crypto store (the Olm account, Olm and Megolm
// sessions, device lists, cross-signing keys and signatures, secrets, the
// sync token) and state store, and the three version tables. The pickled
// keys are copied as they are: the bot must keep its matrix.pickle_key.
//
// How:
//   - The SQLite file is opened with an exclusive lock (locking_mode
//     EXCLUSIVE): a guichet that has it open makes the open fail
//     (ErrSourceInUse), and a guichet started during the copy cannot open
//     it. It is then brought to this guichet's schema by the migrations the
//     service runs at start-up, if it is older.
//   - The PostgreSQL database must be empty (ErrTargetNotEmpty): no row in
//     any table of its schema but the version tables. Its schema is created
//     by the real migrations, through the same version tables and upgrade
//     tables as the service (Store.Upgrade, mautrix's state store and
//     crypto store), and must then be at the SQLite file's versions.
//   - Every table of the SQLite file (sqlite_master, without SQLite's own)
//     is copied, column by column by name, in one PostgreSQL transaction
//     that locks the tables and checks again that they are empty: parents
//     before children of a foreign key, by COPY. Values are converted to
//     the PostgreSQL column's type (SQLite's 0/1 to booleans, blobs and
//     text to bytea or text, timestamps). The outbox's seq, the queue order
//     PostgreSQL keeps in a column, is filled from SQLite's rowid. A
//     PostgreSQL column the SQLite table lacks takes its default; a column
//     or a non-empty table PostgreSQL lacks fails the copy (nothing is
//     dropped silently). The version tables' rows are replaced by the
//     SQLite file's.
//   - Before the commit, each table's row count is compared with the
//     SQLite file's, and every identity or serial sequence is set past the
//     largest value copied.
//
// Any failure after the schema is created rolls the copy back (CopyError):
// the PostgreSQL database keeps guichet's empty tables, and the command can
// be run again.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/crypto/sql_store_upgrade"
	"maunium.net/go/mautrix/sqlstatestore"
)

// ErrSourceInUse is returned when another process (a running guichet) has
// the SQLite file open.
var ErrSourceInUse = errors.New("the SQLite database is in use: stop guichet first")

// ErrTargetNotEmpty is returned when the PostgreSQL database holds rows.
var ErrTargetNotEmpty = errors.New("the PostgreSQL database is not empty")

// ErrNotGuichetDatabase is returned when the SQLite file has no guichet tables.
var ErrNotGuichetDatabase = errors.New("not a guichet database")

// CopyError is a failure of the copy itself (a table or column PostgreSQL
// lacks, a value it refuses, counts that differ): the transaction was
// rolled back, and the PostgreSQL database holds guichet's empty tables.
type CopyError struct{ Err error }

func (e *CopyError) Error() string {
	return "the copy failed and was rolled back: " + e.Err.Error()
}

func (e *CopyError) Unwrap() error { return e.Err }

// MigratedTable is one table copied and its rows.
type MigratedTable struct {
	Name string
	Rows int64
}

// SchemaVersion is the version of one set of tables (guichet's, mautrix's
// crypto store, its state store), read from its version table.
type SchemaVersion struct {
	Table string // guichet_version, crypto_version, mx_version
	// Before is the SQLite file's version before the migrations were run
	// (-1: it had no such tables, e.g. no crypto store before the bot's
	// first connection), Version the version of both databases when copied.
	Before, Version int
}

// Migration is what MigrateSQLiteToPostgres copied.
type Migration struct {
	Tables   []MigratedTable // by name; version tables included
	Rows     int64
	Versions []SchemaVersion
	// Skipped are empty SQLite tables PostgreSQL has no table for.
	Skipped []string
}

// versionTables are the version tables of the three sets of tables in the
// database, in the order the service upgrades them.
var versionTables = []string{VersionTable, sqlstatestore.VersionTableName, sql_store_upgrade.VersionTableName}

// rowidColumns are the PostgreSQL columns that hold what SQLite keeps in a
// table's rowid.
var rowidColumns = map[string]string{"outbox": "seq"}

// MigrateSQLiteToPostgres copies the guichet database in the SQLite file at
// sqlitePath (a path, or a file: URI, as database.uri) into the empty
// PostgreSQL database at postgresURI; see the top of this file. Errors are
// ErrSourceInUse, ErrTargetNotEmpty, ErrNotGuichetDatabase, a *CopyError,
// or the failure to open, read or upgrade either database.
func MigrateSQLiteToPostgres(ctx context.Context, sqlitePath, postgresURI string, log zerolog.Logger) (*Migration, error) {
	src, err := openSourceExclusive(ctx, sqlitePath)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	before := make(map[string]int, len(versionTables))
	for _, vt := range versionTables {
		if before[vt], err = versionOf(ctx, src, vt); err != nil {
			return nil, fmt.Errorf("SQLite database %s: %w", sqlitePath, err)
		}
	}
	if before[VersionTable] < 0 {
		return nil, fmt.Errorf("%w: %s has no %s table", ErrNotGuichetDatabase, sqlitePath, VersionTable)
	}
	if err := upgradeAll(ctx, src, log); err != nil {
		return nil, fmt.Errorf("SQLite database %s: %w", sqlitePath, err)
	}

	dst, err := OpenDatabase(DialectPostgres, postgresURI, 2, 2)
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	if err := dst.RawDB.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("failed to connect to the PostgreSQL database: %w", err)
	}
	if full, err := nonEmptyTables(ctx, dst.RawDB); err != nil {
		return nil, fmt.Errorf("PostgreSQL database: %w", err)
	} else if len(full) > 0 {
		return nil, fmt.Errorf("%w: rows in %s", ErrTargetNotEmpty, strings.Join(full, ", "))
	}
	if err := upgradeAll(ctx, dst, log); err != nil {
		return nil, fmt.Errorf("PostgreSQL database: %w", err)
	}

	m := &Migration{}
	for _, vt := range versionTables {
		sv, err := versionOf(ctx, src, vt)
		if err != nil {
			return nil, fmt.Errorf("SQLite database %s: %w", sqlitePath, err)
		}
		pv, err := versionOf(ctx, dst, vt)
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL database: %w", err)
		}
		if sv != pv {
			return nil, fmt.Errorf("%s: the SQLite database is at v%d and this guichet creates v%d on PostgreSQL: run the migrate-db of the guichet version that last ran on it", vt, sv, pv)
		}
		m.Versions = append(m.Versions, SchemaVersion{Table: vt, Before: before[vt], Version: sv})
	}

	plan, skipped, err := planCopy(ctx, src.RawDB, dst.RawDB)
	if err != nil {
		return nil, &CopyError{err}
	}
	m.Skipped = skipped
	if err := copyTables(ctx, src.RawDB, dst.RawDB, plan); err != nil {
		return nil, &CopyError{err}
	}
	for _, t := range plan {
		m.Tables = append(m.Tables, MigratedTable{Name: t.name, Rows: t.rows})
		m.Rows += t.rows
	}
	slices.SortFunc(m.Tables, func(a, b MigratedTable) int { return strings.Compare(a.Name, b.Name) })
	return m, nil
}

// openSourceExclusive opens the SQLite file as Open does, on one
// connection that holds an exclusive lock until it is closed.
func openSourceExclusive(ctx context.Context, path string) (*dbutil.Database, error) {
	uri := path
	if !strings.HasPrefix(uri, "file:") {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("SQLite database %s: %w", path, err)
		}
		uri = "file:" + strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(uri)
	}
	// "mode" first: withDefault would find "mode=" in "_locking_mode=".
	uri = withDefault(uri, "mode", "rw") // never create a missing file
	uri = withDefault(uri, "_locking_mode", "EXCLUSIVE")
	uri = withDefault(uri, "_busy_timeout", "1000")
	db, err := Open(uri)
	if err != nil {
		return nil, err
	}
	// One connection, never closed by the pool: it keeps the lock.
	db.RawDB.SetMaxOpenConns(1)
	db.RawDB.SetMaxIdleConns(1)
	db.RawDB.SetConnMaxIdleTime(0)
	db.RawDB.SetConnMaxLifetime(0)
	var n int
	if err := db.RawDB.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		_ = db.Close()
		if strings.Contains(err.Error(), "database is locked") {
			return nil, fmt.Errorf("%w (%s is open in another process)", ErrSourceInUse, path)
		}
		return nil, fmt.Errorf("failed to open SQLite database %s: %w", path, err)
	}
	return db, nil
}

// upgradeAll runs the migrations the service runs at start-up, in its
// order: guichet's (app.New), then mautrix's state store and crypto store
// (cryptohelper.Init: sqlstatestore.NewSQLStateStore, and the upgrade table
// and version table crypto.NewSQLCryptoStore gives its database).
func upgradeAll(ctx context.Context, db *dbutil.Database, log zerolog.Logger) error {
	if err := New(db, log).Upgrade(ctx); err != nil {
		return err
	}
	state := sqlstatestore.NewSQLStateStore(db, dbutil.ZeroLogger(log.With().Str("db_section", "matrix_state").Logger()), false)
	if err := state.Upgrade(ctx); err != nil {
		return fmt.Errorf("failed to upgrade the Matrix state store: %w", err)
	}
	cryptoDB := db.Child(sql_store_upgrade.VersionTableName, sql_store_upgrade.Table,
		dbutil.ZeroLogger(log.With().Str("db_section", "crypto").Logger()))
	if err := cryptoDB.Upgrade(ctx); err != nil {
		return fmt.Errorf("failed to upgrade the crypto store: %w", err)
	}
	return nil
}

// versionOf reads a version table: -1 when it does not exist.
func versionOf(ctx context.Context, db *dbutil.Database, table string) (int, error) {
	var version sql.NullInt64
	err := db.RawDB.QueryRowContext(ctx, "SELECT version FROM "+pq.QuoteIdentifier(table)+" LIMIT 1").Scan(&version)
	switch {
	case err == nil:
		return int(version.Int64), nil
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	}
	if exists, terr := db.TableExists(ctx, table); terr == nil && !exists {
		return -1, nil
	}
	return 0, fmt.Errorf("failed to read %s: %w", table, err)
}

// pgTables lists the tables of the PostgreSQL database's current schema.
func pgTables(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`)
	if err != nil {
		return nil, fmt.Errorf("failed to list the tables: %w", err)
	}
	return scanStrings(rows)
}

// nonEmptyTables lists the tables of the current schema that hold rows,
// the version tables excepted.
func nonEmptyTables(ctx context.Context, q querier) ([]string, error) {
	tables, err := pgTables(ctx, q)
	if err != nil {
		return nil, err
	}
	var full []string
	for _, t := range tables {
		if slices.Contains(versionTables, t) {
			continue
		}
		var hasRows bool
		if err := q.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM "+pq.QuoteIdentifier(t)+")").Scan(&hasRows); err != nil {
			return nil, fmt.Errorf("failed to read %s: %w", t, err)
		}
		if hasRows {
			full = append(full, t)
		}
	}
	return full, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func scanStrings(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// columnKind is what a PostgreSQL column takes.
type columnKind int

const (
	kindText columnKind = iota // text, char, varchar, json, jsonb, enums
	kindBool
	kindBytes
	kindTime
	kindInt
	kindFloat
)

func kindOf(dataType string) columnKind {
	switch dataType {
	case "boolean":
		return kindBool
	case "bytea":
		return kindBytes
	case "timestamp without time zone", "timestamp with time zone", "date":
		return kindTime
	case "smallint", "integer", "bigint":
		return kindInt
	case "double precision", "real", "numeric":
		return kindFloat
	}
	return kindText
}

// copyColumn is one column copied: read from SQLite as from (a column, or
// rowid), written to PostgreSQL's to.
type copyColumn struct {
	from, to string
	kind     columnKind
}

type tablePlan struct {
	name    string
	columns []copyColumn
	version bool  // a version table: its rows replace the migrations'
	rows    int64 // copied
}

// planCopy pairs the SQLite tables and columns with PostgreSQL's and
// orders the tables so that a foreign key's table comes before the tables
// that reference it.
func planCopy(ctx context.Context, src, dst *sql.DB) ([]*tablePlan, []string, error) {
	rows, err := src.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to list the SQLite tables: %w", err)
	}
	srcTables, err := scanStrings(rows)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to list the SQLite tables: %w", err)
	}
	pgCols := map[string]map[string]copyColumn{} // table -> lower-case name -> column
	rows, err = dst.QueryContext(ctx, `SELECT table_name, column_name, data_type FROM information_schema.columns
		WHERE table_schema = current_schema() AND is_generated = 'NEVER' ORDER BY table_name, ordinal_position`)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to list the PostgreSQL columns: %w", err)
	}
	for rows.Next() {
		var table, column, dataType string
		if err := rows.Scan(&table, &column, &dataType); err != nil {
			rows.Close()
			return nil, nil, err
		}
		if pgCols[table] == nil {
			pgCols[table] = map[string]copyColumn{}
		}
		pgCols[table][strings.ToLower(column)] = copyColumn{to: column, kind: kindOf(dataType)}
	}
	if err := rows.Close(); err != nil {
		return nil, nil, err
	}

	var plan []*tablePlan
	var skipped []string
	for _, table := range srcTables {
		cols, ok := pgCols[strings.ToLower(table)]
		if !ok {
			var n int64
			if err := src.QueryRowContext(ctx, "SELECT count(*) FROM "+pq.QuoteIdentifier(table)).Scan(&n); err != nil {
				return nil, nil, fmt.Errorf("failed to count the rows of %s: %w", table, err)
			}
			if n > 0 {
				return nil, nil, fmt.Errorf("table %s (%d rows) has no counterpart on PostgreSQL", table, n)
			}
			skipped = append(skipped, table)
			continue
		}
		t := &tablePlan{name: strings.ToLower(table), version: slices.Contains(versionTables, strings.ToLower(table))}
		names, err := sqliteColumns(ctx, src, table)
		if err != nil {
			return nil, nil, err
		}
		for _, name := range names {
			c, ok := cols[strings.ToLower(name)]
			if !ok {
				return nil, nil, fmt.Errorf("column %s.%s has no counterpart on PostgreSQL", table, name)
			}
			c.from = pq.QuoteIdentifier(name)
			t.columns = append(t.columns, c)
		}
		if seq, ok := rowidColumns[t.name]; ok && !slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, seq) }) {
			c, ok := cols[seq]
			if !ok {
				return nil, nil, fmt.Errorf("column %s.%s, the queue order, is missing on PostgreSQL", table, seq)
			}
			c.from = "rowid"
			t.columns = append(t.columns, c)
		}
		plan = append(plan, t)
	}
	ordered, err := orderByForeignKeys(ctx, dst, plan)
	return ordered, skipped, err
}

func sqliteColumns(ctx context.Context, src *sql.DB, table string) ([]string, error) {
	rows, err := src.QueryContext(ctx, "SELECT name FROM pragma_table_info($1)", table)
	if err != nil {
		return nil, fmt.Errorf("failed to list the columns of %s: %w", table, err)
	}
	names, err := scanStrings(rows)
	if err != nil {
		return nil, fmt.Errorf("failed to list the columns of %s: %w", table, err)
	}
	return names, nil
}

// orderByForeignKeys sorts the plan so that referenced tables come first.
func orderByForeignKeys(ctx context.Context, dst *sql.DB, plan []*tablePlan) ([]*tablePlan, error) {
	rows, err := dst.QueryContext(ctx, `SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c
		WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace`)
	if err != nil {
		return nil, fmt.Errorf("failed to list the foreign keys: %w", err)
	}
	parents := map[string][]string{}
	for rows.Next() {
		var child, parent string
		if err := rows.Scan(&child, &parent); err != nil {
			rows.Close()
			return nil, err
		}
		child, parent = strings.Trim(child, `"`), strings.Trim(parent, `"`)
		if child != parent {
			parents[child] = append(parents[child], parent)
		}
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	byName := map[string]*tablePlan{}
	for _, t := range plan {
		byName[t.name] = t
	}
	var ordered []*tablePlan
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(t *tablePlan) error
	visit = func(t *tablePlan) error {
		switch state[t.name] {
		case 1:
			return fmt.Errorf("foreign keys form a cycle through %s", t.name)
		case 2:
			return nil
		}
		state[t.name] = 1
		for _, p := range parents[t.name] {
			if pt, ok := byName[p]; ok {
				if err := visit(pt); err != nil {
					return err
				}
			}
		}
		state[t.name] = 2
		ordered = append(ordered, t)
		return nil
	}
	for _, t := range plan {
		if err := visit(t); err != nil {
			return nil, err
		}
	}
	return ordered, nil
}

// copyTables copies the plan in one transaction.
func copyTables(ctx context.Context, src, dst *sql.DB, plan []*tablePlan) (err error) {
	tx, err := dst.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	// No guichet on the PostgreSQL database meanwhile, and still empty.
	names := make([]string, 0, len(plan))
	for _, t := range plan {
		names = append(names, pq.QuoteIdentifier(t.name))
	}
	if len(names) > 0 {
		if _, err := tx.ExecContext(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			return fmt.Errorf("failed to lock the PostgreSQL tables: %w", err)
		}
	}
	if full, err := nonEmptyTables(ctx, tx); err != nil {
		return err
	} else if len(full) > 0 {
		return fmt.Errorf("%w: rows in %s", ErrTargetNotEmpty, strings.Join(full, ", "))
	}
	for _, t := range plan {
		if t.version {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+pq.QuoteIdentifier(t.name)); err != nil {
				return fmt.Errorf("failed to empty %s: %w", t.name, err)
			}
		}
		if err := copyTable(ctx, src, tx, t); err != nil {
			return err
		}
	}
	// Verify: as many rows on both sides.
	for _, t := range plan {
		var want, got int64
		if err := src.QueryRowContext(ctx, "SELECT count(*) FROM "+pq.QuoteIdentifier(t.name)).Scan(&want); err != nil {
			return fmt.Errorf("failed to count the rows of %s in SQLite: %w", t.name, err)
		}
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+pq.QuoteIdentifier(t.name)).Scan(&got); err != nil {
			return fmt.Errorf("failed to count the rows of %s in PostgreSQL: %w", t.name, err)
		}
		if want != got || got != t.rows {
			return fmt.Errorf("%s: %d rows in SQLite, %d copied, %d in PostgreSQL", t.name, want, t.rows, got)
		}
	}
	if err := resetSequences(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("failed to commit the copy: %w", err)
	}
	return nil
}

func copyTable(ctx context.Context, src *sql.DB, tx *sql.Tx, t *tablePlan) error {
	if len(t.columns) == 0 {
		return nil
	}
	from := make([]string, len(t.columns))
	to := make([]string, len(t.columns))
	for i, c := range t.columns {
		from[i], to[i] = c.from, pq.QuoteIdentifier(c.to)
	}
	rows, err := src.QueryContext(ctx, "SELECT "+strings.Join(from, ", ")+" FROM "+pq.QuoteIdentifier(t.name))
	if err != nil {
		return fmt.Errorf("failed to read %s: %w", t.name, err)
	}
	defer rows.Close()
	stmt, err := tx.PrepareContext(ctx, "COPY "+pq.QuoteIdentifier(t.name)+" ("+strings.Join(to, ", ")+") FROM STDIN")
	if err != nil {
		return fmt.Errorf("failed to start copying %s: %w", t.name, err)
	}
	defer stmt.Close()
	values := make([]any, len(t.columns))
	ptrs := make([]any, len(t.columns))
	for i := range values {
		ptrs[i] = &values[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("failed to read %s: %w", t.name, err)
		}
		for i, c := range t.columns {
			v, err := convert(values[i], c.kind)
			if err != nil {
				return fmt.Errorf("%s.%s, row %d: %w", t.name, c.to, t.rows+1, err)
			}
			values[i] = v
		}
		if _, err := stmt.ExecContext(ctx, values...); err != nil {
			return fmt.Errorf("failed to copy %s: %w", t.name, err)
		}
		t.rows++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("failed to read %s: %w", t.name, err)
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return fmt.Errorf("failed to copy %s: %w", t.name, err)
	}
	if err := stmt.Close(); err != nil {
		return fmt.Errorf("failed to copy %s: %w", t.name, err)
	}
	return nil
}

// sqliteTimeFormats are the formats go-sqlite3 writes and reads timestamps in.
var sqliteTimeFormats = []string{
	"2006-01-02 15:04:05.999999999-07:00", "2006-01-02T15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02",
}

// convert turns a value read from SQLite into one for a PostgreSQL column.
func convert(v any, kind columnKind) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch kind {
	case kindBool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case int64:
			return x != 0, nil
		case float64:
			return x != 0, nil
		case string:
			b, err := strconv.ParseBool(x)
			if err != nil {
				return nil, fmt.Errorf("%q is not a boolean", x)
			}
			return b, nil
		}
	case kindBytes:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case kindTime:
		switch x := v.(type) {
		case time.Time:
			// What mautrix writes on PostgreSQL: the local wall clock.
			return x.In(time.Local), nil
		case string:
			s := strings.TrimSuffix(x, "Z")
			for _, f := range sqliteTimeFormats {
				if t, err := time.ParseInLocation(f, s, time.UTC); err == nil {
					return t.In(time.Local), nil
				}
			}
			return nil, fmt.Errorf("%q is not a timestamp", x)
		case int64:
			if x > 1e12 || x < -1e12 {
				return time.UnixMilli(x).In(time.Local), nil
			}
			return time.Unix(x, 0).In(time.Local), nil
		}
	case kindInt:
		switch x := v.(type) {
		case int64:
			return x, nil
		case bool:
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		case float64:
			if x == float64(int64(x)) {
				return int64(x), nil
			}
			return nil, fmt.Errorf("%v is not an integer", x)
		case string:
			return x, nil // PostgreSQL parses it, or refuses
		}
	case kindFloat:
		switch x := v.(type) {
		case float64, int64, string:
			return x, nil
		}
	case kindText:
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		case int64:
			return strconv.FormatInt(x, 10), nil
		case float64:
			return strconv.FormatFloat(x, 'g', -1, 64), nil
		case bool:
			return strconv.FormatBool(x), nil
		case time.Time:
			return x.Format(sqliteTimeFormats[0]), nil
		}
	}
	return nil, fmt.Errorf("cannot convert a %T", v)
}

// resetSequences moves every identity and serial sequence of the current
// schema past the largest value in its column.
func resetSequences(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT table_name, column_name, seq FROM (
		SELECT table_name, column_name, pg_get_serial_sequence(quote_ident(table_name), column_name) AS seq
		FROM information_schema.columns WHERE table_schema = current_schema()) s WHERE seq IS NOT NULL`)
	if err != nil {
		return fmt.Errorf("failed to list the sequences: %w", err)
	}
	type sequence struct{ table, column, seq string }
	var seqs []sequence
	for rows.Next() {
		var s sequence
		if err := rows.Scan(&s.table, &s.column, &s.seq); err != nil {
			rows.Close()
			return err
		}
		seqs = append(seqs, s)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	for _, s := range seqs {
		_, err := tx.ExecContext(ctx, "SELECT setval($1, GREATEST(COALESCE((SELECT max("+pq.QuoteIdentifier(s.column)+") FROM "+
			pq.QuoteIdentifier(s.table)+"), 0), 0) + 1, false)", s.seq)
		if err != nil {
			return fmt.Errorf("failed to reset the sequence of %s.%s: %w", s.table, s.column, err)
		}
	}
	return nil
}
