package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/viper"

	"guichet/config"
	"guichet/store"
)

// runMigrateDB is `guichet migrate-db -config FILE -to postgres://…`: it
// copies the SQLite database of the configuration (database.type
// sqlite3-fk-wal, database.uri) into an empty PostgreSQL database, with
// mautrix's crypto and state stores, so that guichet started on
// PostgreSQL keeps its device and sessions (see store/migrate.go). It
// prints the tables and rows copied. Exit codes are run's: 1 bad flags,
// 2 bad configuration (or not a SQLite deployment), 3 a database that
// cannot be opened, is in use, is not empty or not at this guichet's
// version, 4 the copy failed (rolled back).
func runMigrateDB(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("guichet migrate-db", flag.ContinueOnError)
	flags.SetOutput(stderr)
	configFile := flags.String("config", "config.yaml", "YAML configuration file, with the GUICHET_* environment variables, as for the service: its database.uri is the SQLite file copied")
	to := flags.String("to", "", "the empty PostgreSQL database to copy into, postgres://USER@HOST/DATABASE?sslmode=verify-full (required; give the password in PGPASSWORD or ~/.pgpass rather than in the URI)")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "Usage: guichet migrate-db -config FILE -to postgres://USER@HOST/DATABASE")
		fmt.Fprintln(stderr, "Copies a stopped SQLite deployment into an empty PostgreSQL database; then set database.type: postgres and database.uri.")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return exitUsage
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "guichet migrate-db: unexpected argument %q\n", flags.Arg(0))
		return exitUsage
	}
	if *to == "" {
		fmt.Fprintln(stderr, "guichet migrate-db: -to is required: the PostgreSQL database to copy into, postgres://USER@HOST/DATABASE")
		return exitUsage
	}
	if !strings.HasPrefix(*to, "postgres://") && !strings.HasPrefix(*to, "postgresql://") {
		fmt.Fprintf(stderr, "guichet migrate-db: -to must be a postgres:// URI, got %s\n", redactURI(*to))
		return exitUsage
	}
	target := redactURI(*to)

	db, ignored, err := loadForMigrate(*configFile, lookupEnv)
	if err != nil {
		fmt.Fprintln(stderr, "guichet migrate-db:", err)
		return exitConfig
	}
	if db.Type != store.DialectSQLite {
		fmt.Fprintf(stderr, "guichet migrate-db: database.type is %q: migrate-db copies a SQLite deployment (database.type: %s)\n", db.Type, store.DialectSQLite)
		return exitConfig
	}
	if len(ignored) > 0 {
		keys := make([]string, len(ignored))
		for i, p := range ignored {
			keys[i] = p.Key
		}
		fmt.Fprintf(stderr, "guichet migrate-db: the configuration is invalid for the service (%s), not for this copy, which reads database.type and database.uri\n",
			strings.Join(keys, ", "))
	}

	// Interrupted, the copy is rolled back.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr, NoColor: true, TimeFormat: time.TimeOnly}).
		Level(zerolog.WarnLevel).With().Timestamp().Logger()
	m, err := store.MigrateSQLiteToPostgres(ctx, db.URI, *to, log)
	if err != nil {
		fmt.Fprintf(stderr, "guichet migrate-db: %s to %s: %v\n", db.URI, target, err)
		var copyErr *store.CopyError
		switch {
		case errors.As(err, &copyErr):
			fmt.Fprintln(stderr, "guichet migrate-db: nothing was copied; fix the cause and run migrate-db again (the database keeps guichet's empty tables)")
			return exitRuntime
		case errors.Is(err, store.ErrSourceInUse):
			fmt.Fprintln(stderr, "guichet migrate-db: stop guichet (systemctl stop guichet) and run migrate-db again")
		case errors.Is(err, store.ErrTargetNotEmpty):
			fmt.Fprintln(stderr, "guichet migrate-db: copy into a new, empty database (CREATE DATABASE guichet OWNER guichet)")
		}
		return exitStartup
	}
	return write(stdout, stderr, migrationSummary(db.URI, target, m))
}

// migrationSummary is what migrate-db prints once the copy is committed.
func migrationSummary(source, target string, m *store.Migration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Copied %s into %s: %d tables, %d rows; the row count of every table is the same in both.\n", source, target, len(m.Tables), m.Rows)
	width := len("table")
	for _, t := range m.Tables {
		width = max(width, len(t.Name))
	}
	fmt.Fprintf(&b, "%-*s %10s\n", width, "table", "rows")
	for _, t := range m.Tables {
		fmt.Fprintf(&b, "%-*s %10d\n", width, t.Name, t.Rows)
	}
	fmt.Fprintf(&b, "%-*s %10d\n", width, "total", m.Rows)
	var versions []string
	for _, v := range m.Versions {
		s := fmt.Sprintf("%s v%d", v.Table, v.Version)
		switch {
		case v.Before < 0:
			s += " (created: the SQLite file had none)"
		case v.Before != v.Version:
			s += fmt.Sprintf(" (the SQLite file upgraded from v%d)", v.Before)
		}
		versions = append(versions, s)
	}
	fmt.Fprintf(&b, "Schema versions: %s.\n", strings.Join(versions, ", "))
	if len(m.Skipped) > 0 {
		fmt.Fprintf(&b, "Empty SQLite tables PostgreSQL has no use for, not copied: %s.\n", strings.Join(m.Skipped, ", "))
	}
	b.WriteString("Next: set database.type: postgres and database.uri to this database (or GUICHET_DATABASE_TYPE and GUICHET_DATABASE_URI), " +
		"keep matrix.pickle_key as it is, and start guichet: it keeps its device and sessions. " +
		"Keep the SQLite file as a backup, but never start guichet on it again: two copies of one device break its encrypted sessions.\n")
	return b.String()
}

// redactURI hides the password of a URI.
func redactURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "the PostgreSQL database"
	}
	return u.Redacted()
}

// loadForMigrate loads the configuration as the service does. The copy
// needs only database.type and database.uri: when the configuration is
// invalid for other keys only (typically the secrets, which systemd hands
// to the service alone), it reads those two from the same file and
// environment and returns the other problems.
func loadForMigrate(file string, lookupEnv func(string) (string, bool)) (config.Database, []config.Problem, error) {
	cfg, err := config.Load(file, lookupEnv)
	if err == nil {
		return cfg.Database, nil, nil
	}
	var invalid *config.ValidationError
	if !errors.As(err, &invalid) {
		return config.Database{}, nil, err
	}
	for _, p := range invalid.Problems {
		if strings.HasPrefix(p.Key, "database.") {
			return config.Database{}, nil, err
		}
	}
	defaults, err := config.Defaults()
	if err != nil {
		return config.Database{}, nil, err
	}
	db := defaults.Database
	v := viper.New()
	if file != "" {
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return config.Database{}, nil, fmt.Errorf("failed to read config file %s: %w", file, err)
		}
	}
	for key, dst := range map[string]*string{"database.type": &db.Type, "database.uri": &db.URI} {
		if v.IsSet(key) {
			*dst = v.GetString(key)
		}
		name := config.EnvName(key)
		if value, ok := lookupEnv(name); ok {
			*dst = value
		} else if path, ok := lookupEnv(name + config.FileSuffix); ok {
			b, err := os.ReadFile(path)
			if err != nil {
				return config.Database{}, nil, fmt.Errorf("%s: %s names a file that cannot be read", key, name+config.FileSuffix)
			}
			*dst = strings.TrimRight(string(b), "\r\n")
		}
	}
	return db, invalid.Problems, nil
}
