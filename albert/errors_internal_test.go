package albert

import (
	"errors"
	"net/http"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

func TestClassifyOpenAIErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantClass  Class
		wantStatus int
		wantDetail string
	}{
		{
			name:       "request error with FastAPI detail",
			err:        &openai.RequestError{HTTPStatusCode: 400, Body: []byte(`{"detail":"Insufficient budget."}`)},
			wantClass:  ClassBudget,
			wantStatus: 400,
			wantDetail: "Insufficient budget.",
		},
		{
			name:       "request error with 422 list",
			err:        &openai.RequestError{HTTPStatusCode: 422, Body: []byte(`{"detail":[{"type":"missing","loc":["body","model"],"msg":"Field required","input":{"secret":"prompt"}},{"loc":["body","messages",0,"role"],"msg":"Input should be 'user'"}]}`)},
			wantClass:  ClassInvalid,
			wantStatus: 422,
			wantDetail: "body.model: Field required; body.messages.0.role: Input should be 'user'",
		},
		{
			name:       "request error with HTML body",
			err:        &openai.RequestError{HTTPStatusCode: 502, Body: []byte("<html>Bad Gateway</html>\n")},
			wantClass:  ClassUpstream,
			wantStatus: 502,
			wantDetail: "<html>Bad Gateway</html>",
		},
		{
			name:       "api error",
			err:        &openai.APIError{HTTPStatusCode: 429, Message: "Rate limit exceeded"},
			wantClass:  ClassRateLimited,
			wantStatus: 429,
			wantDetail: "Rate limit exceeded",
		},
		{
			name:       "api error 424",
			err:        &openai.APIError{HTTPStatusCode: 424, Message: "Model is not reachable."},
			wantClass:  ClassUpstream,
			wantStatus: 424,
			wantDetail: "Model is not reachable.",
		},
		{
			name:      "too many empty messages",
			err:       openai.ErrTooManyEmptyStreamMessages,
			wantClass: ClassStream,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.err)
			if got.Class != tt.wantClass || got.Status != tt.wantStatus || got.Detail != tt.wantDetail || !errors.Is(got, tt.err) {
				t.Errorf("Classify = %+v, want class %s status %d detail %q", got, tt.wantClass, tt.wantStatus, tt.wantDetail)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"10", 10 * time.Second},
		{" 1 ", time.Second},
		{"-3", 0},
		{"soon", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-30 * time.Second).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestRetryAfterHeaders(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"nothing", nil, 0},
		{"Retry-After seconds", map[string]string{"Retry-After": "10"}, 10 * time.Second},
		{"Retry-After date", map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, 90 * time.Second},
		{"reset requests 1s", map[string]string{"X-Ratelimit-Reset-Requests": "1s"}, time.Second},
		{"reset tokens 6m0s", map[string]string{"X-Ratelimit-Reset-Tokens": "6m0s"}, 6 * time.Minute},
		{"reset 20ms", map[string]string{"X-Ratelimit-Reset-Requests": "20ms"}, 20 * time.Millisecond},
		{"reset as bare seconds", map[string]string{"X-Ratelimit-Reset-Requests": "2.5"}, 2500 * time.Millisecond},
		{"both resets, nothing says which: the later", map[string]string{"X-Ratelimit-Reset-Requests": "1s", "X-Ratelimit-Reset-Tokens": "6m0s"}, 6 * time.Minute},
		{"requests exhausted", map[string]string{"X-Ratelimit-Reset-Requests": "1s", "X-Ratelimit-Reset-Tokens": "6m0s", "X-Ratelimit-Remaining-Requests": "0"}, time.Second},
		{"tokens exhausted", map[string]string{"X-Ratelimit-Reset-Requests": "1s", "X-Ratelimit-Reset-Tokens": "6m0s", "X-Ratelimit-Remaining-Requests": "3", "X-Ratelimit-Remaining-Tokens": "0"}, 6 * time.Minute},
		{"Retry-After first", map[string]string{"Retry-After": "4", "X-Ratelimit-Reset-Requests": "1m"}, 4 * time.Second},
		{"unreadable values", map[string]string{"Retry-After": "soon", "X-Ratelimit-Reset-Requests": "-1s", "X-Ratelimit-Reset-Tokens": "later"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			if got := retryAfter(h, now); got != tt.want {
				t.Errorf("retryAfter(%v) = %s, want %s", tt.header, got, tt.want)
			}
		})
	}
}

func TestDetailTruncated(t *testing.T) {
	long := make([]byte, 0, 2000)
	for len(long) < 2000 {
		long = append(long, "é"...)
	}
	got := detailFromBody(long)
	if len(got) > maxDetail+len("…") || !isValidUTF8(got) {
		t.Errorf("detail not truncated cleanly: %d bytes", len(got))
	}
}

func isValidUTF8(s string) bool {
	for _, r := range s {
		if r == 0xFFFD {
			return false
		}
	}
	return true
}
