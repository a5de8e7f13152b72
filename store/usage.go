package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mau.fi/util/dbutil"
)

// PartnerDay sums one partner's calls to Albert over one local day, for
// billing. It names no agent: the ledger's user and room ids never leave
// UsageByPartnerDay.
type PartnerDay struct {
	// Partner is the profile whose key paid for the calls ("" for the
	// default profile).
	Partner string
	// Day is the midnight that starts the day, in the report's location.
	Day time.Time
	// Questions counts the distinct questions with a successful chat call
	// that day; a successful chat call that names no question (rows written
	// before migration 06) counts as one.
	Questions int
	// Calls counts every call, chat and search, whatever its outcome.
	Calls int
	// PromptTokens and CompletionTokens sum every call.
	PromptTokens     int64
	CompletionTokens int64
	// EstimatedCalls counts the calls whose tokens guichet estimated
	// because Albert reported no usage.
	EstimatedCalls int
	// Cost (euros), KWh and KgCO2eq sum what Albert reported for each call.
	Cost    float64
	KWh     float64
	KgCO2eq float64
}

// UsageByPartnerDay sums the usage ledger over [from, to), one row per
// partner and day, every call counted (chat and search, failed ones too:
// Albert may bill them). Days are those of loc: a day starts at its
// midnight there, whatever the offset (a DST day lasts 23 or 25 hours).
// partner nil reads every partner; a pointer to "" reads the default
// profile alone. Rows come sorted by partner (the default profile first),
// then day; days without calls have none.
//
// The query is a plain range scan, summed in Go, so that it stays the same
// on SQLite and PostgreSQL (no date functions).
func (s *Store) UsageByPartnerDay(ctx context.Context, from, to time.Time, partner *string, loc *time.Location) ([]PartnerDay, error) {
	if loc == nil {
		return nil, errors.New("failed to sum usage: no time zone")
	}
	q := `SELECT partner, endpoint, outcome, question, prompt_tokens, completion_tokens, estimated, cost, kwh, kgco2eq, at
		FROM usage_ledger WHERE at >= $1 AND at < $2`
	args := []any{ms(from), ms(to)}
	if partner != nil {
		q += ` AND partner = $3`
		args = append(args, *partner)
	}
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("failed to read the usage ledger: %w", err)
	}
	defer rows.Close()

	type key struct {
		partner string
		year    int
		month   time.Month
		day     int
	}
	sums := map[key]*PartnerDay{}
	questions := map[key]map[string]bool{}
	for rows.Next() {
		var (
			r                              PartnerDay
			endpoint, outcome, question    string
			estimated                      bool
			at                             int64
			promptTokens, completionTokens int64
		)
		if err := rows.Scan(&r.Partner, &endpoint, &outcome, &question, &promptTokens, &completionTokens,
			&estimated, &r.Cost, &r.KWh, &r.KgCO2eq, &at); err != nil {
			return nil, fmt.Errorf("failed to read the usage ledger: %w", err)
		}
		local := time.UnixMilli(at).In(loc)
		k := key{r.Partner, local.Year(), local.Month(), local.Day()}
		sum := sums[k]
		if sum == nil {
			sum = &PartnerDay{Partner: r.Partner, Day: time.Date(k.year, k.month, k.day, 0, 0, 0, 0, loc)}
			sums[k] = sum
			questions[k] = map[string]bool{}
		}
		sum.Calls++
		sum.PromptTokens += promptTokens
		sum.CompletionTokens += completionTokens
		if estimated {
			sum.EstimatedCalls++
		}
		sum.Cost += r.Cost
		sum.KWh += r.KWh
		sum.KgCO2eq += r.KgCO2eq
		if endpoint == EndpointChat && outcome == "ok" {
			if question == "" {
				sum.Questions++
			} else if !questions[k][question] {
				questions[k][question] = true
				sum.Questions++
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("failed to read the usage ledger: %w", err)
	}
	out := make([]PartnerDay, 0, len(sums))
	for _, sum := range sums {
		out = append(out, *sum)
	}
	slices.SortFunc(out, func(a, b PartnerDay) int {
		return cmp.Or(strings.Compare(a.Partner, b.Partner), a.Day.Compare(b.Day))
	})
	return out, nil
}

// OpenReadOnly opens the SQLite file at path for reading only, as Open does
// otherwise: reports read the database of a running guichet without
// writing to it (nor creating it when it is missing). Call CheckVersion
// rather than Upgrade on its Store.
func OpenReadOnly(path string) (*dbutil.Database, error) {
	return openReadOnlySQLite(path)
}

// OpenReport opens a database of any type for a report that only reads:
// SQLite read-only (OpenReadOnly), or PostgreSQL in read-only transactions
// (default_transaction_read_only), one connection.
func OpenReport(dialect, uri string) (*dbutil.Database, error) {
	if dialect != DialectPostgres {
		return OpenReadOnly(uri)
	}
	db, err := OpenDatabase(DialectPostgres, uri, 1, 1)
	if err != nil {
		return nil, err
	}
	if _, err := db.RawDB.Exec(`SET default_transaction_read_only = on`); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("failed to make the session read-only: %w", err)
	}
	return db, nil
}

func openReadOnlySQLite(path string) (*dbutil.Database, error) {
	uri := path
	if !strings.HasPrefix(uri, "file:") {
		uri = "file:" + strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(uri)
	}
	return Open(withDefault(uri, "mode", "ro"))
}

// ErrSchemaVersion is wrapped by CheckVersion's errors.
var ErrSchemaVersion = errors.New("guichet's tables are not at the version this guichet knows")

// CheckVersion reports whether guichet's tables are those this binary
// knows, without upgrading them: at its latest migration, or written by a
// newer guichet that declared them compatible. A database left at an older
// version is upgraded by starting the service.
func (s *Store) CheckVersion(ctx context.Context) error {
	latest := len(s.db.UpgradeTable)
	exists, err := s.db.TableExists(ctx, VersionTable)
	if err != nil {
		return fmt.Errorf("failed to read the version of guichet's tables: %w", err)
	} else if !exists {
		return fmt.Errorf("%w: no guichet tables in this database (expected v%d)", ErrSchemaVersion, latest)
	}
	var version, compat int
	err = s.db.QueryRow(ctx, `SELECT COALESCE(version, 0), COALESCE(compat, 0) FROM `+VersionTable+` LIMIT 1`).Scan(&version, &compat)
	if isNoRows(err) {
		return fmt.Errorf("%w: no guichet tables in this database (expected v%d)", ErrSchemaVersion, latest)
	} else if err != nil {
		return fmt.Errorf("failed to read the version of guichet's tables: %w", err)
	}
	if compat == 0 {
		compat = version
	}
	switch {
	case version < latest:
		return fmt.Errorf("%w: they are at v%d and this guichet expects v%d; starting the service upgrades them", ErrSchemaVersion, version, latest)
	case compat > latest:
		return fmt.Errorf("%w: a newer guichet wrote them (v%d, compatible down to v%d), this one knows up to v%d", ErrSchemaVersion, version, compat, latest)
	}
	return nil
}
