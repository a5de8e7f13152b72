package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"guichet/albert"
	"guichet/albert/fakealbert"
)

// Albert's 2026 behaviour (albert-api.md, revised 2026-11-30), end to end.

// A per-day 429 and a spent budget pause the key: the agent is told why and
// until when, the support room once when it starts and once when it ends,
// nothing more reaches Albert meanwhile, nothing is counted against the
// agent, and neither the retry loop nor the breaker sees these refusals.
func TestAlbert2026LongRefusalsPauseTheKey(t *testing.T) {
	w := newWorld(t)
	clock := &offsetClock{}
	w.opts.Now = clock.Now
	// One overload failure would open the breaker: daily limits must not.
	w.cfg.Limits.Breaker.Failures = 1
	w.startGuichet()
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator
	alice, dm := activeAgent(t, w)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}

	// The daily window is full; the March 2026 engine says nothing of when
	// it rolls: guichet waits for midnight.
	w.tb.Albert.FailNextWith(5, fakealbert.PerDayLimit(1000))
	mustContain(t, ask(t, w, alice, dm, "Première question"), "en pause jusqu'à demain 00:00")
	if n := w.tb.Albert.Calls(); n != 1 {
		t.Errorf("a per-day 429 was retried: %d calls", n)
	}
	w.expect(mod, "the pause notice", from(bot), in(room), contains("⏸️", "limite quotidienne", "jusqu'à demain 00:00"))
	mustContain(t, ask(t, w, alice, dm, "Deuxième question"), "en pause jusqu'à demain 00:00")
	if n := w.tb.Albert.Calls(); n != 1 {
		t.Errorf("a question reached Albert while the key was paused: %d calls", n)
	}
	mustContain(t, ask(t, w, alice, dm, "!quota"), "questions : 0 sur")
	mustContain(t, command(t, w, mod, "!stats"), "clé Albert en pause", "limite quotidienne", "jusqu'à demain 00:00")

	// Midnight in Paris: the next question goes, and the room hears once
	// that the service is back.
	w.tb.Albert.FailNextWith(0, fakealbert.Failure{})
	now := clock.Now().In(paris)
	clock.Advance(time.Date(now.Year(), now.Month(), now.Day()+1, 0, 1, 0, 0, paris).Sub(now))
	mustContain(t, ask(t, w, alice, dm, "Après minuit"), "Voici ma réponse")
	w.expect(mod, "the resumption notice", from(bot), in(room), contains("▶️", "a repris"))

	// The server says when: Retry-After wins over the guess.
	w.tb.Albert.FailNextWith(1, fakealbert.PerDayTokens(200000).With("Retry-After", "7200"))
	before := clock.Now()
	r := ask(t, w, alice, dm, "Une longue question")
	after := clock.Now()
	ends := []string{before.Add(2 * time.Hour).In(paris).Format("15:04"), after.Add(2 * time.Hour).In(paris).Format("15:04")}
	if !strings.Contains(r.Body, "en pause jusqu'") || !(strings.Contains(r.Body, ends[0]) || strings.Contains(r.Body, ends[1])) {
		t.Errorf("pause message %q does not end at %v", r.Body, ends)
	}
	clock.Advance(2*time.Hour + time.Minute)
	mustContain(t, ask(t, w, alice, dm, "Deux heures après"), "Voici ma réponse")

	// A spent budget: paused, checked again an hour later.
	w.tb.Albert.FailNextWith(1, fakealbert.InsufficientBudget())
	mustContain(t, ask(t, w, alice, dm, "Question sans budget"), "budget épuisé")
	w.expect(mod, "the budget pause notice", from(bot), in(room), contains("⏸️", "budget"))
	calls := w.tb.Albert.Calls()
	mustContain(t, ask(t, w, alice, dm, "Encore sans budget"), "budget épuisé")
	if w.tb.Albert.Calls() != calls {
		t.Error("a question reached Albert while the budget was spent")
	}
	clock.Advance(61 * time.Minute)
	mustContain(t, ask(t, w, alice, dm, "Budget rechargé"), "Voici ma réponse")
	w.expect(mod, "the second resumption notice", from(bot), in(room), contains("▶️", "budget épuisé"))

	if n := count(mod, from(bot), in(room), contains("⏸️", "Albert API refuse")); n != 3 {
		t.Errorf("%d pause notices in the support room, want 3 (one per pause)", n)
	}
	if n := count(mod, from(bot), in(room), contains("surchargé")); n != 0 {
		t.Error("a daily limit or a spent budget opened the overload breaker")
	}
}

// A model closed to the key (403 "Insufficient permissions to access the
// model.") sends the agent back to the default model, with a notice, and
// pages nobody; a 403 "Invalid API key." is an operators' incident.
func TestAlbert2026ForbiddenModelAndInvalidKey(t *testing.T) {
	w := newWorld(t)
	ops, err := w.tb.Moderator.Client.CreateRoom(w.ctx(), &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "ops", Name: "Exploitation"})
	if err != nil {
		t.Fatal(err)
	}
	w.cfg.OpsRoom = "#ops:" + w.tb.HS.ServerName
	w.cfg.Albert.Models = []string{"openai/gpt-oss-120b"}
	w.startGuichet()
	bot, mod := w.tb.Bot.UserID, w.tb.Moderator
	alice, dm := activeAgent(t, w)

	mustContain(t, ask(t, w, alice, dm, "!modele openai/gpt-oss-120b"), "openai/gpt-oss-120b")
	w.tb.Albert.CloseModel("openai/gpt-oss-120b")
	q := w.send(alice, dm, "Question au modèle fermé")
	w.expect(alice, "the fallback notice", from(bot), contains("openai/gpt-oss-120b", "n'est pas ouvert à ce service", w.cfg.Albert.Model))
	mustContain(t, finalReply(t, w, alice, q), "Voici ma réponse")
	reqs := w.tb.Albert.Requests()
	if got := reqs[len(reqs)-1].Model; got != w.cfg.Albert.Model {
		t.Errorf("the fallback call used %s, want the default %s", got, w.cfg.Albert.Model)
	}
	current := ""
	for _, line := range strings.Split(ask(t, w, alice, dm, "!modele").Body, "\n") {
		if strings.Contains(line, "← actuel") {
			current = line
		}
	}
	if !strings.Contains(current, w.cfg.Albert.Model) {
		t.Errorf("the agent's choice was not reset to the default model: current %q", current)
	}

	// The bad key: agents get the generic sentence, operators one alert.
	w.tb.Albert.FailNextWith(5, fakealbert.InvalidKey())
	r := ask(t, w, alice, dm, "Avec une clé refusée")
	mustContain(t, r, "indisponible")
	if strings.Contains(r.Body, "Invalid API key") {
		t.Errorf("raw error shown to the agent: %q", r.Body)
	}
	w.expect(mod, "the auth incident", from(bot), in(ops.RoomID), contains("Incident Albert API", "auth", "403"))
	if n := count(mod, from(bot), in(ops.RoomID), contains("model_closed")); n != 0 {
		t.Error("a model closed to the key paged the operators")
	}
}

// Retries wait as long as the server says (x-ratelimit-reset-*,
// Retry-After), and the agent is told at once when it says too long.
func TestAlbert2026RetriesHonourTheServersDelay(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	alice, dm := activeAgent(t, w)

	tests := []struct {
		name  string
		fail  fakealbert.Failure
		delay time.Duration
	}{
		{"per-minute 429 with x-ratelimit-reset-requests", fakealbert.PerMinuteLimit(50).
			With("X-Ratelimit-Remaining-Requests", "0").With("X-Ratelimit-Reset-Requests", "2s"), 2 * time.Second},
		{"2026 overload: 503 with Retry-After", fakealbert.Overloaded().With("Retry-After", "2"), 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := len(w.tb.Albert.Requests())
			w.tb.Albert.FailNextWith(1, tt.fail)
			mustContain(t, ask(t, w.as(t), alice, dm, "Question "+tt.name), "Voici ma réponse")
			reqs := w.tb.Albert.Requests()[first:]
			if len(reqs) != 2 {
				t.Fatalf("%d calls, want the failure and one retry", len(reqs))
			}
			if gap := reqs[1].At.Sub(reqs[0].At); gap < tt.delay {
				t.Errorf("retried %s after the failure, before the %s the server asked for", gap, tt.delay)
			}
		})
	}

	// Longer than guichet makes an agent wait: told at once, no retry.
	first := w.tb.Albert.Calls()
	w.tb.Albert.FailNextWith(1, fakealbert.PerMinuteLimit(50).With("X-Ratelimit-Reset-Requests", "6m0s"))
	mustContain(t, ask(t, w, alice, dm, "Question pendant six minutes de limite"), "très sollicité")
	if n := w.tb.Albert.Calls() - first; n != 1 {
		t.Errorf("%d calls, want 1: a six-minute wait is not retried", n)
	}
}

// A bare {"detail": ...} line in the middle of a stream is a cut answer:
// the text shown stays, with the notice, and it is not retried. Usage
// comes in the 2026 shapes, twice; the engine's last count is the one kept.
func TestAlbert2026StreamQuirks(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	alice, dm := activeAgent(t, w)

	w.tb.Albert.FailMidStream(1, fakealbert.BareJSONReadTimeout)
	r := ask(t, w, alice, dm, "Une question qui casse en 2026")
	mustContain(t, r, "Voici ma réponse", "Réponse interrompue")
	if w.tb.Albert.Calls() != 1 {
		t.Errorf("a cut answer was retried (%d calls)", w.tb.Albert.Calls())
	}

	for _, style := range []fakealbert.UsageStyle{fakealbert.UsageCarbonRange, fakealbert.UsageCarbonNumbers} {
		w.tb.Albert.SetUsage(style)
		w.tb.Albert.SetTwoUsageChunks(true)
		mustContain(t, ask(t, w, alice, dm, fmt.Sprintf("Question avec l'usage en forme %d", style)), "Voici ma réponse")
	}
	// The tokens charged are the engine's count (4 per message of
	// overhead), not the upstream's nor an estimate; the cut answer's
	// estimate was refunded with it.
	want := 0
	for _, req := range w.tb.Albert.Requests()[1:] {
		want += albert.EstimateTokens(fakealbert.DefaultReply(req))
		for _, m := range req.Messages {
			want += albert.EstimateTokens(m.Content) + 4
		}
	}
	mustContain(t, ask(t, w, alice, dm, "!quota"), fmt.Sprintf("volume de texte : %d tokens", want))
}

// typingProxy stands between guichet and Dendrite: it makes typing "on"
// requests slow, as a loaded homeserver does (each waits until a typing
// "off" has gone through, or typingOn), holds the first message sent once
// armed, and records the order in which typing requests reach Dendrite.
type typingProxy struct {
	srv       *httptest.Server
	typingOn  time.Duration
	holdFirst time.Duration
	onHeld    func() // runs when the held send is let through

	offDone chan struct{} // closed once a typing "off" reached Dendrite
	offOnce sync.Once
	mu      sync.Mutex
	armed   bool
	typing  []bool // typing requests, in the order they reached Dendrite
}

var (
	typingPath = regexp.MustCompile(`^/_matrix/client/v3/rooms/[^/]+/typing/`)
	sendPath   = regexp.MustCompile(`^/_matrix/client/v3/rooms/[^/]+/send/`)
)

func startTypingProxy(t *testing.T, target string) *typingProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	p := &typingProxy{offDone: make(chan struct{})}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && typingPath.MatchString(r.URL.Path):
			body, _ := io.ReadAll(r.Body)
			var v struct {
				Typing bool `json:"typing"`
			}
			_ = json.Unmarshal(body, &v)
			if v.Typing {
				// A slow homeserver: an "off" sent meanwhile gets there first.
				select {
				case <-p.offDone:
				case <-time.After(p.typingOn):
				}
			}
			r.Body = io.NopCloser(strings.NewReader(string(body)))
			r.ContentLength = int64(len(body))
			rp.ServeHTTP(w, r)
			p.mu.Lock()
			p.typing = append(p.typing, v.Typing)
			p.mu.Unlock()
			if !v.Typing {
				p.offOnce.Do(func() { close(p.offDone) })
			}
			return
		case r.Method == http.MethodPut && sendPath.MatchString(r.URL.Path):
			p.mu.Lock()
			held := p.armed
			p.armed = false
			p.mu.Unlock()
			if held {
				time.Sleep(p.holdFirst) // the answer ends meanwhile
				p.onHeld()
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *typingProxy) arm() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = true
}

func (p *typingProxy) typingRequests() []bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]bool(nil), p.typing...)
}

// answeredLog returns the albert_ms of the "Answered question" log lines.
func answeredLog(t *testing.T, log string) []float64 {
	t.Helper()
	var out []float64
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Message string   `json:"message"`
			Albert  *float64 `json:"albert_ms"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "Answered question" && line.Albert != nil {
			out = append(out, *line.Albert)
		}
	}
	return out
}

// The typing notice ends after the answer even when the homeserver is slow
// to take its start; albert_ms counts Albert's time, not the display's
// last edit.
func TestAlbert2026TypingEndsAndAlbertTimeIsAlbertsOnly(t *testing.T) {
	w := newWorld(t)
	clock := &offsetClock{}
	w.opts.Now = clock.Now
	proxy := startTypingProxy(t, w.tb.HS.URL)
	// The typing "on" is slow to reach Dendrite: a typing "off" sent
	// before it has gone through overtakes it. The placeholder's send is
	// held until the answer has ended, and guichet's clock jumps an hour
	// while it is held: time spent stopping the display, not in Albert.
	proxy.typingOn, proxy.holdFirst = 3*time.Second, 1500*time.Millisecond
	proxy.onHeld = func() { clock.Advance(time.Hour) }
	w.cfg.Matrix.Homeserver = proxy.srv.URL
	w.startGuichet()
	alice, dm := activeAgent(t, w)
	w.tb.Albert.SetLatency(200 * time.Millisecond)
	w.tb.Albert.SetTokenDelay(10 * time.Millisecond)

	proxy.arm()
	r := ask(t, w, alice, dm, "Une question pendant que le serveur rame")
	mustContain(t, r, "Voici ma réponse", "Bonne journée")

	deadline := time.Now().Add(wait)
	for len(proxy.typingRequests()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("typing requests seen: %v, want an on and an off", proxy.typingRequests())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := proxy.typingRequests(); len(got) != 2 || !got[0] || got[1] {
		t.Errorf("typing requests reached the homeserver as %v, want [true false]: guichet stays typing after its answer", got)
	}

	var albertMs []float64
	for albertMs = answeredLog(t, w.log.String()); len(albertMs) == 0; albertMs = answeredLog(t, w.log.String()) {
		if time.Now().After(deadline) {
			t.Fatal("no Answered question log line")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ms := albertMs[len(albertMs)-1]; ms >= float64(time.Hour/time.Millisecond) {
		t.Errorf("albert_ms = %.0f includes the hour guichet spent stopping the display", ms)
	}
}
