package albert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// Class is the kind of failure of a call to Albert API. Callers branch on it
// (retry, pause the key, fall back to the default model, tell the user) rather
// than on HTTP statuses or error strings.
type Class string

// Error classes, from the status table in albert-api.md.
const (
	// ClassBudget is 400 "Insufficient budget.": stop calling with this key
	// until someone tops it up.
	ClassBudget Class = "budget"
	// ClassDailyLimit is a 429 whose detail names a per-day window ("N
	// requests per day exceeded", "... input tokens per day ..."): every call
	// with this key fails until the window rolls, so it is not retried and
	// is no sign of overload. RetryAfter is set when the server said when.
	ClassDailyLimit Class = "daily_limit"
	// ClassAuth is 401, or a 403 other than ClassModelClosed: bad or expired
	// key (the 2026 engine answers 403 "Invalid API key.").
	ClassAuth Class = "auth"
	// ClassModelClosed is 403 "Insufficient permissions to access the
	// model.": the key is valid but this model is closed to the account.
	ClassModelClosed Class = "model_closed"
	// ClassNotFound is 404: unknown model (or collection).
	ClassNotFound Class = "not_found"
	// ClassInvalid is 422 or any other 4xx: the request shape was rejected.
	ClassInvalid Class = "invalid"
	// ClassRateLimited is a 429 of a per-minute window (requests or input
	// tokens): transient, retried with backoff, and a sign of overload.
	ClassRateLimited Class = "rate_limited"
	// ClassUpstream is 424/500/502 (and other 5xx): provider unreachable or model down.
	ClassUpstream Class = "upstream"
	// ClassBusy is 503: model busy or upstream timeout (the 2026 overload
	// answer, with "Retry-After: 10"); RetryAfter says how long to wait.
	ClassBusy Class = "busy"
	// ClassTimeout is 504 (the overload answer before 2026) or a client-side
	// timeout (deadline, idle stream).
	ClassTimeout Class = "timeout"
	// ClassNetwork is a transport failure before any response (refused, DNS, reset).
	ClassNetwork Class = "network"
	// ClassStream is an error reported or detected inside a stream that had started.
	ClassStream Class = "stream"
	// ClassCanceled means the caller's context was canceled; nothing to report.
	ClassCanceled Class = "canceled"
)

// Error is the only error type returned by Client methods.
type Error struct {
	// Class is the kind of failure.
	Class Class
	// Status is the HTTP status, 0 when no response status applies.
	Status int
	// Detail is the server's explanation: the FastAPI "detail" string, a 422
	// list flattened as "loc: msg; ...", or an in-stream error message.
	// It never contains the prompt.
	Detail string
	// RetryAfter is when the server said to come back: its Retry-After
	// header (seconds or HTTP date), else its x-ratelimit-reset-requests or
	// x-ratelimit-reset-tokens header (the exhausted one when
	// x-ratelimit-remaining-* says which); 0 when it said nothing.
	RetryAfter time.Duration
	// Partial is true when some answer text had already arrived; the Answer
	// returned alongside holds it.
	Partial bool
	// Err is the underlying error, if any.
	Err error
}

// Error describes the failure without any prompt or answer text.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("albert: ")
	b.WriteString(string(e.Class))
	if e.Status != 0 {
		fmt.Fprintf(&b, " (status %d)", e.Status)
	}
	if e.Partial {
		b.WriteString(" after partial answer")
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Err != nil && e.Detail == "" {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether a retry before any token was shown makes sense:
// per-minute rate limits, upstream failures, busy models, timeouts (the caller retries a
// 504 once), network failures and streams that broke before any text. It is
// false once text was shown (Partial), since a retry would repeat it, and
// for a daily limit or a spent budget, which no retry gets past.
func (e *Error) Retryable() bool {
	if e == nil || e.Partial {
		return false
	}
	switch e.Class {
	case ClassRateLimited, ClassUpstream, ClassBusy, ClassTimeout, ClassNetwork, ClassStream:
		return true
	}
	return false
}

// Classify maps any error coming from go-openai, net/http or this package to
// an *Error. It returns nil for a nil error and the error itself when it
// already is an *Error.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) && apiErr.HTTPStatusCode != 0 {
		return fromStatus(apiErr.HTTPStatusCode, apiErr.Message, nil, err)
	}
	var reqErr *openai.RequestError
	if errors.As(err, &reqErr) && reqErr.HTTPStatusCode != 0 {
		return fromStatus(reqErr.HTTPStatusCode, detailFromBody(reqErr.Body), nil, err)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return &Error{Class: ClassCanceled, Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Class: ClassTimeout, Err: err}
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return &Error{Class: ClassTimeout, Err: err}
	}
	var urlErr *url.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &urlErr) || errors.As(err, &opErr) || errors.As(err, &dnsErr) || netErr != nil {
		return &Error{Class: ClassNetwork, Err: err}
	}
	// Anything else (a chunk that is not JSON, a stream that stopped early)
	// is a malformed answer from a request that did reach the server.
	return &Error{Class: ClassStream, Err: err}
}

// fromStatus builds the *Error for an HTTP error status.
func fromStatus(status int, detail string, header http.Header, err error) *Error {
	e := &Error{Status: status, Detail: detail, Err: err}
	switch {
	case status == http.StatusBadRequest && strings.Contains(strings.ToLower(detail), "budget"):
		e.Class = ClassBudget
	case status == http.StatusForbidden && isModelPermission(detail):
		e.Class = ClassModelClosed
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Class = ClassAuth
	case status == http.StatusNotFound:
		e.Class = ClassNotFound
	case status == http.StatusTooManyRequests && isPerDay(detail):
		e.Class = ClassDailyLimit
	case status == http.StatusTooManyRequests:
		e.Class = ClassRateLimited
	case status == http.StatusServiceUnavailable:
		e.Class = ClassBusy
	case status == http.StatusGatewayTimeout || status == http.StatusRequestTimeout:
		e.Class = ClassTimeout
	case status == http.StatusFailedDependency || status >= 500:
		e.Class = ClassUpstream
	default:
		e.Class = ClassInvalid
	}
	if header != nil {
		e.RetryAfter = retryAfter(header, time.Now())
	}
	return e
}

// isPerDay tells a 429 of a daily window from a per-minute one by its
// detail: "1000 requests for gpt-oss-120b per day exceeded (remaining: 0).",
// "... input tokens per day exceeded ...". Anything else is per-minute,
// the transient kind.
func isPerDay(detail string) bool {
	d := strings.ToLower(detail)
	return strings.Contains(d, "per day") || strings.Contains(d, "/day") || strings.Contains(d, "daily")
}

// isModelPermission tells the 403 that closes one model to a valid key
// ("Insufficient permissions to access the model.") from a bad key's 403.
func isModelPermission(detail string) bool {
	d := strings.ToLower(detail)
	return strings.Contains(d, "permission") && strings.Contains(d, "model")
}

// retryAfter reads when to come back from an error response's headers:
// Retry-After first, else the OpenAI-style x-ratelimit-reset-* of the
// exhausted window (or the later of the two when neither says it is
// exhausted).
func retryAfter(h http.Header, now time.Time) time.Duration {
	if d := parseRetryAfter(h.Get("Retry-After"), now); d > 0 {
		return d
	}
	reqs := parseResetDuration(h.Get("X-Ratelimit-Reset-Requests"))
	toks := parseResetDuration(h.Get("X-Ratelimit-Reset-Tokens"))
	reqsOut := strings.TrimSpace(h.Get("X-Ratelimit-Remaining-Requests")) == "0"
	toksOut := strings.TrimSpace(h.Get("X-Ratelimit-Remaining-Tokens")) == "0"
	switch {
	case reqsOut && toksOut:
		return max(reqs, toks)
	case reqsOut && reqs > 0:
		return reqs
	case toksOut && toks > 0:
		return toks
	}
	return max(reqs, toks)
}

// parseResetDuration reads an x-ratelimit-reset-* value: a Go-style
// duration as OpenAI sends it ("1s", "6m0s", "20ms", "1h2m3.5s"), or a bare
// number of seconds.
func parseResetDuration(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return d
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 && secs < 1e6 {
		return time.Duration(secs * float64(time.Second))
	}
	return 0
}

// maxDetail caps Detail so that a proxy's HTML error page does not flood logs.
const maxDetail = 500

// detailFromBody extracts the explanation from an error body: FastAPI's
// {"detail": "..."} or {"detail": [{"loc": [...], "msg": "..."}]}, OpenAI's
// {"error": {"message": "..."}}, or else the trimmed raw body.
func detailFromBody(body []byte) string {
	var v struct {
		Detail json.RawMessage `json:"detail"`
		Error  *struct {
			Message json.RawMessage `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &v); err == nil {
		switch {
		case len(v.Detail) > 0:
			return truncate(flattenDetail(v.Detail))
		case v.Error != nil && len(v.Error.Message) > 0:
			return truncate(flattenDetail(v.Error.Message))
		}
	}
	return truncate(strings.TrimSpace(string(body)))
}

// flattenDetail turns a detail value into one line. 422 lists become
// "body.messages: Field required; ..."; their "input" is left out since it
// can echo the prompt.
func flattenDetail(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var items []struct {
		Loc []any  `json:"loc"`
		Msg string `json:"msg"`
	}
	if json.Unmarshal(raw, &items) == nil {
		parts := make([]string, 0, len(items))
		for _, it := range items {
			loc := make([]string, 0, len(it.Loc))
			for _, l := range it.Loc {
				loc = append(loc, fmt.Sprint(l))
			}
			if len(loc) > 0 {
				parts = append(parts, strings.Join(loc, ".")+": "+it.Msg)
			} else {
				parts = append(parts, it.Msg)
			}
		}
		return strings.Join(parts, "; ")
	}
	return string(raw)
}

func truncate(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	cut := maxDetail
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// parseRetryAfter reads a Retry-After value in seconds or as an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
