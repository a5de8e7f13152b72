// Package dendrite runs a real Dendrite homeserver on loopback for end-to-end
// tests and demos.
//
// A Server is a dendrite process listening on 127.0.0.1 with SQLite databases
// in its own data folder, federation off, rate limiting off and a random
// registration shared secret. Several servers can run at once.
package dendrite

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
	"maunium.net/go/mautrix/id"
)

// Version is the Dendrite release this package runs.
const Version = "v0.13.8"

const modulePath = "github.com/matrix-org/dendrite"

// binaries are the commands EnsureBinaries installs. Start uses dendrite,
// generate-config and generate-keys; create-account is there for manual use.
var binaries = []string{"dendrite", "generate-config", "generate-keys", "create-account"}

// stopTimeout is how long Stop waits after SIGTERM before it kills.
const stopTimeout = 5 * time.Second

// BinDir returns the folder with the dendrite binaries: $GUICHET_DENDRITE_BIN
// if set, else <repo root>/.cache/dendrite/<Version>, where the repo root is
// the nearest folder holding go.mod, walking up from the working directory.
func BinDir() (string, error) {
	if dir := os.Getenv("GUICHET_DENDRITE_BIN"); dir != "" {
		return filepath.Abs(dir)
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".cache", "dendrite", Version), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("dendrite: no go.mod above the working directory; set GUICHET_DENDRITE_BIN")
		}
		dir = parent
	}
}

// missingBinaries lists the binaries absent from dir.
func missingBinaries(dir string) []string {
	var missing []string
	for _, name := range binaries {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
			missing = append(missing, name)
		}
	}
	return missing
}

// EnsureBinaries builds the dendrite binaries into dir with
// `go install github.com/matrix-org/dendrite/cmd/...@Version` (GOBIN=dir,
// CGO_ENABLED=1) if any of them is missing; it does nothing when all are
// present. The build output goes to log (nil discards it). A cold build takes
// a few minutes. Concurrent callers on the same dir build only once.
func EnsureBinaries(ctx context.Context, dir string, log io.Writer) error {
	if len(missingBinaries(dir)) == 0 {
		return nil
	}
	if log == nil {
		log = io.Discard
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Serialise builds across processes (go test runs packages in parallel).
	lock, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("dendrite: lock %s: %w", dir, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if len(missingBinaries(dir)) == 0 {
		return nil
	}
	args := []string{"install"}
	for _, name := range binaries {
		args = append(args, modulePath+"/cmd/"+name+"@"+Version)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=1")
	cmd.Dir = os.TempDir() // outside any module or workspace
	cmd.Stdout, cmd.Stderr = log, log
	fmt.Fprintf(log, "dendrite: building %s into %s\n", Version, dir)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dendrite: go install %s: %w", Version, err)
	}
	if missing := missingBinaries(dir); len(missing) > 0 {
		return fmt.Errorf("dendrite: still missing after build: %s", strings.Join(missing, ", "))
	}
	return nil
}

// Options configures Start.
type Options struct {
	BinDir     string    // folder with the dendrite binaries; required
	DataDir    string    // fresh empty folder, e.g. t.TempDir(); required
	ServerName string    // Matrix server name; default "localhost"
	Log        io.Writer // receives dendrite's stdout and stderr; nil discards
}

// Server is a running dendrite process. Stop it with Stop.
type Server struct {
	URL        string // base URL of the client API, http://127.0.0.1:PORT
	ServerName string // Matrix server name, the part after ':' in user ids

	secret  string // registration shared secret
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	waitErr error         // result of cmd.Wait, valid once exited is closed
	output  *tailBuffer   // last bytes of dendrite's output, for errors
	http    *http.Client

	stopOnce sync.Once
	stopErr  error
}

// Start writes a config into opts.DataDir (from `generate-config -ci`,
// adjusted), generates the signing key, starts dendrite on a free 127.0.0.1
// port and returns once GET /_matrix/client/versions answers and the server
// on that port proves it holds this run's shared secret. ctx bounds the start
// only: cancelling it later does not stop the server. If the port was taken in
// the meantime, Start wipes opts.DataDir and retries once on another port.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.BinDir == "" || opts.DataDir == "" {
		return nil, errors.New("dendrite: Options.BinDir and Options.DataDir are required")
	}
	if opts.ServerName == "" {
		opts.ServerName = "localhost"
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir(dataDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	} else if len(entries) > 0 {
		return nil, fmt.Errorf("dendrite: data dir %s is not empty (a data dir serves one run)", dataDir)
	}
	opts.DataDir = dataDir

	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		if attempt > 0 {
			// Dendrite may have created databases before failing to bind.
			if err := emptyDir(dataDir); err != nil {
				return nil, err
			}
		}
		s, err := start(ctx, opts)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errBind) || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

var errBind = errors.New("dendrite could not bind its port")

func start(ctx context.Context, opts Options) (*Server, error) {
	secret := randomHex(16)
	cfgPath := filepath.Join(opts.DataDir, "dendrite.yaml")
	keyPath := filepath.Join(opts.DataDir, "matrix_key.pem")
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, err
	}
	if err := writeConfig(ctx, opts, cfgPath, keyPath, secret); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, filepath.Join(opts.BinDir, "generate-keys"),
		"-private-key", keyPath).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("dendrite: generate-keys: %w: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)

	output := &tailBuffer{max: 8 << 10}
	w := io.MultiWriter(opts.Log, output)
	cmd := exec.Command(filepath.Join(opts.BinDir, "dendrite"), "-config", cfgPath, "-http-bind-address", addr)
	cmd.Dir = opts.DataDir
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dendrite: start: %w", err)
	}
	s := &Server{
		URL:        "http://" + addr,
		ServerName: opts.ServerName,
		secret:     secret,
		cmd:        cmd,
		exited:     make(chan struct{}),
		output:     output,
		http:       &http.Client{Transport: &http.Transport{Proxy: nil}},
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls /_matrix/client/versions until it answers 200, the process
// exits, or ctx ends.
func (s *Server) waitReady(ctx context.Context) error {
	const interval = 25 * time.Millisecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-s.exited:
			out := s.output.String()
			if strings.Contains(out, "address already in use") {
				return fmt.Errorf("dendrite: %w: %s", errBind, lastLines(out, 5))
			}
			return fmt.Errorf("dendrite exited during start (%v): %s", s.waitErr, lastLines(out, 10))
		case <-ctx.Done():
			return fmt.Errorf("dendrite: not ready at %s: %w; output: %s", s.URL, ctx.Err(), lastLines(s.output.String(), 10))
		case <-timer.C:
		}
		if s.versionsOK(ctx) {
			return s.checkOwnership(ctx)
		}
		timer.Reset(interval)
	}
}

// versionsOK tells whether GET /_matrix/client/versions answers 200 within a
// second (whoever holds the port may never answer).
func (s *Server) versionsOK(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/_matrix/client/versions", nil)
	if err != nil {
		return false
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// checkOwnership makes sure the server answering on s.URL is this dendrite
// and not another process that took the port: it registers an invalid
// localpart with our shared secret. Dendrite checks the MAC first, so 400
// (invalid username) means the secret matched and 403 (bad mac) that it did
// not.
func (s *Server) checkOwnership(ctx context.Context) error {
	_, err := s.register(ctx, "_probe", "probe-password", false)
	var he *httpError
	switch {
	case errors.As(err, &he) && he.status == http.StatusBadRequest:
		return nil
	case errors.As(err, &he) && he.status == http.StatusForbidden:
		return fmt.Errorf("dendrite: %w: another server answers on %s", errBind, s.URL)
	case err == nil:
		return errors.New("dendrite: ownership probe registered an invalid user")
	default:
		return fmt.Errorf("dendrite: ownership probe: %w", err)
	}
}

// Stop sends SIGTERM to dendrite (and its process group), waits up to 5 s,
// then kills it. It is safe to call more than once and from several
// goroutines. It returns an error if dendrite had already exited on its own,
// as that means it crashed.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		select {
		case <-s.exited:
			s.stopErr = fmt.Errorf("dendrite had exited on its own (%v): %s", s.waitErr, lastLines(s.output.String(), 10))
			return
		default:
		}
		pgid := s.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-s.exited
		}
	})
	return s.stopErr
}

// Account is a Matrix user with a logged-in device.
type Account struct {
	UserID      id.UserID
	AccessToken string
	DeviceID    id.DeviceID
	Password    string
}

// Register creates an account through the shared-secret registration API
// (/_synapse/admin/v1/register) and returns it logged in. Every account made
// this way gets the same device id; use Login for a distinct device.
// Dendrite wants passwords of 8 characters or more.
func (s *Server) Register(ctx context.Context, localpart, password string, admin bool) (Account, error) {
	resp, err := s.register(ctx, localpart, password, admin)
	if err != nil {
		return Account{}, fmt.Errorf("dendrite: register %s: %w", localpart, err)
	}
	return resp.account(password), nil
}

func (s *Server) register(ctx context.Context, localpart, password string, admin bool) (loginResponse, error) {
	const path = "/_synapse/admin/v1/register"
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	if err := s.do(ctx, http.MethodGet, path, nil, &nonce); err != nil {
		return loginResponse{}, err
	}
	kind := "notadmin"
	if admin {
		kind = "admin"
	}
	mac := hmac.New(sha1.New, []byte(s.secret))
	mac.Write([]byte(strings.Join([]string{nonce.Nonce, localpart, password, kind}, "\x00")))
	req := map[string]any{
		"nonce":    nonce.Nonce,
		"username": localpart,
		"password": password,
		"admin":    admin,
		"mac":      hex.EncodeToString(mac.Sum(nil)),
	}
	var resp loginResponse
	err := s.do(ctx, http.MethodPost, path, req, &resp)
	return resp, err
}

// Login logs localpart in with its password and returns the account with a
// new access token. An empty deviceID gets a fresh device id from the server.
func (s *Server) Login(ctx context.Context, localpart, password, deviceID string) (Account, error) {
	req := map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": localpart},
		"password":   password,
	}
	if deviceID != "" {
		req["device_id"] = deviceID
	}
	var resp loginResponse
	if err := s.do(ctx, http.MethodPost, "/_matrix/client/v3/login", req, &resp); err != nil {
		return Account{}, fmt.Errorf("dendrite: login %s: %w", localpart, err)
	}
	return resp.account(password), nil
}

type loginResponse struct {
	UserID      id.UserID   `json:"user_id"`
	AccessToken string      `json:"access_token"`
	DeviceID    id.DeviceID `json:"device_id"`
}

func (r loginResponse) account(password string) Account {
	return Account{UserID: r.UserID, AccessToken: r.AccessToken, DeviceID: r.DeviceID, Password: password}
}

// do sends a JSON request to dendrite and decodes a 200 JSON answer into out.
func (s *Server) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &httpError{method: method, path: path, status: resp.StatusCode, body: b}
	}
	return json.Unmarshal(b, out)
}

// httpError is a non-200 answer from dendrite.
type httpError struct {
	method, path string
	status       int
	body         []byte
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.method, e.path, e.status, e.body)
}

// writeConfig writes the dendrite config for opts to cfgPath.
func writeConfig(ctx context.Context, opts Options, cfgPath, keyPath, secret string) error {
	out, err := exec.CommandContext(ctx, filepath.Join(opts.BinDir, "generate-config"),
		"-ci", "-server", opts.ServerName, "-dir", opts.DataDir).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return fmt.Errorf("dendrite: generate-config: %w: %s", err, stderr)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		return fmt.Errorf("dendrite: parse generated config: %w", err)
	}
	db := func(name string) map[string]any {
		return map[string]any{"connection_string": "file:" + filepath.Join(opts.DataDir, "dendrite_"+name+".db")}
	}
	for _, kv := range []struct {
		key   string
		value any
	}{
		{"global.server_name", opts.ServerName},
		{"global.private_key", keyPath},
		{"global.disable_federation", true},
		{"global.presence.enable_inbound", false},
		{"global.presence.enable_outbound", false},
		{"global.jetstream.in_memory", true},
		{"global.jetstream.storage_path", filepath.Join(opts.DataDir, "jetstream")},
		{"global.server_notices.enabled", false},
		{"global.report_stats.enabled", false},
		{"global.metrics.enabled", false},
		{"client_api.registration_disabled", true}, // shared-secret registration still works
		{"client_api.registration_shared_secret", secret},
		{"client_api.rate_limiting.enabled", false},
		{"user_api.bcrypt_cost", 4},
		{"federation_api.database", db("federationapi")},
		{"key_server.database", db("keyserver")},
		{"media_api.database", db("mediaapi")},
		{"media_api.base_path", filepath.Join(opts.DataDir, "media")},
		{"room_server.database", db("roomserver")},
		{"sync_api.database", db("syncapi")},
		{"sync_api.search.index_path", filepath.Join(opts.DataDir, "searchindex")},
		{"user_api.account_database", db("userapi")},
		{"relay_api.database", db("relayapi")},
		{"mscs.database", db("mscs")},
		{"tracing.enabled", false},
		{"logging", []any{map[string]any{"type": "std", "level": "warn"}}},
	} {
		if err := setPath(cfg, kv.key, kv.value); err != nil {
			return err
		}
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(cfgPath, b, 0o600)
}

// setPath sets a dotted key in a YAML map, replacing the leaf (maps included)
// and refusing to create sections the generated config does not have, so a
// renamed key shows up as an error instead of being ignored.
func setPath(m map[string]any, key string, value any) error {
	parts := strings.Split(key, ".")
	for i, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			return fmt.Errorf("dendrite: generated config has no section %q", strings.Join(parts[:i+1], "."))
		}
		m = next
	}
	leaf := parts[len(parts)-1]
	if _, ok := m[leaf]; !ok {
		return fmt.Errorf("dendrite: generated config has no key %q", key)
	}
	m[leaf] = value
	return nil
}

// freePort asks the kernel for a free TCP port on 127.0.0.1. It is a
// variable so that a test can hand out a taken port.
var freePort = func() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

// emptyDir removes everything inside dir.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// tailBuffer keeps the last max bytes written to it; safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
