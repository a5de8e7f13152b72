// Package fakealbert is a fake Albert API server for end-to-end tests,
// benchmarks and demos. It speaks the OpenAI-compatible dialect of the real
// gateway with its quirks (see albert-api.md): FastAPI {"detail": ...} error
// bodies, Retry-After on 503, a final usage chunk with "choices": [], and
// mid-stream errors as a bare JSON line or as an "event: error" frame.
package fakealbert

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"guichet/albert"
)

// MidStreamStyle is how a stream breaks after some chunks.
type MidStreamStyle int

const (
	// BareJSON writes {"detail":"Request timed out, model is too busy."}
	// as a line without "data:" prefix, then closes the stream.
	BareJSON MidStreamStyle = iota
	// EventError writes "event: error" and
	// data: {"error":{"message":"Internal Server Error"}}, then closes the stream.
	EventError
)

// Request is a recorded chat completion request.
type Request struct {
	// Model is the "model" field as sent.
	Model string
	// Messages are the conversation sent, text parts only.
	Messages []albert.Message
	// Stream is the "stream" field.
	Stream bool
	// IncludeUsage is stream_options.include_usage.
	IncludeUsage bool
	// Header holds the request headers.
	Header http.Header
	// At is when the request arrived.
	At time.Time
}

// LastUserMessage returns the content of the last "user" message, or "".
func (r Request) LastUserMessage() string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			return r.Messages[i].Content
		}
	}
	return ""
}

// Server is a running fake Albert API. All knobs are safe for concurrent use.
type Server struct {
	// URL is the base URL including /v1, to use as albert.Config.BaseURL.
	URL string

	ts *httptest.Server

	mu         sync.Mutex
	apiKey     string
	latency    time.Duration
	tokenDelay time.Duration
	reply      func(Request) string
	models     []albert.Model
	failN      int
	failStatus int
	failDetail string
	midN       int
	midStyle   MidStreamStyle
	requests   []Request
	calls      int
}

// Start starts a fake on 127.0.0.1 with a random port. Close it when done.
func Start() *Server {
	s := New()
	s.ts = httptest.NewServer(s.Handler())
	s.URL = s.ts.URL + "/v1"
	return s
}

// New returns a fake that is not listening, to mount its Handler elsewhere
// (URL is then left empty).
func New() *Server {
	return &Server{reply: DefaultReply, models: DefaultModels()}
}

// Close stops the server started by Start, breaking open streams.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.CloseClientConnections()
		s.ts.Close()
	}
}

// DefaultModels is the model list served unless SetModels is called.
func DefaultModels() []albert.Model {
	return []albert.Model{
		{ID: "mistral-medium-2508", Type: albert.TypeTextGeneration, Aliases: []string{"albert-large"}, MaxContextLength: 128000},
		{ID: "openai/gpt-oss-120b", Type: albert.TypeTextGeneration, MaxContextLength: 131072},
		{ID: "BAAI/bge-m3", Type: albert.TypeEmbeddings, MaxContextLength: 8192},
	}
}

// DefaultReply is the answer used unless SetReply is called: French, quoting
// the last user message, with Markdown so that rendering is visible.
func DefaultReply(req Request) string {
	q := []rune(strings.TrimSpace(req.LastUserMessage()))
	if len(q) > 200 {
		q = append(q[:200], '…')
	}
	return "Voici ma réponse à « " + string(q) + " ».\n\n" +
		"**Albert** (fake) retient deux points :\n\n" +
		"- un premier point, *important* ;\n" +
		"- un second point, avec `du code`.\n\n" +
		"Bonne journée !"
}

// SetAPIKey makes every call require "Authorization: Bearer k"; "" disables
// the check.
func (s *Server) SetAPIKey(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiKey = k
}

// SetLatency sets the delay before the first chunk (or the whole answer).
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetTokenDelay sets the delay between two content chunks.
func (s *Server) SetTokenDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenDelay = d
}

// SetReply sets how answers are made; nil restores DefaultReply.
func (s *Server) SetReply(fn func(req Request) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fn == nil {
		fn = DefaultReply
	}
	s.reply = fn
}

// SetModels sets the list served by GET /v1/models; chat calls accept the
// ids and aliases of its text-generation models.
func (s *Server) SetModels(models []albert.Model) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.models = slices.Clone(models)
}

// FailNext makes the next n chat calls answer status with {"detail": detail};
// a 503 carries "Retry-After: 1".
func (s *Server) FailNext(n int, status int, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failStatus, s.failDetail = n, status, detail
}

// FailMidStream makes the next n streamed chat calls send the role chunk and
// part of the answer, then break in the given style.
func (s *Server) FailMidStream(n int, style MidStreamStyle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.midN, s.midStyle = n, style
}

// Requests returns a copy of the recorded chat requests, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Calls returns the number of chat calls received, failed ones included.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}
