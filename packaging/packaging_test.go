package packaging

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"guichet/config"
)

// e2e is set by make test and CI: there, a missing tool fails the test
// instead of skipping it.
var e2e = os.Getenv("GUICHET_E2E") == "1"

const (
	unitFile      = "guichet.service"
	installedPath = "/usr/local/bin/guichet"
	testVersion   = "packaging-test"
)

// need skips the test, or fails it under GUICHET_E2E=1, when what it needs
// is missing.
func need(t *testing.T, format string, args ...any) {
	t.Helper()
	if e2e {
		t.Fatalf(format+" (required with GUICHET_E2E=1)", args...)
	}
	t.Skipf(format, args...)
}

var static struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
	took time.Duration
}

// staticBinary builds guichet with `make static`, once for the package's
// tests, so that they check the very flags the Makefile and the Containerfile
// use.
func staticBinary(t *testing.T) string {
	t.Helper()
	static.once.Do(func() {
		static.dir, static.err = os.MkdirTemp("", "guichet-static-")
		if static.err != nil {
			return
		}
		static.path = filepath.Join(static.dir, "guichet-static")
		root, err := filepath.Abs("..")
		if err != nil {
			static.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", root, "static",
			"STATIC_OUT="+static.path, "VERSION="+testVersion)
		start := time.Now()
		static.out, static.err = cmd.CombinedOutput()
		static.took = time.Since(start)
	})
	if static.err != nil {
		t.Fatalf("make static: %v\n%s", static.err, static.out)
	}
	return static.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if static.dir != "" {
		os.RemoveAll(static.dir)
	}
	os.Exit(code)
}

// TestUnitVerifies runs systemd-analyze verify on the unit, with its binary
// path pointed at a freshly built guichet, and fails on any complaint about
// the unit.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		need(t, "systemd-analyze not found (Debian package systemd): %v", err)
	}
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte(installedPath+" ")) {
		t.Fatalf("%s does not run %s", unitFile, installedPath)
	}
	bin := staticBinary(t)
	dir := t.TempDir()
	copyPath := filepath.Join(dir, unitFile)
	if err := os.WriteFile(copyPath, bytes.ReplaceAll(unit, []byte(installedPath+" "), []byte(bin+" ")), 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	t.Logf("systemd-analyze verify:\n%s", out)
	if err != nil {
		t.Fatalf("systemd-analyze verify failed: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, unitFile) {
			t.Errorf("systemd-analyze verify complains about the unit: %s", line)
		}
	}

	// The sandbox is as tight as systemd can tell offline: 0 is a fully
	// sandboxed service, 10 an unprotected one.
	out, err = exec.Command(analyze, "security", "--offline=yes", "--no-pager", copyPath).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security gave no exposure level (%v):\n%s", err, out)
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f", level)
	if level > 2 {
		t.Errorf("exposure level %.1f, want at most 2.0:\n%s", level, out)
	}
}

// TestUnitSettings checks what systemd-analyze cannot: that the unit hands
// the secrets over under the variables guichet reads, and that the restart
// policy gives up on the exit codes that no restart heals.
func TestUnitSettings(t *testing.T) {
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string][]string{}
	for _, line := range strings.Split(string(unit), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			values[k] = append(values[k], v)
		}
	}
	credentials := map[string]bool{}
	for _, c := range values["LoadCredential"] {
		id, path, _ := strings.Cut(c, ":")
		credentials[id] = true
		if !strings.HasPrefix(path, "/etc/guichet/credentials/") {
			t.Errorf("credential %s comes from %s, not /etc/guichet/credentials/", id, path)
		}
	}
	env := map[string]string{}
	for _, e := range values["Environment"] {
		k, v, _ := strings.Cut(e, "=")
		env[k] = v
	}
	for _, key := range []string{"matrix.password", "matrix.pickle_key", "albert.api_key"} {
		name := config.EnvName(key) + config.FileSuffix
		v, ok := env[name]
		if !ok {
			t.Errorf("%s is not set: guichet would not find %s", name, key)
			continue
		}
		id, ok := strings.CutPrefix(v, "%d/")
		if !ok || !credentials[id] {
			t.Errorf("%s=%s does not name a LoadCredential= file under %%d", name, v)
		}
	}
	for k, want := range map[string]string{
		"Restart":                  "on-failure",
		"RestartPreventExitStatus": "2 5", // bad configuration, expired account
		"ExecStartPre":             installedPath + " -check-config -config /etc/guichet/config.yaml",
		"ExecStart":                installedPath + " -config /etc/guichet/config.yaml",
		"StateDirectory":           "guichet",
		"WorkingDirectory":         "/var/lib/guichet",
	} {
		if got := values[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
}

// TestStaticBinaryRunsInEmptyRoot builds the binary of `make static` and
// runs -version in a root that holds nothing else: no libc, no /etc, no
// environment.
func TestStaticBinaryRunsInEmptyRoot(t *testing.T) {
	bin := staticBinary(t)
	t.Logf("make static took %v", static.took.Round(time.Millisecond))
	info, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("static binary: %.1f MiB", float64(info.Size())/(1<<20))

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s asks for a dynamic loader", bin)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v (%v)", bin, libs, err)
	}
	f.Close()

	root := t.TempDir()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "guichet"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	chroot, err := exec.LookPath("chroot")
	if err != nil {
		need(t, "chroot not found (Debian package coreutils): %v", err)
	}
	if os.Geteuid() != 0 {
		need(t, "chroot needs root; running as uid %d", os.Geteuid())
	}
	cmd := exec.Command(chroot, root, "/guichet", "-version")
	cmd.Env = []string{}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("guichet -version in an empty root: %v\nstdout: %s\nstderr: %s", err, stdout.Bytes(), stderr.Bytes())
	}
	if want := "guichet " + testVersion + " "; !strings.HasPrefix(stdout.String(), want) {
		t.Errorf("guichet -version printed %q, want it to start with %q", stdout.String(), want)
	}
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) != 1 {
		t.Errorf("the empty root holds %v (%v), want the binary alone", entries, err)
	}
}
