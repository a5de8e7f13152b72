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
		{"invalid key, 2026", 403, "Invalid API key.", albert.ClassAuth, 0, false, ""},
		{"model closed to the key", 403, "Insufficient permissions to access the model.", albert.ClassModelClosed, 0, false, ""},
		{"requests per day", 429, "1000 requests per day exceeded (remaining: 0).", albert.ClassDailyLimit, 0, false, ""},
		{"input tokens per day", 429, "200000 input tokens per day exceeded (remaining: 12).", albert.ClassDailyLimit, 0, false, ""},
		{"input tokens per minute", 429, "50000 input tokens per minute exceeded (remaining: 3).", albert.ClassRateLimited, 0, true, ""},
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

// The 2026 answers with their headers, as the fake serves them.
func TestStreamErrorHeaders(t *testing.T) {
	at := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	tests := []struct {
		name      string
		fail      fakealbert.Failure
		wantClass albert.Class
		// wantRetry is the exact RetryAfter; for an HTTP date, the lower
		// bound (the clock moves between the answer and the parse).
		wantRetry time.Duration
		date      bool
		retryable bool
	}{
		{"503 with Retry-After: 10", fakealbert.Overloaded(), albert.ClassBusy, 10 * time.Second, false, true},
		{"per-minute 429 without headers (March 2026)", fakealbert.PerMinuteLimit(50), albert.ClassRateLimited, 0, false, true},
		{"per-minute 429 with x-ratelimit-reset-requests", fakealbert.PerMinuteLimit(50).
			With("X-Ratelimit-Remaining-Requests", "0").With("X-Ratelimit-Reset-Requests", "20ms").
			With("X-Ratelimit-Remaining-Tokens", "40000").With("X-Ratelimit-Reset-Tokens", "6m0s"),
			albert.ClassRateLimited, 20 * time.Millisecond, false, true},
		{"per-minute 429, tokens exhausted", fakealbert.PerMinuteLimit(50).
			With("X-Ratelimit-Remaining-Requests", "12").With("X-Ratelimit-Reset-Requests", "1s").
			With("X-Ratelimit-Remaining-Tokens", "0").With("X-Ratelimit-Reset-Tokens", "6m0s"),
			albert.ClassRateLimited, 6 * time.Minute, false, true},
		{"Retry-After wins over x-ratelimit", fakealbert.PerMinuteLimit(50).
			With("Retry-After", "3").With("X-Ratelimit-Reset-Requests", "1s"),
			albert.ClassRateLimited, 3 * time.Second, false, true},
		{"per-day 429 without headers", fakealbert.PerDayLimit(1000), albert.ClassDailyLimit, 0, false, false},
		{"per-day 429 with x-ratelimit-reset-requests", fakealbert.PerDayLimit(1000).With("X-Ratelimit-Reset-Requests", "13h20m0s"),
			albert.ClassDailyLimit, 13*time.Hour + 20*time.Minute, false, false},
		{"per-day tokens 429 with Retry-After as a date", fakealbert.PerDayTokens(200000).With("Retry-After", at.Format(http.TimeFormat)),
			albert.ClassDailyLimit, 2*time.Hour - time.Minute, true, false},
		{"spent budget", fakealbert.InsufficientBudget(), albert.ClassBudget, 0, false, false},
		{"invalid key, 2026", fakealbert.InvalidKey(), albert.ClassAuth, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFake(t)
			srv.FailNextWith(1, tt.fail)
			_, err := newClient(srv.URL, "").Stream(context.Background(), "", userMsgs("Bonjour"), nil)
			ae := asError(t, err)
			retryOK := ae.RetryAfter == tt.wantRetry
			if tt.date {
				retryOK = ae.RetryAfter > tt.wantRetry && ae.RetryAfter <= 2*time.Hour
			}
			if ae.Class != tt.wantClass || ae.Status != tt.fail.Status || ae.Detail != tt.fail.Detail || !retryOK || ae.Retryable() != tt.retryable {
				t.Errorf("error = %+v (retryable %v), want class %s retry-after %s retryable %v",
					ae, ae.Retryable(), tt.wantClass, tt.wantRetry, tt.retryable)
			}
		})
	}
}

// A model closed to the key answers 403 until it is opened again, and the
// other models keep answering.
func TestModelClosedToTheKey(t *testing.T) {
	srv := startFake(t)
	srv.CloseModel("openai/gpt-oss-120b")
	c := newClient(srv.URL, "")
	_, err := c.Stream(context.Background(), "openai/gpt-oss-120b", userMsgs("x"), nil)
	if ae := asError(t, err); ae.Class != albert.ClassModelClosed || ae.Status != 403 || ae.Detail != fakealbert.DetailModelClosed || ae.Retryable() {
		t.Errorf("error = %+v, want a model_closed 403, not retryable", ae)
	}
	if _, err := c.Stream(context.Background(), "", userMsgs("x"), nil); err != nil {
		t.Errorf("the default model failed too: %v", err)
	}
	srv.OpenModel("openai/gpt-oss-120b")
	if _, err := c.Stream(context.Background(), "openai/gpt-oss-120b", userMsgs("x"), nil); err != nil {
		t.Errorf("the reopened model failed: %v", err)
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
		{"bare JSON line, 2026 ReadTimeout", fakealbert.BareJSONReadTimeout, fakealbert.DetailReadTimeout},
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

// An error line after which the server keeps the connection open ends the
// call at once, as a cut answer that keeps the text received before it;
// go-openai alone would wait for the idle timeout and call it a timeout.
func TestStreamErrorLineOnOpenConnection(t *testing.T) {
	first := strings.SplitAfterN(recordedStream, "\n\n", 3)
	tests := []struct {
		name       string
		frame      string
		wantDetail string
	}{
		{"bare JSON", `{"detail":"Model is too busy (ReadTimeout), please try again later."}` + "\n", "Model is too busy (ReadTimeout), please try again later."},
		{"event error", "event: error\ndata: {\"error\":{\"message\":\"Internal Server Error\"}}\n\n", "Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				_, _ = w.Write([]byte(first[0] + first[1] + tt.frame))
				w.(http.Flusher).Flush()
				<-r.Context().Done() // never closes on its own
			}))
			t.Cleanup(ts.Close)
			c := albert.New(albert.Config{BaseURL: ts.URL + "/v1", Model: testModel, StreamIdleTimeout: time.Hour})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ans, err := c.Stream(ctx, "", userMsgs("x"), nil)
			ae := asError(t, err)
			if ae.Class != albert.ClassStream || !ae.Partial || ae.Detail != tt.wantDetail || ans.Text != "I" {
				t.Errorf("error = %+v, text %q; want a partial stream error %q after \"I\"", ae, ans.Text, tt.wantDetail)
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
