package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fakeDB struct{ err error }

func (f *fakeDB) Ping(context.Context) error { return f.err }

func get(t *testing.T, h http.Handler, path string) (int, status, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var s status
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
			t.Fatalf("%s: bad JSON %q: %v", path, rec.Body.String(), err)
		}
	}
	return rec.Code, s, rec.Body.String()
}

func TestHealthz(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)}
	tests := []struct {
		name   string
		steps  func(m *Metrics, db *fakeDB)
		code   int
		reason string
	}{
		{"starting, no sync yet", func(*Metrics, *fakeDB) {}, http.StatusOK, ""},
		{"start long ago, never synced", func(*Metrics, *fakeDB) { clk.Advance(91 * time.Second) }, http.StatusServiceUnavailable, "since the start"},
		{"synced recently", func(m *Metrics, _ *fakeDB) {
			clk.Advance(80 * time.Second)
			m.Synced(clk.Now())
			clk.Advance(80 * time.Second)
		}, http.StatusOK, ""},
		{"last sync too old", func(m *Metrics, _ *fakeDB) {
			m.Synced(clk.Now())
			clk.Advance(91 * time.Second)
		}, http.StatusServiceUnavailable, "no successful sync"},
		{"one failure is not enough", func(m *Metrics, _ *fakeDB) {
			m.Synced(clk.Now())
			m.SyncFailed(clk.Now())
			clk.Advance(10 * time.Second)
			m.SyncFailed(clk.Now())
		}, http.StatusOK, ""},
		{"failing for FailingFor", func(m *Metrics, _ *fakeDB) {
			m.Synced(clk.Now())
			m.SyncFailed(clk.Now())
			clk.Advance(30 * time.Second)
			m.SyncFailed(clk.Now())
		}, http.StatusServiceUnavailable, "failing"},
		{"a success ends the failure", func(m *Metrics, _ *fakeDB) {
			m.SyncFailed(clk.Now())
			clk.Advance(40 * time.Second)
			m.Synced(clk.Now())
		}, http.StatusOK, ""},
		{"database does not answer", func(m *Metrics, db *fakeDB) {
			m.Synced(clk.Now())
			db.err = errors.New("disk I/O error")
		}, http.StatusServiceUnavailable, "database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _, _, _ := newTestMetrics()
			db := &fakeDB{}
			h := m.Handler(HealthConfig{DB: db, Ready: make(chan struct{}), Now: clk.Now})
			tt.steps(m, db)
			code, s, body := get(t, h, "/healthz")
			if code != tt.code || !strings.Contains(s.Reason, tt.reason) {
				t.Errorf("GET /healthz = %d %s, want %d with %q", code, body, tt.code, tt.reason)
			}
			if code != http.StatusOK && (s.Status != "unhealthy" || s.Reason == "") {
				t.Errorf("a failing check must say why: %s", body)
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	m, _, _, _ := newTestMetrics()
	ready := make(chan struct{})
	h := m.Handler(HealthConfig{Ready: ready})
	if code, s, _ := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || s.Status != "starting" {
		t.Errorf("before ready: %d %+v", code, s)
	}
	close(ready)
	if code, s, _ := get(t, h, "/readyz"); code != http.StatusOK || s.Status != "ready" {
		t.Errorf("once ready: %d %+v", code, s)
	}
}

// Go's profiles are served only when asked for.
func TestProfiles(t *testing.T) {
	m, _, _, _ := newTestMetrics()
	for _, on := range []bool{false, true} {
		h := m.Handler(HealthConfig{Ready: make(chan struct{}), Profiles: on})
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			want := http.StatusNotFound
			if on {
				want = http.StatusOK
			}
			if rec.Code != want {
				t.Errorf("profiles %v: GET %s = %d, want %d", on, path, rec.Code, want)
			}
		}
	}
}

// /metrics speaks Prometheus' text format, over a real listener, and the
// server stops with its context.
func TestServeMetrics(t *testing.T) {
	m, _, _, _ := newTestMetrics()
	m.Question(OutcomeAnswered)
	srv, err := Listen("127.0.0.1:0", m.Handler(HealthConfig{Ready: make(chan struct{})}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()

	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	for _, want := range []string{
		"# TYPE guichet_questions_total counter",
		`guichet_questions_total{outcome="answered"} 1`,
		`guichet_access_requests{status="pending"} 3`,
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if _, err := Listen(srv.Addr(), http.NotFoundHandler()); err == nil {
		t.Error("a second server bound the same address")
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := http.Get("http://" + srv.Addr() + "/metrics"); err == nil {
		t.Error("still served after the context ended")
	}
}
