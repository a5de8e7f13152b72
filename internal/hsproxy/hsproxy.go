// Package hsproxy is a counting reverse proxy for benchmarks. Put in front of
// a homeserver (or any HTTP API) on 127.0.0.1, it forwards every request,
// streamed answers and long polls included, and counts and times them by
// method and endpoint, with room, user and event ids and transaction ids
// replaced by placeholders, so that a client's traffic can be read per
// endpoint: "PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}".
package hsproxy

import (
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Stat is what the proxy saw of one endpoint.
type Stat struct {
	Requests  int
	Errors    int             // answers with status 400 or more, failed forwards, cut answers
	Cut       int             // answers cut short: the target or the client went away mid-answer
	Durations []time.Duration // each request, from arrival to the end of its answer
}

// Counts are the stats of every endpoint, keyed by "METHOD /normalized/path".
type Counts map[string]Stat

// Proxy forwards to one target. Close it when done.
type Proxy struct {
	// URL is the proxy's base URL, http://127.0.0.1:PORT.
	URL string

	target *url.URL
	srv    *http.Server
	ln     net.Listener
	done   chan struct{}

	mu     sync.Mutex
	stats  map[string]*Stat
	events []string // the reverse proxy's own error messages, the latest ones
}

// Start listens on a free 127.0.0.1 port and forwards to target, whose path
// prefix (if any) is kept.
func Start(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	if host := u.Hostname(); host != "127.0.0.1" && host != "localhost" && host != "::1" {
		return nil, fmt.Errorf("hsproxy: refusing to forward to %s: loopback only", u.Host)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{URL: "http://" + ln.Addr().String(), target: u, ln: ln, done: make(chan struct{}), stats: map[string]*Stat{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
		},
		// Write each piece of an answer as it comes: event streams and
		// long polls must not wait for a buffer to fill.
		FlushInterval: -1,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        0,
			MaxIdleConnsPerHost: 4096,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.note(fmt.Sprintf("%s: %v", Endpoint(r.Method, r.URL.EscapedPath()), err))
			w.WriteHeader(http.StatusBadGateway)
		},
		ErrorLog: log.New(writerFunc(func(b []byte) (int, error) {
			p.note(strings.TrimSpace(string(b)))
			return len(b), nil
		}), "", 0),
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		// Deferred: the reverse proxy panics (http.ErrAbortHandler) when
		// the client goes away before the end of the answer, as an SSE
		// client may once it read [DONE].
		defer func() {
			cut := recover()
			p.record(Endpoint(r.Method, r.URL.EscapedPath()), rec.status, cut != nil, time.Since(start))
			if cut != nil {
				panic(cut)
			}
		}()
		rp.ServeHTTP(rec, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(p.done)
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener is ours: only Close ends it
		}
	}()
	return p, nil
}

// Close stops the proxy, breaking open requests.
func (p *Proxy) Close() {
	_ = p.srv.Close()
	<-p.done
}

func (p *Proxy) record(endpoint string, status int, cut bool, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats[endpoint]
	if s == nil {
		s = &Stat{}
		p.stats[endpoint] = s
	}
	s.Requests++
	if status >= 400 || cut {
		s.Errors++
	}
	if cut {
		s.Cut++
	}
	s.Durations = append(s.Durations, d)
}

// maxEvents is how many error messages the proxy keeps.
const maxEvents = 50

func (p *Proxy) note(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, time.Now().Format("15:04:05.000 ")+msg)
	if len(p.events) > maxEvents {
		p.events = p.events[len(p.events)-maxEvents:]
	}
}

// Events returns the latest errors the proxy met (failed forwards, answers
// cut short), with their time.
func (p *Proxy) Events() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// Snapshot returns what the proxy saw so far. Requests still open (a long
// poll) are counted once they end.
func (p *Proxy) Snapshot() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(Counts, len(p.stats))
	for k, s := range p.stats {
		out[k] = Stat{Requests: s.Requests, Errors: s.Errors, Cut: s.Cut, Durations: slices.Clone(s.Durations)}
	}
	return out
}

// Sub returns what happened between before and c (both snapshots of one
// proxy, before taken first).
func (c Counts) Sub(before Counts) Counts {
	out := Counts{}
	for k, s := range c {
		b := before[k]
		if s.Requests == b.Requests {
			continue
		}
		out[k] = Stat{Requests: s.Requests - b.Requests, Errors: s.Errors - b.Errors, Cut: s.Cut - b.Cut,
			Durations: slices.Clone(s.Durations[min(len(b.Durations), len(s.Durations)):])}
	}
	return out
}

// Total is the number of requests over every endpoint.
func (c Counts) Total() (requests, errors int) {
	for _, s := range c {
		requests += s.Requests
		errors += s.Errors
	}
	return requests, errors
}

// Endpoints lists the keys, most requested first.
func (c Counts) Endpoints() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c[a].Requests != c[b].Requests {
			return c[b].Requests - c[a].Requests
		}
		return strings.Compare(a, b)
	})
	return keys
}

// recorder keeps the status code; Unwrap lets the reverse proxy flush.
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Endpoint is "METHOD path" with the variable parts of a Matrix client API
// path replaced by placeholders: {roomId} (!…), {userId} (@…), {eventId}
// ($…), {roomAlias} (#…), and {txnId} after send/<type>/ and
// sendToDevice/<type>/. escapedPath is the path as sent (percent-encoded).
func Endpoint(method, escapedPath string) string {
	parts := strings.Split(escapedPath, "/")
	for i, raw := range parts {
		seg, err := url.PathUnescape(raw)
		if err != nil {
			seg = raw
		}
		switch {
		case seg == "":
		case seg[0] == '!':
			parts[i] = "{roomId}"
		case seg[0] == '@':
			parts[i] = "{userId}"
		case seg[0] == '$':
			parts[i] = "{eventId}"
		case seg[0] == '#':
			parts[i] = "{roomAlias}"
		case i >= 2 && (parts[i-2] == "send" || parts[i-2] == "sendToDevice"):
			parts[i] = "{txnId}"
		case i >= 2 && parts[i-2] == "redact":
			parts[i] = "{txnId}"
		default:
			parts[i] = seg
		}
	}
	return method + " " + strings.Join(parts, "/")
}
