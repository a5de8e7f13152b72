// Package fakealbert is a fake Albert API server for end-to-end tests,
// benchmarks and demos. It speaks the OpenAI-compatible dialect of the real
// gateway with its quirks (see albert-api.md): FastAPI {"detail": ...} error
// bodies, Retry-After on 503, x-ratelimit-* headers, per-minute and per-day
// 429s, 403 for a model closed to the key, a final usage chunk with
// "choices": [] (two of them when the upstream sends its own), cost and
// carbon in both of their shapes, and mid-stream errors as a bare JSON line
// or as an "event: error" frame.
package fakealbert

import (
	"fmt"
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
	// BareJSONReadTimeout is the 2026 engine's bare JSON line,
	// {"detail":"Model is too busy (ReadTimeout), please try again later."},
	// then the stream closes.
	BareJSONReadTimeout
)

// UsageStyle is the shape of the usage object in the final chunk.
type UsageStyle int

const (
	// UsageCarbonNumbers is the shape since March 2026: token counts, "cost"
	// in euros, "carbon": {"kWh": n, "kgCO2eq": n} and "requests".
	UsageCarbonNumbers UsageStyle = iota
	// UsageCarbonRange is the older shape (and /me/usage's in the August
	// 2026 docs): each carbon figure is {"min": n, "max": n}.
	UsageCarbonRange
	// UsageTokensOnly is OpenAI's plain usage: token counts only.
	UsageTokensOnly
)

// Failure is an error answer to a chat call.
type Failure struct {
	// Status is the HTTP status.
	Status int
	// Detail is the FastAPI "detail" string.
	Detail string
	// Header is added to the answer (Retry-After, x-ratelimit-*).
	Header http.Header
}

// With returns f with one more header.
func (f Failure) With(key, value string) Failure {
	h := f.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set(key, value)
	f.Header = h
	return f
}

// The error answers of the 2026 engine, from albert-api.md.

// PerMinuteLimit is a 429 of the per-minute request window.
func PerMinuteLimit(limit int) Failure {
	return Failure{Status: http.StatusTooManyRequests, Detail: fmt.Sprintf("%d requests per minute exceeded (remaining: 0).", limit)}
}

// PerDayLimit is a 429 of the per-day request window. Like the March 2026
// engine it carries no header; add one with With.
func PerDayLimit(limit int) Failure {
	return Failure{Status: http.StatusTooManyRequests, Detail: fmt.Sprintf("%d requests per day exceeded (remaining: 0).", limit)}
}

// PerDayTokens is a 429 of the per-day input token window.
func PerDayTokens(limit int) Failure {
	return Failure{Status: http.StatusTooManyRequests, Detail: fmt.Sprintf("%d input tokens per day exceeded (remaining: 0).", limit)}
}

// Overloaded is the 2026 overload answer: 503 with "Retry-After: 10".
func Overloaded() Failure {
	return Failure{Status: http.StatusServiceUnavailable, Detail: DetailTooBusy2026}.With("Retry-After", "10")
}

// InsufficientBudget is the 400 of a key whose budget is spent.
func InsufficientBudget() Failure {
	return Failure{Status: http.StatusBadRequest, Detail: "Insufficient budget."}
}

// InvalidKey is the 2026 engine's answer to a bad key (403, not 401).
func InvalidKey() Failure {
	return Failure{Status: http.StatusForbidden, Detail: "Invalid API key."}
}

// Details of the 2026 engine's errors.
const (
	// DetailTooBusy2026 is the 503 overload detail.
	DetailTooBusy2026 = "Model is too busy, please try again later."
	// DetailModelClosed is the 403 of a model closed to the key.
	DetailModelClosed = "Insufficient permissions to access the model."
	// DetailReadTimeout is the bare JSON line of an upstream timeout mid-stream.
	DetailReadTimeout = "Model is too busy (ReadTimeout), please try again later."
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
	fail       Failure
	closed     map[string]bool // model ids answered with 403
	usage      UsageStyle
	twoUsage   bool
	midN       int
	midStyle   MidStreamStyle
	requests   []Request
	calls      int
	failAlways Failure // Status 0: off (account.go)

	// Account (account.go).
	account     Account
	meInfoCalls int

	// Retrieval (retrieval.go).
	library          []Collection
	searchLatency    time.Duration
	searchFailN      int
	searchFail       Failure
	searchRequests   []SearchRequest
	searchCalls      int
	documentRequests int
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
	return &Server{reply: DefaultReply, models: DefaultModels(), library: DefaultLibrary(), account: DefaultAccount()}
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
//
// When that message is guichet's retrieval prompt (numbered excerpts
// "[N] « Titre » (collection)", then a line "Question : <question>"), it
// quotes only the question (what follows "Question : " on the last such
// line, and the lines after it), and when excerpts are numbered it adds a
// sentence citing the first two numbers: "D'après [1] et [2], …" (only [1]
// when there is one).
func DefaultReply(req Request) string {
	msg := req.LastUserMessage()
	question, cited, ok := retrievalPrompt(msg)
	if ok {
		msg = question
	}
	q := []rune(strings.TrimSpace(msg))
	if len(q) > 200 {
		q = append(q[:200], '…')
	}
	citation := ""
	switch {
	case len(cited) >= 2:
		citation = "D'après " + cited[0] + " et " + cited[1] + ", les extraits fournis répondent à la question.\n\n"
	case len(cited) == 1:
		citation = "D'après " + cited[0] + ", l'extrait fourni répond à la question.\n\n"
	}
	return "Voici ma réponse à « " + string(q) + " ».\n\n" + citation +
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
// a 503 carries "Retry-After: 1" (short, for tests; Overloaded is the real 10).
func (s *Server) FailNext(n int, status int, detail string) {
	f := Failure{Status: status, Detail: detail}
	if status == http.StatusServiceUnavailable {
		f = f.With("Retry-After", "1")
	}
	s.FailNextWith(n, f)
}

// FailNextWith makes the next n chat calls answer f.
func (s *Server) FailNextWith(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.fail = n, f
}

// CloseModel makes chat calls with model (its id or an alias) answer 403
// "Insufficient permissions to access the model." until OpenModel: the
// model is closed to the key (its limit is 0). It stays in GET /models.
func (s *Server) CloseModel(model string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed == nil {
		s.closed = map[string]bool{}
	}
	if id, status := resolveModel(s.models, model); status == 0 {
		model = id
	}
	s.closed[model] = true
}

// OpenModel undoes CloseModel.
func (s *Server) OpenModel(model string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, status := resolveModel(s.models, model); status == 0 {
		model = id
	}
	delete(s.closed, model)
}

// SetUsage sets the shape of the usage object (UsageCarbonNumbers unless set).
func (s *Server) SetUsage(style UsageStyle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.usage = style
}

// SetTwoUsageChunks makes streams that asked for include_usage carry two
// "choices": [] chunks before [DONE], as the engine does: the upstream's own
// usage (counted with the model's tokenizer, without cost) and then the
// engine's, which is the one to keep.
func (s *Server) SetTwoUsageChunks(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.twoUsage = on
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
