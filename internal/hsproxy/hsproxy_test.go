package hsproxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestEndpoint(t *testing.T) {
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/_matrix/client/v3/sync", "GET /_matrix/client/v3/sync"},
		{"PUT", "/_matrix/client/v3/rooms/%21abc%3Alocalhost/send/m.room.encrypted/guichet-0123",
			"PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.encrypted/{txnId}"},
		{"PUT", "/_matrix/client/v3/rooms/!abc:localhost/typing/@bot:localhost",
			"PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}"},
		{"POST", "/_matrix/client/v3/rooms/!a:b/receipt/m.read/$ev", "POST /_matrix/client/v3/rooms/{roomId}/receipt/m.read/{eventId}"},
		{"PUT", "/_matrix/client/v3/sendToDevice/m.room.encrypted/17", "PUT /_matrix/client/v3/sendToDevice/m.room.encrypted/{txnId}"},
		{"POST", "/_matrix/client/v3/join/%23support%3Alocalhost", "POST /_matrix/client/v3/join/{roomAlias}"},
		{"GET", "/_matrix/client/v3/profile/%40a%3Ab", "GET /_matrix/client/v3/profile/{userId}"},
		{"PUT", "/_matrix/client/v3/rooms/!a:b/redact/$e/t1", "PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}"},
	} {
		if got := Endpoint(c.method, c.path); got != c.want {
			t.Errorf("Endpoint(%s %s) = %q, want %q", c.method, c.path, got, c.want)
		}
	}
}

// Requests are forwarded, counted by endpoint, and streamed answers pass
// piece by piece.
func TestProxyCountsAndStreams(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/stream") {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
				time.Sleep(50 * time.Millisecond)
			}
			return
		}
		if strings.Contains(r.URL.Path, "missing") {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, r.URL.Path)
	}))
	defer backend.Close()
	p, err := Start(backend.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	get := func(path string) string {
		resp, err := http.Get(p.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	before := p.Snapshot()
	if got := get("/_matrix/client/v3/profile/@a:b"); got != "/_matrix/client/v3/profile/@a:b" {
		t.Errorf("forwarded path = %q", got)
	}
	get("/_matrix/client/v3/profile/@c:d")
	get("/missing")

	resp, err := http.Get(p.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	first := time.Now()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: 0\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if time.Since(first) > 40*time.Millisecond {
		t.Errorf("the first piece of a stream was held back")
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	got := p.Snapshot().Sub(before)
	if s := got["GET /_matrix/client/v3/profile/{userId}"]; s.Requests != 2 || s.Errors != 0 {
		t.Errorf("profile stats = %+v", s)
	}
	if s := got["GET /missing"]; s.Requests != 1 || s.Errors != 1 {
		t.Errorf("404 stats = %+v", s)
	}
	if n, _ := got.Total(); n != 4 {
		t.Errorf("total = %d, want 4", n)
	}
	if eps := got.Endpoints(); eps[0] != "GET /_matrix/client/v3/profile/{userId}" {
		t.Errorf("endpoints = %v", eps)
	}
}

func TestRefusesOtherHosts(t *testing.T) {
	if _, err := Start("http://example.org"); err == nil {
		t.Fatal("forwarding outside loopback was accepted")
	}
}
