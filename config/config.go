// Package config loads guichet's configuration from a YAML file and GUICHET_*
// environment variables, applies defaults and validates every key at once, so
// that an operator sees all mistakes in one start-up message.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
	"maunium.net/go/mautrix/id"
)

// EnvPrefix is the prefix of environment overrides: matrix.password is read
// from GUICHET_MATRIX_PASSWORD.
const EnvPrefix = "GUICHET"

// Config is guichet's whole configuration.
type Config struct {
	Matrix       Matrix       `mapstructure:"matrix"`
	SupportRoom  string       `mapstructure:"support_room"`
	Moderators   Moderators   `mapstructure:"moderators"`
	Access       Access       `mapstructure:"access"`
	Albert       Albert       `mapstructure:"albert"`
	Conversation Conversation `mapstructure:"conversation"`
	Retrieval    Retrieval    `mapstructure:"retrieval"`
	Privacy      Privacy      `mapstructure:"privacy"`
	OpsRoom      string       `mapstructure:"ops_room"`
	Limits       Limits       `mapstructure:"limits"`
	Database     Database     `mapstructure:"database"`
	Policy       Policy       `mapstructure:"policy"`
	Log          Log          `mapstructure:"log"`
	Metrics      Metrics      `mapstructure:"metrics"`
	Hooks        Hooks        `mapstructure:"hooks"`
	HA           HA           `mapstructure:"ha"`
	// Partners are administrations with their own Albert key, limits and
	// cap (see Partner); read from the file only, their keys from
	// PartnerKeyEnv.
	Partners []Partner `mapstructure:"-"`
}

// Hooks posts access decisions to another service.
type Hooks struct {
	// DecisionsURL receives a signed JSON POST per access decision
	// (empty: none sent).
	DecisionsURL string `mapstructure:"decisions_url"`
	// Secret signs each body (HMAC-SHA256); required with DecisionsURL.
	Secret string `mapstructure:"secret"`
}

// Matrix is the bot's account on its homeserver.
type Matrix struct {
	Homeserver  string `mapstructure:"homeserver"`
	UserID      string `mapstructure:"user_id"`
	Password    string `mapstructure:"password"`
	AccessToken string `mapstructure:"access_token"`
	// DeviceID goes with AccessToken; with a password, guichet logs in once
	// and keeps the device it got in its database.
	DeviceID   string `mapstructure:"device_id"`
	PickleKey  string `mapstructure:"pickle_key"`
	DeviceName string `mapstructure:"device_name"`
	// RecoveryKeyFile receives, once, the recovery key of the cross-signing
	// keys guichet creates at its first start with a password (empty: not
	// written; the keys stay in the database).
	RecoveryKeyFile string `mapstructure:"recovery_key_file"`
}

// Moderators says who may decide on access requests.
type Moderators struct {
	Users         []string `mapstructure:"users"`
	MinPowerLevel int      `mapstructure:"min_power_level"`
}

// Access holds the automatic access rules, as user-id globs.
type Access struct {
	AutoApprove    []string      `mapstructure:"auto_approve"`
	Deny           []string      `mapstructure:"deny"`
	MaxActiveUsers int           `mapstructure:"max_active_users"`
	ReminderAfter  time.Duration `mapstructure:"reminder_after"`
}

// Albert is the LLM gateway.
type Albert struct {
	BaseURL      string        `mapstructure:"base_url"`
	APIKey       string        `mapstructure:"api_key"`
	Model        string        `mapstructure:"model"`
	SystemPrompt string        `mapstructure:"system_prompt"`
	Timeout      time.Duration `mapstructure:"timeout"`
	// Models lists the model ids agents may pick with !modele (albert.model
	// is always allowed); only those Albert lists as text-generation show.
	Models           []string      `mapstructure:"models"`
	MaxContextTokens int           `mapstructure:"max_context_tokens"`
	MaxInputChars    int           `mapstructure:"max_input_chars"`
	EditInterval     time.Duration `mapstructure:"edit_interval"`
	// FirstMessageAfter is when a streamed answer's first message is sent
	// at the latest, with the text so far (earlier once a first sentence is
	// there); an answer complete before is one message.
	FirstMessageAfter time.Duration `mapstructure:"first_message_after"`
	MaxRetries        int           `mapstructure:"max_retries"`
}

// Limits share Albert's budget among agents and protect the API key.
type Limits struct {
	Timezone       string        `mapstructure:"timezone"`
	PerUser        PerUserLimits `mapstructure:"per_user"`
	Exempt         []string      `mapstructure:"exempt"`
	OverloadFactor float64       `mapstructure:"overload_factor"`
	Global         GlobalLimits  `mapstructure:"global"`
	Breaker        Breaker       `mapstructure:"breaker"`
}

// PerUserLimits apply to each agent; 0 means unlimited. MessagesPerMinute
// holds over any 60 seconds; Burst (0: none) only spaces questions out and
// may not exceed MessagesPerMinute (see ratelimit.Config).
type PerUserLimits struct {
	MessagesPerMinute int `mapstructure:"messages_per_minute"`
	Burst             int `mapstructure:"burst"`
	MessagesPerDay    int `mapstructure:"messages_per_day"`
	TokensPerDay      int `mapstructure:"tokens_per_day"`
}

// GlobalLimits apply to all calls to Albert together; 0 means unlimited.
type GlobalLimits struct {
	MaxConcurrent     int           `mapstructure:"max_concurrent"`
	QueueSize         int           `mapstructure:"queue_size"`
	RequestsPerMinute int           `mapstructure:"requests_per_minute"`
	TokensPerMinute   int           `mapstructure:"tokens_per_minute"`
	WaitNotice        time.Duration `mapstructure:"wait_notice"`
}

// Breaker slows everyone down when Albert is overloaded.
type Breaker struct {
	Failures int           `mapstructure:"failures"`
	OpenFor  time.Duration `mapstructure:"open_for"`
	// MaxWait is how long a question waits for an open breaker before the
	// agent is told to ask again later.
	MaxWait time.Duration `mapstructure:"max_wait"`
}

// Conversation sets how DM conversations are kept.
type Conversation struct {
	// IdleReset starts a new conversation after this much silence.
	IdleReset time.Duration `mapstructure:"idle_reset"`
}

// Retrieval sets the search in Albert's document collections before each
// question; its excerpts ground the answer, which lists them as sources.
type Retrieval struct {
	// Collections are the collection ids offered to agents and searched by
	// default (none: no retrieval). Public ones in 2026: 150281
	// service-public.fr fiches, 150277 travail-emploi, 139226 Légifrance.
	Collections []int `mapstructure:"collections"`
	// Method is "semantic", "hybrid" or "lexical".
	Method string `mapstructure:"method"`
	// Limit is the number of excerpts per question (1-100).
	Limit int `mapstructure:"limit"`
	// ScoreThreshold drops excerpts scored below it, in [0, 1]; Albert
	// accepts it with the semantic method only.
	ScoreThreshold float64 `mapstructure:"score_threshold"`
	// Timeout bounds one search; past it, the answer comes without sources.
	Timeout time.Duration `mapstructure:"timeout"`
}

// Privacy sets how long what people wrote is kept.
type Privacy struct {
	// Retention is how long conversation turns and the stored texts of
	// messages (questions, answers) are kept before their bytes are deleted.
	Retention time.Duration `mapstructure:"retention"`
}

// Database is where guichet keeps its state, the Matrix state and the E2EE keys.
type Database struct {
	// Type is "sqlite3-fk-wal" (one file) or "postgres".
	Type string `mapstructure:"type"`
	// URI is the SQLite file's path, or a postgres:// URI.
	URI string `mapstructure:"uri"`
	// MaxOpenConns bounds the pool (0: 4 for SQLite, 10 for PostgreSQL);
	// MaxIdleConns the connections kept open between uses (0: 2).
	MaxOpenConns int `mapstructure:"max_open_conns"`
	MaxIdleConns int `mapstructure:"max_idle_conns"`
}

// Policy is the data-processing policy agents accept.
type Policy struct {
	URL     string `mapstructure:"url"`
	Version string `mapstructure:"version"`
}

// Log sets the logger.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// HA is the hot standby: several guichet processes on one PostgreSQL
// database, one leader at a time (see package ha).
type HA struct {
	// Enabled turns it on (database.type postgres only).
	Enabled bool `mapstructure:"enabled"`
	// Retry is how often a standby tries to take over.
	Retry time.Duration `mapstructure:"retry"`
}

// Metrics is where operators' monitoring reads guichet.
type Metrics struct {
	// Listen is the host:port serving /metrics, /healthz and /readyz
	// (empty: not served).
	Listen string `mapstructure:"listen"`
	// Pprof also serves Go's runtime profiles (net/http/pprof) on
	// /debug/pprof/ at Listen, for an operator to profile a running
	// guichet (go tool pprof http://LISTEN/debug/pprof/heap).
	Pprof bool `mapstructure:"pprof"`
}

// DefaultSystemPrompt is used when albert.system_prompt is empty.
const DefaultSystemPrompt = "Tu es l'Assistant IA des agents publics français. Réponds en français, " +
	"clairement et brièvement, en Markdown. Si tu ne sais pas, dis-le."

var defaults = map[string]any{
	"matrix.homeserver":                   "",
	"matrix.user_id":                      "",
	"matrix.password":                     "",
	"matrix.access_token":                 "",
	"matrix.device_id":                    "",
	"matrix.pickle_key":                   "",
	"matrix.device_name":                  "guichet",
	"matrix.recovery_key_file":            "recovery-key.txt",
	"support_room":                        "",
	"moderators.users":                    []string{},
	"moderators.min_power_level":          50,
	"access.auto_approve":                 []string{},
	"access.deny":                         []string{},
	"access.max_active_users":             0,
	"access.reminder_after":               "4h",
	"albert.base_url":                     "https://albert.api.etalab.gouv.fr/v1",
	"albert.api_key":                      "",
	"albert.model":                        "mistral-medium-2508",
	"albert.system_prompt":                DefaultSystemPrompt,
	"albert.timeout":                      "120s",
	"albert.models":                       []string{},
	"albert.max_context_tokens":           6000,
	"albert.max_input_chars":              8000,
	"albert.edit_interval":                "1.5s",
	"albert.first_message_after":          "1s",
	"albert.max_retries":                  2,
	"conversation.idle_reset":             "30m",
	"privacy.retention":                   "720h",
	"retrieval.collections":               []int{},
	"retrieval.method":                    "semantic",
	"retrieval.limit":                     5,
	"retrieval.score_threshold":           0.0,
	"retrieval.timeout":                   "10s",
	"ops_room":                            "",
	"limits.timezone":                     "Europe/Paris",
	"limits.per_user.messages_per_minute": 5,
	"limits.per_user.burst":               0,
	"limits.per_user.messages_per_day":    200,
	"limits.per_user.tokens_per_day":      300000,
	"limits.exempt":                       []string{},
	"limits.overload_factor":              0.5,
	"limits.global.max_concurrent":        8,
	"limits.global.queue_size":            200,
	"limits.global.requests_per_minute":   0,
	"limits.global.tokens_per_minute":     0,
	"limits.global.wait_notice":           "3s",
	"limits.breaker.failures":             5,
	"limits.breaker.open_for":             "30s",
	"limits.breaker.max_wait":             "2m",
	"database.type":                       "sqlite3-fk-wal",
	"database.uri":                        "guichet.db",
	"database.max_open_conns":             0,
	"database.max_idle_conns":             0,
	"ha.enabled":                          false,
	"ha.retry":                            "2s",
	"policy.url":                          "",
	"policy.version":                      "",
	"log.level":                           "info",
	"log.format":                          "json",
	"metrics.listen":                      "",
	"metrics.pprof":                       false,
	"hooks.decisions_url":                 "",
	"hooks.secret":                        "",
}

// Defaults returns the configuration made of the documented defaults only,
// not validated (the keys without a default, such as the homeserver, are
// empty): a base for configurations built in code (tests, the demo), so
// that a key added later keeps its default there too.
func Defaults() (*Config, error) {
	var cfg Config
	if err := withDefaults().Unmarshal(&cfg); err != nil {
		return nil, fmt.Errorf("failed to decode the defaults: %w", err)
	}
	return &cfg, nil
}

func withDefaults() *viper.Viper {
	v := viper.New()
	for key, value := range defaults {
		v.SetDefault(key, value)
	}
	return v
}

// Load reads file (which may be empty to use only the environment) and the
// GUICHET_* environment through lookupEnv, and validates the result.
func Load(file string, lookupEnv func(string) (string, bool)) (*Config, error) {
	v := withDefaults()
	if file != "" {
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("failed to read config file %s: %w", file, err)
		}
	}
	// viper's AutomaticEnv reads os.Getenv; going through lookupEnv keeps
	// tests hermetic and makes the override rule explicit.
	envProblems := applyEnv(v, lookupEnv)
	envProblems = append(envProblems, intList(v, "retrieval.collections", "retrieval.collections")...)
	partners, partnerProblems := decodePartners(v, lookupEnv)
	envProblems = append(envProblems, partnerProblems...)
	var cfg Config
	if err := v.Unmarshal(&cfg); err != nil {
		return nil, fmt.Errorf("failed to decode configuration: %w", err)
	}
	cfg.Moderators.Users = splitList(cfg.Moderators.Users)
	cfg.Access.AutoApprove = splitList(cfg.Access.AutoApprove)
	cfg.Access.Deny = splitList(cfg.Access.Deny)
	cfg.Albert.Models = splitList(cfg.Albert.Models)
	cfg.Limits.Exempt = splitList(cfg.Limits.Exempt)
	cfg.Partners = partners
	if err := withProblems(envProblems, cfg.Validate()); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// intList replaces the list of integers at key (YAML numbers, or a
// comma-separated string from the environment) by its []int, and reports a
// problem, naming the key, for what is not an integer: decoding would
// otherwise fail with a message that names no setting.
func intList(v *viper.Viper, key, problemKey string) []Problem {
	var words []string
	switch raw := v.Get(key).(type) {
	case nil:
	case string:
		words = splitList([]string{raw})
	case []any:
		for _, x := range raw {
			words = append(words, strings.TrimSpace(fmt.Sprint(x)))
		}
	case []int:
		return nil
	default:
		return []Problem{{problemKey, fmt.Sprintf("a list of integers, got %v", raw)}}
	}
	ids := make([]int, 0, len(words))
	for _, w := range words {
		n, err := strconv.Atoi(w)
		if err != nil {
			v.Set(key, []int{})
			return []Problem{{problemKey, fmt.Sprintf("a list of integers, got %q", w)}}
		}
		ids = append(ids, n)
	}
	v.Set(key, ids)
	return nil
}

// FileSuffix marks an environment variable holding the path of a file that
// holds the value, for secrets handed over as files (systemd credentials,
// container secrets): GUICHET_MATRIX_PASSWORD_FILE=/run/credentials/guichet.service/password.
const FileSuffix = "_FILE"

// applyEnv sets every key given in the environment, directly or through
// FileSuffix, and reports the keys given both ways and the files that cannot
// be read.
func applyEnv(v *viper.Viper, lookupEnv func(string) (string, bool)) []Problem {
	keys := v.AllKeys()
	slices.Sort(keys) // problems in a stable order
	direct := make(map[string]bool, len(keys))
	for _, key := range keys {
		direct[EnvName(key)] = true
	}
	var problems []Problem
	for _, key := range keys {
		name := EnvName(key)
		value, ok := lookupEnv(name)
		fileName := name + FileSuffix
		// Were there a key x and a key x_file, GUICHET_X_FILE would be the
		// second key's variable, not a file for the first.
		if file, fromFile := lookupEnv(fileName); fromFile && !direct[fileName] {
			if ok {
				problems = append(problems, Problem{key, fmt.Sprintf("given by both %s and %s; set only one", name, fileName)})
				continue
			}
			content, err := os.ReadFile(file)
			if err != nil {
				// The path is left out: an operator who put the secret
				// itself in the variable must not find it in the logs.
				reason := err
				var pathErr *fs.PathError
				if errors.As(err, &pathErr) {
					reason = pathErr.Err
				}
				problems = append(problems, Problem{key, fmt.Sprintf("%s names a file that cannot be read (%v)", fileName, reason)})
				continue
			}
			value, ok = strings.TrimRight(string(content), "\r\n"), true
		}
		if ok {
			v.Set(key, value)
		}
	}
	return problems
}

// withProblems adds the environment's problems to the validation's, once
// per key: a key whose value could not be read is not also reported missing.
func withProblems(envProblems []Problem, validateErr error) error {
	if len(envProblems) == 0 {
		return validateErr
	}
	problems := slices.Clone(envProblems)
	var ve *ValidationError
	if errors.As(validateErr, &ve) {
		for _, p := range ve.Problems {
			if !slices.ContainsFunc(envProblems, func(e Problem) bool { return e.Key == p.Key }) {
				problems = append(problems, p)
			}
		}
	}
	return &ValidationError{Problems: problems}
}

// EnvName gives the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// splitList accepts lists written in YAML or as one comma- or
// space-separated environment value.
func splitList(in []string) []string {
	var out []string
	for _, item := range in {
		for _, part := range strings.FieldsFunc(item, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
			out = append(out, part)
		}
	}
	return out
}

// badUserGlob returns the first of globs that is not a user-id glob
// (path.Match syntax, "@" first, a ":" before the server), if any.
func badUserGlob(globs []string) (string, bool) {
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil || !strings.HasPrefix(g, "@") || !strings.Contains(g, ":") {
			return g, true
		}
	}
	return "", false
}

// badCollection returns the first collection id that is not positive or
// repeats an earlier one, if any.
func badCollection(ids []int) (int, bool) {
	seen := map[int]bool{}
	for _, cid := range ids {
		if cid <= 0 || seen[cid] {
			return cid, true
		}
		seen[cid] = true
	}
	return 0, false
}

// Problem is one invalid key.
type Problem struct {
	Key  string
	Want string
}

// ValidationError lists every invalid key.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration:")
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  - %s (%s): %s", p.Key, EnvName(p.Key), p.Want)
	}
	return b.String()
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid configuration")

func (e *ValidationError) Unwrap() error { return ErrInvalid }

// Validate checks every key and reports all problems together.
func (c *Config) Validate() error {
	var problems []Problem
	bad := func(key, want string) { problems = append(problems, Problem{key, want}) }

	if !isHTTPURL(c.Matrix.Homeserver) {
		bad("matrix.homeserver", "required, the homeserver's client API URL, e.g. https://matrix.agent.dinum.tchap.gouv.fr")
	}
	if _, _, err := id.UserID(c.Matrix.UserID).ParseAndValidateRelaxed(); err != nil || c.Matrix.UserID == "" {
		bad("matrix.user_id", "required, the bot's full user id, e.g. @assistant-ia:agent.dinum.tchap.gouv.fr")
	}
	if c.Matrix.Password == "" && c.Matrix.AccessToken == "" {
		bad("matrix.password", "required unless matrix.access_token is set")
	}
	if c.Matrix.AccessToken != "" && c.Matrix.DeviceID == "" {
		bad("matrix.device_id", "required with matrix.access_token: the device the token belongs to")
	}
	if len(c.Matrix.PickleKey) < 16 {
		bad("matrix.pickle_key", "required, a random secret of at least 16 characters that encrypts the E2EE keys at rest")
	}
	if c.SupportRoom == "" || (c.SupportRoom[0] != '!' && c.SupportRoom[0] != '#') || !strings.Contains(c.SupportRoom, ":") {
		bad("support_room", "required, a room id (!abc:server) or alias (#support:server)")
	}
	for _, u := range c.Moderators.Users {
		if _, _, err := id.UserID(u).ParseAndValidateRelaxed(); err != nil {
			bad("moderators.users", fmt.Sprintf("full user ids like @bob:agent.dinum.tchap.gouv.fr, got %q", u))
			break
		}
	}
	if c.Moderators.MinPowerLevel < 1 || c.Moderators.MinPowerLevel > 100 {
		bad("moderators.min_power_level", "a power level between 1 and 100 (moderator is 50)")
	}
	for _, rule := range []struct {
		key   string
		globs []string
	}{{"access.auto_approve", c.Access.AutoApprove}, {"access.deny", c.Access.Deny}} {
		key := rule.key
		if g, ok := badUserGlob(rule.globs); ok {
			bad(key, fmt.Sprintf("user-id globs like @*:agent.dinum.tchap.gouv.fr, got %q", g))
		}
	}
	if c.Access.MaxActiveUsers < 0 {
		bad("access.max_active_users", "0 (no cap) or a positive number of agents")
	}
	if c.Access.ReminderAfter < 0 {
		bad("access.reminder_after", "a duration such as 4h, or 0 to never remind")
	}
	if c.Hooks.DecisionsURL != "" && !isHTTPURL(c.Hooks.DecisionsURL) {
		bad("hooks.decisions_url", "empty, or the http(s) URL that receives access decisions")
	}
	if c.Hooks.DecisionsURL != "" && len(c.Hooks.Secret) < 16 {
		bad("hooks.secret", "required with hooks.decisions_url, a random secret of at least 16 characters that signs each delivery")
	}
	if !isHTTPURL(c.Albert.BaseURL) {
		bad("albert.base_url", "an http(s) URL ending in /v1, e.g. https://albert.api.etalab.gouv.fr/v1")
	}
	if c.Albert.APIKey == "" {
		bad("albert.api_key", "required, the Albert API key (better set through the environment)")
	}
	if c.Albert.Model == "" {
		bad("albert.model", "required, a model id from Albert's /v1/models (an id, not an alias)")
	}
	if c.Albert.Timeout <= 0 {
		bad("albert.timeout", "a positive duration such as 120s")
	}
	if c.Albert.MaxContextTokens < 256 {
		bad("albert.max_context_tokens", "at least 256 tokens of context")
	}
	if c.Albert.MaxInputChars < 1 {
		bad("albert.max_input_chars", "a positive number of characters")
	}
	if c.Albert.FirstMessageAfter < 0 || c.Albert.FirstMessageAfter > time.Minute {
		bad("albert.first_message_after", "a duration between 0 and 1m, e.g. 1s")
	}
	if c.Albert.EditInterval < 100*time.Millisecond {
		bad("albert.edit_interval", "a duration of at least 100ms, e.g. 1.5s")
	}
	if c.Albert.MaxRetries < 0 || c.Albert.MaxRetries > 10 {
		bad("albert.max_retries", "between 0 and 10")
	}
	if c.Conversation.IdleReset < time.Minute {
		bad("conversation.idle_reset", "a duration of at least 1m, e.g. 30m")
	}
	if cid, ok := badCollection(c.Retrieval.Collections); ok {
		bad("retrieval.collections", fmt.Sprintf("distinct positive collection ids from Albert's /v1/collections, e.g. [150281, 139226], got %d", cid))
	}
	switch c.Retrieval.Method {
	case "semantic", "hybrid", "lexical":
	default:
		bad("retrieval.method", fmt.Sprintf("semantic, hybrid or lexical, got %q", c.Retrieval.Method))
	}
	if c.Retrieval.Limit < 1 || c.Retrieval.Limit > 100 {
		bad("retrieval.limit", "between 1 and 100 excerpts per question")
	}
	if c.Retrieval.ScoreThreshold < 0 || c.Retrieval.ScoreThreshold > 1 {
		bad("retrieval.score_threshold", "a score between 0 and 1")
	} else if c.Retrieval.ScoreThreshold > 0 && c.Retrieval.Method != "semantic" {
		bad("retrieval.score_threshold", fmt.Sprintf("0 with the %s method: Albert accepts a threshold with the semantic method only", c.Retrieval.Method))
	}
	if c.Retrieval.Timeout < 100*time.Millisecond {
		bad("retrieval.timeout", "a duration of at least 100ms, e.g. 10s")
	}
	c.validatePartners(bad)
	switch c.Database.Type {
	case "sqlite3-fk-wal":
		if c.Database.URI == "" || strings.HasPrefix(c.Database.URI, "postgres://") || strings.HasPrefix(c.Database.URI, "postgresql://") {
			bad("database.uri", "the SQLite file's path, e.g. /var/lib/guichet/guichet.db (set database.type: postgres for a PostgreSQL URI)")
		}
	case "postgres":
		if !strings.HasPrefix(c.Database.URI, "postgres://") && !strings.HasPrefix(c.Database.URI, "postgresql://") {
			bad("database.uri", "a postgres:// URI, e.g. postgres://guichet@db.example/guichet?sslmode=verify-full (better through GUICHET_DATABASE_URI)")
		}
	default:
		bad("database.type", fmt.Sprintf("sqlite3-fk-wal or postgres, got %q", c.Database.Type))
	}
	if c.HA.Enabled && c.Database.Type != "postgres" {
		bad("ha.enabled", "false with SQLite: a hot standby shares one PostgreSQL database (database.type: postgres)")
	}
	if c.HA.Retry < 100*time.Millisecond {
		bad("ha.retry", "a duration of at least 100ms, e.g. 2s")
	}
	if c.Database.Type == "postgres" && c.Database.MaxOpenConns > 0 && c.Database.MaxOpenConns < 4 {
		bad("database.max_open_conns", "0 (10) or at least 4 on PostgreSQL: start-up holds one connection for the migrations while they run on another, and the hot standby's leader holds one for its lock")
	}
	if c.Database.MaxOpenConns < 0 || c.Database.MaxIdleConns < 0 {
		bad("database.max_open_conns", "0 (the default of the database type) or a positive number of connections")
	}
	if c.Privacy.Retention < time.Hour {
		bad("privacy.retention", "a duration of at least 1h, e.g. 720h (30 days)")
	}
	if c.OpsRoom != "" && (c.OpsRoom[0] != '!' && c.OpsRoom[0] != '#' || !strings.Contains(c.OpsRoom, ":")) {
		bad("ops_room", "empty, or a room id (!abc:server) or alias (#ops:server) for operator alerts")
	}
	if _, err := time.LoadLocation(c.Limits.Timezone); err != nil || c.Limits.Timezone == "" {
		bad("limits.timezone", "an IANA time zone such as Europe/Paris (days start at its midnight)")
	}
	for _, lim := range []struct {
		key string
		v   int
	}{
		{"limits.per_user.messages_per_minute", c.Limits.PerUser.MessagesPerMinute},
		{"limits.per_user.messages_per_day", c.Limits.PerUser.MessagesPerDay},
		{"limits.per_user.tokens_per_day", c.Limits.PerUser.TokensPerDay},
		{"limits.global.max_concurrent", c.Limits.Global.MaxConcurrent},
		{"limits.global.queue_size", c.Limits.Global.QueueSize},
		{"limits.global.requests_per_minute", c.Limits.Global.RequestsPerMinute},
		{"limits.global.tokens_per_minute", c.Limits.Global.TokensPerMinute},
	} {
		if lim.v < 0 {
			bad(lim.key, "0 (unlimited) or a positive number")
		}
	}
	if burst, perMinute := c.Limits.PerUser.Burst, c.Limits.PerUser.MessagesPerMinute; burst < 0 || burst > max(perMinute, 0) {
		bad("limits.per_user.burst", fmt.Sprintf("0 (no spacing) or at most limits.per_user.messages_per_minute (%d): "+
			"that limit holds over any 60 seconds whatever the burst, which only spaces questions out", perMinute))
	}
	if c.Limits.OverloadFactor <= 0 || c.Limits.OverloadFactor > 1 {
		bad("limits.overload_factor", "a factor in (0, 1], e.g. 0.5 halves per-agent limits in overload mode")
	}
	if c.Limits.Breaker.Failures < 1 {
		bad("limits.breaker.failures", "at least 1 overload error in a row before slowing down")
	}
	if c.Limits.Breaker.OpenFor < time.Second {
		bad("limits.breaker.open_for", "a duration of at least 1s, e.g. 30s")
	}
	if c.Limits.Breaker.MaxWait < time.Second {
		bad("limits.breaker.max_wait", "a duration of at least 1s, e.g. 2m: how long a question waits for Albert to recover")
	}
	for _, g := range c.Limits.Exempt {
		if _, err := path.Match(g, ""); err != nil || !strings.HasPrefix(g, "@") {
			bad("limits.exempt", fmt.Sprintf("user-id globs like @*:agent.dinum.tchap.gouv.fr, got %q", g))
			break
		}
	}
	if !isHTTPURL(c.Policy.URL) {
		bad("policy.url", "required, the http(s) address of the data-processing policy")
	}
	if c.Policy.Version == "" {
		bad("policy.version", "required, e.g. 2026-11; changing it asks every agent to accept again")
	}
	switch c.Log.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		bad("log.level", "one of trace, debug, info, warn, error")
	}
	switch c.Log.Format {
	case "json", "pretty":
	default:
		bad("log.format", "json or pretty")
	}
	if c.Metrics.Listen != "" && !isHostPort(c.Metrics.Listen) {
		bad("metrics.listen", "empty (not served) or host:port, e.g. 127.0.0.1:9750")
	}
	if len(problems) > 0 {
		return &ValidationError{Problems: problems}
	}
	return nil
}

// isHostPort accepts host:port with a numeric port (0 picks a free one);
// the host may be empty (every interface).
func isHostPort(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
