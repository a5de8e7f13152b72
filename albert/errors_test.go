package albert_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"guichet/albert"
	"guichet/albert/fakealbert"
)

func TestStreamErrorStatus(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		detail     string
		wantClass  albert.Class
		wantRetry  time.Duration
		retryable  bool
		wantDetail string // "" = detail
	}{
		{"budget", 400, "Insufficient budget.", albert.ClassBudget, 0, false, ""},
		{"other 400", 400, "Invalid parameter.", albert.ClassInvalid, 0, false, ""},
		{"unauthorized", 401, "Invalid API key.", albert.ClassAuth, 0, false, ""},
		{"forbidden", 403, "Insufficient rights.", albert.ClassAuth, 0, false, ""},
		{"not found", 404, "Model not found.", albert.ClassNotFound, 0, false, ""},
		{"unprocessable", 422, "Wrong field.", albert.ClassInvalid, 0, false, ""},
		{"rate limited", 429, "1000 requests for mistral-medium-2508 per minute exceeded.", albert.ClassRateLimited, 0, true, ""},
		{"failed dependency", 424, "Model is not reachable.", albert.ClassUpstream, 0, true, ""},
		{"internal", 500, "Internal Server Error", albert.ClassUpstream, 0, true, ""},
		{"bad gateway", 502, "Bad Gateway", albert.ClassUpstream, 0, true, ""},
		{"busy", 503, "Model is too busy.", albert.ClassBusy, time.Second, true, ""},
		{"gateway timeout", 504, "Request timed out, model is too busy.", albert.ClassTimeout, 0, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFake(t)
			srv.FailNext(1, tt.status, tt.detail)
			c := newClient(srv.URL, "")
			ans, err := c.Stream(context.Background(), "", userMsgs("Bonjour"), func(string) {
				t.Error("onDelta called on a failed call")
			})
			ae := asError(t, err)
			if ae.Class != tt.wantClass || ae.Status != tt.status || ae.Detail != tt.detail ||
				ae.RetryAfter != tt.wantRetry || ae.Partial || ae.Retryable() != tt.retryable {
				t.Errorf("error = %+v (retryable %v), want class %s status %d detail %q retry-after %s retryable %v",
					ae, ae.Retryable(), tt.wantClass, tt.status, tt.detail, tt.wantRetry, tt.retryable)
			}
			if ans.Text != "" {
				t.Errorf("Text = %q, want empty", ans.Text)
			}
			if !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("Error() = %q lacks detail", err.Error())
			}
			// FailNext(1) fails one call only.
			if _, err := c.Complete(context.Background(), "", userMsgs("Encore")); err != nil {
				t.Errorf("second call: %v", err)
			}
			if srv.Calls() != 2 {
				t.Errorf("Calls = %d, want 2", srv.Calls())
			}
		})
	}
}

func TestStreamRequestErrors(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL + "/v1"
	closed.Close()

	openAIStyle := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"message":"Overloaded","type":"server_error"}}`)
	}))
	t.Cleanup(openAIStyle.Close)

	srv := startFake(t)
	srv.SetAPIKey("sk-good")

	tests := []struct {
		name       string
		baseURL    string
		key        string
		model      string
		msgs       []albert.Message
		wantClass  albert.Class
		wantStatus int
		wantDetail string
		wantRetry  time.Duration
	}{
		{"wrong key", srv.URL, "sk-bad", "", userMsgs("x"), albert.ClassAuth, 401, "Invalid authentication scheme.", 0},
		{"unknown model", srv.URL, "sk-good", "albert-small", userMsgs("x"), albert.ClassNotFound, 404, "Model not found.", 0},
		{"embedding model", srv.URL, "sk-good", "BAAI/bge-m3", userMsgs("x"), albert.ClassInvalid, 422, "Wrong model type, expected text-generation model.", 0},
		{"422 list flattened", srv.URL, "sk-good", "", nil, albert.ClassInvalid, 422, "body.messages: Field required", 0},
		{"openai-style body", openAIStyle.URL + "/v1", "", "", userMsgs("x"), albert.ClassBusy, 503, "Overloaded", 7 * time.Second},
		{"connection refused", closedURL, "", "", userMsgs("x"), albert.ClassNetwork, 0, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(tt.baseURL, tt.key)
			_, err := c.Stream(context.Background(), tt.model, tt.msgs, nil)
			ae := asError(t, err)
			if ae.Class != tt.wantClass || ae.Status != tt.wantStatus || ae.Detail != tt.wantDetail || ae.RetryAfter != tt.wantRetry {
				t.Errorf("error = %+v, want class %s status %d detail %q retry-after %s",
					ae, tt.wantClass, tt.wantStatus, tt.wantDetail, tt.wantRetry)
			}
		})
	}
}

func TestStreamMidStreamError(t *testing.T) {
	tests := []struct {
		name       string
		style      fakealbert.MidStreamStyle
		wantDetail string
	}{
		{"bare JSON line", fakealbert.BareJSON, "Request timed out, model is too busy."},
		{"event error frame", fakealbert.EventError, "Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFake(t)
			srv.FailMidStream(1, tt.style)
			c := newClient(srv.URL, "")
			msgs := userMsgs("Quels documents pour une carte d'identité ?")
			var shown string
			ans, err := c.Stream(context.Background(), "", msgs, func(s string) { shown = s })
			ae := asError(t, err)
			if ae.Class != albert.ClassStream || !ae.Partial || ae.Detail != tt.wantDetail || ae.Retryable() {
				t.Errorf("error = %+v, want partial stream error %q, not retryable", ae, tt.wantDetail)
			}
			full := fakealbert.DefaultReply(srv.Requests()[0])
			if ans.Text == "" || ans.Text == full || !strings.HasPrefix(full, ans.Text) || ans.Text != shown {
				t.Errorf("partial Text = %q, shown %q, full %q", ans.Text, shown, full)
			}
			if ans.FinishReason != "" || !ans.Usage.Estimated || ans.Usage.CompletionTokens != albert.EstimateTokens(ans.Text) {
				t.Errorf("Answer = %+v, want no finish reason and estimated usage", ans)
			}
			// The next stream is whole again.
			if ans, err := c.Complete(context.Background(), "", msgs); err != nil || ans.Text != full {
				t.Errorf("next call = %q, %v", ans.Text, err)
			}
		})
	}
}

func TestStreamErrorBeforeText(t *testing.T) {
	first := strings.SplitAfterN(recordedStream, "\n\n", 2)[0]
	tests := []struct {
		name       string
		body       string
		wantDetail string
	}{
		{"bare JSON", first + `{"detail":"Request timed out, model is too busy."}` + "\n", "Request timed out, model is too busy."},
		{"bare JSON without newline", first + `{"detail":"Request timed out, model is too busy."}`, "Request timed out, model is too busy."},
		{"event error", first + "event: error\ndata: {\"error\":{\"message\":\"Internal Server Error\"}}\n\n", "Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(rawServer(t, tt.body), "")
			_, err := c.Stream(context.Background(), "", userMsgs("x"), nil)
			ae := asError(t, err)
			if ae.Class != albert.ClassStream || ae.Partial || ae.Detail != tt.wantDetail || !ae.Retryable() {
				t.Errorf("error = %+v, want retryable non-partial stream error %q", ae, tt.wantDetail)
			}
		})
	}
}

func TestStreamContextEnds(t *testing.T) {
	tests := []struct {
		name      string
		idle      time.Duration
		latency   time.Duration
		tokens    time.Duration
		cancel    bool
		wantClass albert.Class
	}{
		{name: "server silent before first chunk", idle: 50 * time.Millisecond, latency: time.Minute, wantClass: albert.ClassTimeout},
		{name: "server silent between chunks", idle: 50 * time.Millisecond, tokens: time.Minute, wantClass: albert.ClassTimeout},
		{name: "caller cancels", latency: time.Minute, cancel: true, wantClass: albert.ClassCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fake := fakealbert.New()
			fake.SetLatency(tt.latency)
			fake.SetTokenDelay(tt.tokens)
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.cancel {
					cancel() // the request is in flight: the caller gives up
				}
				fake.Handler().ServeHTTP(w, r)
			}))
			defer ts.Close()
			c := albert.New(albert.Config{BaseURL: ts.URL + "/v1", Model: testModel, StreamIdleTimeout: tt.idle})
			_, err := c.Stream(ctx, "", userMsgs("x"), nil)
			ae := asError(t, err)
			if ae.Class != tt.wantClass || ae.Partial || ae.Retryable() != (tt.wantClass == albert.ClassTimeout) {
				t.Errorf("error = %+v, want class %s", ae, tt.wantClass)
			}
		})
	}
}

func TestNoModel(t *testing.T) {
	c := albert.New(albert.Config{BaseURL: "http://127.0.0.1:1/v1"})
	_, err := c.Complete(context.Background(), "", userMsgs("x"))
	if ae := asError(t, err); ae.Class != albert.ClassInvalid {
		t.Errorf("class = %s, want invalid", ae.Class)
	}
}

func TestClassify(t *testing.T) {
	own := &albert.Error{Class: albert.ClassBusy}
	tests := []struct {
		name string
		err  error
		want albert.Class
	}{
		{"own error passes through", fmt.Errorf("failed to answer: %w", own), albert.ClassBusy},
		{"deadline", context.DeadlineExceeded, albert.ClassTimeout},
		{"canceled", fmt.Errorf("wrapped: %w", context.Canceled), albert.ClassCanceled},
		{"net op error", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, albert.ClassNetwork},
		{"unknown", errors.New("invalid character 'x'"), albert.ClassStream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := albert.Classify(tt.err); got.Class != tt.want {
				t.Errorf("Classify = %+v, want %s", got, tt.want)
			}
		})
	}
	if albert.Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
}
