package e2e

// BenchmarkPartnerIsolation: a partner whose Albert key is rate-limited must
// not slow the other profiles down. Two profiles run under load in the same
// guichet: the default profile on its own fake Albert, and a partner, the
// Ministère de la Justice, on another fake with its own key (each profile
// has its own gate, breaker and pause). Several agents of each ask
// questions at the same time.
//
// What is measured is the default profile's reply latency (an agent's send
// call → guichet's final answer in their client), p50 and p99, in two
// phases of the same run:
//   A  the partner's fake answers normally;
//   B  the partner's fake answers every chat call with a 429 "… requests
//      per minute exceeded" (fakealbert.FailAlways(PerMinuteLimit(50))),
//      while the partner's agents keep asking.
// The blocks alternate A B B A (GUICHET_BENCH_ISOLATION_ROUNDS times), so
// that a drift (a warming Dendrite, growing conversations) falls on both
// phases alike. In every block each default agent asks
// GUICHET_BENCH_ISOLATION_QUESTIONS questions one after another, all
// agents at once; the partner's agents ask throughout, each at most one
// question every GUICHET_BENCH_ISOLATION_PERIOD (the next one once the
// previous reply is in, and not sooner than the period), so that the
// partner's question rate is about the same in both phases and only its
// Albert's behaviour differs. Partner agents are held (no new question)
// while the phase switches, so that each question belongs to one phase.
// From B back to A, the partner's fake stops failing and the measurement
// waits until the partner's breaker has closed again (its own probe
// succeeded), as guichet's log says.
//
// Printed beside them: the one-hop delivery between two people on the same
// Dendrite (idle, and sampled every second during each phase), how many
// partner questions got a French "busy" answer in B, and how many calls the
// partner's fake received (without a breaker each question would cost
// 1 + albert.max_retries calls). Every default-profile answer must be the
// fake's real answer ("Voici ma réponse"), or the benchmark fails. Nothing
// asserts a wall-clock time: the target of the issue (B within 10 % of A)
// is printed, not checked.
//
// The breaker is configured shorter than the service's defaults (open_for
// 10 s, max_wait 5 s instead of 30 s and 2 min): while the partner's
// breaker is open its agents are told at once that the service is busy
// (rather than waiting up to 2 minutes for it), so that they keep asking at
// about their A rate, and the partner's breaker, whose open time doubles at
// each failed probe, closes again soon after B.
//
// The machine is small and shared: a block's latencies move with the
// one-hop measured during it, which the table of blocks shows.
//
// Time on 2 cores: about 2.5 minutes: set-up about 15 s, the 8 blocks about
// 7 s each, and about 20 s after each B for the partner's breaker to close.
//
// Knobs (environment):
//   GUICHET_BENCH_ISOLATION_AGENTS     agents per profile (8)
//   GUICHET_BENCH_ISOLATION_QUESTIONS  questions per default agent per block (3)
//   GUICHET_BENCH_ISOLATION_PERIOD     a partner agent's questions at most this often (3s)
//   GUICHET_BENCH_ISOLATION_ROUNDS     rounds of A B B A (2)
//   GUICHET_BENCH_LOGS                 a folder to copy guichet's log into

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
	"maunium.net/go/mautrix/id"

	"guichet/albert/fakealbert"
	"guichet/config"
	"guichet/internal/benchutil"
	"guichet/internal/hsproxy"
	"guichet/internal/mxclient"
	"guichet/internal/testbed"
)

const (
	isoLatency        = 500 * time.Millisecond // both fakes: delay to the first token
	isoTokenDelay     = 25 * time.Millisecond  // both fakes: per piece (about 40 pieces: 1 s)
	isoDeadline       = 2 * time.Minute        // an answer not complete by then is lost
	isoHoldTimeout    = 2 * time.Minute        // partner questions in flight at a switch
	isoRecoverTimeout = 3 * time.Minute        // the partner's breaker closing after B
	isoHopPeriod      = time.Second            // one-hop samples during the blocks
	isoPartnerID      = "justice"
	isoPartnerName    = "Ministère de la Justice"
	isoPartnerModel   = "openai/gpt-oss-120b"
	isoRealAnswer     = "Voici ma réponse" // fakealbert.DefaultReply
)

// isoBreaker is the breaker of every profile in this benchmark.
var isoBreaker = config.Breaker{Failures: 5, OpenFor: 10 * time.Second, MaxWait: 5 * time.Second}

// isoAnswer is what an agent saw of one question.
type isoAnswer struct {
	phase    string // "A", "B", or "R" (the partner's recovery, not counted)
	sent     time.Time
	reply    time.Duration // send → final reply seen
	body     string        // the final reply
	answered bool
	waited   bool // a waiting notice (queue, breaker) came before it
}

// kind sorts a final reply: the fake's answer, a French "busy" answer, or
// anything else.
func (q isoAnswer) kind() string {
	switch {
	case !q.answered:
		return "lost"
	case strings.Contains(q.body, isoRealAnswer):
		return "answer"
	case strings.Contains(q.body, "très sollicité"), strings.Contains(q.body, "saturé"), strings.Contains(q.body, "surchargé"):
		return "busy"
	}
	return "other"
}

// isWaitingNotice tells guichet's notices to a question that is still on
// its way (its place in the queue, the breaker's wait): not the answer.
func isWaitingNotice(body string) bool {
	return strings.HasPrefix(strings.TrimSpace(body), "⏳")
}

// askFinal sends one question and waits, until deadline, for guichet's
// final reply to it: a reply that is neither a waiting notice nor a growing
// placeholder, or the complete edit of such a placeholder.
func (aw *agentsWorld) askFinal(a *mxclient.Person, dm id.RoomID, text string, deadline time.Duration) isoAnswer {
	q := isoAnswer{sent: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	evt, err := a.SendText(ctx, dm, text)
	if err != nil {
		q.body = "not sent: " + err.Error()
		return q
	}
	// The match sees the client's messages in the order they arrived, a
	// placeholder before its edits; it may not call back into the client.
	replies := map[id.EventID]bool{}
	m, err := a.WaitMessage(ctx, func(m mxclient.Message) bool {
		if m.Sender != aw.bot {
			return false
		}
		if m.InReplyTo == evt && m.ReplaceOf == "" {
			if isWaitingNotice(m.Body) {
				return false
			}
			replies[m.EventID] = true
			return !partial(m)
		}
		return m.ReplaceOf != "" && replies[m.ReplaceOf] && !partial(m)
	})
	for _, n := range a.Messages() {
		if n.Sender == aw.bot && n.InReplyTo == evt && n.ReplaceOf == "" && isWaitingNotice(n.Body) {
			q.waited = true
		}
	}
	if err != nil {
		return q
	}
	q.reply, q.body, q.answered = m.At.Sub(q.sent), m.Body, true
	return q
}

// isoBlock is one block of default-profile questions.
type isoBlock struct {
	phase   string
	answers []isoAnswer
	hops    *hopSampler
	elapsed time.Duration
	cpu     time.Duration    // guichet's CPU over the block
	others  [2]time.Duration // Dendrite's and this process's CPU over the block
	hs      hsproxy.Counts   // guichet's homeserver requests over the block
}

// isoPhase gathers a phase's figures over its blocks.
type isoPhase struct {
	reply, hops      benchutil.Samples
	asked, real, bad int
	lost, hopLost    int
	elapsed, cpu     time.Duration
	others           [2]time.Duration // Dendrite's and this process's CPU over the blocks
	hs               hsproxy.Counts   // guichet's homeserver requests over the blocks
	defaultCalls     int              // the default fake's chat calls over the blocks
	partnerCalls     int              // the partner's fake's chat calls over the phase, its holds included
}

// partnerLoad is the partner's agents asking throughout the measurement.
type partnerLoad struct {
	mu       sync.Mutex
	cond     *sync.Cond
	phase    string // "" holds every agent before its next question
	inFlight int
	answers  []isoAnswer
	stopped  bool
	wg       sync.WaitGroup
}

func startPartnerLoad(aw *agentsWorld, agents []*mxclient.Person, dms []id.RoomID, period time.Duration, phase string) *partnerLoad {
	l := &partnerLoad{phase: phase}
	l.cond = sync.NewCond(&l.mu)
	for i := range agents {
		if dms[i] == "" {
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			// Spread the agents over the period.
			if !l.sleep(time.Duration(i) * period / time.Duration(len(agents))) {
				return
			}
			for k := 1; ; k++ {
				phase, ok := l.take()
				if !ok {
					return
				}
				text := fmt.Sprintf("Question n° %d de l'agent %d de la Justice : quel est le délai d'appel d'un jugement civil ?", k, i+1)
				q := aw.askFinal(agents[i], dms[i], text, isoDeadline)
				q.phase = phase
				l.mu.Lock()
				l.inFlight--
				l.answers = append(l.answers, q)
				l.cond.Broadcast()
				l.mu.Unlock()
				if !l.sleep(time.Until(q.sent.Add(period))) {
					return
				}
			}
		}()
	}
	return l
}

// take waits until the agents may ask, and counts one question in flight.
func (l *partnerLoad) take() (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.phase == "" && !l.stopped {
		l.cond.Wait()
	}
	if l.stopped {
		return "", false
	}
	l.inFlight++
	return l.phase, true
}

// sleep waits d, or less if the load stops; it reports whether to go on.
func (l *partnerLoad) sleep(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		l.mu.Lock()
		stopped := l.stopped
		l.mu.Unlock()
		if stopped {
			return false
		}
		left := time.Until(deadline)
		if left <= 0 {
			return true
		}
		time.Sleep(min(left, 100*time.Millisecond))
	}
}

// hold stops new questions and waits until those in flight have their
// reply (or their deadline passed).
func (l *partnerLoad) hold(b *testing.B) {
	b.Helper()
	l.mu.Lock()
	l.phase = ""
	l.mu.Unlock()
	l.waitIdle(b)
}

func (l *partnerLoad) waitIdle(b *testing.B) {
	b.Helper()
	timer := time.AfterFunc(isoHoldTimeout, func() { l.mu.Lock(); l.cond.Broadcast(); l.mu.Unlock() })
	defer timer.Stop()
	start := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.inFlight > 0 {
		if time.Since(start) >= isoHoldTimeout {
			b.Fatalf("%d partner questions still without a reply after %s", l.inFlight, isoHoldTimeout)
		}
		l.cond.Wait()
	}
}

func (l *partnerLoad) set(phase string) {
	l.mu.Lock()
	l.phase = phase
	l.cond.Broadcast()
	l.mu.Unlock()
}

func (l *partnerLoad) stop(b *testing.B) {
	l.hold(b)
	l.mu.Lock()
	l.stopped = true
	l.cond.Broadcast()
	l.mu.Unlock()
	l.wg.Wait()
}

func (l *partnerLoad) snapshot() []isoAnswer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.answers)
}

// breakerEvents reads guichet's "Albert overload breaker changed" lines:
// for each profile ("" the default), whether each change opened it.
func breakerEvents(b *testing.B, logPath string) map[string][]bool {
	b.Helper()
	f, err := os.Open(logPath)
	if err != nil {
		b.Fatalf("no guichet log: %v", err)
	}
	defer f.Close()
	out := map[string][]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e struct {
			Message string `json:"message"`
			Partner string `json:"partner"`
			Open    bool   `json:"open"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Message == "Albert overload breaker changed" {
			out[e.Partner] = append(out[e.Partner], e.Open)
		}
	}
	return out
}

func countTrue(v []bool) (opened, closed int) {
	for _, open := range v {
		if open {
			opened++
		} else {
			closed++
		}
	}
	return opened, closed
}

// writeIsolationConfig writes cfg as writeConfigYAML does, with the partner
// (the partners list is read from the file only).
func writeIsolationConfig(b *testing.B, path string, cfg *config.Config, partnerURL string) {
	b.Helper()
	c := *cfg
	c.Log = config.Log{Level: "info", Format: "json"}
	m := benchutil.TagMap(c)
	m["partners"] = []any{map[string]any{
		"id":    isoPartnerID,
		"name":  isoPartnerName,
		"match": []string{"@*-justice.gouv.fr:*"},
		"albert": map[string]any{
			"base_url": partnerURL,
			"api_key":  partnerKey,
			"model":    isoPartnerModel,
		},
	}}
	raw, err := yaml.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		b.Fatal(err)
	}
}

// newIsoAgents registers one light client per localpart (keys and room
// state in memory, one HTTP pool for all), as newAgents does.
func (aw *agentsWorld) newIsoAgents(localparts []string) []*mxclient.Person {
	aw.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n := len(localparts)
	agents := make([]*mxclient.Person, n)
	errs := make([]error, n)
	logger := zerolog.New(aw.warns).Level(zerolog.WarnLevel)
	parallel(n, 16, func(i int) {
		acct, err := aw.tb.HS.Register(ctx, localparts[i], testbed.Password, false)
		if err != nil {
			errs[i] = err
			return
		}
		agents[i], errs[i] = mxclient.Start(ctx, mxclient.Options{
			Homeserver: aw.tb.HS.URL, UserID: acct.UserID, AccessToken: acct.AccessToken, DeviceID: acct.DeviceID,
			InMemory: true, HTTPClient: aw.http, Log: logger,
		})
	})
	aw.t.Cleanup(func() {
		parallel(n, 64, func(i int) {
			if agents[i] != nil {
				agents[i].Close()
			}
		})
	})
	for i, err := range errs {
		if err != nil {
			aw.t.Fatalf("agent %s could not start: %v", localparts[i], err)
		}
	}
	return agents
}

// BenchmarkPartnerIsolation: see the file comment.
func BenchmarkPartnerIsolation(b *testing.B) {
	requireE2E(b)
	perProfile := envInt(b, "GUICHET_BENCH_ISOLATION_AGENTS", 8)
	perBlock := envInt(b, "GUICHET_BENCH_ISOLATION_QUESTIONS", 3)
	period := envDuration(b, "GUICHET_BENCH_ISOLATION_PERIOD", 3*time.Second)
	rounds := envInt(b, "GUICHET_BENCH_ISOLATION_ROUNDS", 2)
	if perProfile < 1 || perBlock < 1 || rounds < 1 || period <= 0 {
		b.Fatal("GUICHET_BENCH_ISOLATION_AGENTS, _QUESTIONS and _ROUNDS must be at least 1, _PERIOD above 0")
	}
	bin := buildGuichet(b)
	setup := time.Now()

	// The world: Dendrite behind the counting proxy, the two fakes, guichet's binary.
	w := newWorld(b)
	params := agentsParams{latency: isoLatency, deadline: isoDeadline, logDir: os.Getenv("GUICHET_BENCH_LOGS")}
	aw := &agentsWorld{world: w, params: params, bot: w.tb.Bot.UserID, warns: &warnCounter{counts: map[string]int{}}}
	def := w.tb.Albert
	justice := fakealbert.Start()
	b.Cleanup(justice.Close)
	justice.SetAPIKey(partnerKey)
	for _, fa := range []*fakealbert.Server{def, justice} {
		fa.SetLatency(isoLatency)
		fa.SetTokenDelay(isoTokenDelay)
	}
	var err error
	if aw.hs, err = hsproxy.Start(w.tb.HS.URL); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(aw.hs.Close)
	aw.http = &http.Client{Timeout: 3 * time.Minute, Transport: &http.Transport{
		Proxy: nil, MaxIdleConnsPerHost: 4*perProfile + 16, IdleConnTimeout: 90 * time.Second,
	}}
	cfg := *w.cfg
	cfg.Matrix.Homeserver = aw.hs.URL
	aw.dbPath = cfg.Database.URI
	cfg.Limits.PerUser = config.PerUserLimits{MessagesPerMinute: 1000, Burst: 1000, MessagesPerDay: 100_000, TokensPerDay: 100_000_000}
	cfg.Limits.Global.MaxConcurrent = 100_000
	cfg.Limits.Global.QueueSize = 100_000
	cfg.Limits.Global.RequestsPerMinute = 0
	cfg.Limits.Global.TokensPerMinute = 0
	cfg.Limits.Breaker = isoBreaker
	configPath := filepath.Join(w.dir, "config.yaml")
	writeIsolationConfig(b, configPath, &cfg, justice.URL)
	logPath := filepath.Join(w.dir, "guichet.log")
	aw.guichet = startBinary(b, bin, configPath, logPath)
	if aw.hsPID, err = benchutil.FindProcess(filepath.Join(w.dir, "dendrite", "dendrite.yaml")); err != nil {
		b.Fatalf("failed to find Dendrite's process: %v", err)
	}
	if params.logDir != "" {
		b.Cleanup(func() {
			raw, err := os.ReadFile(logPath)
			if err == nil {
				err = os.WriteFile(filepath.Join(params.logDir, "BenchmarkPartnerIsolation.log"), raw, 0o644)
			}
			if err != nil {
				b.Logf("could not keep guichet's log: %v", err)
			}
		})
	}

	// The agents: perProfile of each profile, approved by the moderator.
	var names []string
	for i := range perProfile {
		names = append(names, fmt.Sprintf("defaut%04d.test-interieur.gouv.fr", i+1))
	}
	for i := range perProfile {
		names = append(names, fmt.Sprintf("juge%04d.test-justice.gouv.fr", i+1))
	}
	all := aw.newIsoAgents(names)
	allDMs, onboarding := aw.onboard(all)
	defAgents, defDMs := all[:perProfile], allDMs[:perProfile]
	parAgents, parDMs := all[perProfile:], allDMs[perProfile:]
	for i, dm := range allDMs {
		if dm == "" {
			b.Fatalf("agent %s was not onboarded: %s", names[i], onboarding)
		}
	}

	// Warm-up, not measured: one question from every agent, each answered
	// by its own profile's fake.
	def0, par0 := def.Calls(), justice.Calls()
	warm := make([]isoAnswer, len(all))
	parallel(len(all), len(all), func(i int) {
		warm[i] = aw.askFinal(all[i], allDMs[i], "Question pour s'échauffer : comment rédiger une note de synthèse ?", isoDeadline)
	})
	for i, q := range warm {
		if q.kind() != "answer" {
			b.Fatalf("warm-up: %s got %q (%s)", names[i], cut(q.body, 200), q.kind())
		}
	}
	if d, p := def.Calls()-def0, justice.Calls()-par0; d != perProfile || p != perProfile {
		b.Fatalf("warm-up: the default fake got %d calls, the partner's %d; want %d each", d, p, perProfile)
	}
	for _, r := range justice.Requests() {
		if r.Header.Get("Authorization") != "Bearer "+partnerKey || r.Model != isoPartnerModel {
			b.Fatalf("the partner's fake got a call with %q, model %q", r.Header.Get("Authorization"), r.Model)
		}
	}
	from, to, hopRoom, idle := aw.hopPair(20)
	showf(b, "set-up in %s: %s", time.Since(setup).Round(time.Millisecond), onboarding)

	// The measurement: A B B A. The partner's calls are counted from one
	// switch to the next, after the hold: no partner call is on its way then.
	phases := map[string]*isoPhase{"A": {}, "B": {}, "R": {}}
	var blocks []*isoBlock
	partnerMark, cur := justice.Calls(), "A"
	switchTo := func(name string) {
		phases[cur].partnerCalls += justice.Calls() - partnerMark
		partnerMark, cur = justice.Calls(), name
	}
	load := startPartnerLoad(aw, parAgents, parDMs, period, "A")
	time.Sleep(period) // the partner's load is established
	runBlock := func(phase string, round int) {
		b.Helper()
		blk := &isoBlock{phase: phase, answers: make([]isoAnswer, 0, perProfile*perBlock)}
		var mu sync.Mutex
		calls0 := def.Calls()
		cpu0, others0, hs0 := cpuOf(b, aw.guichet.pid), aw.otherCPU(), aw.hs.Snapshot()
		start := time.Now()
		blk.hops = aw.startHops(from, to, hopRoom, isoHopPeriod)
		parallel(perProfile, perProfile, func(i int) {
			for k := range perBlock {
				text := fmt.Sprintf("Bloc %d, question n° %d de l'agent %d : comment rédiger une note de synthèse ?", round+1, k+1, i+1)
				q := aw.askFinal(defAgents[i], defDMs[i], text, isoDeadline)
				q.phase = phase
				mu.Lock()
				blk.answers = append(blk.answers, q)
				mu.Unlock()
			}
		})
		blk.elapsed = time.Since(start)
		blk.hops.finish()
		blk.cpu = cpuOf(b, aw.guichet.pid) - cpu0
		others := aw.otherCPU()
		blk.others = [2]time.Duration{others[0] - others0[0], others[1] - others0[1]}
		blk.hs = aw.hs.Snapshot().Sub(hs0)
		ph := phases[phase]
		ph.others[0] += blk.others[0]
		ph.others[1] += blk.others[1]
		ph.hs = addCounts(ph.hs, blk.hs)
		ph.defaultCalls += def.Calls() - calls0
		ph.elapsed += blk.elapsed
		ph.cpu += blk.cpu
		ph.hops = append(ph.hops, blk.hops.samples...)
		ph.hopLost += blk.hops.lost
		for _, q := range blk.answers {
			ph.asked++
			switch q.kind() {
			case "answer":
				ph.real++
				ph.reply = append(ph.reply, q.reply)
			case "lost":
				ph.lost++
			default:
				ph.bad++
			}
		}
		blocks = append(blocks, blk)
	}

	var order []string
	for range rounds {
		order = append(order, "A", "B", "B", "A")
	}
	var recoveries []time.Duration
	for round, phase := range order {
		if phase != cur {
			load.hold(b)
			if phase == "B" {
				justice.FailAlways(fakealbert.PerMinuteLimit(50))
				switchTo("B")
				load.set("B")
			} else {
				// Back to A: the partner's fake answers again; its agents'
				// questions (R, not counted) let its breaker probe and close.
				justice.StopFailing()
				switchTo("R")
				recovered := time.Now()
				load.set("R")
				for {
					ev := breakerEvents(b, logPath)[isoPartnerID]
					if len(ev) == 0 || !ev[len(ev)-1] {
						break
					}
					if time.Since(recovered) > isoRecoverTimeout {
						b.Fatalf("the partner's breaker did not close within %s of its fake answering again", isoRecoverTimeout)
					}
					time.Sleep(250 * time.Millisecond)
				}
				load.hold(b)
				recoveries = append(recoveries, time.Since(recovered))
				switchTo("A")
				load.set("A")
			}
			time.Sleep(period) // the partner's load is established in the new phase
		}
		runBlock(phase, round)
	}
	load.stop(b)
	switchTo("")
	time.Sleep(2 * time.Second) // late duplicates

	// Figures.
	partnerQs := load.snapshot()
	type partnerFig struct{ asked, real, busy, other, lost, waited int }
	pfig := map[string]*partnerFig{"A": {}, "B": {}, "R": {}}
	otherBodies := map[string]int{}
	for _, q := range partnerQs {
		f := pfig[q.phase]
		if f == nil {
			continue
		}
		f.asked++
		if q.waited {
			f.waited++
		}
		switch q.kind() {
		case "answer":
			f.real++
		case "busy":
			f.busy++
		case "lost":
			f.lost++
		default:
			f.other++
			otherBodies[q.phase+": "+cut(q.body, 100)]++
		}
	}
	events := breakerEvents(b, logPath)
	defOpened, _ := countTrue(events[""])
	parOpened, parClosed := countTrue(events[isoPartnerID])
	dups := 0
	for _, a := range defAgents {
		dups += isoDuplicates(aw, a)
	}

	A, B := phases["A"], phases["B"]
	hop := idle.P50()
	retries := cfg.Albert.MaxRetries
	t := benchutil.NewTable(fmt.Sprintf("partner isolation: %d default agents × %d questions per block, all at once, blocks %s; "+
		"%d partner agents asking throughout, each at most every %s; both fakes %s to the first token + %s per piece; "+
		"breaker: %d failures, open %s, max wait %s; B: the partner's fake answers every chat call 429 \"50 requests per minute exceeded\"",
		perProfile, perBlock, strings.Join(order, " "), perProfile, period, isoLatency, isoTokenDelay, isoBreaker.Failures, isoBreaker.OpenFor, isoBreaker.MaxWait),
		"default profile (send → final answer seen)", "A p50", "A p99", "B p50", "B p99", "B/A p50", "B/A p99", "A p50 vs one-hop p50")
	t.Row("reply latency", benchutil.FormatMs(A.reply.P50()), benchutil.FormatMs(A.reply.P99()),
		benchutil.FormatMs(B.reply.P50()), benchutil.FormatMs(B.reply.P99()),
		benchutil.Ratio(float64(B.reply.P50()), float64(A.reply.P50())), benchutil.Ratio(float64(B.reply.P99()), float64(A.reply.P99())),
		benchutil.Ratio(float64(A.reply.P50()), float64(hop)))
	t.Row(fmt.Sprintf("one-hop during the blocks, encrypted room (lost A %d, B %d)", A.hopLost, B.hopLost),
		benchutil.FormatMs(A.hops.P50()), benchutil.FormatMs(A.hops.P99()), benchutil.FormatMs(B.hops.P50()), benchutil.FormatMs(B.hops.P99()),
		benchutil.Ratio(float64(B.hops.P50()), float64(A.hops.P50())), benchutil.Ratio(float64(B.hops.P99()), float64(A.hops.P99())),
		benchutil.Ratio(float64(A.hops.P50()), float64(hop)))
	t.Row("one-hop idle, encrypted room (baseline)", benchutil.FormatMs(idle.P50()), benchutil.FormatMs(idle.P99()), "", "", "", "", "×1.00")
	t.Row("answers: real / not the fake's / lost", fmt.Sprintf("%d / %d / %d", A.real, A.bad, A.lost), "",
		fmt.Sprintf("%d / %d / %d", B.real, B.bad, B.lost), "", "", "", "")
	t.Row("default fake's chat calls", strconv.Itoa(A.defaultCalls), "", strconv.Itoa(B.defaultCalls), "", "", "", "")
	cores := func(p *isoPhase, d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(max(p.elapsed, 1)), 'f', 2, 64)
	}
	t.Row("CPU cores busy over the blocks: guichet / Dendrite / this process (agents, fakes, proxy)",
		cores(A, A.cpu)+" / "+cores(A, A.others[0])+" / "+cores(A, A.others[1]), "",
		cores(B, B.cpu)+" / "+cores(B, B.others[0])+" / "+cores(B, B.others[1]), "", "", "", "")
	verdict := "met"
	if ratio := float64(B.reply.P50()) / float64(max(A.reply.P50(), 1)); ratio > 1.10 || float64(B.reply.P99())/float64(max(A.reply.P99(), 1)) > 1.10 {
		verdict = "not met"
	}
	t.Row("target of the issue: B within 10 % of A (p50 and p99)", verdict, "", "", "", "", "", "")
	show(b, t)

	p := benchutil.NewTable(fmt.Sprintf("the partner (%s, its own fake and key) over the same phases; R: after B, until its breaker closed again (%s), not counted",
		isoPartnerName, joinDurations(recoveries)),
		"phase", "questions", "real answers", "French busy answers", "other", "lost", "after a waiting notice", "partner fake's chat calls", "calls per question", "without a breaker (1 + max_retries)")
	for _, name := range []string{"A", "B", "R"} {
		f := pfig[name]
		ph := phases[name]
		calls := strconv.Itoa(ph.partnerCalls)
		per := fmt.Sprintf("%.2f", float64(ph.partnerCalls)/float64(max(f.asked, 1)))
		without := ""
		if name == "B" {
			without = strconv.Itoa(f.asked * (1 + retries))
		}
		p.Row(name, strconv.Itoa(f.asked), strconv.Itoa(f.real), strconv.Itoa(f.busy), strconv.Itoa(f.other), strconv.Itoa(f.lost),
			strconv.Itoa(f.waited), calls, per, without)
	}
	p.Row(fmt.Sprintf("breakers (guichet's log): the partner's opened %d, closed %d; the default profile's opened %d", parOpened, parClosed, defOpened),
		"", "", "", "", "", "", "", "", "")
	show(b, p)

	bt := benchutil.NewTable("blocks, in order", "block", "phase", "answers", "p50", "p99", "elapsed", "one-hop p50", "guichet CPU")
	for i, blk := range blocks {
		var s benchutil.Samples
		for _, q := range blk.answers {
			if q.kind() == "answer" {
				s = append(s, q.reply)
			}
		}
		bt.Row(strconv.Itoa(i+1), blk.phase, strconv.Itoa(len(s)), benchutil.FormatMs(s.P50()), benchutil.FormatMs(s.P99()),
			blk.elapsed.Round(time.Millisecond).String(), benchutil.FormatMs(blk.hops.samples.P50()), benchutil.FormatMs(blk.cpu))
	}
	show(b, bt)
	ht := benchutil.NewTable("guichet's homeserver requests over the blocks, per second (both profiles' agents)", "endpoint", "A", "B", "A p50 time", "B p50 time")
	seen := map[string]bool{}
	for _, ep := range append(A.hs.Endpoints(), B.hs.Endpoints()...) {
		if seen[ep] {
			continue
		}
		seen[ep] = true
		perSec := func(p *isoPhase) string {
			return fmt.Sprintf("%.2f", float64(p.hs[ep].Requests)/max(p.elapsed.Seconds(), 0.001))
		}
		p50 := func(p *isoPhase) string {
			if ep == syncEndpoint || len(p.hs[ep].Durations) == 0 {
				return ""
			}
			return benchutil.FormatMs(benchutil.Samples(p.hs[ep].Durations).P50())
		}
		ht.Row(ep, perSec(A), perSec(B), p50(A), p50(B))
	}
	show(b, ht)
	for what, k := range otherBodies {
		showf(b, "%d partner replies were neither an answer nor a busy notice: %q", k, what)
	}
	aw.logSummary(b)

	b.ReportMetric(benchutil.Ms(A.reply.P50()), "A-p50-ms")
	b.ReportMetric(benchutil.Ms(A.reply.P99()), "A-p99-ms")
	b.ReportMetric(benchutil.Ms(B.reply.P50()), "B-p50-ms")
	b.ReportMetric(benchutil.Ms(B.reply.P99()), "B-p99-ms")
	b.ReportMetric(float64(B.reply.P50())/float64(max(A.reply.P50(), 1)), "B/A-p50")
	b.ReportMetric(float64(B.reply.P99())/float64(max(A.reply.P99(), 1)), "B/A-p99")
	b.ReportMetric(benchutil.Ms(hop), "hop-p50-ms")
	b.ReportMetric(float64(pfig["B"].asked), "partner-B-questions")
	b.ReportMetric(float64(pfig["B"].busy), "partner-B-busy")
	b.ReportMetric(float64(B.partnerCalls), "partner-B-calls")
	b.ReportMetric(float64(dups), "default-dup")
	b.ReportMetric(0, "ns/op")

	// Every default-profile question must have had the fake's real answer.
	var wrong []string
	for _, blk := range blocks {
		for _, q := range blk.answers {
			if q.kind() != "answer" {
				wrong = append(wrong, fmt.Sprintf("%s (%s): %q", blk.phase, q.kind(), cut(q.body, 150)))
			}
		}
	}
	if len(wrong) > 0 {
		b.Fatalf("%d default-profile questions without the fake's answer:\n%s", len(wrong), strings.Join(wrong[:min(len(wrong), 10)], "\n"))
	}
	if defOpened > 0 {
		b.Errorf("the default profile's breaker opened %d times", defOpened)
	}
}

// isoDuplicates counts the complete replies guichet sent to a's questions
// beyond one per question.
func isoDuplicates(aw *agentsWorld, a *mxclient.Person) int {
	msgs := a.Messages()
	questions := map[id.EventID]bool{}
	for _, m := range msgs {
		if m.Sender == a.UserID() {
			questions[m.EventID] = true
		}
	}
	dups := 0
	for evt := range questions {
		q := question{agent: a, event: evt}
		dups += aw.duplicates(q)
	}
	return dups
}

// addCounts adds the stats of b to a (a may be nil).
func addCounts(a, b hsproxy.Counts) hsproxy.Counts {
	if a == nil {
		a = hsproxy.Counts{}
	}
	for k, s := range b {
		t := a[k]
		t.Requests += s.Requests
		t.Errors += s.Errors
		t.Cut += s.Cut
		t.Durations = append(t.Durations, s.Durations...)
		a[k] = t
	}
	return a
}

func joinDurations(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.Round(100*time.Millisecond).String())
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
