package fakealbert_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"guichet/albert/fakealbert"
)

func post(t *testing.T, srv *fakealbert.Server, body string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

const chatBody = `{"model":"mistral-medium-2508","stream":true,"stream_options":{"include_usage":true},
	"messages":[{"role":"user","content":[{"type":"text","text":"Bonjour "},{"type":"text","text":"Albert"}]}]}`

type chunk struct {
	Model   string `json:"model"`
	Object  string `json:"object"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

// TestStreamShape checks the wire format against the stream recorded in
// albert-api.md, independently of the albert client.
func TestStreamShape(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	resp := post(t, srv, chatBody, nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() != "" {
			lines = append(lines, sc.Text())
		}
	}
	if n := len(lines); n < 5 || lines[n-1] != "data: [DONE]" {
		t.Fatalf("stream of %d lines, last %q", n, lines[len(lines)-1])
	}
	var chunks []chunk
	for _, l := range lines[:len(lines)-1] {
		var c chunk
		if !strings.HasPrefix(l, "data: ") || json.Unmarshal([]byte(strings.TrimPrefix(l, "data: ")), &c) != nil {
			t.Fatalf("bad line %q", l)
		}
		if c.Object != "chat.completion.chunk" || c.Model != "mistral-medium-2508" {
			t.Errorf("chunk header = %q %q", c.Object, c.Model)
		}
		chunks = append(chunks, c)
	}
	first, usage := chunks[0], chunks[len(chunks)-1]
	if d := first.Choices[0].Delta; d.Role == nil || *d.Role != "assistant" || d.Content == nil || *d.Content != "" {
		t.Errorf("first chunk delta = %+v, want role assistant and empty content", d)
	}
	if usage.Choices == nil || len(usage.Choices) != 0 || usage.Usage == nil ||
		usage.Usage.TotalTokens != usage.Usage.PromptTokens+usage.Usage.CompletionTokens {
		t.Errorf("last chunk = %+v, want choices [] and usage", usage)
	}
	if !strings.Contains(lines[len(lines)-2], `"choices":[]`) {
		t.Errorf("usage chunk %q lacks \"choices\":[]", lines[len(lines)-2])
	}
	content := chunks[1 : len(chunks)-1]
	if len(content) < 3 {
		t.Fatalf("%d content chunks, want several", len(content))
	}
	var text strings.Builder
	for i, c := range content {
		text.WriteString(*c.Choices[0].Delta.Content)
		fr := c.Choices[0].FinishReason
		if last := i == len(content)-1; last != (fr != nil && *fr == "stop") {
			t.Errorf("chunk %d finish_reason = %v", i, fr)
		}
	}
	if want := "Voici ma réponse à « Bonjour Albert »."; !strings.HasPrefix(text.String(), want) || !strings.Contains(text.String(), "**Albert**") {
		t.Errorf("text = %q, want it to start with %q", text.String(), want)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || reqs[0].LastUserMessage() != "Bonjour Albert" || !reqs[0].IncludeUsage {
		t.Errorf("recorded = %+v", reqs)
	}
}

func TestMidStreamShape(t *testing.T) {
	tests := []struct {
		name  string
		style fakealbert.MidStreamStyle
		tail  string
	}{
		{"bare JSON", fakealbert.BareJSON, `{"detail":"Request timed out, model is too busy."}` + "\n"},
		{"event error", fakealbert.EventError, "event: error\ndata: {\"error\":{\"message\":\"Internal Server Error\"}}\n\n"},
		{"bare JSON, 2026 ReadTimeout", fakealbert.BareJSONReadTimeout, `{"detail":"Model is too busy (ReadTimeout), please try again later."}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakealbert.Start()
			defer srv.Close()
			srv.FailMidStream(1, tt.style)
			body, _ := io.ReadAll(post(t, srv, chatBody, nil).Body)
			s := string(body)
			if !strings.HasSuffix(s, tt.tail) || strings.Contains(s, "[DONE]") || strings.Count(s, "data: {\"id\"") < 2 {
				t.Errorf("stream = %q", s)
			}
		})
	}
}

func TestErrorResponses(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(*fakealbert.Server)
		body       string
		header     map[string]string
		wantStatus int
		wantBody   string
		retryAfter string
	}{
		{"missing key", func(s *fakealbert.Server) { s.SetAPIKey("k") }, chatBody, nil,
			401, `{"detail":"Invalid authentication scheme."}`, ""},
		{"right key", func(s *fakealbert.Server) { s.SetAPIKey("k") }, strings.Replace(chatBody, "true", "false", 1),
			map[string]string{"Authorization": "Bearer k"}, 200, "", ""},
		{"unknown model", nil, strings.Replace(chatBody, "mistral-medium-2508", "albert-small", 1), nil,
			404, `{"detail":"Model not found."}`, ""},
		{"busy", func(s *fakealbert.Server) { s.FailNext(1, 503, "Model is too busy.") }, chatBody, nil,
			503, `{"detail":"Model is too busy."}`, "1"},
		{"rate limited has no Retry-After", func(s *fakealbert.Server) { s.FailNext(2, 429, "Too many requests.") }, chatBody, nil,
			429, `{"detail":"Too many requests."}`, ""},
		{"missing messages", nil, `{"model":"mistral-medium-2508"}`, nil,
			422, `{"detail":[{"input":null,"loc":["body","messages"],"msg":"Field required","type":"missing"}]}`, ""},
		{"2026 overload", func(s *fakealbert.Server) { s.FailNextWith(1, fakealbert.Overloaded()) }, chatBody, nil,
			503, `{"detail":"Model is too busy, please try again later."}`, "10"},
		{"per-day limit", func(s *fakealbert.Server) { s.FailNextWith(1, fakealbert.PerDayLimit(1000)) }, chatBody, nil,
			429, `{"detail":"1000 requests per day exceeded (remaining: 0)."}`, ""},
		{"per-day limit with Retry-After", func(s *fakealbert.Server) {
			s.FailNextWith(1, fakealbert.PerDayTokens(5000).With("Retry-After", "3600"))
		}, chatBody, nil, 429, `{"detail":"5000 input tokens per day exceeded (remaining: 0)."}`, "3600"},
		{"model closed to the key", func(s *fakealbert.Server) { s.CloseModel("albert-large") }, chatBody, nil,
			403, `{"detail":"Insufficient permissions to access the model."}`, ""},
		{"budget", func(s *fakealbert.Server) { s.FailNextWith(1, fakealbert.InsufficientBudget()) }, chatBody, nil,
			400, `{"detail":"Insufficient budget."}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakealbert.Start()
			defer srv.Close()
			if tt.setup != nil {
				tt.setup(srv)
			}
			resp := post(t, srv, tt.body, tt.header)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || (tt.wantBody != "" && strings.TrimSpace(string(body)) != tt.wantBody) {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if got := resp.Header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tt.retryAfter)
			}
			if srv.Calls() != 1 || len(srv.Requests()) != 1 {
				t.Errorf("Calls = %d, Requests = %d, want 1", srv.Calls(), len(srv.Requests()))
			}
		})
	}
}

// x-ratelimit-* headers set with With reach the client as they are.
func TestRateLimitHeaders(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	srv.FailNextWith(1, fakealbert.PerMinuteLimit(50).With("X-Ratelimit-Remaining-Requests", "0").With("X-Ratelimit-Reset-Requests", "6m0s"))
	resp := post(t, srv, chatBody, nil)
	if resp.StatusCode != 429 || resp.Header.Get("X-Ratelimit-Reset-Requests") != "6m0s" || resp.Header.Get("X-Ratelimit-Remaining-Requests") != "0" {
		t.Errorf("got %d with headers %v", resp.StatusCode, resp.Header)
	}
}

// usageChunks returns the "choices": [] chunks of a stream, raw.
func usageChunks(t *testing.T, body io.Reader) []map[string]json.RawMessage {
	t.Helper()
	var out []map[string]json.RawMessage
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		l, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || l == "[DONE]" || !strings.Contains(l, `"choices":[]`) {
			continue
		}
		var c struct {
			Usage map[string]json.RawMessage `json:"usage"`
		}
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatalf("bad chunk %q: %v", l, err)
		}
		out = append(out, c.Usage)
	}
	return out
}

func TestUsageShapes(t *testing.T) {
	tests := []struct {
		name       string
		style      fakealbert.UsageStyle
		two        bool
		wantChunks int
		wantCarbon string // a fragment of the last chunk's carbon
		wantCost   bool
	}{
		{"2026: carbon as numbers", fakealbert.UsageCarbonNumbers, false, 1, `"kWh":0`, true},
		{"before March 2026: carbon as ranges", fakealbert.UsageCarbonRange, false, 1, `"max":`, true},
		{"tokens only", fakealbert.UsageTokensOnly, false, 1, "", false},
		{"upstream usage chunk first", fakealbert.UsageCarbonNumbers, true, 2, `"kgCO2eq":`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakealbert.Start()
			defer srv.Close()
			srv.SetUsage(tt.style)
			srv.SetTwoUsageChunks(tt.two)
			chunks := usageChunks(t, post(t, srv, chatBody, nil).Body)
			if len(chunks) != tt.wantChunks {
				t.Fatalf("%d usage chunks, want %d", len(chunks), tt.wantChunks)
			}
			last := chunks[len(chunks)-1]
			if carbon := string(last["carbon"]); !strings.Contains(carbon, tt.wantCarbon) || (tt.wantCarbon == "") != (carbon == "") {
				t.Errorf("carbon = %s, want it to contain %q", carbon, tt.wantCarbon)
			}
			if _, ok := last["cost"]; ok != tt.wantCost {
				t.Errorf("cost present %v, want %v", ok, tt.wantCost)
			}
			if tt.wantCost && string(last["requests"]) != "1" {
				t.Errorf("requests = %s, want 1", last["requests"])
			}
			if tt.two {
				if _, ok := chunks[0]["cost"]; ok || string(chunks[0]["prompt_tokens"]) == string(last["prompt_tokens"]) {
					t.Errorf("upstream chunk %v is not told apart from the engine's %v", chunks[0], last)
				}
			}
		})
	}
}

func TestNonStreaming(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	srv.SetReply(func(r fakealbert.Request) string { return "Réponse à " + r.LastUserMessage() })
	resp := post(t, srv, strings.Replace(chatBody, `"stream":true`, `"stream":false`, 1), nil)
	var out struct {
		Object  string `json:"object"`
		Choices []struct {
			Message struct {
				Role, Content string
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Object != "chat.completion" || len(out.Choices) != 1 || out.Choices[0].Message.Content != "Réponse à Bonjour Albert" ||
		out.Choices[0].FinishReason != "stop" || out.Usage.CompletionTokens == 0 {
		t.Errorf("response = %+v", out)
	}
}

// TestKnobsConcurrent runs knobs and calls together, for the race detector.
func TestKnobsConcurrent(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			resp, err := http.Post(srv.URL+"/chat/completions", "application/json", strings.NewReader(chatBody))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
		wg.Go(func() {
			srv.SetTokenDelay(0)
			srv.SetLatency(0)
			srv.SetReply(nil)
			srv.FailMidStream(0, fakealbert.BareJSON)
			srv.FailNextWith(0, fakealbert.Overloaded())
			srv.CloseModel("x")
			srv.OpenModel("x")
			srv.SetUsage(fakealbert.UsageCarbonRange)
			srv.SetTwoUsageChunks(true)
			_ = srv.Requests()
		})
	}
	wg.Wait()
	if srv.Calls() != 8 {
		t.Errorf("Calls = %d, want 8", srv.Calls())
	}
}
