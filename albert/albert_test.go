package albert_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"guichet/albert"
	"guichet/albert/fakealbert"
)

const testModel = "mistral-medium-2508"

func startFake(t *testing.T) *fakealbert.Server {
	t.Helper()
	srv := fakealbert.Start()
	t.Cleanup(srv.Close)
	return srv
}

func newClient(baseURL, key string) *albert.Client {
	// The trailing slash checks that BaseURL is normalised.
	return albert.New(albert.Config{BaseURL: baseURL + "/", APIKey: key, Model: testModel})
}

func userMsgs(text string) []albert.Message {
	return []albert.Message{
		{Role: "system", Content: "Tu es Albert."},
		{Role: "user", Content: text},
	}
}

// rawServer serves body as a 200 event stream, for shapes the fake does not produce.
func rawServer(t *testing.T, body string) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/v1"
}

func asError(t *testing.T, err error) *albert.Error {
	t.Helper()
	var ae *albert.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *albert.Error", err, err)
	}
	return ae
}

func TestStream(t *testing.T) {
	tests := []struct {
		name      string
		model     string
		reply     func(fakealbert.Request) string
		wantModel string
	}{
		{name: "default model and reply", model: "", wantModel: testModel},
		{name: "explicit id", model: "openai/gpt-oss-120b", wantModel: "openai/gpt-oss-120b"},
		{name: "alias resolves to id", model: "albert-large", wantModel: testModel},
		{name: "custom reply with unicode", reply: func(fakealbert.Request) string {
			return "Bonjour, voilà l'été : **très** chaud.\n\n- un\n- deux"
		}, wantModel: testModel},
		{name: "single word", reply: func(fakealbert.Request) string { return "Oui." }, wantModel: testModel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFake(t)
			srv.SetReply(tt.reply)
			c := newClient(srv.URL, "")
			msgs := userMsgs("Comment renouveler mon passeport ?")

			var deltas []string
			ans, err := c.Stream(context.Background(), tt.model, msgs, func(s string) { deltas = append(deltas, s) })
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			want := fakealbert.DefaultReply(srv.Requests()[0])
			if tt.reply != nil {
				want = tt.reply(fakealbert.Request{})
			}
			if ans.Text != want {
				t.Errorf("Text = %q, want %q", ans.Text, want)
			}
			if ans.Model != tt.wantModel || ans.FinishReason != "stop" {
				t.Errorf("Model, FinishReason = %q, %q; want %q, stop", ans.Model, ans.FinishReason, tt.wantModel)
			}
			if ans.Usage.Estimated || ans.Usage.PromptTokens == 0 || ans.Usage.CompletionTokens != albert.EstimateTokens(want) {
				t.Errorf("Usage = %+v, want server usage with %d completion tokens", ans.Usage, albert.EstimateTokens(want))
			}
			if len(deltas) == 0 || deltas[len(deltas)-1] != want {
				t.Fatalf("last delta = %q, want full text", deltas)
			}
			if strings.Contains(want, " ") && len(deltas) < 2 {
				t.Errorf("got %d deltas, want several", len(deltas))
			}
			for i := 1; i < len(deltas); i++ {
				if !strings.HasPrefix(deltas[i], deltas[i-1]) || deltas[i] == deltas[i-1] {
					t.Fatalf("delta %d %q does not extend %q", i, deltas[i], deltas[i-1])
				}
			}
		})
	}
}

func TestComplete(t *testing.T) {
	srv := startFake(t)
	c := newClient(srv.URL, "")
	ans, err := c.Complete(context.Background(), "", userMsgs("Bonjour"))
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if !strings.Contains(ans.Text, "« Bonjour »") || ans.FinishReason != "stop" {
		t.Errorf("Answer = %+v", ans)
	}
}

// The stream recorded from Albert in albert-api.md, and variants around it.
const recordedStream = `data: {"id":"chatcmpl-0b9c","object":"chat.completion.chunk","created":1749204499,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

data: {"id":"chatcmpl-0b9c","object":"chat.completion.chunk","created":1749204499,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"content":"I"},"logprobs":null,"finish_reason":null}]}

data: {"id":"chatcmpl-0b9c","object":"chat.completion.chunk","created":1749204499,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"content":" don"},"logprobs":null,"finish_reason":"length","stop_reason":null}]}

`

const usageChunk = `data: {"id":"chatcmpl-0b9c","object":"chat.completion.chunk","created":1749204499,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[],"usage":{"prompt_tokens":6,"completion_tokens":8,"total_tokens":14,"cost":0.0001,"carbon":{"kWh":{"min":0,"max":0.1},"kgCO2eq":{"min":0,"max":0.01}}}}

`

// The 2026 engine's usage chunk (carbon as numbers), the upstream's own
// usage chunk that comes before it when include_usage is asked, and a shape
// nobody documented.
const (
	usageChunk2026 = `data: {"id":"chatcmpl-0b9c","object":"chat.completion.chunk","created":1749204499,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[],"usage":{"prompt_tokens":6,"completion_tokens":8,"total_tokens":14,"cost":0.00002,"carbon":{"kWh":0.0003,"kgCO2eq":0.00002},"requests":1}}

`
	upstreamUsageChunk = `data: {"id":"chatcmpl-0b9c","object":"chat.completion.chunk","created":1749204499,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":9,"total_tokens":20}}

`
	usageChunkOdd = `data: {"id":"chatcmpl-0b9c","object":"chat.completion.chunk","created":1749204499,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[],"usage":{"prompt_tokens":6,"completion_tokens":8,"total_tokens":14,"cost":null,"carbon":{"kWh":"n/a","kgCO2eq":[1,2]},"requests":null}}

`
)

func TestStreamRecordedShapes(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantText  string
		wantUsage albert.Usage
		wantClass albert.Class // "" = success
	}{
		{
			name:      "recorded stream with empty choices usage chunk, carbon as ranges",
			body:      recordedStream + usageChunk + "data: [DONE]\n\n",
			wantText:  "I don",
			wantUsage: albert.Usage{PromptTokens: 6, CompletionTokens: 8, Cost: 0.0001, KWh: 0.1, KgCO2eq: 0.01},
		},
		{
			name:      "2026 usage: carbon as numbers, cost, requests",
			body:      recordedStream + usageChunk2026 + "data: [DONE]\n\n",
			wantText:  "I don",
			wantUsage: albert.Usage{PromptTokens: 6, CompletionTokens: 8, Cost: 0.00002, Requests: 1, KWh: 0.0003, KgCO2eq: 0.00002},
		},
		{
			name:      "two usage chunks: the last one counts",
			body:      recordedStream + upstreamUsageChunk + usageChunk2026 + "data: [DONE]\n\n",
			wantText:  "I don",
			wantUsage: albert.Usage{PromptTokens: 6, CompletionTokens: 8, Cost: 0.00002, Requests: 1, KWh: 0.0003, KgCO2eq: 0.00002},
		},
		{
			name:      "unknown carbon shape and null cost read as zero",
			body:      recordedStream + usageChunkOdd + "data: [DONE]\n\n",
			wantText:  "I don",
			wantUsage: albert.Usage{PromptTokens: 6, CompletionTokens: 8},
		},
		{
			name:      "keep-alive comments between chunks",
			body:      ": ping\n\n" + recordedStream + ": ping\n\n" + usageChunk + "data: [DONE]\n\n",
			wantText:  "I don",
			wantUsage: albert.Usage{PromptTokens: 6, CompletionTokens: 8, Cost: 0.0001, KWh: 0.1, KgCO2eq: 0.01},
		},
		{
			name:      "no usage chunk gives an estimate",
			body:      recordedStream + "data: [DONE]\n\n",
			wantText:  "I don",
			wantUsage: albert.Usage{CompletionTokens: 2, Estimated: true},
		},
		{
			name:      "finished without [DONE] is accepted",
			body:      recordedStream + usageChunk,
			wantText:  "I don",
			wantUsage: albert.Usage{PromptTokens: 6, CompletionTokens: 8, Cost: 0.0001, KWh: 0.1, KgCO2eq: 0.01},
		},
		{
			name:      "cut before finish is a stream error",
			body:      strings.SplitAfterN(recordedStream, "\n\n", 3)[0] + strings.SplitAfterN(recordedStream, "\n\n", 3)[1],
			wantText:  "I",
			wantUsage: albert.Usage{CompletionTokens: 1, Estimated: true},
			wantClass: albert.ClassStream,
		},
		{
			name:      "data detail frame",
			body:      strings.SplitAfterN(recordedStream, "\n\n", 3)[0] + "data: {\"detail\":\"Model is too busy.\"}\n\n",
			wantUsage: albert.Usage{Estimated: true},
			wantClass: albert.ClassStream,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(rawServer(t, tt.body), "")
			msgs := []albert.Message{{Role: "user", Content: "Bonjour Albert !!"}}
			ans, err := c.Stream(context.Background(), "", msgs, nil)
			if tt.wantClass == "" {
				if err != nil {
					t.Fatalf("Stream: %v", err)
				}
				if ans.Model != "meta-llama/Llama-3.1-8B-Instruct" || ans.FinishReason != "length" {
					t.Errorf("Model, FinishReason = %q, %q", ans.Model, ans.FinishReason)
				}
			} else {
				ae := asError(t, err)
				if ae.Class != tt.wantClass || ae.Partial != (tt.wantText != "") {
					t.Errorf("error = %+v, want class %s partial %v", ae, tt.wantClass, tt.wantText != "")
				}
			}
			if ans.Text != tt.wantText {
				t.Errorf("Text = %q, want %q", ans.Text, tt.wantText)
			}
			if tt.wantUsage.Estimated {
				tt.wantUsage.PromptTokens = albert.EstimateTokens(msgs[0].Content)
			}
			if ans.Usage != tt.wantUsage {
				t.Errorf("Usage = %+v, want %+v", ans.Usage, tt.wantUsage)
			}
		})
	}
}

// The fake serves each usage shape of albert-api.md; the client reads the
// same figures from all of them.
func TestStreamUsageShapes(t *testing.T) {
	tests := []struct {
		name      string
		style     fakealbert.UsageStyle
		twoChunks bool
		wantCost  bool
	}{
		{"carbon as numbers", fakealbert.UsageCarbonNumbers, false, true},
		{"carbon as ranges", fakealbert.UsageCarbonRange, false, true},
		{"two usage chunks", fakealbert.UsageCarbonNumbers, true, true},
		{"two usage chunks, ranges", fakealbert.UsageCarbonRange, true, true},
		{"tokens only", fakealbert.UsageTokensOnly, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFake(t)
			srv.SetUsage(tt.style)
			srv.SetTwoUsageChunks(tt.twoChunks)
			srv.SetReply(func(fakealbert.Request) string { return "Une réponse de quelques mots." })
			msgs := userMsgs("Combien ça coûte ?")
			ans, err := newClient(srv.URL, "").Stream(context.Background(), "", msgs, nil)
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			// The engine's count: 4 tokens of overhead per message.
			prompt := albert.EstimateTokens(msgs[0].Content) + albert.EstimateTokens(msgs[1].Content) + 8
			completion := albert.EstimateTokens("Une réponse de quelques mots.")
			want := albert.Usage{PromptTokens: prompt, CompletionTokens: completion}
			if tt.wantCost {
				want.Cost, want.KWh, want.KgCO2eq = fakealbert.UsageFigures(prompt, completion)
				want.Requests = 1
			}
			if ans.Usage != want {
				t.Errorf("Usage = %+v, want %+v", ans.Usage, want)
			}
		})
	}
}

func TestRequestShape(t *testing.T) {
	srv := startFake(t)
	srv.SetAPIKey("sk-secret")
	c := newClient(srv.URL, "sk-secret")
	msgs := []albert.Message{
		{Role: "system", Content: "Tu es Albert."},
		{Role: "user", Content: "Bonjour"},
		{Role: "assistant", Content: "Bonjour !"},
		{Role: "user", Content: "Et ensuite ?"},
	}
	if _, err := c.Complete(context.Background(), "openai/gpt-oss-120b", msgs); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if got := r.Header.Get("Authorization"); got != "Bearer sk-secret" {
		t.Errorf("Authorization = %q", got)
	}
	if r.Model != "openai/gpt-oss-120b" || !r.Stream || !r.IncludeUsage {
		t.Errorf("request = model %q stream %v include_usage %v", r.Model, r.Stream, r.IncludeUsage)
	}
	if fmt.Sprint(r.Messages) != fmt.Sprint(msgs) {
		t.Errorf("Messages = %v, want %v", r.Messages, msgs)
	}
}

func TestConcurrentStreams(t *testing.T) {
	srv := startFake(t)
	c := newClient(srv.URL, "")
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			q := fmt.Sprintf("question %d", i)
			ans, err := c.Stream(context.Background(), "", userMsgs(q), func(string) {})
			if err == nil && !strings.Contains(ans.Text, q) {
				err = fmt.Errorf("answer %q lacks %q", ans.Text, q)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestEstimateTokens(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"a", 1},
		{"abcd", 1},
		{"abcde", 2},
		{"été à l'œil", 3}, // 11 runes, more bytes
	}
	for _, tt := range tests {
		if got := albert.EstimateTokens(tt.in); got != tt.want {
			t.Errorf("EstimateTokens(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// countingTransport counts the reads of response bodies.
type countingTransport struct {
	reads *atomic.Int64
}

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		resp.Body = countingBody{ReadCloser: resp.Body, reads: c.reads}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	reads *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	b.reads.Add(1)
	return b.ReadCloser.Read(p)
}

// Issue 15: pieces that arrive between two reads of a stream are read
// together (one wake-up and one system call for several), and nothing of
// the answer is lost or reordered: every piece still reaches onDelta.
func TestStreamReadsPaced(t *testing.T) {
	const pieces = 40
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for i := range pieces {
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"m%d \"}}]}\n\n", i)
			fl.Flush()
			time.Sleep(5 * time.Millisecond)
		}
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(ts.Close)
	var want strings.Builder
	for i := range pieces {
		fmt.Fprintf(&want, "m%d ", i)
	}
	read := func(interval time.Duration) (reads int64, deltas int) {
		var n atomic.Int64
		c := albert.New(albert.Config{BaseURL: ts.URL + "/v1", Model: testModel, StreamReadInterval: interval,
			HTTPClient: &http.Client{Transport: countingTransport{reads: &n}}})
		ans, err := c.Stream(context.Background(), "", userMsgs("Bonjour"), func(string) { deltas++ })
		if err != nil || ans.Text != want.String() || ans.FinishReason != "stop" {
			t.Fatalf("interval %v: Stream = %q, %q, %v", interval, ans.Text, ans.FinishReason, err)
		}
		return n.Load(), deltas
	}
	eachReads, eachDeltas := read(-1)
	pacedReads, pacedDeltas := read(100 * time.Millisecond)
	t.Logf("%d pieces over about %d ms: %d reads one by one, %d paced", pieces, 5*pieces, eachReads, pacedReads)
	if eachDeltas != pieces || pacedDeltas != pieces {
		t.Errorf("onDelta called %d and %d times, want %d each", eachDeltas, pacedDeltas, pieces)
	}
	// 200 ms of pieces, read at most every 100 ms: a handful of reads
	// (chunked framing may split one), against one or more per piece.
	if pacedReads > 12 || pacedReads*2 > eachReads {
		t.Errorf("paced: %d reads, one by one: %d; want a handful and fewer than half", pacedReads, eachReads)
	}
}
