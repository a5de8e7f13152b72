package fakealbert

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"guichet/albert"
)

// Texts of the real gateway's errors.
const (
	detailAuth      = "Invalid authentication scheme."
	detailNotFound  = "Model not found."
	detailWrongType = "Wrong model type, expected text-generation model."
	detailTooBusy   = "Request timed out, model is too busy."
	messageInternal = "Internal Server Error"
)

// Handler returns the fake's HTTP handler, serving /v1/chat/completions,
// /v1/models, the retrieval routes (/v1/search, /v1/collections,
// /v1/documents/{id}), /v1/me/info and /health.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.chat)
	mux.HandleFunc("GET /v1/models", s.listModels)
	mux.HandleFunc("POST /v1/search", s.search)
	mux.HandleFunc("GET /v1/collections", s.listCollections)
	mux.HandleFunc("GET /v1/documents/{id}", s.getDocument)
	mux.HandleFunc("GET /v1/me/info", s.meInfo)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeDetail(w, http.StatusNotFound, "Not Found")
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeDetail(w http.ResponseWriter, status int, detail any) {
	writeJSON(w, status, map[string]any{"detail": detail})
}

// missingField is FastAPI's 422 item for an absent body field.
func missingField(field string) []map[string]any {
	return []map[string]any{{
		"type": "missing", "loc": []string{"body", field}, "msg": "Field required", "input": nil,
	}}
}

func (s *Server) authorized(r *http.Request) bool {
	s.mu.Lock()
	key := s.apiKey
	s.mu.Unlock()
	return key == "" || r.Header.Get("Authorization") == "Bearer "+key
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		writeDetail(w, http.StatusUnauthorized, detailAuth)
		return
	}
	s.mu.Lock()
	models := slices.Clone(s.models)
	s.mu.Unlock()
	data := make([]map[string]any, 0, len(models))
	for _, m := range models {
		aliases := m.Aliases
		if aliases == nil {
			aliases = []string{}
		}
		data = append(data, map[string]any{
			"id": m.ID, "object": "model", "type": m.Type, "aliases": aliases,
			"created": 1754000000, "owned_by": "Albert API", "max_context_length": m.MaxContextLength,
			"costs": map[string]float64{"prompt_tokens": 0, "completion_tokens": 0},
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// chatBody is the part of a chat completion request the fake reads.
type chatBody struct {
	Model    *string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// contentText reads a message content: a string or a list of parts.
func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) == nil {
		var b strings.Builder
		for _, p := range parts {
			if p.Type == "text" {
				b.WriteString(p.Text)
			}
		}
		return b.String()
	}
	return ""
}

// plan is what a chat call will do, decided under the lock.
type plan struct {
	fail       Failure
	closed     bool
	usage      UsageStyle
	twoUsage   bool
	midStream  bool
	midStyle   MidStreamStyle
	latency    time.Duration
	tokenDelay time.Duration
	reply      func(Request) string
	modelID    string
	modelErr   int
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	var body chatBody
	decodeErr := json.NewDecoder(r.Body).Decode(&body)
	req := Request{Stream: body.Stream, Header: r.Header.Clone(), At: time.Now()}
	if body.Model != nil {
		req.Model = *body.Model
	}
	if body.StreamOptions != nil {
		req.IncludeUsage = body.StreamOptions.IncludeUsage
	}
	for _, m := range body.Messages {
		req.Messages = append(req.Messages, albert.Message{Role: m.Role, Content: contentText(m.Content)})
	}

	s.mu.Lock()
	s.calls++
	s.requests = append(s.requests, req)
	authorized := s.apiKey == "" || r.Header.Get("Authorization") == "Bearer "+s.apiKey
	p := plan{latency: s.latency, tokenDelay: s.tokenDelay, reply: s.reply, usage: s.usage, twoUsage: s.twoUsage && req.IncludeUsage}
	if authorized && s.failN > 0 {
		s.failN--
		p.fail = s.fail
	} else if authorized {
		p.fail = s.failAlways
	}
	p.modelID, p.modelErr = resolveModel(s.models, req.Model)
	p.closed = s.closed[req.Model] || (p.modelID != "" && s.closed[p.modelID])
	if authorized && p.fail.Status == 0 && p.modelErr == 0 && !p.closed && req.Stream && s.midN > 0 {
		s.midN--
		p.midStream, p.midStyle = true, s.midStyle
	}
	s.mu.Unlock()

	switch {
	case !authorized:
		writeDetail(w, http.StatusUnauthorized, detailAuth)
	case decodeErr != nil:
		writeDetail(w, http.StatusUnprocessableEntity, []map[string]any{{
			"type": "json_invalid", "loc": []any{"body", 0}, "msg": "JSON decode error", "input": map[string]any{},
		}})
	case body.Model == nil:
		writeDetail(w, http.StatusUnprocessableEntity, missingField("model"))
	case len(body.Messages) == 0:
		writeDetail(w, http.StatusUnprocessableEntity, missingField("messages"))
	case p.fail.Status != 0:
		for k, vs := range p.fail.Header {
			w.Header()[k] = vs
		}
		writeDetail(w, p.fail.Status, p.fail.Detail)
	case p.closed:
		writeDetail(w, http.StatusForbidden, DetailModelClosed)
	case p.modelErr == http.StatusNotFound:
		writeDetail(w, http.StatusNotFound, detailNotFound)
	case p.modelErr != 0:
		writeDetail(w, p.modelErr, detailWrongType)
	case req.Stream:
		s.stream(r.Context(), w, req, p)
	default:
		s.complete(r.Context(), w, req, p)
	}
}

// resolveModel finds a chat model by id or alias; it returns the id, or the
// error status (404 unknown, 422 not a chat model).
func resolveModel(models []albert.Model, name string) (string, int) {
	for _, m := range models {
		if m.ID == name || slices.Contains(m.Aliases, name) {
			if m.Type != albert.TypeTextGeneration {
				return "", http.StatusUnprocessableEntity
			}
			return m.ID, 0
		}
	}
	return "", http.StatusNotFound
}

// sleepUntil waits until t or until the client goes away.
func sleepUntil(ctx context.Context, t time.Time) bool {
	return sleep(ctx, time.Until(t))
}

// sleep waits d or until the client goes away.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

type usageJSON struct {
	PromptTokens     int      `json:"prompt_tokens"`
	CompletionTokens int      `json:"completion_tokens"`
	TotalTokens      int      `json:"total_tokens"`
	Cost             *float64 `json:"cost,omitempty"`
	Carbon           any      `json:"carbon,omitempty"`
	Requests         *int     `json:"requests,omitempty"`
}

// usageFor counts tokens a little differently from albert.EstimateTokens (a
// per-message overhead, as chat templates add), so tests can tell real usage
// from the client's estimate. Cost and carbon follow from the tokens (see
// UsageFigures).
func usageFor(req Request, text string, style UsageStyle) usageJSON {
	u := usageJSON{CompletionTokens: albert.EstimateTokens(text)}
	for _, m := range req.Messages {
		u.PromptTokens += albert.EstimateTokens(m.Content) + 4
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	if style == UsageTokensOnly {
		return u
	}
	cost, kwh, co2 := UsageFigures(u.PromptTokens, u.CompletionTokens)
	one := 1
	u.Cost, u.Requests = &cost, &one
	switch style {
	case UsageCarbonRange:
		u.Carbon = map[string]map[string]float64{
			"kWh":     {"min": kwh / 2, "max": kwh},
			"kgCO2eq": {"min": co2 / 2, "max": co2},
		}
	default:
		u.Carbon = map[string]float64{"kWh": kwh, "kgCO2eq": co2}
	}
	return u
}

// upstreamUsageFor is the upstream model's own usage chunk, counted with its
// tokenizer (not Albert's), without cost or carbon.
func upstreamUsageFor(req Request, text string) usageJSON {
	u := usageJSON{CompletionTokens: albert.EstimateTokens(text) + 1}
	for _, m := range req.Messages {
		u.PromptTokens += albert.EstimateTokens(m.Content) + 1
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

// UsageFigures are the fake's cost (euros), energy (kWh) and emissions
// (kgCO2eq) for a call: 0.5 € and 1.5 € per million prompt and completion
// tokens, 0.1 Wh per thousand tokens, 60 g of CO2 per kWh. In the
// {"min","max"} shape they are the max.
func UsageFigures(prompt, completion int) (cost, kWh, kgCO2eq float64) {
	cost = (float64(prompt)*0.5 + float64(completion)*1.5) / 1e6
	kWh = float64(prompt+completion) * 1e-7
	return cost, kWh, kWh * 0.06
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "chatcmpl-" + hex.EncodeToString(b[:])
}

func (s *Server) complete(ctx context.Context, w http.ResponseWriter, req Request, p plan) {
	if !sleep(ctx, p.latency) {
		return
	}
	text := p.reply(req)
	writeJSON(w, http.StatusOK, map[string]any{
		"id": newID(), "object": "chat.completion", "created": time.Now().Unix(), "model": p.modelID,
		"choices": []map[string]any{{
			"index": 0, "message": map[string]any{"role": "assistant", "content": text},
			"logprobs": nil, "finish_reason": "stop",
		}},
		"usage": usageFor(req, text, p.usage),
	})
}

type deltaJSON struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type choiceJSON struct {
	Index        int       `json:"index"`
	Delta        deltaJSON `json:"delta"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type chunkJSON struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []choiceJSON `json:"choices"`
	Usage   *usageJSON   `json:"usage,omitempty"`
}

// stream writes the answer as Albert does: a role chunk with empty content,
// content chunks of a word or so, finish_reason on the last content chunk, a
// usage chunk with "choices": [], then [DONE].
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, req Request, p plan) {
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	base := chunkJSON{ID: newID(), Object: "chat.completion.chunk", Created: time.Now().Unix(), Model: p.modelID}
	send := func(c chunkJSON) bool {
		b, _ := json.Marshal(c)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}

	// Chunks go out on a schedule from the start of the request, so that
	// the stream lasts what the plan says: sleeping tokenDelay after each
	// write would add each timer's lateness to the total.
	start := time.Now()
	if !sleepUntil(ctx, start.Add(p.latency)) {
		return
	}
	empty := ""
	first := base
	first.Choices = []choiceJSON{{Delta: deltaJSON{Role: "assistant", Content: &empty}}}
	if !send(first) {
		return
	}

	text := p.reply(req)
	pieces := splitPieces(text)
	if p.midStream {
		pieces = pieces[:max(1, len(pieces)/2)]
	}
	for i, piece := range pieces {
		if !sleepUntil(ctx, start.Add(p.latency+time.Duration(i+1)*p.tokenDelay)) {
			return
		}
		c := base
		c.Choices = []choiceJSON{{Delta: deltaJSON{Content: &piece}}}
		if i == len(pieces)-1 && !p.midStream {
			stop := "stop"
			c.Choices[0].FinishReason = &stop
		}
		if !send(c) {
			return
		}
	}

	if p.midStream {
		switch p.midStyle {
		case EventError:
			fmt.Fprintf(w, "event: error\ndata: {\"error\":{\"message\":%q}}\n\n", messageInternal)
		case BareJSONReadTimeout:
			fmt.Fprintf(w, "{\"detail\":%q}\n", DetailReadTimeout)
		default:
			fmt.Fprintf(w, "{\"detail\":%q}\n", detailTooBusy)
		}
		if flusher != nil {
			flusher.Flush()
		}
		return
	}

	if p.twoUsage {
		up := upstreamUsageFor(req, text)
		c := base
		c.Choices = []choiceJSON{}
		c.Usage = &up
		if !send(c) {
			return
		}
	}
	u := usageFor(req, text, p.usage)
	last := base
	last.Choices = []choiceJSON{}
	last.Usage = &u
	if !send(last) {
		return
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
}

// splitPieces cuts text into word-sized chunks, each carrying the spaces
// before its word (" don"), the way tokenizers stream.
func splitPieces(text string) []string {
	if text == "" {
		return []string{""}
	}
	var pieces []string
	start := 0
	prevSpace := false
	for i, r := range text {
		space := unicode.IsSpace(r)
		if space && !prevSpace && i > start {
			pieces = append(pieces, text[start:i])
			start = i
		}
		prevSpace = space
	}
	return append(pieces, text[start:])
}
