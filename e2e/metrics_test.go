package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// switchProxy stands between guichet and Dendrite: while down it behaves
// like a homeserver that stopped (requests in flight are cut, new
// connections are closed at once), and up again it forwards as before.
// Dendrite itself cannot be restarted in place (a data dir serves one run).
type switchProxy struct {
	URL string
	srv *httptest.Server
	rp  *httputil.ReverseProxy

	mu       sync.Mutex
	down     bool
	inFlight map[*int]context.CancelFunc
}

func startSwitchProxy(t *testing.T, target string) *switchProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{inFlight: map[*int]context.CancelFunc{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(u) },
		FlushInterval: -1,
		Transport:     &http.Transport{Proxy: nil},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				panic(http.ErrAbortHandler) // cut: the connection closes, as when the server dies
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.srv = httptest.NewServer(p)
	p.URL = p.srv.URL
	return p
}

func (p *switchProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	key := new(int)
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	p.inFlight[key] = cancel
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.inFlight, key)
		p.mu.Unlock()
	}()
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

func (p *switchProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, cancel := range p.inFlight {
			cancel()
		}
	}
}

// scrape reads /metrics in Prometheus' text format: each series, written
// name{labels} as served, with its value.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// health is GET base+path's status and JSON body.
func health(base, path string) (int, map[string]string, error) {
	resp, err := http.Get(base + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body map[string]string
	err = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body, err
}

// waitHealth waits until base+path answers code, and returns its body.
func waitHealth(t *testing.T, base, path string, code int) map[string]string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got, body, err := health(base, path)
		if err == nil && got == code {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d (last: %d %v, %v)", path, code, got, body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// labelPair is one label of a series as served.
var labelPair = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// matrixID looks like a user, room, alias or event id: a sigil, then a
// server name after a colon.
var matrixID = regexp.MustCompile(`^[@!#$+][^:]*:.`)

// Operators scrape guichet over HTTP: its counters move as an agent
// announces herself, is approved and asks a question; no label names
// anyone; /healthz turns 503 when the homeserver goes away and 200 when it
// is back; /readyz is 200 once guichet is ready.
func TestMetricsAndHealth(t *testing.T) {
	w := newWorld(t)
	proxy := startSwitchProxy(t, w.tb.HS.URL)
	t.Cleanup(func() {
		w.stopGuichet() // before the proxy goes: guichet long-polls through it
		proxy.setDown(true)
		proxy.srv.Close()
	})
	w.cfg.Matrix.Homeserver = proxy.URL
	w.cfg.Metrics.Listen = "127.0.0.1:0"
	// A homeserver gone for a second is enough for the test to see it
	// (production waits DefaultFailingFor, three failed syncs).
	w.opts.HealthFailingFor = time.Second
	w.startGuichet()
	base := "http://" + w.app.MetricsAddr()

	waitHealth(t, base, "/readyz", http.StatusOK)
	waitHealth(t, base, "/healthz", http.StatusOK)
	before := scrape(t, base)
	if before[`guichet_sync_last_success_timestamp_seconds`] <= 0 {
		t.Errorf("no sync recorded once ready: %v", before[`guichet_sync_last_success_timestamp_seconds`])
	}

	alice, dm := activeAgent(t, w)
	ask(t, w, alice, dm, "Quelle est la capitale de la France ?")

	moved := []struct {
		series string
		by     float64
	}{
		{`guichet_access_decisions_total{decision="approved"}`, 1},
		{`guichet_questions_total{outcome="answered"}`, 1},
		{`guichet_answer_duration_seconds_count`, 1},
		{`guichet_albert_first_token_seconds_count`, 1},
		{`guichet_queue_wait_seconds_count`, 1},
	}
	var after map[string]float64
	deadline := time.Now().Add(wait)
	for {
		after = scrape(t, base)
		done := true
		for _, m := range moved {
			done = done && after[m.series]-before[m.series] >= m.by
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range moved {
		if got := after[m.series] - before[m.series]; got != m.by {
			t.Errorf("%s moved by %v, want %v", m.series, got, m.by)
		}
	}
	for _, series := range []string{`guichet_albert_tokens_total{kind="prompt"}`, `guichet_albert_tokens_total{kind="completion"}`} {
		if after[series] <= before[series] {
			t.Errorf("%s did not grow: %v then %v", series, before[series], after[series])
		}
	}
	for series, want := range map[string]float64{
		`guichet_access_requests{status="active"}`:  1,
		`guichet_access_requests{status="pending"}`: 0,
		`guichet_questions_total{outcome="failed"}`: 0,
		`guichet_breaker_open`:                      0,
		`guichet_queue_length`:                      0,
		`guichet_scrape_read_errors`:                0,
	} {
		if got, ok := after[series]; !ok || got != want {
			t.Errorf("%s = %v (served: %v), want %v", series, got, ok, want)
		}
	}
	if _, ok := after[`guichet_outbox_unsent`]; !ok {
		t.Error("guichet_outbox_unsent not served")
	}
	if after[`guichet_sync_last_success_timestamp_seconds`] < before[`guichet_sync_last_success_timestamp_seconds`] {
		t.Error("the last sync went back in time")
	}
	for series := range after {
		for _, pair := range labelPair.FindAllStringSubmatch(series, -1) {
			if matrixID.MatchString(pair[2]) || strings.Contains(pair[2], string(alice.UserID())) {
				t.Errorf("%s: label %s carries an id: %q", series, pair[1], pair[2])
			}
		}
	}

	// The homeserver goes away: guichet is unhealthy (and says why), still
	// ready; it comes back: healthy again.
	proxy.setDown(true)
	body := waitHealth(t, base, "/healthz", http.StatusServiceUnavailable)
	if body["status"] != "unhealthy" || !strings.Contains(body["reason"], "sync") {
		t.Errorf("unhealthy body %v, want the failing sync named", body)
	}
	if code, _, err := health(base, "/readyz"); err != nil || code != http.StatusOK {
		t.Errorf("/readyz = %d, %v while the homeserver is away; want 200 (ready once, ready for good)", code, err)
	}
	proxy.setDown(false)
	waitHealth(t, base, "/healthz", http.StatusOK)
	if got := scrape(t, base)[`guichet_sync_last_success_timestamp_seconds`]; got <= after[`guichet_sync_last_success_timestamp_seconds`] {
		t.Errorf("last sync %v, not after %v: the recovery was not recorded", got, after[`guichet_sync_last_success_timestamp_seconds`])
	}
}
