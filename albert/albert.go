// Package albert is the client of Albert API, the state's OpenAI-compatible
// LLM gateway. It is the only package that knows the API's request and
// response shapes (and go-openai); callers get plain types and a classified
// *Error to decide on retries and user-facing messages. It never retries and
// never logs prompts or answers.
package albert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	openai "github.com/sashabaranov/go-openai"
)

// DefaultStreamIdleTimeout is how long a call may wait without receiving a
// byte (headers or chunks) before it fails with ClassTimeout.
const DefaultStreamIdleTimeout = 90 * time.Second

// DefaultStreamReadInterval is the least time between two reads of a
// streamed answer. Albert sends one piece (a token or a few) per chunk,
// tens per second; read as each arrives, every piece costs a wake-up, a
// system call and a pass through go-openai's reader. Read at most every
// 50 ms, the pieces that arrived meanwhile are taken in one read (peer
// kit, 30 pieces in 300 ms: about 6 reads instead of 31), for at most
// 50 ms more before the end of an answer is seen; guichet shows progress
// once a second anyway (albert.edit_interval).
const DefaultStreamReadInterval = 50 * time.Millisecond

// Config configures a Client.
type Config struct {
	// BaseURL is the API root including /v1, e.g.
	// "https://albert.api.etalab.gouv.fr/v1"; a trailing slash is tolerated.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <key>".
	APIKey string
	// Model is the model id used when a call passes "". Use the id, never an
	// alias: aliases get renamed without notice.
	Model string
	// HTTPClient is used for all calls; nil means a client with connect and
	// TLS timeouts and no overall timeout (answers stream for minutes).
	// Its Transport is wrapped, not modified.
	HTTPClient *http.Client
	// StreamIdleTimeout bounds the silence between two reads from the
	// server, including the wait for the first byte; 0 means
	// DefaultStreamIdleTimeout.
	StreamIdleTimeout time.Duration
	// StreamReadInterval is the least time between two reads of a streamed
	// answer (see DefaultStreamReadInterval); 0 means the default, a
	// negative value reads each piece as it arrives.
	StreamReadInterval time.Duration
}

// Client calls Albert API. It is safe for concurrent use.
type Client struct {
	oa      *openai.Client
	http    *http.Client
	baseURL string
	apiKey  string
	model   string
	idle    time.Duration
	pace    time.Duration // 0: each piece read as it arrives
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	base := strings.TrimRight(cfg.BaseURL, "/")
	hc := defaultHTTPClient()
	if cfg.HTTPClient != nil {
		cp := *cfg.HTTPClient
		hc = &cp
	}
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	hc.Transport = observingTransport{base: rt}

	oc := openai.DefaultConfig(cfg.APIKey)
	oc.BaseURL = base
	oc.HTTPClient = hc

	idle := cfg.StreamIdleTimeout
	if idle <= 0 {
		idle = DefaultStreamIdleTimeout
	}
	pace := cfg.StreamReadInterval
	switch {
	case pace == 0:
		pace = DefaultStreamReadInterval
	case pace < 0:
		pace = 0
	}
	return &Client{
		oa:      openai.NewClientWithConfig(oc),
		http:    hc,
		baseURL: base,
		apiKey:  cfg.APIKey,
		model:   cfg.Model,
		idle:    idle,
		pace:    pace,
	}
}

func defaultHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   64, // answers streamed at once reuse their connections
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

// Message is one turn of a conversation.
type Message struct {
	// Role is "system", "user" or "assistant".
	Role string
	// Content is the text of the turn.
	Content string
}

// Usage counts the tokens of a call, and what Albert says it cost.
type Usage struct {
	// PromptTokens is the size of the input.
	PromptTokens int
	// CompletionTokens is the size of the answer.
	CompletionTokens int
	// Estimated is true when the server sent no usage (for instance a broken
	// stream) and the counts come from EstimateTokens.
	Estimated bool
	// Cost is what Albert charged for the call, in euros (0 when unsaid).
	Cost float64
	// Requests is how many model calls Albert made for the answer.
	Requests int
	// KWh and KgCO2eq are Albert's estimate of the call's energy and
	// emissions; when it sends a {"min","max"} range (before March 2026,
	// and /me/usage still), the upper bound.
	KWh     float64
	KgCO2eq float64
}

// Answer is the result of a chat completion.
type Answer struct {
	// Text is the answer, possibly partial when returned with an error.
	Text string
	// Model is the model name reported by the server: the upstream name,
	// not necessarily the id that was asked for.
	Model string
	// Usage is the token count, from the server or estimated.
	Usage Usage
	// FinishReason is "stop", "length", ... or "" when the stream broke.
	FinishReason string
}

// EstimateTokens roughly counts the tokens of s: a quarter of its runes,
// rounded up, and at least 1 for a non-empty string.
func EstimateTokens(s string) int {
	n := utf8.RuneCountInString(s)
	return (n + 3) / 4
}

// Stream sends a streaming chat completion (model "" means Config.Model,
// with stream_options.include_usage) and calls onDelta with the full text so
// far each time new content arrives; onDelta may be nil and runs on the
// caller's goroutine. It returns the answer; on an error after some text
// arrived, it returns the partial Answer and an *Error with Partial set.
// Every error is an *Error.
func (c *Client) Stream(ctx context.Context, model string, msgs []Message, onDelta func(textSoFar string)) (Answer, error) {
	if model == "" {
		model = c.model
	}
	if model == "" {
		return Answer{}, &Error{Class: ClassInvalid, Detail: "no model configured"}
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := &idleTimer{d: c.idle}
	idle.t = time.AfterFunc(c.idle, func() { cancel(errIdle) })
	defer idle.t.Stop()
	// An error frame ends the call at once: the server may keep the
	// connection open after it, and go-openai would wait for more.
	obs := &call{activity: idle.touch, onStreamErr: func() { cancel(errStreamFrame) }, pace: c.pace}
	ctx = withCall(ctx, obs)

	req := openai.ChatCompletionRequest{
		Model:         model,
		Messages:      toOpenAI(msgs),
		Stream:        true,
		StreamOptions: &openai.StreamOptions{IncludeUsage: true},
	}
	stream, err := c.oa.CreateChatCompletionStream(ctx, req)
	if err != nil {
		return Answer{}, c.callError(ctx, obs, err, false)
	}
	defer stream.Close()

	ans := Answer{Model: model}
	var text strings.Builder
	var usage *usageJSON
	for {
		chunk, err := recvChunk(stream)
		if err != nil {
			ans.Text = text.String()
			ans.Usage = usageOf(usage, msgs, ans.Text)
			if errors.Is(err, io.EOF) && !obs.streamErr && (obs.done || ans.FinishReason != "") {
				return ans, nil
			}
			if errors.Is(err, io.EOF) && !obs.streamErr {
				err = io.ErrUnexpectedEOF
			}
			return ans, c.callError(ctx, obs, err, ans.Text != "")
		}
		if chunk.Model != "" {
			ans.Model = chunk.Model
		}
		if chunk.Usage != nil {
			usage = chunk.Usage
		}
		// The usage chunk has "choices": [], and nothing forbids more than one choice.
		grew := false
		for _, ch := range chunk.Choices {
			if ch.Index != 0 {
				continue
			}
			if ch.Delta.Content != "" {
				text.WriteString(ch.Delta.Content)
				grew = true
			}
			if ch.FinishReason != "" {
				ans.FinishReason = string(ch.FinishReason)
			}
		}
		if grew && onDelta != nil {
			// A slow callback is not server silence.
			idle.t.Stop()
			onDelta(text.String())
			idle.touch()
		}
	}
}

// Complete is Stream without progress callback.
func (c *Client) Complete(ctx context.Context, model string, msgs []Message) (Answer, error) {
	return c.Stream(ctx, model, msgs, nil)
}

// errIdle is the cancellation cause when the server stays silent.
var errIdle = errors.New("no data from Albert API")

// errStreamFrame is the cancellation cause when the stream carried an error.
var errStreamFrame = errors.New("error frame in the stream")

// chunk is a stream chunk: go-openai's shape, and Albert's own usage.
type chunk struct {
	openai.ChatCompletionStreamResponse
	Usage *usageJSON `json:"usage"`
}

// usageJSON is Albert's usage object: OpenAI's token counts plus cost,
// carbon (numbers since March 2026, {"min","max"} before) and requests.
type usageJSON struct {
	PromptTokens     int    `json:"prompt_tokens"`
	CompletionTokens int    `json:"completion_tokens"`
	Cost             amount `json:"cost"`
	Requests         amount `json:"requests"`
	Carbon           *struct {
		KWh     amount `json:"kWh"`
		KgCO2eq amount `json:"kgCO2eq"`
	} `json:"carbon"`
}

// amount is a number that Albert sends either as a number or as a
// {"min","max"} range; a range reads as its upper bound. null or anything
// else reads as 0: a new shape of the carbon figures must not break answers.
type amount float64

func (a *amount) UnmarshalJSON(b []byte) error {
	var f float64
	if json.Unmarshal(b, &f) == nil {
		*a = amount(f)
		return nil
	}
	var r struct {
		Min *float64 `json:"min"`
		Max *float64 `json:"max"`
	}
	if json.Unmarshal(b, &r) == nil {
		switch {
		case r.Max != nil:
			*a = amount(*r.Max)
		case r.Min != nil:
			*a = amount(*r.Min)
		}
	}
	return nil
}

// recvChunk reads the next chunk. It decodes the raw line itself, since
// go-openai's Usage drops Albert's cost and carbon.
func recvChunk(stream *openai.ChatCompletionStream) (chunk, error) {
	var c chunk
	raw, err := stream.RecvRaw()
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("failed to decode stream chunk: %w", err)
	}
	return c, nil
}

// callError turns an error of a call into an *Error, using what the
// transport saw (status, Retry-After, error body, in-stream error frames)
// and why the context ended.
func (c *Client) callError(ctx context.Context, obs *call, err error, partial bool) *Error {
	var e *Error
	switch {
	case errors.Is(context.Cause(ctx), errIdle):
		e = &Error{Class: ClassTimeout, Status: obs.status, Detail: fmt.Sprintf("no data from Albert API for %s", c.idle), Err: err}
	case obs.streamErr:
		e = &Error{Class: ClassStream, Status: obs.status, Detail: obs.streamDetail, Err: err}
	case obs.status >= 400:
		e = fromStatus(obs.status, detailFromBody(obs.errBody), obs.header, err)
	default:
		e = Classify(err)
		if e.Class != ClassCanceled && e.Class != ClassTimeout && obs.status != 0 && obs.status < 400 {
			// The request got a 200: whatever broke did so inside the stream.
			e.Class = ClassStream
			e.Status = obs.status
		}
	}
	e.Partial = partial
	return e
}

func toOpenAI(msgs []Message) []openai.ChatCompletionMessage {
	out := make([]openai.ChatCompletionMessage, len(msgs))
	for i, m := range msgs {
		out[i] = openai.ChatCompletionMessage{Role: m.Role, Content: m.Content}
	}
	return out
}

func usageOf(u *usageJSON, msgs []Message, text string) Usage {
	if u != nil && (u.PromptTokens > 0 || u.CompletionTokens > 0) {
		out := Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens,
			Cost: float64(u.Cost), Requests: int(u.Requests)}
		if u.Carbon != nil {
			out.KWh, out.KgCO2eq = float64(u.Carbon.KWh), float64(u.Carbon.KgCO2eq)
		}
		return out
	}
	prompt := 0
	for _, m := range msgs {
		prompt += EstimateTokens(m.Content)
	}
	return Usage{PromptTokens: prompt, CompletionTokens: EstimateTokens(text), Estimated: true}
}
