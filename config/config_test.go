package config_test

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"guichet/config"
)

// Secret values used throughout; no error message may ever contain them.
const (
	testPassword    = "s3cret-Password-4242"
	testPickleKey   = "pickle-key-0123456789abcdef"
	testAPIKey      = "albert-sk-ABCDEF0123456789"
	testAccessToken = "syt_YWNjZXNz_token_987654"
)

// baseYAML is a complete configuration without secrets.
var baseYAML = yamlWith("", "")

// yamlWith returns the base configuration with matrixKeys (lines indented by
// two spaces) added to its matrix section and rest appended.
func yamlWith(matrixKeys, rest string) string {
	return `
matrix:
  homeserver: https://matrix.agent.dinum.tchap.gouv.fr
  user_id: "@assistant-ia:agent.dinum.tchap.gouv.fr"
` + strings.TrimPrefix(matrixKeys, "\n") + `support_room: "#support:agent.dinum.tchap.gouv.fr"
policy:
  url: https://albert.sites.beta.gouv.fr/politique
  version: "2026-11"
` + rest
}

// secretEnv gives the secrets the base file lacks.
func secretEnv() map[string]string {
	return map[string]string{
		"GUICHET_MATRIX_PASSWORD":   testPassword,
		"GUICHET_MATRIX_PICKLE_KEY": testPickleKey,
		"GUICHET_ALBERT_API_KEY":    testAPIKey,
	}
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(key string) (string, bool) {
		v, ok := env[key]
		return v, ok
	}
}

func merge(envs ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, e := range envs {
		maps.Copy(out, e)
	}
	return out
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// problemKeys returns the keys named by a validation error, failing the test
// for any other kind of error.
func problemKeys(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("Load succeeded, want a validation error")
	}
	if !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("errors.Is(%v, ErrInvalid) = false", err)
	}
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %T is not a *ValidationError: %v", err, err)
	}
	keys := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		keys[i] = p.Key
		if p.Want == "" {
			t.Errorf("problem %s has no explanation", p.Key)
		}
	}
	return keys
}

func TestLoadFileAndEnv(t *testing.T) {
	tests := []struct {
		name   string
		matrix string // added to the base file's matrix section
		yaml   string // appended to the base file
		env    map[string]string
		check  func(t *testing.T, c *config.Config)
	}{
		{
			name: "secrets from the file",
			yaml: `
albert:
  api_key: file-api-key
`,
			env: map[string]string{"GUICHET_MATRIX_PASSWORD": testPassword, "GUICHET_MATRIX_PICKLE_KEY": testPickleKey},
			check: func(t *testing.T, c *config.Config) {
				if c.Albert.APIKey != "file-api-key" {
					t.Errorf("APIKey = %q, want the file's", c.Albert.APIKey)
				}
			},
		},
		{
			name: "env overrides the file's secrets",
			yaml: `
albert:
  api_key: file-api-key
`,
			env: merge(secretEnv(), map[string]string{}),
			check: func(t *testing.T, c *config.Config) {
				if c.Albert.APIKey != testAPIKey {
					t.Errorf("APIKey = %q, want %q", c.Albert.APIKey, testAPIKey)
				}
				if c.Matrix.Password != testPassword {
					t.Errorf("Password = %q, want %q", c.Matrix.Password, testPassword)
				}
				if c.Matrix.PickleKey != testPickleKey {
					t.Errorf("PickleKey = %q, want %q", c.Matrix.PickleKey, testPickleKey)
				}
			},
		},
		{
			name: "env overrides keys set in the file",
			matrix: `
  password: file-password
  pickle_key: file-pickle-key-0123456789
`,
			env: merge(secretEnv(), map[string]string{
				"GUICHET_MATRIX_HOMESERVER": "https://matrix.agent.interieur.tchap.gouv.fr",
				"GUICHET_SUPPORT_ROOM":      "!abcdef:agent.interieur.tchap.gouv.fr",
				"GUICHET_POLICY_VERSION":    "2027-01",
			}),
			check: func(t *testing.T, c *config.Config) {
				if c.Matrix.Password != testPassword || c.Matrix.PickleKey != testPickleKey {
					t.Errorf("Password, PickleKey = %q, %q; want the env's", c.Matrix.Password, c.Matrix.PickleKey)
				}
				if c.Matrix.Homeserver != "https://matrix.agent.interieur.tchap.gouv.fr" {
					t.Errorf("Homeserver = %q", c.Matrix.Homeserver)
				}
				if c.SupportRoom != "!abcdef:agent.interieur.tchap.gouv.fr" {
					t.Errorf("SupportRoom = %q", c.SupportRoom)
				}
				if c.Policy.Version != "2027-01" {
					t.Errorf("Policy.Version = %q", c.Policy.Version)
				}
			},
		},
		{
			name: "comma-separated env lists",
			env: merge(secretEnv(), map[string]string{
				"GUICHET_MODERATORS_USERS":    "@a:x,@b:y",
				"GUICHET_ACCESS_AUTO_APPROVE": "@*:agent.dinum.tchap.gouv.fr,@*:agent.finances.tchap.gouv.fr",
				"GUICHET_ACCESS_DENY":         "@*:agent.externe.tchap.gouv.fr",
				"GUICHET_ALBERT_MODELS":       "mistral-medium-2508,deepseek-v4-flash",
			}),
			check: func(t *testing.T, c *config.Config) {
				if want := []string{"@a:x", "@b:y"}; !slices.Equal(c.Moderators.Users, want) {
					t.Errorf("Moderators.Users = %q, want %q", c.Moderators.Users, want)
				}
				if want := []string{"@*:agent.dinum.tchap.gouv.fr", "@*:agent.finances.tchap.gouv.fr"}; !slices.Equal(c.Access.AutoApprove, want) {
					t.Errorf("Access.AutoApprove = %q, want %q", c.Access.AutoApprove, want)
				}
				if want := []string{"@*:agent.externe.tchap.gouv.fr"}; !slices.Equal(c.Access.Deny, want) {
					t.Errorf("Access.Deny = %q, want %q", c.Access.Deny, want)
				}
				if want := []string{"mistral-medium-2508", "deepseek-v4-flash"}; !slices.Equal(c.Albert.Models, want) {
					t.Errorf("Albert.Models = %q, want %q", c.Albert.Models, want)
				}
			},
		},
		{
			name: "space-separated env list with stray commas",
			env:  merge(secretEnv(), map[string]string{"GUICHET_MODERATORS_USERS": " @a:x  @b:y,, @c:z "}),
			check: func(t *testing.T, c *config.Config) {
				if want := []string{"@a:x", "@b:y", "@c:z"}; !slices.Equal(c.Moderators.Users, want) {
					t.Errorf("Moderators.Users = %q, want %q", c.Moderators.Users, want)
				}
			},
		},
		{
			name: "env list replaces the file's list",
			yaml: `
moderators:
  users: ["@file:x"]
`,
			env: merge(secretEnv(), map[string]string{"GUICHET_MODERATORS_USERS": "@env:y"}),
			check: func(t *testing.T, c *config.Config) {
				if want := []string{"@env:y"}; !slices.Equal(c.Moderators.Users, want) {
					t.Errorf("Moderators.Users = %q, want %q", c.Moderators.Users, want)
				}
			},
		},
		{
			name: "YAML lists",
			yaml: `
moderators:
  users:
    - "@a:x"
    - "@b:y"
access:
  auto_approve: ["@*:agent.dinum.tchap.gouv.fr"]
`,
			env: secretEnv(),
			check: func(t *testing.T, c *config.Config) {
				if want := []string{"@a:x", "@b:y"}; !slices.Equal(c.Moderators.Users, want) {
					t.Errorf("Moderators.Users = %q, want %q", c.Moderators.Users, want)
				}
				if want := []string{"@*:agent.dinum.tchap.gouv.fr"}; !slices.Equal(c.Access.AutoApprove, want) {
					t.Errorf("Access.AutoApprove = %q, want %q", c.Access.AutoApprove, want)
				}
			},
		},
		{
			name: "typed env values",
			env: merge(secretEnv(), map[string]string{
				"GUICHET_MODERATORS_MIN_POWER_LEVEL": "100",
				"GUICHET_ALBERT_TIMEOUT":             "45s",
				"GUICHET_ALBERT_MAX_RETRIES":         "5",
				"GUICHET_ALBERT_EDIT_INTERVAL":       "500ms",
				"GUICHET_CONVERSATION_IDLE_RESET":    "1h",
				"GUICHET_ACCESS_MAX_ACTIVE_USERS":    "300",
				"GUICHET_ACCESS_REMINDER_AFTER":      "0s",
				"GUICHET_OPS_ROOM":                   "#ops:agent.dinum.tchap.gouv.fr",
				"GUICHET_DATABASE_URI":               "/var/lib/guichet/state.db",
				"GUICHET_LOG_LEVEL":                  "debug",
				"GUICHET_LOG_FORMAT":                 "pretty",
			}),
			check: func(t *testing.T, c *config.Config) {
				if c.Moderators.MinPowerLevel != 100 {
					t.Errorf("MinPowerLevel = %d, want 100", c.Moderators.MinPowerLevel)
				}
				if c.Albert.Timeout != 45*time.Second {
					t.Errorf("Timeout = %s, want 45s", c.Albert.Timeout)
				}
				if c.Albert.MaxRetries != 5 || c.Albert.EditInterval != 500*time.Millisecond {
					t.Errorf("MaxRetries, EditInterval = %d, %s; want 5, 500ms", c.Albert.MaxRetries, c.Albert.EditInterval)
				}
				if c.Conversation.IdleReset != time.Hour {
					t.Errorf("IdleReset = %s, want 1h", c.Conversation.IdleReset)
				}
				if c.Access.MaxActiveUsers != 300 || c.Access.ReminderAfter != 0 {
					t.Errorf("Access = %+v, want 300 agents and no reminder", c.Access)
				}
				if c.OpsRoom != "#ops:agent.dinum.tchap.gouv.fr" {
					t.Errorf("OpsRoom = %q", c.OpsRoom)
				}
				if c.Database.URI != "/var/lib/guichet/state.db" {
					t.Errorf("Database.URI = %q", c.Database.URI)
				}
				if c.Log.Level != "debug" || c.Log.Format != "pretty" {
					t.Errorf("Log = %+v", c.Log)
				}
			},
		},
		{
			name: "access token and device instead of a password",
			env: map[string]string{
				"GUICHET_MATRIX_ACCESS_TOKEN": testAccessToken,
				"GUICHET_MATRIX_DEVICE_ID":    "GUICHETDEV",
				"GUICHET_MATRIX_PICKLE_KEY":   testPickleKey,
				"GUICHET_ALBERT_API_KEY":      testAPIKey,
			},
			check: func(t *testing.T, c *config.Config) {
				if c.Matrix.Password != "" || c.Matrix.AccessToken != testAccessToken || c.Matrix.DeviceID != "GUICHETDEV" {
					t.Errorf("Matrix = password %q, token %q, device %q", c.Matrix.Password, c.Matrix.AccessToken, c.Matrix.DeviceID)
				}
			},
		},
		{
			name: "unrelated environment is ignored",
			env: merge(secretEnv(), map[string]string{
				"ALBERT_API_KEY":    "not-ours",
				"GUICHET_UNKNOWN":   "x",
				"guichet_log_level": "trace",
			}),
			check: func(t *testing.T, c *config.Config) {
				if c.Albert.APIKey != testAPIKey || c.Log.Level != "info" {
					t.Errorf("APIKey %q, log level %q", c.Albert.APIKey, c.Log.Level)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(writeFile(t, yamlWith(tt.matrix, tt.yaml)), lookup(tt.env))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadEnvOnly(t *testing.T) {
	env := merge(secretEnv(), map[string]string{
		"GUICHET_MATRIX_HOMESERVER": "http://localhost:8008",
		"GUICHET_MATRIX_USER_ID":    "@guichet:localhost",
		"GUICHET_SUPPORT_ROOM":      "#support:localhost",
		"GUICHET_POLICY_URL":        "http://localhost/policy",
		"GUICHET_POLICY_VERSION":    "1",
	})
	c, err := config.Load("", lookup(env))
	if err != nil {
		t.Fatalf("Load without a file: %v", err)
	}
	if c.Matrix.UserID != "@guichet:localhost" || c.Matrix.Homeserver != "http://localhost:8008" {
		t.Errorf("Matrix = %+v", c.Matrix)
	}
}

func TestDefaults(t *testing.T) {
	c, err := config.Load(writeFile(t, baseYAML), lookup(secretEnv()))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"moderators.min_power_level", c.Moderators.MinPowerLevel, 50},
		{"database.uri", c.Database.URI, "guichet.db"},
		{"matrix.device_name", c.Matrix.DeviceName, "guichet"},
		{"albert.base_url", c.Albert.BaseURL, "https://albert.api.etalab.gouv.fr/v1"},
		{"albert.model", c.Albert.Model, "mistral-medium-2508"},
		{"albert.system_prompt", c.Albert.SystemPrompt, config.DefaultSystemPrompt},
		{"albert.timeout", c.Albert.Timeout, 120 * time.Second},
		{"albert.max_context_tokens", c.Albert.MaxContextTokens, 6000},
		{"albert.max_input_chars", c.Albert.MaxInputChars, 8000},
		{"albert.edit_interval", c.Albert.EditInterval, 1500 * time.Millisecond},
		{"albert.max_retries", c.Albert.MaxRetries, 2},
		{"albert.models", len(c.Albert.Models), 0},
		{"conversation.idle_reset", c.Conversation.IdleReset, 30 * time.Minute},
		{"privacy.retention", c.Privacy.Retention, 30 * 24 * time.Hour},
		{"retrieval.collections", len(c.Retrieval.Collections), 0},
		{"retrieval.method", c.Retrieval.Method, "semantic"},
		{"retrieval.limit", c.Retrieval.Limit, 5},
		{"retrieval.score_threshold", c.Retrieval.ScoreThreshold, 0.0},
		{"retrieval.timeout", c.Retrieval.Timeout, 10 * time.Second},
		{"access.max_active_users", c.Access.MaxActiveUsers, 0},
		{"access.reminder_after", c.Access.ReminderAfter, 4 * time.Hour},
		{"ops_room", c.OpsRoom, ""},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "json"},
		{"moderators.users", len(c.Moderators.Users), 0},
		{"access.auto_approve", len(c.Access.AutoApprove), 0},
		{"access.deny", len(c.Access.Deny), 0},
		{"matrix.access_token", c.Matrix.AccessToken, ""},
		{"limits.per_user.messages_per_minute", c.Limits.PerUser.MessagesPerMinute, 5},
		{"limits.per_user.burst", c.Limits.PerUser.Burst, 0},
		{"limits.breaker.failures", c.Limits.Breaker.Failures, 5},
		{"limits.breaker.open_for", c.Limits.Breaker.OpenFor, 30 * time.Second},
		{"limits.breaker.max_wait", c.Limits.Breaker.MaxWait, 2 * time.Minute},
	}
	for _, tt := range checks {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
			}
		})
	}
}

func TestValidationCollectsEveryProblem(t *testing.T) {
	required := []string{
		"matrix.homeserver", "matrix.user_id", "matrix.password", "matrix.pickle_key",
		"support_room", "albert.api_key", "policy.url", "policy.version",
	}
	tests := []struct {
		name string
		file func(t *testing.T) string
		env  map[string]string
		want []string
	}{
		{name: "no file, no env", file: func(*testing.T) string { return "" }, want: required},
		{name: "empty file", file: func(t *testing.T) string { return writeFile(t, "") }, want: required},
		{
			name: "base file without secrets",
			file: func(t *testing.T) string { return writeFile(t, baseYAML) },
			want: []string{"matrix.password", "matrix.pickle_key", "albert.api_key"},
		},
		{
			name: "many bad keys at once",
			file: func(t *testing.T) string {
				return writeFile(t, `
matrix:
  homeserver: matrix.example.org
  user_id: assistant
  access_token: tok
  pickle_key: short
support_room: support
moderators:
  users: ["bob"]
  min_power_level: 0
access:
  auto_approve: ["@[*:x"]
  deny: ["*:agent.externe.tchap.gouv.fr"]
  max_active_users: -1
  reminder_after: -1h
albert:
  base_url: albert.api.etalab.gouv.fr/v1
  api_key: k
  model: ""
  timeout: 0s
  max_context_tokens: 100
  max_input_chars: 0
  edit_interval: 10ms
  max_retries: 11
conversation:
  idle_reset: 30s
privacy:
  retention: 10m
ops_room: ops
database:
  uri: ""
policy:
  url: policy
  version: ""
log:
  level: verbose
  format: xml
`)
			},
			want: []string{
				"matrix.homeserver", "matrix.user_id", "matrix.device_id", "matrix.pickle_key",
				"support_room", "moderators.users", "moderators.min_power_level",
				"access.auto_approve", "access.deny", "access.max_active_users", "access.reminder_after",
				"albert.base_url", "albert.model", "albert.timeout", "albert.max_context_tokens",
				"albert.max_input_chars", "albert.edit_interval", "albert.max_retries",
				"conversation.idle_reset", "privacy.retention", "ops_room", "database.uri", "policy.url", "policy.version", "log.level", "log.format",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(tt.file(t), lookup(tt.env))
			got := problemKeys(t, err)
			if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(tt.want))) {
				t.Errorf("problems = %q\nwant %q", got, tt.want)
			}
			msg := err.Error()
			for _, key := range tt.want {
				if !strings.Contains(msg, key) || !strings.Contains(msg, config.EnvName(key)) {
					t.Errorf("message does not name %s and %s:\n%s", key, config.EnvName(key), msg)
				}
			}
		})
	}
}

func TestValidationProblems(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string // on top of baseYAML and the secrets
		want []string          // nil: valid
	}{
		{name: "valid", want: nil},

		{name: "homeserver without scheme", env: map[string]string{"GUICHET_MATRIX_HOMESERVER": "matrix.agent.dinum.tchap.gouv.fr"}, want: []string{"matrix.homeserver"}},
		{name: "homeserver ftp", env: map[string]string{"GUICHET_MATRIX_HOMESERVER": "ftp://matrix.example.org"}, want: []string{"matrix.homeserver"}},
		{name: "homeserver without host", env: map[string]string{"GUICHET_MATRIX_HOMESERVER": "https://"}, want: []string{"matrix.homeserver"}},
		{name: "homeserver unparsable", env: map[string]string{"GUICHET_MATRIX_HOMESERVER": "https://exa mple.org:%zz"}, want: []string{"matrix.homeserver"}},
		{name: "homeserver http with port", env: map[string]string{"GUICHET_MATRIX_HOMESERVER": "http://127.0.0.1:8008"}, want: nil},

		{name: "user id empty", env: map[string]string{"GUICHET_MATRIX_USER_ID": ""}, want: []string{"matrix.user_id"}},
		{name: "user id without sigil", env: map[string]string{"GUICHET_MATRIX_USER_ID": "assistant:agent.dinum.tchap.gouv.fr"}, want: []string{"matrix.user_id"}},
		{name: "user id without server", env: map[string]string{"GUICHET_MATRIX_USER_ID": "@assistant"}, want: []string{"matrix.user_id"}},
		{name: "user id with bad server", env: map[string]string{"GUICHET_MATRIX_USER_ID": "@assistant:bad server"}, want: []string{"matrix.user_id"}},
		{name: "user id is a room id", env: map[string]string{"GUICHET_MATRIX_USER_ID": "!room:agent.dinum.tchap.gouv.fr"}, want: []string{"matrix.user_id"}},
		{name: "Tchap user id", env: map[string]string{"GUICHET_MATRIX_USER_ID": "@assistant-ia-dinum.gouv.fr:agent.dinum.tchap.gouv.fr"}, want: nil},

		{name: "no password nor token", env: map[string]string{"GUICHET_MATRIX_PASSWORD": ""}, want: []string{"matrix.password"}},
		{name: "token without device", env: map[string]string{"GUICHET_MATRIX_PASSWORD": "", "GUICHET_MATRIX_ACCESS_TOKEN": testAccessToken}, want: []string{"matrix.device_id"}},
		{name: "token with device", env: map[string]string{"GUICHET_MATRIX_PASSWORD": "", "GUICHET_MATRIX_ACCESS_TOKEN": testAccessToken, "GUICHET_MATRIX_DEVICE_ID": "DEV"}, want: nil},

		{name: "pickle key missing", env: map[string]string{"GUICHET_MATRIX_PICKLE_KEY": ""}, want: []string{"matrix.pickle_key"}},
		{name: "pickle key of 15 characters", env: map[string]string{"GUICHET_MATRIX_PICKLE_KEY": "0123456789abcde"}, want: []string{"matrix.pickle_key"}},
		{name: "pickle key of 16 characters", env: map[string]string{"GUICHET_MATRIX_PICKLE_KEY": "0123456789abcdef"}, want: nil},

		{name: "support room bare name", env: map[string]string{"GUICHET_SUPPORT_ROOM": "support"}, want: []string{"support_room"}},
		{name: "support room without server", env: map[string]string{"GUICHET_SUPPORT_ROOM": "#support"}, want: []string{"support_room"}},
		{name: "support room is a user", env: map[string]string{"GUICHET_SUPPORT_ROOM": "@support:x"}, want: []string{"support_room"}},
		{name: "support room id", env: map[string]string{"GUICHET_SUPPORT_ROOM": "!AbCdEf:agent.dinum.tchap.gouv.fr"}, want: nil},

		{name: "moderator without server", env: map[string]string{"GUICHET_MODERATORS_USERS": "@a:x,bob"}, want: []string{"moderators.users"}},
		{name: "several bad moderators give one problem", env: map[string]string{"GUICHET_MODERATORS_USERS": "bob,alice,@carol"}, want: []string{"moderators.users"}},
		{name: "moderators valid", env: map[string]string{"GUICHET_MODERATORS_USERS": "@a:x,@jean.dupont-interieur.gouv.fr:agent.interieur.tchap.gouv.fr"}, want: nil},

		{name: "hooks off", env: map[string]string{"GUICHET_HOOKS_SECRET": ""}, want: nil},
		{name: "hooks without secret", env: map[string]string{"GUICHET_HOOKS_DECISIONS_URL": "https://rh.example.org/guichet"}, want: []string{"hooks.secret"}},
		{name: "hooks secret too short", env: map[string]string{"GUICHET_HOOKS_DECISIONS_URL": "https://rh.example.org/guichet", "GUICHET_HOOKS_SECRET": "short"}, want: []string{"hooks.secret"}},
		{name: "hooks url without scheme", env: map[string]string{"GUICHET_HOOKS_DECISIONS_URL": "rh.example.org/guichet", "GUICHET_HOOKS_SECRET": "0123456789abcdef"}, want: []string{"hooks.decisions_url"}},
		{name: "hooks valid", env: map[string]string{"GUICHET_HOOKS_DECISIONS_URL": "http://127.0.0.1:9000/hook", "GUICHET_HOOKS_SECRET": "0123456789abcdef"}, want: nil},

		{name: "power level 0", env: map[string]string{"GUICHET_MODERATORS_MIN_POWER_LEVEL": "0"}, want: []string{"moderators.min_power_level"}},
		{name: "power level 101", env: map[string]string{"GUICHET_MODERATORS_MIN_POWER_LEVEL": "101"}, want: []string{"moderators.min_power_level"}},
		{name: "power level negative", env: map[string]string{"GUICHET_MODERATORS_MIN_POWER_LEVEL": "-50"}, want: []string{"moderators.min_power_level"}},
		{name: "power level 1", env: map[string]string{"GUICHET_MODERATORS_MIN_POWER_LEVEL": "1"}, want: nil},
		{name: "power level 100", env: map[string]string{"GUICHET_MODERATORS_MIN_POWER_LEVEL": "100"}, want: nil},

		{name: "auto-approve malformed glob", env: map[string]string{"GUICHET_ACCESS_AUTO_APPROVE": "@[*:agent.dinum.tchap.gouv.fr"}, want: []string{"access.auto_approve"}},
		{name: "auto-approve trailing backslash", env: map[string]string{"GUICHET_ACCESS_AUTO_APPROVE": `@*:x\`}, want: []string{"access.auto_approve"}},
		{name: "auto-approve without sigil", env: map[string]string{"GUICHET_ACCESS_AUTO_APPROVE": "*:agent.dinum.tchap.gouv.fr"}, want: []string{"access.auto_approve"}},
		{name: "auto-approve without server", env: map[string]string{"GUICHET_ACCESS_AUTO_APPROVE": "@*"}, want: []string{"access.auto_approve"}},
		{name: "deny malformed glob", env: map[string]string{"GUICHET_ACCESS_DENY": "@*:[agent"}, want: []string{"access.deny"}},
		{name: "both globs bad", env: map[string]string{"GUICHET_ACCESS_AUTO_APPROVE": "dinum", "GUICHET_ACCESS_DENY": "externe"}, want: []string{"access.auto_approve", "access.deny"}},
		{name: "globs valid", env: map[string]string{"GUICHET_ACCESS_AUTO_APPROVE": "@*:agent.dinum.tchap.gouv.fr,@*-dinum.gouv.fr:*", "GUICHET_ACCESS_DENY": "@*:agent.externe.tchap.gouv.fr"}, want: nil},

		{name: "albert URL without scheme", env: map[string]string{"GUICHET_ALBERT_BASE_URL": "albert.api.etalab.gouv.fr/v1"}, want: []string{"albert.base_url"}},
		{name: "albert URL empty", env: map[string]string{"GUICHET_ALBERT_BASE_URL": ""}, want: []string{"albert.base_url"}},
		{name: "albert key empty", env: map[string]string{"GUICHET_ALBERT_API_KEY": ""}, want: []string{"albert.api_key"}},
		{name: "albert model empty", env: map[string]string{"GUICHET_ALBERT_MODEL": ""}, want: []string{"albert.model"}},
		{name: "albert timeout zero", env: map[string]string{"GUICHET_ALBERT_TIMEOUT": "0s"}, want: []string{"albert.timeout"}},
		{name: "albert timeout negative", env: map[string]string{"GUICHET_ALBERT_TIMEOUT": "-5s"}, want: []string{"albert.timeout"}},
		{name: "albert context below 256 tokens", env: map[string]string{"GUICHET_ALBERT_MAX_CONTEXT_TOKENS": "255"}, want: []string{"albert.max_context_tokens"}},
		{name: "albert context of 256 tokens", env: map[string]string{"GUICHET_ALBERT_MAX_CONTEXT_TOKENS": "256"}, want: nil},
		{name: "albert input chars zero", env: map[string]string{"GUICHET_ALBERT_MAX_INPUT_CHARS": "0"}, want: []string{"albert.max_input_chars"}},
		{name: "albert edit interval too short", env: map[string]string{"GUICHET_ALBERT_EDIT_INTERVAL": "99ms"}, want: []string{"albert.edit_interval"}},
		{name: "albert edit interval 100ms", env: map[string]string{"GUICHET_ALBERT_EDIT_INTERVAL": "100ms"}, want: nil},
		{name: "albert retries negative", env: map[string]string{"GUICHET_ALBERT_MAX_RETRIES": "-1"}, want: []string{"albert.max_retries"}},
		{name: "albert retries 11", env: map[string]string{"GUICHET_ALBERT_MAX_RETRIES": "11"}, want: []string{"albert.max_retries"}},
		{name: "albert retries 0", env: map[string]string{"GUICHET_ALBERT_MAX_RETRIES": "0"}, want: nil},

		{name: "retrieval collections from the environment", env: map[string]string{"GUICHET_RETRIEVAL_COLLECTIONS": "150281,139226"}, want: nil},
		{name: "retrieval collection not a number", env: map[string]string{"GUICHET_RETRIEVAL_COLLECTIONS": "service-public"}, want: []string{"retrieval.collections"}},
		{name: "retrieval collection zero", env: map[string]string{"GUICHET_RETRIEVAL_COLLECTIONS": "0"}, want: []string{"retrieval.collections"}},
		{name: "retrieval collection twice", env: map[string]string{"GUICHET_RETRIEVAL_COLLECTIONS": "150281,150281"}, want: []string{"retrieval.collections"}},
		{name: "retrieval method unknown", env: map[string]string{"GUICHET_RETRIEVAL_METHOD": "multiagent"}, want: []string{"retrieval.method"}},
		{name: "retrieval method hybrid", env: map[string]string{"GUICHET_RETRIEVAL_METHOD": "hybrid"}, want: nil},
		{name: "retrieval limit zero", env: map[string]string{"GUICHET_RETRIEVAL_LIMIT": "0"}, want: []string{"retrieval.limit"}},
		{name: "retrieval limit 101", env: map[string]string{"GUICHET_RETRIEVAL_LIMIT": "101"}, want: []string{"retrieval.limit"}},
		{name: "retrieval threshold above 1", env: map[string]string{"GUICHET_RETRIEVAL_SCORE_THRESHOLD": "1.5"}, want: []string{"retrieval.score_threshold"}},
		{name: "retrieval threshold with semantic", env: map[string]string{"GUICHET_RETRIEVAL_SCORE_THRESHOLD": "0.4"}, want: nil},
		{name: "retrieval threshold with hybrid", env: map[string]string{"GUICHET_RETRIEVAL_SCORE_THRESHOLD": "0.4", "GUICHET_RETRIEVAL_METHOD": "hybrid"}, want: []string{"retrieval.score_threshold"}},
		{name: "retrieval threshold with lexical", env: map[string]string{"GUICHET_RETRIEVAL_SCORE_THRESHOLD": "0.2", "GUICHET_RETRIEVAL_METHOD": "lexical"}, want: []string{"retrieval.score_threshold"}},
		{name: "retrieval timeout too short", env: map[string]string{"GUICHET_RETRIEVAL_TIMEOUT": "50ms"}, want: []string{"retrieval.timeout"}},
		{name: "idle reset under a minute", env: map[string]string{"GUICHET_CONVERSATION_IDLE_RESET": "59s"}, want: []string{"conversation.idle_reset"}},
		{name: "idle reset one minute", env: map[string]string{"GUICHET_CONVERSATION_IDLE_RESET": "1m"}, want: nil},
		{name: "ops room bare name", env: map[string]string{"GUICHET_OPS_ROOM": "ops"}, want: []string{"ops_room"}},
		{name: "ops room without server", env: map[string]string{"GUICHET_OPS_ROOM": "!ops"}, want: []string{"ops_room"}},
		{name: "ops room alias", env: map[string]string{"GUICHET_OPS_ROOM": "#ops:agent.dinum.tchap.gouv.fr"}, want: nil},

		{name: "max active users negative", env: map[string]string{"GUICHET_ACCESS_MAX_ACTIVE_USERS": "-1"}, want: []string{"access.max_active_users"}},
		{name: "reminder negative", env: map[string]string{"GUICHET_ACCESS_REMINDER_AFTER": "-1h"}, want: []string{"access.reminder_after"}},
		{name: "reminder off", env: map[string]string{"GUICHET_ACCESS_REMINDER_AFTER": "0"}, want: nil},

		// The issue-9 instance: 2 a minute with the default burst starts.
		{name: "two a minute, default burst", env: map[string]string{"GUICHET_LIMITS_PER_USER_MESSAGES_PER_MINUTE": "2"}, want: nil},
		{name: "burst above the per-minute limit", env: map[string]string{"GUICHET_LIMITS_PER_USER_MESSAGES_PER_MINUTE": "2", "GUICHET_LIMITS_PER_USER_BURST": "3"}, want: []string{"limits.per_user.burst"}},
		{name: "burst equal to the per-minute limit", env: map[string]string{"GUICHET_LIMITS_PER_USER_MESSAGES_PER_MINUTE": "2", "GUICHET_LIMITS_PER_USER_BURST": "2"}, want: nil},
		{name: "burst below the per-minute limit", env: map[string]string{"GUICHET_LIMITS_PER_USER_BURST": "1"}, want: nil},
		{name: "burst negative", env: map[string]string{"GUICHET_LIMITS_PER_USER_BURST": "-1"}, want: []string{"limits.per_user.burst"}},
		{name: "burst without a per-minute limit", env: map[string]string{"GUICHET_LIMITS_PER_USER_MESSAGES_PER_MINUTE": "0", "GUICHET_LIMITS_PER_USER_BURST": "1"}, want: []string{"limits.per_user.burst"}},
		{name: "no per-minute limit", env: map[string]string{"GUICHET_LIMITS_PER_USER_MESSAGES_PER_MINUTE": "0"}, want: nil},
		{name: "per-minute limit negative", env: map[string]string{"GUICHET_LIMITS_PER_USER_MESSAGES_PER_MINUTE": "-1"}, want: []string{"limits.per_user.messages_per_minute"}},
		{name: "breaker max wait negative", env: map[string]string{"GUICHET_LIMITS_BREAKER_MAX_WAIT": "-1s"}, want: []string{"limits.breaker.max_wait"}},
		{name: "breaker max wait zero", env: map[string]string{"GUICHET_LIMITS_BREAKER_MAX_WAIT": "0s"}, want: []string{"limits.breaker.max_wait"}},
		{name: "breaker max wait under a second", env: map[string]string{"GUICHET_LIMITS_BREAKER_MAX_WAIT": "999ms"}, want: []string{"limits.breaker.max_wait"}},
		{name: "breaker max wait 1s", env: map[string]string{"GUICHET_LIMITS_BREAKER_MAX_WAIT": "1s"}, want: nil},

		{name: "database uri empty", env: map[string]string{"GUICHET_DATABASE_URI": ""}, want: []string{"database.uri"}},
		{name: "database type unknown", env: map[string]string{"GUICHET_DATABASE_TYPE": "mysql"}, want: []string{"database.type"}},
		{name: "postgres without a URI", env: map[string]string{"GUICHET_DATABASE_TYPE": "postgres"}, want: []string{"database.uri"}},
		{name: "postgres URI on sqlite", env: map[string]string{"GUICHET_DATABASE_URI": "postgres://guichet@db/guichet"}, want: []string{"database.uri"}},
		{name: "postgres", env: map[string]string{"GUICHET_DATABASE_TYPE": "postgres", "GUICHET_DATABASE_URI": "postgres://guichet@db/guichet?sslmode=disable"}, want: nil},
		{name: "ha on sqlite", env: map[string]string{"GUICHET_HA_ENABLED": "true"}, want: []string{"ha.enabled"}},
		{name: "ha on postgres", env: map[string]string{"GUICHET_HA_ENABLED": "true", "GUICHET_DATABASE_TYPE": "postgres", "GUICHET_DATABASE_URI": "postgres://guichet@db/guichet"}, want: nil},
		{name: "ha retry too short", env: map[string]string{"GUICHET_HA_RETRY": "10ms"}, want: []string{"ha.retry"}},
		{name: "postgres pool too small", env: map[string]string{"GUICHET_DATABASE_TYPE": "postgres", "GUICHET_DATABASE_URI": "postgres://guichet@db/guichet", "GUICHET_DATABASE_MAX_OPEN_CONNS": "2"}, want: []string{"database.max_open_conns"}},
		{name: "negative pool", env: map[string]string{"GUICHET_DATABASE_MAX_OPEN_CONNS": "-1"}, want: []string{"database.max_open_conns"}},
		{name: "policy url relative", env: map[string]string{"GUICHET_POLICY_URL": "/politique"}, want: []string{"policy.url"}},
		{name: "policy version empty", env: map[string]string{"GUICHET_POLICY_VERSION": ""}, want: []string{"policy.version"}},
		{name: "log level", env: map[string]string{"GUICHET_LOG_LEVEL": "verbose"}, want: []string{"log.level"}},
		{name: "log level upper case", env: map[string]string{"GUICHET_LOG_LEVEL": "INFO"}, want: []string{"log.level"}},
		{name: "log format", env: map[string]string{"GUICHET_LOG_FORMAT": "xml"}, want: []string{"log.format"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(writeFile(t, baseYAML), lookup(merge(secretEnv(), tt.env)))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if got := problemKeys(t, err); !slices.Equal(got, tt.want) {
				t.Errorf("problems = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidationErrorNeverShowsSecrets(t *testing.T) {
	secrets := []string{testPassword, testPickleKey, testAPIKey, testAccessToken}
	tests := []struct {
		name   string
		matrix string
		yaml   string
		env    map[string]string
	}{
		{
			name: "secrets in env, other keys bad",
			env: merge(secretEnv(), map[string]string{
				"GUICHET_MATRIX_HOMESERVER": "nope",
				"GUICHET_LOG_LEVEL":         "loud",
				"GUICHET_MODERATORS_USERS":  "bob",
			}),
		},
		{
			name: "secrets in the file, other keys bad",
			matrix: `
  password: ` + testPassword + `
  pickle_key: ` + testPickleKey + `
  access_token: ` + testAccessToken + `
`,
			yaml: `
albert:
  api_key: ` + testAPIKey + `
  timeout: 0s
`,
			env: map[string]string{"GUICHET_SUPPORT_ROOM": "room"},
		},
		{
			name: "pickle key present but too short",
			env: merge(secretEnv(), map[string]string{
				"GUICHET_MATRIX_PICKLE_KEY":   "tooShortKey9",
				"GUICHET_MATRIX_ACCESS_TOKEN": testAccessToken, // without device id
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(writeFile(t, yamlWith(tt.matrix, tt.yaml)), lookup(tt.env))
			if len(problemKeys(t, err)) == 0 {
				t.Fatal("no problems reported")
			}
			var ve *config.ValidationError
			errors.As(err, &ve)
			for _, text := range []string{err.Error(), strings.Join(problemWants(ve), "\n")} {
				for _, s := range append(secrets, "tooShortKey9") {
					if strings.Contains(text, s) {
						t.Errorf("error shows secret %q:\n%s", s, text)
					}
				}
			}
		})
	}
}

func problemWants(ve *config.ValidationError) []string {
	var out []string
	for _, p := range ve.Problems {
		out = append(out, p.Key+" "+p.Want)
	}
	return out
}

func TestLoadOtherErrors(t *testing.T) {
	tests := []struct {
		name string
		file func(t *testing.T) string
		env  map[string]string
	}{
		{name: "missing file", file: func(t *testing.T) string { return filepath.Join(t.TempDir(), "absent.yaml") }},
		{name: "malformed YAML", file: func(t *testing.T) string { return writeFile(t, "matrix: [unclosed\n") }},
		{
			name: "duration that does not parse",
			file: func(t *testing.T) string { return writeFile(t, baseYAML) },
			env:  merge(secretEnv(), map[string]string{"GUICHET_ALBERT_TIMEOUT": "two minutes"}),
		},
		{
			name: "number that does not parse",
			file: func(t *testing.T) string { return writeFile(t, baseYAML) },
			env:  merge(secretEnv(), map[string]string{"GUICHET_MODERATORS_MIN_POWER_LEVEL": "moderator"}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(tt.file(t), lookup(tt.env))
			if err == nil {
				t.Fatalf("Load = %+v, want an error", c)
			}
			if errors.Is(err, config.ErrInvalid) {
				t.Errorf("error %v is a validation error; want a read or decode error", err)
			}
			for _, s := range []string{testPassword, testPickleKey, testAPIKey} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error shows secret %q: %v", s, err)
				}
			}
		})
	}
}

func TestEnvFromFile(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // name in a temp dir -> content
		yaml  string            // appended to the base file
		env   map[string]string // "{dir}/" stands for the temp dir
		check func(t *testing.T, c *config.Config)
		// On failure: the keys named, and text the message must hold.
		wantProblems []string
		wantText     []string
	}{
		{
			name:  "hooks secret from a file",
			files: map[string]string{"hooks": "0123456789abcdef-hooks\n"},
			env: merge(secretEnv(), map[string]string{
				"GUICHET_HOOKS_DECISIONS_URL": "https://rh.example.org/guichet",
				"GUICHET_HOOKS_SECRET_FILE":   "{dir}/hooks",
			}),
			check: func(t *testing.T, c *config.Config) {
				if c.Hooks.Secret != "0123456789abcdef-hooks" || c.Hooks.DecisionsURL != "https://rh.example.org/guichet" {
					t.Errorf("Hooks = %q, %q; want the file's secret without newline", c.Hooks.DecisionsURL, c.Hooks.Secret)
				}
			},
		},
		{
			name:  "secrets from files, trailing newline trimmed",
			files: map[string]string{"password": testPassword + "\n", "pickle": testPickleKey + "\r\n", "api": testAPIKey + "\n\n"},
			env: map[string]string{
				"GUICHET_MATRIX_PASSWORD_FILE":   "{dir}/password",
				"GUICHET_MATRIX_PICKLE_KEY_FILE": "{dir}/pickle",
				"GUICHET_ALBERT_API_KEY_FILE":    "{dir}/api",
			},
			check: func(t *testing.T, c *config.Config) {
				if c.Matrix.Password != testPassword || c.Matrix.PickleKey != testPickleKey || c.Albert.APIKey != testAPIKey {
					t.Errorf("Password, PickleKey, APIKey = %q, %q, %q; want the files' without newlines",
						c.Matrix.Password, c.Matrix.PickleKey, c.Albert.APIKey)
				}
			},
		},
		{
			name:  "inner and leading spaces kept",
			files: map[string]string{"password": "  pass word \n"},
			env: map[string]string{
				"GUICHET_MATRIX_PASSWORD_FILE": "{dir}/password",
				"GUICHET_MATRIX_PICKLE_KEY":    testPickleKey,
				"GUICHET_ALBERT_API_KEY":       testAPIKey,
			},
			check: func(t *testing.T, c *config.Config) {
				if c.Matrix.Password != "  pass word " {
					t.Errorf("Password = %q, want %q", c.Matrix.Password, "  pass word ")
				}
			},
		},
		{
			name:         "an empty variable is set too",
			files:        map[string]string{"api": testAPIKey},
			env:          merge(secretEnv(), map[string]string{"GUICHET_ALBERT_API_KEY": "", "GUICHET_ALBERT_API_KEY_FILE": "{dir}/api"}),
			wantProblems: []string{"albert.api_key"},
			wantText:     []string{"GUICHET_ALBERT_API_KEY and GUICHET_ALBERT_API_KEY_FILE"},
		},
		{
			name:  "a file overrides the YAML file's value",
			files: map[string]string{"api": testAPIKey},
			yaml: `
albert:
  api_key: file-api-key
`,
			env: map[string]string{
				"GUICHET_MATRIX_PASSWORD":     testPassword,
				"GUICHET_MATRIX_PICKLE_KEY":   testPickleKey,
				"GUICHET_ALBERT_API_KEY_FILE": "{dir}/api",
			},
			check: func(t *testing.T, c *config.Config) {
				if c.Albert.APIKey != testAPIKey {
					t.Errorf("APIKey = %q, want the secret file's", c.Albert.APIKey)
				}
			},
		},
		{
			name:  "every key, not only secrets",
			files: map[string]string{"timeout": "45s\n", "mods": "@a:x\n@b:y\n", "room": "!abc:agent.dinum.tchap.gouv.fr\n"},
			env: merge(secretEnv(), map[string]string{
				"GUICHET_ALBERT_TIMEOUT_FILE":   "{dir}/timeout",
				"GUICHET_MODERATORS_USERS_FILE": "{dir}/mods",
				"GUICHET_SUPPORT_ROOM_FILE":     "{dir}/room",
			}),
			check: func(t *testing.T, c *config.Config) {
				if c.Albert.Timeout != 45*time.Second {
					t.Errorf("Timeout = %s, want 45s", c.Albert.Timeout)
				}
				if want := []string{"@a:x", "@b:y"}; !slices.Equal(c.Moderators.Users, want) {
					t.Errorf("Moderators.Users = %q, want %q (one per line)", c.Moderators.Users, want)
				}
				if c.SupportRoom != "!abc:agent.dinum.tchap.gouv.fr" {
					t.Errorf("SupportRoom = %q", c.SupportRoom)
				}
			},
		},
		{
			name:         "both set",
			files:        map[string]string{"password": "other-password\n"},
			env:          merge(secretEnv(), map[string]string{"GUICHET_MATRIX_PASSWORD_FILE": "{dir}/password"}),
			wantProblems: []string{"matrix.password"},
			wantText:     []string{"GUICHET_MATRIX_PASSWORD and GUICHET_MATRIX_PASSWORD_FILE", "only one"},
		},
		{
			name: "missing file",
			env: map[string]string{
				"GUICHET_MATRIX_PASSWORD":        testPassword,
				"GUICHET_MATRIX_PICKLE_KEY_FILE": "{dir}/absent",
				"GUICHET_ALBERT_API_KEY":         testAPIKey,
			},
			// Not also "matrix.pickle_key: required": the key was given.
			wantProblems: []string{"matrix.pickle_key"},
			wantText:     []string{"GUICHET_MATRIX_PICKLE_KEY_FILE names a file that cannot be read", "no such file"},
		},
		{
			name:  "a directory",
			files: map[string]string{"secrets/x": "x"},
			env: map[string]string{
				"GUICHET_MATRIX_PASSWORD":     testPassword,
				"GUICHET_MATRIX_PICKLE_KEY":   testPickleKey,
				"GUICHET_ALBERT_API_KEY_FILE": "{dir}/secrets",
			},
			wantProblems: []string{"albert.api_key"},
			wantText:     []string{"GUICHET_ALBERT_API_KEY_FILE names a file that cannot be read"},
		},
		{
			name: "the secret itself put in the variable is not shown",
			env: map[string]string{
				"GUICHET_MATRIX_PASSWORD_FILE": testPassword,
				"GUICHET_MATRIX_PICKLE_KEY":    testPickleKey,
				"GUICHET_ALBERT_API_KEY":       testAPIKey,
			},
			wantProblems: []string{"matrix.password"},
			wantText:     []string{"GUICHET_MATRIX_PASSWORD_FILE"},
		},
		{
			name:  "with other problems, all at once",
			files: map[string]string{"password": "other-password"},
			env: map[string]string{
				"GUICHET_MATRIX_PASSWORD":        testPassword,
				"GUICHET_MATRIX_PASSWORD_FILE":   "{dir}/password",
				"GUICHET_MATRIX_PICKLE_KEY":      testPickleKey,
				"GUICHET_ALBERT_API_KEY_FILE":    "{dir}/absent",
				"GUICHET_LOG_LEVEL":              "loud",
				"GUICHET_MATRIX_HOMESERVER_FILE": "{dir}/absent",
			},
			wantProblems: []string{"albert.api_key", "matrix.homeserver", "matrix.password", "log.level"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				file := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			env := map[string]string{}
			for k, v := range tt.env {
				env[k] = strings.ReplaceAll(v, "{dir}/", dir+string(filepath.Separator))
			}
			c, err := config.Load(writeFile(t, yamlWith("", tt.yaml)), lookup(env))
			if tt.wantProblems == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				tt.check(t, c)
				return
			}
			if got := problemKeys(t, err); !slices.Equal(got, tt.wantProblems) {
				t.Errorf("problems = %q, want %q\n%v", got, tt.wantProblems, err)
			}
			for _, w := range tt.wantText {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, s := range []string{testPassword, testPickleKey, testAPIKey, "other-password"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error shows secret %q:\n%v", s, err)
				}
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	tests := []struct{ key, want string }{
		{"albert.api_key", "GUICHET_ALBERT_API_KEY"},
		{"matrix.password", "GUICHET_MATRIX_PASSWORD"},
		{"matrix.pickle_key", "GUICHET_MATRIX_PICKLE_KEY"},
		{"moderators.users", "GUICHET_MODERATORS_USERS"},
		{"moderators.min_power_level", "GUICHET_MODERATORS_MIN_POWER_LEVEL"},
		{"support_room", "GUICHET_SUPPORT_ROOM"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := config.EnvName(tt.key); got != tt.want {
				t.Errorf("EnvName(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

func TestExampleConfig(t *testing.T) {
	const example = "../config.example.yaml"
	if _, err := os.Stat(example); errors.Is(err, os.ErrNotExist) {
		t.Skip("config.example.yaml not written yet")
	}

	t.Run("needs only the secrets", func(t *testing.T) {
		_, err := config.Load(example, lookup(nil))
		want := []string{"matrix.password", "matrix.pickle_key", "albert.api_key"}
		if got := problemKeys(t, err); !slices.Equal(got, want) {
			t.Errorf("problems = %q, want only the secrets %q", got, want)
		}
	})

	t.Run("loads with secrets from env", func(t *testing.T) {
		c, err := config.Load(example, lookup(secretEnv()))
		if err != nil {
			t.Fatalf("Load(%s): %v", example, err)
		}
		if c.Matrix.Password != testPassword || c.Matrix.PickleKey != testPickleKey || c.Albert.APIKey != testAPIKey {
			t.Error("secrets from the environment were not applied")
		}
		if c.Moderators.MinPowerLevel != 50 {
			t.Errorf("MinPowerLevel = %d, want 50", c.Moderators.MinPowerLevel)
		}
		if !slices.Contains(c.Access.AutoApprove, "@*:agent.dinum.tchap.gouv.fr") {
			t.Errorf("AutoApprove = %q, want the DINUM glob", c.Access.AutoApprove)
		}
		if !slices.Contains(c.Access.Deny, "@*:agent.externe.tchap.gouv.fr") {
			t.Errorf("Deny = %q, want the externe glob", c.Access.Deny)
		}
		if c.Policy.Version == "" || c.Policy.URL == "" {
			t.Errorf("Policy = %+v", c.Policy)
		}
	})

	t.Run("validates through Validate too", func(t *testing.T) {
		c, err := config.Load(example, lookup(secretEnv()))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("Validate: %v", err)
		}
	})
}

// The defaults, once the keys that have none are given, are a valid
// configuration: configurations built in code start from them.
func TestDefaultsAreValid(t *testing.T) {
	cfg, err := config.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Privacy.Retention != 30*24*time.Hour || cfg.Limits.Breaker.MaxWait != 2*time.Minute {
		t.Errorf("Defaults = %+v %+v: a default is missing", cfg.Privacy, cfg.Limits.Breaker)
	}
	cfg.Matrix.Homeserver, cfg.Matrix.UserID = "https://matrix.example.org", "@bot:example.org"
	cfg.Matrix.Password, cfg.Matrix.PickleKey = "mot-de-passe", "cle-de-chiffrement-0123456789"
	cfg.SupportRoom, cfg.Albert.APIKey = "!support:example.org", "cle"
	cfg.Policy.URL, cfg.Policy.Version = "https://example.org/politique", "1"
	if err := cfg.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
}

// TestRetrievalCollections: the ids come from a YAML list or from the
// environment, and anything but integers names the key.
func TestRetrievalCollections(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		env     string
		want    []int
		problem bool
	}{
		{name: "YAML list", yaml: "retrieval:\n  collections: [150281, 139226]\n", want: []int{150281, 139226}},
		{name: "YAML block list", yaml: "retrieval:\n  collections:\n    - 150277\n", want: []int{150277}},
		{name: "empty", yaml: "retrieval:\n  collections: []\n", want: []int{}},
		{name: "environment wins", yaml: "retrieval:\n  collections: [1]\n", env: "150281, 139226", want: []int{150281, 139226}},
		{name: "YAML word", yaml: "retrieval:\n  collections: [150281, legifrance]\n", problem: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := secretEnv()
			if tt.env != "" {
				env["GUICHET_RETRIEVAL_COLLECTIONS"] = tt.env
			}
			c, err := config.Load(writeFile(t, baseYAML+tt.yaml), lookup(env))
			if tt.problem {
				if err == nil || !strings.Contains(err.Error(), "retrieval.collections") {
					t.Fatalf("Load = %v, want a problem naming retrieval.collections", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Retrieval.Collections, tt.want) {
				t.Errorf("collections = %v, want %v", c.Retrieval.Collections, tt.want)
			}
		})
	}
}
