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
			_ = srv.Requests()
		})
	}
	wg.Wait()
	if srv.Calls() != 8 {
		t.Errorf("Calls = %d, want 8", srv.Calls())
	}
}
