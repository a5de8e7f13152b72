package albert

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// go-openai hides what Albert actually sent: it drops response headers on
// errors (no Retry-After, no x-ratelimit-*), and its stream reader (v1.43
// stream_reader.go) puts any line without "data:" into an error accumulator
// that it reads only when the body ends and only in OpenAI's {"error": ...}
// shape: a bare {"detail": ...} line is swallowed, the stream ends like a
// normal one (io.EOF), and if the server keeps the connection open the
// reader waits for more. "event: error" frames are garbled with the event
// line into an unreadable error. So
// every request made by a Client goes through observingTransport, which
// records, for the call found in the request context, the status, the
// headers, the error body and the SSE frames that go-openai skips.

type callKey struct{}

// call is what the transport saw of one request. It is written by the
// goroutine that reads the response body, which is the caller's goroutine
// (go-openai reads the stream synchronously in Recv), so it needs no lock.
type call struct {
	status int
	header http.Header
	// errBody is the body of a response with status >= 400.
	errBody []byte

	// done is set when "data: [DONE]" was read.
	done bool
	// streamErr is set when the stream carried an error frame.
	streamErr bool
	// streamDetail is that frame's message.
	streamDetail string

	event   string // current SSE "event:" field
	partial []byte // incomplete line carried between reads

	// activity is called whenever bytes arrive, to push back the idle timer.
	activity func()
	// onStreamErr is called once when an error frame is seen.
	onStreamErr func()
	// pace is the least time between two reads of the body (0: none).
	pace time.Duration
}

func withCall(ctx context.Context, c *call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

type observingTransport struct {
	base http.RoundTripper
}

// maxErrBody bounds how much of an error body is kept.
const maxErrBody = 64 << 10

func (t observingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	c, _ := req.Context().Value(callKey{}).(*call)
	if err != nil || c == nil {
		return resp, err
	}
	c.status = resp.StatusCode
	c.header = resp.Header
	if c.activity != nil {
		c.activity()
	}
	if resp.StatusCode >= 400 {
		// Read the error body now and hand go-openai a copy, so the detail
		// is known whichever error type go-openai builds from it.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrBody))
		_ = resp.Body.Close()
		c.errBody = body
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, nil
	}
	resp.Body = &teeBody{rc: resp.Body, c: c, ctx: req.Context()}
	return resp, nil
}

// teeBody feeds every byte read by go-openai to the call's SSE line
// scanner, and spaces its reads by the call's pace: go-openai reads only
// once it has used what it read, so what arrives meanwhile waits in the
// socket and comes in one read. A read that brought paceBacklog bytes or
// more says that more may be waiting: the next one is not held, so that a
// fast stream is not slowed down (one read takes at most what net/http
// buffered, 4 KiB).
type teeBody struct {
	rc   io.ReadCloser
	c    *call
	ctx  context.Context
	last time.Time // when the last small read returned (zero: none, or a large one)
}

// paceBacklog is the size of a read after which the next is not held.
const paceBacklog = 1 << 10

func (b *teeBody) Read(p []byte) (int, error) {
	if b.c.pace > 0 && !b.last.IsZero() {
		if wait := b.c.pace - time.Since(b.last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-b.ctx.Done():
				t.Stop()
				return 0, b.ctx.Err()
			}
		}
	}
	n, err := b.rc.Read(p)
	if n < paceBacklog {
		b.last = time.Now()
	} else {
		b.last = time.Time{}
	}
	if n > 0 {
		if b.c.activity != nil {
			b.c.activity()
		}
		b.c.feed(p[:n])
	}
	if err != nil && len(b.c.partial) > 0 {
		// A last line without a newline: go-openai drops it, we don't.
		line := b.c.partial
		b.c.partial = nil
		b.c.line(line)
	}
	return n, err
}

func (b *teeBody) Close() error { return b.rc.Close() }

// maxLine bounds the carried partial line; chunks are far smaller.
const maxLine = 1 << 20

func (c *call) feed(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(c.partial)+len(p) <= maxLine {
				c.partial = append(c.partial, p...)
			}
			return
		}
		var line []byte
		if len(c.partial) > 0 {
			line = append(c.partial, p[:i]...)
			c.partial = nil
		} else {
			line = p[:i]
		}
		c.line(line)
		p = p[i+1:]
	}
}

var (
	prefixData  = []byte("data:")
	prefixEvent = []byte("event:")
	doneMarker  = []byte("[DONE]")
)

// line inspects one SSE line. Only error frames and [DONE] matter here;
// go-openai parses the chunks themselves.
func (c *call) line(raw []byte) {
	l := bytes.TrimSpace(raw)
	switch {
	case len(l) == 0:
		c.event = ""
	case bytes.HasPrefix(l, prefixEvent):
		c.event = string(bytes.TrimSpace(l[len(prefixEvent):]))
	case bytes.HasPrefix(l, prefixData):
		data := bytes.TrimSpace(l[len(prefixData):])
		switch {
		case bytes.Equal(data, doneMarker):
			c.done = true
		case c.event == "error":
			c.setStreamErr(data)
		case bytes.HasPrefix(data, []byte(`{"error"`)) || bytes.HasPrefix(data, []byte(`{"detail"`)):
			c.setStreamErr(data)
		}
	case l[0] == '{':
		// Albert's bare JSON error line, e.g. {"detail":"Request timed out, model is too busy."}
		c.setStreamErr(l)
	}
}

func (c *call) setStreamErr(data []byte) {
	if c.streamErr {
		return
	}
	// Only a JSON object with an error or detail counts; a stray "{" line
	// that is not one would be a malformed stream, which go-openai reports.
	var probe map[string]json.RawMessage
	if json.Unmarshal(data, &probe) == nil {
		_, hasErr := probe["error"]
		_, hasDetail := probe["detail"]
		if !hasErr && !hasDetail && c.event != "error" {
			return
		}
	}
	c.streamErr = true
	c.streamDetail = detailFromBody(data)
	if c.onStreamErr != nil {
		c.onStreamErr()
	}
}

// idleTimer cancels a call whose server stays silent for too long.
type idleTimer struct {
	d time.Duration
	t *time.Timer
}

func (t *idleTimer) touch() { t.t.Reset(t.d) }
