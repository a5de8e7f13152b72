package main

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"guichet"
	"guichet/config"
)

func TestExitCodesAndConfigErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, []byte("log:\n  level: info\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) (string, bool) { return "", false }
	secretEnv := func(k string) (string, bool) {
		if k == "GUICHET_ALBERT_API_KEY" {
			return "sk-secret-value-123", true
		}
		return "", false
	}
	tests := []struct {
		name     string
		args     []string
		env      func(string) (string, bool)
		wantCode int
		want     []string
		never    string
	}{
		{"bad flag", []string{"-nope"}, noEnv, exitUsage, []string{"flag provided but not defined"}, ""},
		{"missing file", []string{"-config", filepath.Join(dir, "absent.yaml")}, noEnv, exitConfig, []string{"failed to read config file"}, ""},
		{"every bad key at once", []string{"-config", empty}, secretEnv, exitConfig,
			[]string{"matrix.homeserver", "matrix.user_id", "matrix.pickle_key", "support_room", "policy.url", "GUICHET_MATRIX_PASSWORD"},
			"sk-secret-value-123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(tt.args, tt.env, io.Discard, &stderr); code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr: %s)", code, tt.wantCode, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if tt.never != "" && strings.Contains(stderr.String(), tt.never) {
				t.Errorf("stderr shows a secret:\n%s", stderr.String())
			}
			if n := strings.Count(stderr.String(), "invalid configuration"); n > 1 {
				t.Errorf("%d error messages, want one", n)
			}
		})
	}
}

func TestReadVersions(t *testing.T) {
	mautrix := func(version string, replace *debug.Module) []*debug.Module {
		return []*debug.Module{
			{Path: "github.com/rs/zerolog", Version: "v1.34.0"},
			{Path: "maunium.net/go/mautrix", Version: version, Replace: replace},
		}
	}
	vcs := func(revision, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: revision}, {Key: "vcs.modified", Value: modified}}
	}
	const commit = "523e82a1b2c3d4e5f60718293a4b5c6d7e8f9012"
	tests := []struct {
		name        string
		linked      string
		info        *debug.BuildInfo
		wantGuichet string
		wantMautrix string
	}{
		{"from the Makefile", "v1.2.0-3-g523e82a-dirty",
			&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(commit, "true"), Deps: mautrix("v0.32.0", nil)},
			"v1.2.0-3-g523e82a-dirty", "v0.32.0"},
		{"from the commit", "",
			&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(commit, "false"), Deps: mautrix("v0.32.0", nil)},
			"523e82a1b2c3", "v0.32.0"},
		{"from a modified work tree", "",
			&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(commit, "true"), Deps: mautrix("v0.32.0", nil)},
			"523e82a1b2c3-dirty", "v0.32.0"},
		{"from go install module@version", "",
			&debug.BuildInfo{Main: debug.Module{Version: "v1.3.0"}, Deps: mautrix("v0.32.0", nil)},
			"v1.3.0", "v0.32.0"},
		{"nothing known", "",
			&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			"dev", "unknown"},
		{"no build information", "", nil, "dev", "unknown"},
		{"mautrix replaced by a version", "",
			&debug.BuildInfo{Deps: mautrix("v0.32.0", &debug.Module{Path: "maunium.net/go/mautrix", Version: "v0.32.1-0.20261120-abcdef"})},
			"dev", "v0.32.1-0.20261120-abcdef"},
		{"mautrix replaced by a fork", "",
			&debug.BuildInfo{Deps: mautrix("v0.32.0", &debug.Module{Path: "example.org/mautrix", Version: "v0.32.5"})},
			"dev", "example.org/mautrix v0.32.5 (replacing v0.32.0)"},
		{"mautrix replaced by a directory", "",
			&debug.BuildInfo{Deps: mautrix("v0.32.0", &debug.Module{Path: "../mautrix-go"})},
			"dev", "../mautrix-go (replacing v0.32.0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := readVersions(tt.linked, tt.info)
			if v.guichet != tt.wantGuichet || v.mautrix != tt.wantMautrix || v.goVersion != runtime.Version() {
				t.Errorf("readVersions = %+v, want guichet %q, go %q, mautrix %q", v, tt.wantGuichet, runtime.Version(), tt.wantMautrix)
			}
		})
	}
}

func TestOperatorFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // a fragment of stdout
		wantStderr string
	}{
		{"version", []string{"-version"}, exitOK, "guichet ", ""},
		{"version names Go", []string{"-version"}, exitOK, "(" + runtime.Version() + ", mautrix ", ""},
		{"generate-config", []string{"-generate-config"}, exitOK, "# guichet configuration.", ""},
		{"two at once", []string{"-version", "-generate-config"}, exitUsage, "", "go alone"},
		{"three at once", []string{"-version", "-generate-config", "-check-config"}, exitUsage, "", "go alone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			// The environment is empty: these flags need no configuration.
			code := run(tt.args, func(string) (string, bool) { return "", false }, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr: %s)", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, stderr.String())
			}
			if tt.wantCode != exitOK && stdout.Len() > 0 {
				t.Errorf("stdout on failure:\n%s", stdout.String())
			}
		})
	}
}

// TestVersionFromTheBuild builds guichet as the Makefile does, so that the
// variable the linker sets is the one -version prints.
func TestVersionFromTheBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "guichet")
	build := exec.Command("go", "build", "-tags", "goolm", "-ldflags", "-X main.version=v9.9.9-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-version").Output()
	if err != nil {
		t.Fatalf("guichet -version: %v", err)
	}
	want := regexp.MustCompile(`^guichet v9\.9\.9-test \(go1\.[0-9.]+\S*, mautrix v0\.[0-9]+\.[0-9]+\S*\)\n$`)
	if !want.Match(out) {
		t.Errorf("guichet -version = %q, want it to match %s", out, want)
	}
}

// secretEnv gives the three secrets the example configuration leaves empty.
func secretEnv(extra map[string]string) func(string) (string, bool) {
	env := map[string]string{
		"GUICHET_MATRIX_PASSWORD":   "bot-password",
		"GUICHET_MATRIX_PICKLE_KEY": "pickle-key-0123456789abcdef",
		"GUICHET_ALBERT_API_KEY":    "albert-key",
	}
	maps.Copy(env, extra)
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// TestGeneratedConfigLoads proves the embedded example stays true: what
// -generate-config prints, with the secrets from the environment, loads,
// validates and passes -check-config.
func TestGeneratedConfigLoads(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-generate-config"}, secretEnv(nil), &stdout, &stderr); code != exitOK {
		t.Fatalf("exit code %d, stderr: %s", code, stderr.String())
	}
	if stdout.String() != guichet.ExampleConfig() {
		t.Error("-generate-config printed something else than the embedded example")
	}
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, stdout.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(file, secretEnv(nil)); err != nil {
		t.Fatalf("the generated configuration does not load: %v", err)
	}
	stdout.Reset()
	if code := run([]string{"-check-config", "-config", file}, secretEnv(nil), &stdout, &stderr); code != exitOK {
		t.Errorf("-check-config on the generated configuration: exit code %d, stderr: %s", code, stderr.String())
	}
	stderr.Reset()
	code := run([]string{"-check-config", "-config", file}, func(string) (string, bool) { return "", false }, io.Discard, &stderr)
	if code != exitConfig {
		t.Errorf("-check-config without the secrets: exit code %d, want %d", code, exitConfig)
	}
	for _, key := range []string{"matrix.password", "matrix.pickle_key", "albert.api_key"} {
		if !strings.Contains(stderr.String(), key) {
			t.Errorf("-check-config without the secrets does not name %s:\n%s", key, stderr.String())
		}
	}
}

// TestCheckConfig checks that -check-config validates and connects to
// nothing: the homeserver and Albert point at an address that never answers
// or at a listener that counts connections, and the database is not created.
func TestCheckConfig(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var connections atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			connections.Add(1)
			c.Close()
		}
	}()
	listener := "http://" + ln.Addr().String()
	const unroutable = "http://10.255.255.1:8008" // packets to it are dropped, not refused

	tests := []struct {
		name     string
		yaml     string
		env      map[string]string
		wantCode int
		want     []string // on stdout when valid, on stderr otherwise
	}{
		{
			name:     "valid, homeserver unroutable",
			env:      map[string]string{"GUICHET_MATRIX_HOMESERVER": unroutable, "GUICHET_ALBERT_BASE_URL": listener + "/v1"},
			wantCode: exitOK,
			want:     []string{"valid configuration"},
		},
		{
			name:     "valid, homeserver listening",
			env:      map[string]string{"GUICHET_MATRIX_HOMESERVER": listener, "GUICHET_ALBERT_BASE_URL": unroutable + "/v1"},
			wantCode: exitOK,
			want:     []string{"valid configuration"},
		},
		{
			name: "every bad key named",
			env: map[string]string{
				"GUICHET_MATRIX_HOMESERVER": unroutable, "GUICHET_ALBERT_BASE_URL": listener + "/v1",
				"GUICHET_MATRIX_USER_ID": "assistant", "GUICHET_SUPPORT_ROOM": "support",
				"GUICHET_LIMITS_TIMEZONE": "Mars/Olympus", "GUICHET_LOG_LEVEL": "loud",
			},
			wantCode: exitConfig,
			want:     []string{"matrix.user_id", "support_room", "limits.timezone", "log.level"},
		},
		{
			name:     "a secret given twice",
			env:      map[string]string{"GUICHET_MATRIX_HOMESERVER": unroutable, "GUICHET_ALBERT_API_KEY_FILE": "/run/credentials/guichet.service/albert"},
			wantCode: exitConfig,
			want:     []string{"GUICHET_ALBERT_API_KEY and GUICHET_ALBERT_API_KEY_FILE"},
		},
		{
			name:     "unreadable YAML",
			yaml:     "matrix: [unclosed\n",
			wantCode: exitConfig,
			want:     []string{"failed to read config file"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "guichet.db")
			yaml := tt.yaml
			if yaml == "" {
				yaml = guichet.ExampleConfig()
			}
			file := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			env := secretEnv(merge(map[string]string{"GUICHET_DATABASE_URI": db}, tt.env))
			before := connections.Load()

			type result struct {
				code           int
				stdout, stderr string
			}
			done := make(chan result, 1)
			go func() {
				var stdout, stderr bytes.Buffer
				code := run([]string{"-check-config", "-config", file}, env, &stdout, &stderr)
				done <- result{code, stdout.String(), stderr.String()}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("-check-config still running after 20s: is it calling the homeserver?")
			}

			if r.code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr: %s)", r.code, tt.wantCode, r.stderr)
			}
			out := r.stdout
			if tt.wantCode != exitOK {
				out = r.stderr
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if n := connections.Load() - before; n != 0 {
				t.Errorf("%d connections to the homeserver or Albert, want none", n)
			}
			if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the database %s was touched (stat: %v)", db, err)
			}
		})
	}
}

func merge(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}
