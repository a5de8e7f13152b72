package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// Defaults of HealthConfig. mautrix long-polls /sync for 30 s: a guichet
// with nothing to do still succeeds every 30 s, so twice that plus a margin
// means the loop is stuck; and it retries a failed sync every 10 s, so 30 s
// of failures is three attempts in a row.
const (
	DefaultMaxSyncAge = 90 * time.Second
	DefaultFailingFor = 30 * time.Second
	pingTimeout       = 2 * time.Second
)

// Pinger tells whether the database answers; store.Store implements it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// HealthConfig says what /healthz and /readyz check.
type HealthConfig struct {
	// DB is pinged by /healthz.
	DB Pinger
	// Ready is closed once the first sync is processed and the support
	// room joined (bot.Bot.Ready).
	Ready <-chan struct{}
	// MaxSyncAge: /healthz fails when no sync succeeded for this long
	// (counted from the start before the first one). Default DefaultMaxSyncAge.
	MaxSyncAge time.Duration
	// FailingFor: /healthz fails when syncs have failed without a success
	// for this long. Default DefaultFailingFor.
	FailingFor time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Leading, when set, tells whether this process is the leader of a hot
	// standby: a standby does not sync, so /healthz checks only its
	// database, and /readyz is 503 ("standby").
	Leading func() bool
	// Profiles also serves Go's runtime profiles (net/http/pprof) under
	// /debug/pprof/.
	Profiles bool
}

// Handler serves /metrics, /healthz and /readyz, and with hc.Profiles
// /debug/pprof/.
func (m *Metrics) Handler(hc HealthConfig) http.Handler {
	if hc.Now == nil {
		hc.Now = time.Now
	}
	if hc.MaxSyncAge <= 0 {
		hc.MaxSyncAge = DefaultMaxSyncAge
	}
	if hc.FailingFor <= 0 {
		hc.FailingFor = DefaultFailingFor
	}
	h := &health{m: m, cfg: hc, started: hc.Now()}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, Registry: m.reg,
	}))
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.HandleFunc("GET /readyz", h.readyz)
	if hc.Profiles {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index) // and every named profile: heap, goroutine, allocs…
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

type health struct {
	m       *Metrics
	cfg     HealthConfig
	started time.Time
}

// status is the body of /healthz and /readyz.
type status struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

func (h *health) healthz(w http.ResponseWriter, r *http.Request) {
	if reason := h.problem(r.Context()); reason != "" {
		writeStatus(w, http.StatusServiceUnavailable, status{Status: "unhealthy", Reason: reason})
		return
	}
	writeStatus(w, http.StatusOK, status{Status: "ok"})
}

// problem says why guichet is not healthy ("" if it is).
func (h *health) problem(ctx context.Context) string {
	if h.cfg.Leading != nil && !h.cfg.Leading() {
		return h.dbProblem(ctx)
	}
	now := h.cfg.Now()
	synced, failingSince := h.m.syncState()
	if !failingSince.IsZero() && now.Sub(failingSince) >= h.cfg.FailingFor {
		return fmt.Sprintf("sync with the homeserver failing for %s", now.Sub(failingSince).Truncate(time.Second))
	}
	last := synced
	if last.Before(h.started) {
		last = h.started
	}
	if h.cfg.Leading != nil {
		// A standby that just took over has not synced yet: counted from
		// the takeover, not from the process's start.
		if since := h.m.LeadingSince(); last.Before(since) {
			last = since
		}
	}
	if age := now.Sub(last); age > h.cfg.MaxSyncAge {
		if synced.IsZero() {
			return fmt.Sprintf("no successful sync with the homeserver since the start, %s ago", age.Truncate(time.Second))
		}
		return fmt.Sprintf("no successful sync with the homeserver for %s", age.Truncate(time.Second))
	}
	return h.dbProblem(ctx)
}

// dbProblem says why the database is not healthy ("" if it answers).
func (h *health) dbProblem(ctx context.Context) string {
	if h.cfg.DB != nil {
		ctx, cancel := context.WithTimeout(ctx, pingTimeout)
		defer cancel()
		if err := h.cfg.DB.Ping(ctx); err != nil {
			return "database does not answer"
		}
	}
	return ""
}

func (h *health) readyz(w http.ResponseWriter, _ *http.Request) {
	if h.cfg.Leading != nil && !h.cfg.Leading() {
		writeStatus(w, http.StatusServiceUnavailable, status{Status: "standby", Reason: "another guichet is the leader"})
		return
	}
	select {
	case <-h.cfg.Ready:
		writeStatus(w, http.StatusOK, status{Status: "ready"})
	default:
		writeStatus(w, http.StatusServiceUnavailable, status{Status: "starting",
			Reason: "first sync not processed or support room not joined yet"})
	}
}

func writeStatus(w http.ResponseWriter, code int, s status) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(s)
}

// Server is the HTTP server of Handler, bound at Listen so that a taken
// port is a start-up error, not a surprise later.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds addr (host:port; port 0 picks a free one).
func Listen(addr string, handler http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen for metrics on %s: %w", addr, err)
	}
	return &Server{ln: ln, srv: &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx ends, then shuts down (waiting up to 5 s for
// scrapes in progress).
func (s *Server) Serve(ctx context.Context) error {
	zerolog.Ctx(ctx).Info().Str("address", s.Addr()).Msg("Serving metrics and health")
	done := make(chan error, 1)
	go func() { done <- s.srv.Serve(s.ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("metrics server stopped: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(shutCtx)
	if serr := <-done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("failed to stop the metrics server: %w", err)
	}
	return nil
}

// Close releases the listener of a server never served.
func (s *Server) Close() error { return s.ln.Close() }
