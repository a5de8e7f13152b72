package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/viper"

	"guichet/config"
	"guichet/store"
)

// defaultPartnerID names the default profile (partner "" in the ledger) in
// the usage report and its -partner flag; config refuses it as a partner id.
const defaultPartnerID = "default"

// usageHeader is the first line of the usage report.
var usageHeader = []string{"partner", "partner_name", "day", "questions", "prompt_tokens", "completion_tokens",
	"estimated_calls", "cost_eur", "kwh", "kgco2eq"}

var monthFlag = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])$`)

// runUsage is `guichet usage -config FILE -month YYYY-MM [-partner ID]`:
// it prints the month's usage per partner and day as CSV, from the
// database opened read-only. Exit codes are run's: 1 bad flags, 2 bad
// configuration, 3 database unreadable or at another version, 4 failure
// while reading or writing.
func runUsage(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("guichet usage", flag.ContinueOnError)
	flags.SetOutput(stderr)
	configFile := flags.String("config", "config.yaml", "YAML configuration file, with the GUICHET_* environment variables, as for the service")
	month := flags.String("month", "", "the month to report, YYYY-MM, in limits.timezone (required)")
	partner := flags.String("partner", "", "report this partner alone: its id, or "+defaultPartnerID+" for the default profile")
	if err := flags.Parse(args); err != nil {
		return exitUsage
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "guichet usage: unexpected argument %q\n", flags.Arg(0))
		return exitUsage
	}
	if !monthFlag.MatchString(*month) {
		fmt.Fprintf(stderr, "guichet usage: -month is required, a month as YYYY-MM such as 2026-11, got %q\n", *month)
		return exitUsage
	}
	cfg, ignored, err := loadForUsage(*configFile, lookupEnv)
	if err != nil {
		fmt.Fprintln(stderr, "guichet usage:", err)
		return exitConfig
	}
	if len(ignored) > 0 {
		keys := make([]string, len(ignored))
		for i, p := range ignored {
			keys[i] = p.Key
		}
		fmt.Fprintf(stderr, "guichet usage: the configuration is invalid for the service (%s), not for this report, which reads database.uri, limits.timezone and the partners' ids and names\n",
			strings.Join(keys, ", "))
	}
	loc, err := time.LoadLocation(cfg.Limits.Timezone)
	if err != nil { // validated already
		fmt.Fprintln(stderr, "guichet usage: limits.timezone:", err)
		return exitConfig
	}
	from, err := time.ParseInLocation("2006-01", *month, loc)
	if err != nil {
		fmt.Fprintf(stderr, "guichet usage: -month: %v\n", err)
		return exitUsage
	}
	names := partnerNames(cfg)
	var only *string
	if *partner != "" {
		id := *partner
		if id == defaultPartnerID {
			id = ""
		}
		if _, known := names[id]; !known {
			fmt.Fprintf(stderr, "guichet usage: -partner %q is not in the configuration; known: %s\n", *partner, strings.Join(knownPartners(names), ", "))
			return exitUsage
		}
		only = &id
	}

	ctx := context.Background()
	db, err := store.OpenReport(cfg.Database.Type, cfg.Database.URI)
	if err != nil {
		fmt.Fprintln(stderr, "guichet usage:", err)
		return exitStartup
	}
	defer db.Close()
	st := store.New(db, zerolog.Nop())
	if err := st.CheckVersion(ctx); err != nil {
		fmt.Fprintf(stderr, "guichet usage: database %s: %v\n", cfg.Database.URI, err)
		return exitStartup
	}
	if err := writeUsage(ctx, st, stdout, from, only, names); err != nil {
		fmt.Fprintln(stderr, "guichet usage:", err)
		return exitRuntime
	}
	return exitOK
}

// writeUsage writes as CSV the usage of the month that starts at month (its
// location sets the days), one line per partner and day with calls, the
// default profile first. partner nil reports every partner, else the one
// it points to ("" the default profile). names maps partner ids to their
// names ("" to the default profile's); a partner missing from it (removed
// from the configuration since) gets an empty name.
func writeUsage(ctx context.Context, st *store.Store, out io.Writer, month time.Time, partner *string, names map[string]string) error {
	rows, err := st.UsageByPartnerDay(ctx, month, month.AddDate(0, 1, 0), partner, month.Location())
	if err != nil {
		return err
	}
	w := csv.NewWriter(out)
	if err := w.Write(usageHeader); err != nil {
		return fmt.Errorf("failed to write the report: %w", err)
	}
	for _, r := range rows {
		id := r.Partner
		if id == "" {
			id = defaultPartnerID
		}
		err := w.Write([]string{
			id, names[r.Partner], r.Day.Format(time.DateOnly),
			strconv.Itoa(r.Questions), strconv.FormatInt(r.PromptTokens, 10), strconv.FormatInt(r.CompletionTokens, 10),
			strconv.Itoa(r.EstimatedCalls), decimal(r.Cost), decimal(r.KWh), decimal(r.KgCO2eq),
		})
		if err != nil {
			return fmt.Errorf("failed to write the report: %w", err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("failed to write the report: %w", err)
	}
	return nil
}

// decimal writes v with a dot and at most 9 decimals (a billionth of a euro,
// a microwatt-hour, a microgram), without the noise of summed floats.
func decimal(v float64) string {
	r := math.Round(v*1e9) / 1e9
	if r == 0 {
		r = 0 // no "-0"
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// partnerNames maps the configured partners' ids, and "" for the default
// profile, to their names.
func partnerNames(cfg *config.Config) map[string]string {
	names := map[string]string{"": config.DefaultProfileName}
	for _, p := range cfg.Partners {
		names[p.ID] = p.Name
	}
	return names
}

// knownPartners lists the ids -partner accepts, the default profile first.
func knownPartners(names map[string]string) []string {
	ids := []string{defaultPartnerID}
	for id := range names {
		if id != "" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids[1:])
	return ids
}

// usageReads tells the configuration problems that concern the report: its
// database, its time zone, and the partners' list, ids and names.
var usageReads = regexp.MustCompile(`^(database\.uri|limits\.timezone|partners(\[[0-9]+\]|\.[^.]+)?(\.id|\.name)?)$`)

// loadForUsage loads the configuration as the service does. The report
// needs only database.uri, limits.timezone and the partners' ids and
// names: when the configuration is invalid for other keys only (typically
// the secrets, which systemd hands to the service alone), it reads those
// from the same file and environment and returns the other problems.
func loadForUsage(file string, lookupEnv func(string) (string, bool)) (*config.Config, []config.Problem, error) {
	cfg, err := config.Load(file, lookupEnv)
	if err == nil {
		return cfg, nil, nil
	}
	var invalid *config.ValidationError
	if !errors.As(err, &invalid) {
		return nil, nil, err
	}
	if slices.ContainsFunc(invalid.Problems, func(p config.Problem) bool { return usageReads.MatchString(p.Key) }) {
		return nil, nil, err
	}
	cfg, err = readUsageSettings(file, lookupEnv)
	if err != nil {
		return nil, nil, err
	}
	return cfg, invalid.Problems, nil
}

// readUsageSettings reads the report's settings as config.Load does (the
// defaults, then the file, then GUICHET_* or GUICHET_*_FILE), config.Load
// having found them valid.
func readUsageSettings(file string, lookupEnv func(string) (string, bool)) (*config.Config, error) {
	cfg, err := config.Defaults()
	if err != nil {
		return nil, err
	}
	v := viper.New()
	if file != "" {
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("failed to read config file %s: %w", file, err)
		}
	}
	for key, dst := range map[string]*string{"database.type": &cfg.Database.Type, "database.uri": &cfg.Database.URI, "limits.timezone": &cfg.Limits.Timezone} {
		if v.IsSet(key) {
			*dst = v.GetString(key)
		}
		name := config.EnvName(key)
		if value, ok := lookupEnv(name); ok {
			*dst = value
		} else if path, ok := lookupEnv(name + config.FileSuffix); ok {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("%s: %s names a file that cannot be read", key, name+config.FileSuffix)
			}
			*dst = strings.TrimRight(string(b), "\r\n")
		}
	}
	var partners []struct {
		ID   string `mapstructure:"id"`
		Name string `mapstructure:"name"`
	}
	if err := v.UnmarshalKey("partners", &partners); err != nil {
		return nil, fmt.Errorf("partners: %w", err)
	}
	for _, p := range partners {
		cfg.Partners = append(cfg.Partners, config.Partner{ID: p.ID, Name: p.Name})
	}
	return cfg, nil
}
