package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"guichet/config"
	"guichet/hooks"
	"guichet/store"
)

// hookReceiver records the decisions posted to it; while failing it
// answers 500.
type hookReceiver struct {
	t       testing.TB
	secret  string
	failing atomic.Bool

	mu        sync.Mutex
	delivered map[string]int // delivery id -> deliveries answered 2xx
	refused   int            // attempts answered 500
	payloads  []hooks.Payload
}

func newHookReceiver(t testing.TB, secret string) (*hookReceiver, *httptest.Server) {
	r := &hookReceiver{t: t, secret: secret, delivered: map[string]int{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if !hooks.Verify(r.secret, body, req.Header.Get(hooks.SignatureHeader)) {
		r.t.Errorf("delivery with a bad signature %q: %s", req.Header.Get(hooks.SignatureHeader), body)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p hooks.Payload
	if err := json.Unmarshal(body, &p); err != nil || p.DeliveryID == "" || p.DeliveryID != req.Header.Get(hooks.DeliveryHeader) {
		r.t.Errorf("bad delivery (header %q): %s, %v", req.Header.Get(hooks.DeliveryHeader), body, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if _, err := time.Parse(time.RFC3339, p.At); err != nil {
		r.t.Errorf("at %q is not RFC 3339: %v", p.At, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failing.Load() {
		r.refused++
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if r.delivered[p.DeliveryID] == 0 {
		r.payloads = append(r.payloads, p)
	}
	r.delivered[p.DeliveryID]++
	w.WriteHeader(http.StatusNoContent)
}

// waitFor waits until cond holds of the receiver.
func (r *hookReceiver) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// find returns the payload of decision about user (locked by the caller).
func (r *hookReceiver) find(user, decision string) (hooks.Payload, bool) {
	for _, p := range r.payloads {
		if p.UserID == user && p.Decision == decision {
			return p, true
		}
	}
	return hooks.Payload{}, false
}

func (r *hookReceiver) has(user, decision string) func() bool {
	return func() bool { _, ok := r.find(user, decision); return ok }
}

// Every access decision reaches hooks.decisions_url once, signed, in spite
// of a receiver that fails for a while and of a restart of guichet.
func TestDecisionHooks(t *testing.T) {
	w := newWorld(t)
	const secret = "e2e-hooks-secret-0123456789"
	recv, srv := newHookReceiver(t, secret)
	w.cfg.Hooks = config.Hooks{DecisionsURL: srv.URL + "/decisions", Secret: secret}
	clock := &offsetClock{}
	w.opts.Now = clock.Now
	w.startGuichet()
	mod := w.tb.Moderator
	modID := mod.UserID().String()

	// Rejected, reversed, approved: each delivered once.
	alice := w.person("alice.martin-interieur.gouv.fr")
	announce(t, w, alice, "Bonjour, je voudrais l'Assistant IA")
	mustContain(t, command(t, w, mod, "!reject #1 pas ce service"), "n° 1")
	mustContain(t, command(t, w, mod, "!reverse #1 erreur de ma part"), "n° 1")
	bob := w.person("bob.durand-interieur.gouv.fr")
	announce(t, w, bob, "Bonjour, l'assistant svp")
	command(t, w, mod, "!approve "+bob.UserID().String()+" bienvenue")

	aliceID, bobID := alice.UserID().String(), bob.UserID().String()
	recv.waitFor(t, "the three decisions", func() bool {
		return recv.has(aliceID, hooks.Rejected)() && recv.has(aliceID, hooks.Reversed)() && recv.has(bobID, hooks.Approved)()
	})
	recv.mu.Lock()
	for _, want := range []hooks.Payload{
		{UserID: aliceID, Decision: hooks.Rejected, Actor: modID, Reason: "pas ce service", RequestID: 1},
		{UserID: aliceID, Decision: hooks.Reversed, Actor: modID, Reason: "erreur de ma part", RequestID: 1},
		{UserID: bobID, Decision: hooks.Approved, Actor: modID, Reason: "bienvenue", RequestID: 2},
	} {
		got, _ := recv.find(want.UserID, want.Decision)
		if got.Actor != want.Actor || got.Reason != want.Reason || got.RequestID != want.RequestID {
			t.Errorf("%s of %s: got %+v, want actor %q, reason %q, request %d", want.Decision, want.UserID, got, want.Actor, want.Reason, want.RequestID)
		}
	}
	// Alice's decisions arrive in the order they were taken.
	var order []string
	for _, p := range recv.payloads {
		if p.UserID == aliceID {
			order = append(order, p.Decision)
		}
	}
	if strings.Join(order, ",") != "rejected,reversed" {
		t.Errorf("alice's decisions arrived as %v, want rejected then reversed", order)
	}
	recv.mu.Unlock()

	// A receiver that fails, then recovers, gets the decision once.
	recv.failing.Store(true)
	carol := w.person("carol.petit-interieur.gouv.fr")
	announce(t, w, carol, "Bonjour, je voudrais l'Assistant IA")
	command(t, w, mod, "!reject "+carol.UserID().String())
	recv.waitFor(t, "a failed attempt", func() bool { return recv.refused >= 1 })
	recv.failing.Store(false)
	clock.Advance(2 * store.RetryBase)
	recv.waitFor(t, "carol's rejection after a retry", recv.has(carol.UserID().String(), hooks.Rejected))

	// A delivery pending when guichet stops is made after its restart.
	recv.failing.Store(true)
	refused := func() int { recv.mu.Lock(); defer recv.mu.Unlock(); return recv.refused }()
	dave := w.person("dave.leroy-interieur.gouv.fr")
	announce(t, w, dave, "Bonjour, je voudrais l'Assistant IA")
	command(t, w, mod, "!approve "+dave.UserID().String())
	recv.waitFor(t, "a failed attempt for dave", func() bool { return recv.refused > refused })
	w.stopGuichet()
	recv.failing.Store(false)
	clock.Advance(10 * store.RetryBase)
	w.startGuichet()
	recv.waitFor(t, "dave's approval after the restart", recv.has(dave.UserID().String(), hooks.Approved))

	// Once the outbox is empty, nothing arrived twice.
	deadline := time.Now().Add(wait)
	for {
		n, err := w.app.Store.CountUnsent(w.ctx())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still unsent", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	for id, n := range recv.delivered {
		if n != 1 {
			t.Errorf("delivery %s received %d times", id, n)
		}
	}
	if len(recv.payloads) != 5 {
		var got []string
		for _, p := range recv.payloads {
			got = append(got, fmt.Sprintf("%s %s", p.Decision, p.UserID))
		}
		t.Errorf("received %d decisions %v, want 5", len(recv.payloads), got)
	}
	if strings.Contains(w.log.String(), secret) {
		t.Error("the hooks secret is in the log")
	}
}
