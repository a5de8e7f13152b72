package e2e

// BenchmarkAgents: issue 4's figures for the assistant in direct messages.
// guichet runs as the real binary, so that its CPU time and memory, read from
// /proc, are its own, and it reaches Dendrite through a counting proxy, so
// that its homeserver requests can be read per endpoint. The agents are
// mautrix-go clients with end-to-end encryption, in this process; Albert is
// the fake, with a latency and a token rate that make a stream last about
// what a real one does. Set-up goes through the product: the moderator
// pre-approves the agents with !approve (50 at a time), guichet opens their
// encrypted DMs, and each agent sends !accepter. The agents are light: keys
// and room state in memory, one HTTP connection pool for all, but each has
// its own device, Olm account and /sync long poll, as real clients do.
// Every figure of a run comes from one fresh Dendrite; latencies are shown
// next to the one-hop delivery between two people measured in that run. The
// proxy adds one loopback hop to each of guichet's homeserver requests.
//
// Time on 2 cores: N=1 about 40 s, N=100 about 1 min, N=1000 about 6.5 min
// (4 of them Dendrite creating the 1,000 DMs), the new DMs about 40 s. With
// the other benchmarks, make bench needs a go test -timeout above the
// default 10 minutes; GUICHET_BENCH_MAX_AGENTS=100 makes it quick.
//
// Knobs (environment):
//   GUICHET_BENCH_MAX_AGENTS       largest N to run (default 1000)
//   GUICHET_BENCH_ALBERT_LATENCY   fake Albert's delay to the first token (500ms)
//   GUICHET_BENCH_ALBERT_STREAM    fake Albert's first to last token (1s)
//   GUICHET_BENCH_QUESTIONS        questions per agent when N > 1 (3)
//   GUICHET_BENCH_QUESTIONS_1000   the same for N = 1000 (1)
//   GUICHET_BENCH_SOLO_QUESTIONS   questions at N = 1, one after another (20)
//   GUICHET_BENCH_DEADLINE         an answer not complete by then is lost (2m)
//   GUICHET_BENCH_LOGS             a folder to copy guichet's logs into
//   GUICHET_BENCH_CPUPROFILE       a folder for guichet's CPU and heap profiles (-cpuprofile, -memprofile)

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/albert/fakealbert"
	"guichet/internal/benchutil"
	"guichet/internal/hsproxy"
	"guichet/internal/mxclient"
	"guichet/internal/testbed"
	"guichet/store"
)

// benchAnswer is what the fake Albert says: Markdown, so that the final edit
// is rendered, in benchPieces word-sized pieces.
const benchAnswer = "Voici une **réponse** de l'Assistant IA, écrite pour mesurer guichet.\n\n" +
	"- Premier point : une note de synthèse tient en une page.\n" +
	"- Second point : elle commence par l'essentiel, *puis* les détails.\n\n" +
	"Pour aller plus loin, consultez le guide de rédaction administrative. Bonne journée !"

var benchPieces = len(strings.Fields(benchAnswer)) // fakealbert streams one piece per word

type agentsParams struct {
	maxAgents    int
	latency      time.Duration
	stream       time.Duration
	questions    int
	questions1k  int
	soloQuestion int
	deadline     time.Duration
	logDir       string
}

func (p agentsParams) tokenDelay() time.Duration { return p.stream / time.Duration(benchPieces) }

// albertTime is how long the fake takes to stream one answer, nominally.
func (p agentsParams) albertTime() time.Duration {
	return p.latency + time.Duration(benchPieces)*p.tokenDelay()
}

func agentsParamsFromEnv(tb testing.TB) agentsParams {
	p := agentsParams{
		maxAgents:    envInt(tb, "GUICHET_BENCH_MAX_AGENTS", 1000),
		latency:      envDuration(tb, "GUICHET_BENCH_ALBERT_LATENCY", 500*time.Millisecond),
		stream:       envDuration(tb, "GUICHET_BENCH_ALBERT_STREAM", time.Second),
		questions:    envInt(tb, "GUICHET_BENCH_QUESTIONS", 3),
		questions1k:  envInt(tb, "GUICHET_BENCH_QUESTIONS_1000", 1),
		soloQuestion: envInt(tb, "GUICHET_BENCH_SOLO_QUESTIONS", 20),
		deadline:     envDuration(tb, "GUICHET_BENCH_DEADLINE", 2*time.Minute),
		logDir:       os.Getenv("GUICHET_BENCH_LOGS"),
	}
	if p.questions < 1 || p.questions1k < 1 || p.soloQuestion < 1 {
		tb.Fatal("GUICHET_BENCH_*QUESTIONS* must be at least 1")
	}
	return p
}

func envInt(tb testing.TB, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		tb.Fatalf("%s=%q is not a number", key, v)
	}
	return n
}

func envDuration(tb testing.TB, key string, def time.Duration) time.Duration {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		tb.Fatalf("%s=%q is not a duration such as 500ms", key, v)
	}
	return d
}

// agentsRun is what one sub-benchmark measured, for the summary.
type agentsRun struct {
	name                 string
	agents, asked        int
	answered, lost, dups int
	reply, first         benchutil.Samples
	hop, hopLoad         benchutil.Samples
	cpuPerAnswer         time.Duration
	cpuFloor             time.Duration // the stream alone, read by go-openai in its own process (N=1)
	reqPerAnswer         float64       // homeserver requests per answer, /sync excluded
	syncPerAnswer        float64
	mem                  benchutil.Mem
	note                 string
}

// BenchmarkAgents runs N = 1, 100 and 1,000 agents asking questions, and 100
// agents opening new encrypted DMs within one second; see the file comment.
func BenchmarkAgents(b *testing.B) {
	requireE2E(b)
	params := agentsParamsFromEnv(b)
	bin := buildGuichet(b)
	var runs []agentsRun
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			if n > params.maxAgents {
				runs = append(runs, agentsRun{name: fmt.Sprintf("N=%d", n), note: "skipped (GUICHET_BENCH_MAX_AGENTS)"})
				b.Skipf("N=%d skipped: GUICHET_BENCH_MAX_AGENTS=%d", n, params.maxAgents)
			}
			runs = append(runs, runAgents(b, bin, params, n))
		})
	}
	b.Run("NewDMs=100", func(b *testing.B) {
		if params.maxAgents < 100 {
			runs = append(runs, agentsRun{name: "100 new DMs", note: "skipped (GUICHET_BENCH_MAX_AGENTS)"})
			b.Skipf("skipped: GUICHET_BENCH_MAX_AGENTS=%d", params.maxAgents)
		}
		runs = append(runs, benchNewDMs(b, bin, params, 100))
	})

	t := benchutil.NewTable(fmt.Sprintf("summary (fake Albert %s to the first token, %s stream: %s per answer)",
		params.latency, params.stream, benchutil.FormatMs(params.albertTime())),
		"run", "answered/asked", "lost", "dup", "reply p50", "reply p99", "first p50", "one-hop p50 idle", "one-hop p50 load",
		"CPU/answer", "HS req/answer", "+ /sync", "RSS", "peak RSS", "note")
	for _, r := range runs {
		if r.asked == 0 {
			t.Row(r.name, "", "", "", "", "", "", "", "", "", "", "", "", "", r.note)
			continue
		}
		t.Row(r.name, fmt.Sprintf("%d/%d", r.answered, r.asked), strconv.Itoa(r.lost), strconv.Itoa(r.dups),
			benchutil.FormatMs(r.reply.P50()), benchutil.FormatMs(r.reply.P99()), benchutil.FormatMs(r.first.P50()),
			benchutil.FormatMs(r.hop.P50()), formatMsOrDash(r.hopLoad),
			benchutil.FormatMs(r.cpuPerAnswer), fmt.Sprintf("%.2f", r.reqPerAnswer), fmt.Sprintf("%.2f", r.syncPerAnswer),
			benchutil.FormatMB(r.mem.RSS), benchutil.FormatMB(r.mem.Peak), r.note)
	}
	show(b, t)
}

func formatMsOrDash(s benchutil.Samples) string {
	if len(s) == 0 {
		return "-"
	}
	return benchutil.FormatMs(s.P50())
}

// agentsWorld is a testbed with guichet's binary behind counting proxies.
type agentsWorld struct {
	*world
	params  agentsParams
	guichet *guichetProcess
	hs      *hsproxy.Proxy // guichet → Dendrite
	dbPath  string         // guichet's SQLite file
	http    *http.Client   // shared by the agents
	warns   *warnCounter   // what the agents' clients logged at warn and above
	bot     id.UserID
	hsPID   int // Dendrite's process
}

// newAgentsWorld runs guichet's binary behind the counting proxy, per-agent
// limits wide open; conc is limits.global.max_concurrent (0: wide open too,
// to measure guichet's own cost rather than its queue).
func newAgentsWorld(b *testing.B, bin string, params agentsParams, n, conc int) *agentsWorld {
	b.Helper()
	w := newWorld(b)
	aw := &agentsWorld{world: w, params: params, bot: w.tb.Bot.UserID, warns: &warnCounter{counts: map[string]int{}}}
	w.tb.Albert.SetLatency(params.latency)
	w.tb.Albert.SetTokenDelay(params.tokenDelay())
	w.tb.Albert.SetReply(func(fakealbert.Request) string { return benchAnswer })

	var err error
	if aw.hs, err = hsproxy.Start(w.tb.HS.URL); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(aw.hs.Close)
	aw.http = &http.Client{Timeout: 3 * time.Minute, Transport: &http.Transport{
		Proxy: nil, MaxIdleConnsPerHost: 2*n + 16, IdleConnTimeout: 90 * time.Second,
	}}

	cfg := *w.cfg
	cfg.Matrix.Homeserver = aw.hs.URL
	aw.dbPath = cfg.Database.URI
	cfg.Limits.PerUser.MessagesPerMinute = 1000
	cfg.Limits.PerUser.Burst = 1000
	cfg.Limits.PerUser.MessagesPerDay = 100_000
	cfg.Limits.PerUser.TokensPerDay = 100_000_000
	cfg.Limits.Global.MaxConcurrent = 100_000
	if conc > 0 {
		cfg.Limits.Global.MaxConcurrent = conc
	}
	cfg.Limits.Global.QueueSize = max(100_000, 2*n)
	cfg.Limits.Global.RequestsPerMinute = 0
	cfg.Limits.Global.TokensPerMinute = 0
	configPath := filepath.Join(w.dir, "config.yaml")
	writeConfigYAML(b, configPath, &cfg)
	logPath := filepath.Join(w.dir, "guichet.log")
	aw.guichet = startBinary(b, bin, configPath, logPath)
	if aw.hsPID, err = benchutil.FindProcess(filepath.Join(w.dir, "dendrite", "dendrite.yaml")); err != nil {
		b.Fatalf("failed to find Dendrite's process: %v", err)
	}
	if params.logDir != "" {
		b.Cleanup(func() {
			raw, err := os.ReadFile(logPath)
			if err == nil {
				name := strings.NewReplacer("/", "_", "=", "").Replace(b.Name()) + ".log"
				err = os.WriteFile(filepath.Join(params.logDir, name), raw, 0o644)
			}
			if err != nil {
				b.Logf("could not keep guichet's log: %v", err)
			}
		})
	}
	return aw
}

// newAgents registers n accounts and starts a light client for each: keys
// and room state in memory, one HTTP pool for all.
func (aw *agentsWorld) newAgents(prefix string, n int) []*mxclient.Person {
	aw.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	agents := make([]*mxclient.Person, n)
	errs := make([]error, n)
	logger := zerolog.New(aw.warns).Level(zerolog.WarnLevel)
	parallel(n, 16, func(i int) {
		localpart := fmt.Sprintf("%s%04d.test-interieur.gouv.fr", prefix, i+1)
		acct, err := aw.tb.HS.Register(ctx, localpart, testbed.Password, false)
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
			aw.t.Fatalf("agent %d could not start: %v", i+1, err)
		}
	}
	return agents
}

// parallel runs fn(0..n-1) on at most width goroutines.
func parallel(n, width int, fn func(i int)) {
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range min(n, width) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// onboard has the moderator pre-approve the agents, 50 per command, and
// each agent accept the policy in the DM guichet opens. It returns each
// agent's DM ("" for an agent that did not get through within the time
// allowed) and a line on how long it took.
func (aw *agentsWorld) onboard(agents []*mxclient.Person) ([]id.RoomID, string) {
	aw.t.Helper()
	timeout := 2*time.Minute + time.Duration(len(agents))*300*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	mod, room := aw.tb.Moderator, aw.tb.SupportRoom
	for lo := 0; lo < len(agents); lo += 50 {
		var cmd strings.Builder
		cmd.WriteString("!approve")
		for _, a := range agents[lo:min(lo+50, len(agents))] {
			cmd.WriteString(" " + a.UserID().String())
		}
		evt, err := mod.SendText(ctx, room, cmd.String())
		if err != nil {
			aw.t.Fatalf("the moderator could not send !approve: %v", err)
		}
		reply, err := mod.WaitMessage(ctx, func(m mxclient.Message) bool { return m.Sender == aw.bot && m.InReplyTo == evt })
		if err != nil {
			aw.t.Fatalf("no answer to !approve for agents %d to %d: %v", lo+1, min(lo+50, len(agents)), err)
		}
		if n := strings.Count(reply.Body, aw.tb.HS.ServerName); n < min(50, len(agents)-lo) {
			showf(aw.t, "the answer to !approve names %d of %d agents: %q", n, min(50, len(agents)-lo), cut(reply.Body, 300))
		}
	}
	approved := time.Since(start)

	dms := make([]id.RoomID, len(agents))
	welcomed := make([]time.Duration, len(agents))
	var failed atomic.Int64
	var firstErr atomic.Value
	parallel(len(agents), len(agents), func(i int) {
		a := agents[i]
		fail := func(what string, err error) {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %s: %v", a.UserID(), what, err))
		}
		welcome, err := a.WaitMessage(ctx, func(m mxclient.Message) bool {
			return m.Sender == aw.bot && strings.Contains(m.Body, "!accepter")
		})
		if err != nil {
			fail("no welcome", err)
			return
		}
		welcomed[i] = welcome.At.Sub(start)
		acc, err := a.SendText(ctx, welcome.RoomID, "!accepter")
		if err != nil {
			fail("!accepter not sent", err)
			return
		}
		if _, err := a.WaitMessage(ctx, func(m mxclient.Message) bool {
			return m.Sender == aw.bot && m.InReplyTo == acc && strings.Contains(m.Body, "Merci")
		}); err != nil {
			fail("no consent confirmation", err)
			return
		}
		dms[i] = welcome.RoomID
	})
	line := fmt.Sprintf("%d agents: !approve answered for all in %s; last welcome after %s; all consented after %s",
		len(agents), approved.Round(time.Millisecond), slices.Max(welcomed).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if n := failed.Load(); n > 0 {
		line += fmt.Sprintf("; %d agents not through in %s (first: %v)", n, timeout, firstErr.Load())
		if int(n) == len(agents) {
			aw.t.Fatal(line)
		}
	}
	return dms, line
}

// question is what an agent saw of one question.
type question struct {
	agent    *mxclient.Person
	event    id.EventID
	sent     time.Time
	first    time.Duration // to the placeholder or the answer
	text     time.Duration // to the first text of the answer
	final    time.Duration // to the complete answer
	answered bool
	errText  string // a reply that is not the assistant's answer
}

// askOne sends one question and waits, until the deadline, for guichet's
// complete answer: a message replying to it, or the last edit of the
// placeholder that did.
func (aw *agentsWorld) askOne(a *mxclient.Person, dm id.RoomID, text string, want string) question {
	q := question{agent: a, sent: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), aw.params.deadline)
	defer cancel()
	evt, err := a.SendText(ctx, dm, text)
	if err != nil {
		q.errText = "not sent: " + err.Error()
		return q
	}
	q.event = evt
	first, err := a.WaitMessage(ctx, func(m mxclient.Message) bool { return m.Sender == aw.bot && m.InReplyTo == evt })
	if err != nil {
		return q
	}
	q.first = first.At.Sub(q.sent)
	final := first
	if partial(first) {
		if final, err = a.WaitMessage(ctx, func(m mxclient.Message) bool {
			return m.Sender == aw.bot && m.ReplaceOf == first.EventID && !partial(m)
		}); err != nil {
			return q
		}
	}
	q.final, q.answered = final.At.Sub(q.sent), true
	q.text = q.final
	if strings.TrimSuffix(first.Body, "…") != "" {
		q.text = q.first
	} else {
		for _, m := range a.Messages() {
			if m.ReplaceOf == first.EventID && m.Sender == aw.bot && strings.TrimSuffix(m.Body, "…") != "" {
				q.text = min(q.text, m.At.Sub(q.sent))
			}
		}
	}
	if !strings.Contains(final.Body, want) {
		q.errText = final.Body
	}
	return q
}

func partial(m mxclient.Message) bool { return strings.HasSuffix(m.Body, "…") }

// duplicates counts the complete replies guichet sent to q beyond the first.
func (aw *agentsWorld) duplicates(q question) int {
	if q.event == "" {
		return 0
	}
	msgs := q.agent.Messages()
	finals, replies := 0, 0
	for _, m := range msgs {
		if m.Sender != aw.bot || m.InReplyTo != q.event || m.ReplaceOf != "" {
			continue
		}
		replies++
		if !partial(m) {
			finals++
			continue
		}
		seen := map[id.EventID]bool{}
		for _, e := range msgs {
			if e.Sender == aw.bot && e.ReplaceOf == m.EventID && !partial(e) && !seen[e.EventID] {
				seen[e.EventID] = true
				finals++
			}
		}
	}
	return max(finals-1, replies-1, 0)
}

// hopSampler measures one-hop deliveries between two people in an
// encrypted room, every period, until stopped.
type hopSampler struct {
	stop    chan struct{}
	done    chan struct{}
	samples benchutil.Samples
	lost    int
}

func (aw *agentsWorld) startHops(from, to *mxclient.Person, room id.RoomID, period time.Duration) *hopSampler {
	h := &hopSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for i := 0; ; i++ {
			select {
			case <-h.stop:
				return
			case <-time.After(period):
			}
			ctx, cancel := context.WithTimeout(context.Background(), aw.params.deadline)
			start := time.Now()
			evt, err := from.SendText(ctx, room, fmt.Sprintf("sous charge n° %d", i+1))
			if err == nil {
				var m mxclient.Message
				if m, err = to.WaitMessage(ctx, isEvent(evt)); err == nil {
					h.samples = append(h.samples, m.At.Sub(start))
				}
			}
			if err != nil {
				h.lost++
			}
			cancel()
		}
	}()
	return h
}

func (h *hopSampler) finish() *hopSampler {
	close(h.stop)
	<-h.done
	return h
}

// hopPair is the baseline: the moderator and an observer in an encrypted
// room, with idle one-hop samples.
func (aw *agentsWorld) hopPair(samples int) (from, to *mxclient.Person, room id.RoomID, idle benchutil.Samples) {
	aw.t.Helper()
	from, to = aw.tb.Moderator, aw.person("observateur-interieur.gouv.fr")
	room = aw.roomWith(from, to, true)
	for i := range samples {
		idle = append(idle, aw.hop(from, to, room, fmt.Sprintf("message n° %d", i+1)))
	}
	return from, to, room, idle
}

// phase is what guichet's process and the proxies saw over a stretch.
type phase struct {
	idleCPU    time.Duration // CPU used over idleWindow just before
	start      time.Time
	elapsed    time.Duration
	cpu0, cpu1 time.Duration
	others0    [2]time.Duration // Dendrite's and this process's CPU time
	others     [2]time.Duration // … used over the phase
	hs0, hs    hsproxy.Counts
	albert     benchutil.Samples // Albert calls that ended well, as timed by guichet
	mem        benchutil.Mem
}

// idleWindow is how long guichet's idle CPU use is measured before a phase.
const idleWindow = 5 * time.Second

func (aw *agentsWorld) begin() *phase {
	aw.t.Helper()
	idle0, err := benchutil.CPUTime(aw.guichet.pid)
	if err != nil {
		aw.t.Fatal(err)
	}
	time.Sleep(idleWindow)
	cpu, err := benchutil.CPUTime(aw.guichet.pid)
	if err != nil {
		aw.t.Fatal(err)
	}
	p := &phase{idleCPU: cpu - idle0}
	aw.mark(p)
	return p
}

// mark starts p now, without the idle measurement.
func (aw *agentsWorld) mark(p *phase) *phase {
	aw.t.Helper()
	var err error
	p.start = time.Now()
	if p.cpu0, err = benchutil.CPUTime(aw.guichet.pid); err != nil {
		aw.t.Fatal(err)
	}
	p.others0 = aw.otherCPU()
	p.hs0 = aw.hs.Snapshot()
	return p
}

func (aw *agentsWorld) otherCPU() [2]time.Duration {
	hs, err1 := benchutil.CPUTime(aw.hsPID)
	self, err2 := benchutil.CPUTime(os.Getpid())
	if err1 != nil || err2 != nil {
		aw.t.Fatalf("failed to read CPU times: %v, %v", err1, err2)
	}
	return [2]time.Duration{hs, self}
}

// cores tells how many cores guichet, Dendrite and the clients (this
// process: agents, proxies, fake Albert) kept busy over the phase.
func (p *phase) cores() string {
	c := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/float64(p.elapsed), 'f', 2, 64) }
	return fmt.Sprintf("CPU cores busy: Dendrite %s, guichet %s, clients + proxies + fake Albert %s",
		c(p.others[0]), c(p.cpu1-p.cpu0), c(p.others[1]))
}

// cpuPerAnswer is guichet's CPU time over the phase, less what it would
// have used idle, per answer.
func (p *phase) cpuPerAnswer(answers int) (raw, aboveIdle time.Duration) {
	used := p.cpu1 - p.cpu0
	idle := time.Duration(float64(p.idleCPU) * float64(p.elapsed) / float64(idleWindow))
	return used / time.Duration(max(answers, 1)), max(used-idle, 0) / time.Duration(max(answers, 1))
}

func (aw *agentsWorld) end(p *phase) {
	aw.t.Helper()
	var err error
	p.elapsed = time.Since(p.start)
	if p.cpu1, err = benchutil.CPUTime(aw.guichet.pid); err != nil {
		aw.t.Fatal(err)
	}
	if p.mem, err = benchutil.Memory(aw.guichet.pid); err != nil {
		aw.t.Fatal(err)
	}
	o := aw.otherCPU()
	p.others = [2]time.Duration{o[0] - p.others0[0], o[1] - p.others0[1]}
	p.hs = aw.hs.Snapshot().Sub(p.hs0)
	p.albert = aw.albertCalls(p.start)
}

// albertCalls reads, from guichet's usage ledger, how long each successful
// Albert call since start took, as guichet timed it (whole milliseconds).
func (aw *agentsWorld) albertCalls(since time.Time) benchutil.Samples {
	db, err := store.Open(aw.dbPath)
	if err != nil {
		aw.t.Logf("cannot read the usage ledger: %v", err)
		return nil
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := db.Query(ctx, `SELECT latency_ms FROM usage_ledger WHERE at >= $1 AND outcome = 'ok'`, since.UnixMilli())
	if err != nil {
		aw.t.Logf("cannot read the usage ledger: %v", err)
		return nil
	}
	defer rows.Close()
	var out benchutil.Samples
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			aw.t.Logf("cannot read the usage ledger: %v", err)
			return nil
		}
		out = append(out, time.Duration(v)*time.Millisecond)
	}
	return out
}

const syncEndpoint = "GET /_matrix/client/v3/sync"

// runAgents is one N: onboarding, then the questions, then the figures.
func runAgents(b *testing.B, bin string, params agentsParams, n int) agentsRun {
	aw := newAgentsWorld(b, bin, params, n, 0)
	run := agentsRun{name: fmt.Sprintf("N=%d", n), agents: n}
	setup := time.Now()
	agents := aw.newAgents("agent", n)
	started := time.Since(setup)
	onb := aw.mark(&phase{})
	dms, onboarding := aw.onboard(agents)
	aw.end(onb)
	showf(b, "set-up: %d clients started in %s; %s; %s", n, started.Round(time.Millisecond), onboarding, onb.cores())
	if n > 1 {
		show(b, requestsTable(fmt.Sprintf("N=%d: guichet's homeserver requests during onboarding, per agent", n), onb.hs, n))
	}
	from, to, hopRoom, idle := aw.hopPair(20)
	run.hop = idle

	perAgent := params.questions
	if n == 1 {
		perAgent = params.soloQuestion
	} else if n >= 1000 {
		perAgent = params.questions1k
	}
	// Warm-up, not measured: the first answer in each DM (SQLite pages,
	// Go's heap).
	if n == 1 {
		aw.askOne(agents[0], dms[0], "Question pour s'échauffer ?", "Bonne journée")
	}

	ph := aw.begin()
	calls0 := aw.tb.Albert.Calls()
	load := aw.startHops(from, to, hopRoom, 500*time.Millisecond)
	var mu sync.Mutex
	var qs []question
	ready := 0
	for _, dm := range dms {
		if dm != "" {
			ready++
		}
	}
	begin := time.Now()
	parallel(len(agents), len(agents), func(i int) {
		if dms[i] == "" {
			return
		}
		for k := range perAgent {
			q := aw.askOne(agents[i], dms[i], fmt.Sprintf("Question n° %d de l'agent %d : comment rédiger une note de synthèse ?", k+1, i+1), "Bonne journée")
			mu.Lock()
			qs = append(qs, q)
			mu.Unlock()
		}
	})
	elapsed := time.Since(begin)
	run.hopLoad = load.finish().samples
	time.Sleep(2 * time.Second) // late duplicates, typing off
	aw.end(ph)
	calls := aw.tb.Albert.Calls() - calls0 // before the floor's own calls

	var reply, first, text benchutil.Samples
	errAnswers := map[string]int{}
	for _, q := range qs {
		run.asked++
		if !q.answered {
			run.lost++
			continue
		}
		run.answered++
		reply, first, text = append(reply, q.final), append(first, q.first), append(text, q.text)
		if q.errText != "" {
			errAnswers[cut(q.errText, 80)]++
		}
		run.dups += aw.duplicates(q)
	}
	run.reply, run.first = reply, first
	answers := max(run.answered, 1)
	cpuRaw, cpuAbove := ph.cpuPerAnswer(run.answered)
	run.cpuPerAnswer = cpuRaw
	total, _ := ph.hs.Total()
	syncs := ph.hs[syncEndpoint].Requests
	run.reqPerAnswer = float64(total-syncs) / float64(answers)
	run.syncPerAnswer = float64(syncs) / float64(answers)
	run.mem = ph.mem
	if ready < n {
		run.note = fmt.Sprintf("%d of %d agents onboarded", ready, n)
	}

	hop := idle.P50()
	albertMeasured := ph.albert
	mode := "one after another"
	if n > 1 {
		mode = "all agents at once, each waiting for its answer before the next"
	}
	t := benchutil.NewTable(fmt.Sprintf("N=%d: %d agents ready, %d questions each (%s), %d asked in %s; fake Albert %s + %d pieces × %s = %s",
		n, ready, perAgent, mode, run.asked, elapsed.Round(time.Millisecond), params.latency, benchPieces, params.tokenDelay(), benchutil.FormatMs(params.albertTime())),
		"figure", "p50", "p99", "p50 vs one-hop p50 (idle)")
	row := func(name string, s benchutil.Samples) {
		t.Row(name, benchutil.FormatMs(s.P50()), benchutil.FormatMs(s.P99()), benchutil.Ratio(float64(s.P50()), float64(hop)))
	}
	row("reply latency (send → complete answer seen)", reply)
	row("first visible (send → placeholder or answer seen)", first)
	row("first text of the answer seen", text)
	row("Albert calls as timed by guichet (usage ledger)", albertMeasured)
	row("one-hop, encrypted room, idle (baseline)", idle)
	row(fmt.Sprintf("one-hop during the questions (%d lost)", load.lost), run.hopLoad)
	if n == 1 {
		overhead := reply.P50() - params.albertTime() - 2*hop
		measured := reply.P50() - albertMeasured.P50() - 2*hop
		t.Row("overhead = reply p50 − fake Albert − 2 × one-hop p50", benchutil.FormatMs(overhead), "", benchutil.Ratio(float64(overhead), float64(hop)))
		t.Row("  the same with Albert's time as guichet measured it", benchutil.FormatMs(measured), "", benchutil.Ratio(float64(measured), float64(hop)))
		loaded := reply.P50() - params.albertTime() - 2*run.hopLoad.P50()
		t.Row("  the same against the one-hop during the questions", benchutil.FormatMs(loaded), "", benchutil.Ratio(float64(loaded), float64(hop)))
		own := aw.ownTimes(b, len(qs))
		row("  of which guichet's own work (its log: receipt → answer queued, less Albert)", own)
		b.ReportMetric(benchutil.Ms(overhead), "overhead-ms")
	}
	t.Row("guichet CPU per answer (utime+stime, 10 ms ticks)", benchutil.FormatMs(cpuRaw), "",
		fmt.Sprintf("%s over %d answers in %s", benchutil.FormatMs(ph.cpu1-ph.cpu0), run.answered, ph.elapsed.Round(time.Millisecond)))
	t.Row("  the same less guichet's idle use", benchutil.FormatMs(cpuAbove), "",
		fmt.Sprintf("idle: %s in %s", benchutil.FormatMs(ph.idleCPU), idleWindow))
	if n == 1 {
		run.cpuFloor = streamFloor(b, aw, min(perAgent, 10))
		t.Row("  floor: the same stream read by go-openai alone, own process", benchutil.FormatMs(run.cpuFloor), "",
			"guichet "+benchutil.Ratio(float64(cpuRaw), float64(run.cpuFloor))+"; above the floor "+benchutil.FormatMs(cpuRaw-run.cpuFloor))
		b.ReportMetric(benchutil.Ms(run.cpuFloor), "floor-cpu-ms/answer")
	}
	t.Row("guichet memory: VmRSS now / VmHWM (peak)", benchutil.FormatMB(ph.mem.RSS), benchutil.FormatMB(ph.mem.Peak), "")
	t.Row(ph.cores(), "", "", "")
	t.Row("answers: complete / lost / duplicated / not the assistant's", strconv.Itoa(run.answered), strconv.Itoa(run.lost),
		fmt.Sprintf("%d / %d", run.dups, len(errAnswers)))
	t.Row("Albert calls", strconv.Itoa(calls), "", fmt.Sprintf("%.2f per question", float64(calls)/float64(max(run.asked, 1))))
	show(b, t)
	for what, k := range errAnswers {
		showf(b, "%d replies were not the assistant's answer: %q", k, what)
	}
	show(b, requestsTable(fmt.Sprintf("N=%d: guichet's homeserver requests during the questions, per complete answer", n), ph.hs, answers))
	aw.logSummary(b)

	b.ReportMetric(benchutil.Ms(reply.P50()), "reply-p50-ms")
	b.ReportMetric(benchutil.Ms(reply.P99()), "reply-p99-ms")
	b.ReportMetric(benchutil.Ms(first.P50()), "first-p50-ms")
	b.ReportMetric(benchutil.Ms(hop), "hop-p50-ms")
	b.ReportMetric(benchutil.Ms(run.cpuPerAnswer), "cpu-ms/answer")
	b.ReportMetric(run.reqPerAnswer, "hs-req/answer")
	b.ReportMetric(float64(ph.mem.RSS)/(1<<20), "rss-MB")
	b.ReportMetric(float64(run.lost), "lost")
	b.ReportMetric(float64(run.dups), "dup")
	b.ReportMetric(0, "ns/op")
	return run
}

// streamFloor runs e2e/streamfloor against the fake Albert for n answers and
// returns its CPU time per answer: what receiving the stream costs a Go
// process that does nothing else, the baseline for guichet's CPU per answer.
func streamFloor(b *testing.B, aw *agentsWorld, n int) time.Duration {
	b.Helper()
	bin := buildCommand(b, "./e2e/streamfloor")
	out, err := exec.Command(bin, "-url", aw.tb.Albert.URL, "-key", testbed.AlbertKey, "-model", testbed.AlbertModel,
		"-n", strconv.Itoa(n)).Output()
	if err != nil {
		b.Fatalf("streamfloor: %v\n%s", err, out)
	}
	var got struct {
		Answers int   `json:"answers"`
		CPU     int64 `json:"cpu_ns"`
		Chars   int   `json:"chars"`
	}
	if err := json.Unmarshal(out, &got); err != nil || got.Answers != n {
		b.Fatalf("streamfloor printed %q: %v", out, err)
	}
	if want := n * len(benchAnswer); got.Chars != want {
		b.Fatalf("streamfloor read %d characters in %d answers, want %d", got.Chars, n, want)
	}
	return time.Duration(got.CPU / int64(n))
}

// requestsTable shows the requests by endpoint, per answer.
func requestsTable(title string, c hsproxy.Counts, answers int) *benchutil.Table {
	t := benchutil.NewTable(title, "endpoint", "requests", "per answer", "errors", "p50 time", "p99 time")
	if strings.Contains(title, "per agent") {
		t = benchutil.NewTable(title, "endpoint", "requests", "per agent", "errors", "p50 time", "p99 time")
	}
	for _, ep := range c.Endpoints() {
		s := c[ep]
		d := benchutil.Samples(s.Durations)
		p50, p99 := benchutil.FormatMs(d.P50()), benchutil.FormatMs(d.P99())
		if ep == syncEndpoint {
			p50, p99 = "(long poll)", ""
		}
		t.Row(ep, strconv.Itoa(s.Requests), fmt.Sprintf("%.2f", float64(s.Requests)/float64(answers)), strconv.Itoa(s.Errors), p50, p99)
	}
	total, errs := c.Total()
	t.Row("total", strconv.Itoa(total), fmt.Sprintf("%.2f", float64(total)/float64(answers)), strconv.Itoa(errs), "", "")
	return t
}

// benchNewDMs has n agents who never talked to guichet open an encrypted
// DM with it at the same moment, as Tchap does (is_direct), and each send
// one message as soon as its client shows guichet invited. They are not
// approved, so the answer is the notice on how to ask for access: what is
// measured is guichet's end-to-end encryption under a burst of new Olm
// sessions, each of which claims one of its one-time keys (Dendrite has no
// fallback keys).
func benchNewDMs(b *testing.B, bin string, params agentsParams, n int) agentsRun {
	aw := newAgentsWorld(b, bin, params, n, 0)
	run := agentsRun{name: fmt.Sprintf("%d new DMs", n), agents: n}
	agents := aw.newAgents("nouveau", n)
	_, _, _, idle := aw.hopPair(20)
	run.hop = idle
	ph := aw.begin()

	var gate sync.WaitGroup
	gate.Add(1)
	created := make([]time.Time, n)
	qs := make([]question, n)
	go func() { time.Sleep(100 * time.Millisecond); gate.Done() }()
	parallel(n, n, func(i int) {
		a := agents[i]
		gate.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), params.deadline)
		defer cancel()
		start := time.Now()
		dm, err := a.CreateDM(ctx, aw.bot)
		created[i] = time.Now()
		if err == nil {
			err = a.WaitMembership(ctx, dm, aw.bot, event.MembershipInvite, event.MembershipJoin)
		}
		if err != nil {
			qs[i] = question{agent: a, sent: start, errText: "no DM: " + err.Error()}
			return
		}
		qs[i] = aw.askOne(a, dm, "Bonjour, pouvez-vous m'aider à rédiger une note ?", "Support et retours")
	})
	time.Sleep(2 * time.Second)
	aw.end(ph)
	spread := slices.MaxFunc(created, time.Time.Compare).Sub(slices.MinFunc(created, time.Time.Compare))

	var reply, first benchutil.Samples
	undecryptable := 0
	others := map[string]int{}
	for _, q := range qs {
		run.asked++
		if !q.answered {
			run.lost++
			continue
		}
		if strings.Contains(q.errText, "pas pu déchiffrer") {
			undecryptable++
			run.lost++ // guichet never read the question
			continue
		} else if q.errText != "" {
			others[cut(q.errText, 80)]++
		}
		run.answered++
		reply, first = append(reply, q.final), append(first, q.first)
		run.dups += aw.duplicates(q)
	}
	run.reply, run.first = reply, first
	answers := max(run.answered, 1)
	run.cpuPerAnswer, _ = ph.cpuPerAnswer(run.answered)
	total, _ := ph.hs.Total()
	syncs := ph.hs[syncEndpoint].Requests
	run.reqPerAnswer = float64(total-syncs) / float64(answers)
	run.syncPerAnswer = float64(syncs) / float64(answers)
	run.mem = ph.mem
	run.note = fmt.Sprintf("%d undecryptable; DMs created within %s", undecryptable, spread.Round(time.Millisecond))

	t := benchutil.NewTable(fmt.Sprintf("%d agents open an encrypted DM with guichet at once and send one message (all DMs created within %s)", n, spread.Round(time.Millisecond)),
		"figure", "value", "", "vs one-hop p50 (idle)")
	t.Row("answered (the notice on how to ask for access)", strconv.Itoa(run.answered), "", "")
	t.Row("lost: no reply within "+params.deadline.String(), strconv.Itoa(run.lost-undecryptable), "", "")
	t.Row("lost: guichet could not decrypt (asked to send again)", strconv.Itoa(undecryptable), "", "")
	t.Row("duplicated", strconv.Itoa(run.dups), "", "")
	t.Row("reply latency p50 / p99", benchutil.FormatMs(reply.P50()), benchutil.FormatMs(reply.P99()), benchutil.Ratio(float64(reply.P50()), float64(idle.P50())))
	t.Row("one-hop p50 / p99, idle (baseline)", benchutil.FormatMs(idle.P50()), benchutil.FormatMs(idle.P99()), "×1.00")
	t.Row("guichet CPU per answer", benchutil.FormatMs(run.cpuPerAnswer), "", "")
	t.Row("guichet memory: VmRSS now / VmHWM (peak)", benchutil.FormatMB(ph.mem.RSS), benchutil.FormatMB(ph.mem.Peak), "")
	t.Row(ph.cores(), "", "", "")
	t.Row("guichet's one-time key uploads / claims by guichet", strconv.Itoa(ph.hs["POST /_matrix/client/v3/keys/upload"].Requests),
		strconv.Itoa(ph.hs["POST /_matrix/client/v3/keys/claim"].Requests), "")
	show(b, t)
	for what, k := range others {
		showf(b, "%d replies were not the expected notice: %q", k, what)
	}
	show(b, requestsTable(fmt.Sprintf("%d new DMs: guichet's homeserver requests, per reply", n), ph.hs, answers))
	aw.logSummary(b)
	b.ReportMetric(float64(run.lost), "lost")
	b.ReportMetric(float64(undecryptable), "undecryptable")
	b.ReportMetric(float64(run.dups), "dup")
	b.ReportMetric(benchutil.Ms(reply.P50()), "reply-p50-ms")
	b.ReportMetric(0, "ns/op")
	return run
}

// show prints figures on the standard output: the testing package keeps
// only the first 10 lines of a benchmark's log.
func show(tb testing.TB, v fmt.Stringer) { showf(tb, "%s", v) }

func showf(tb testing.TB, format string, args ...any) {
	text := strings.TrimLeft(fmt.Sprintf(format, args...), "\n")
	fmt.Printf("%s: %s\n", tb.Name(), strings.ReplaceAll(text, "\n", "\n    "))
}

func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// logSummary prints guichet's warnings and errors, grouped, and what the
// agents' clients logged at warn and above.
func (aw *agentsWorld) logSummary(b *testing.B) {
	f, err := os.Open(aw.guichet.logPath)
	if err != nil {
		b.Logf("no guichet log: %v", err)
		return
	}
	defer f.Close()
	counts := map[string]int{}
	levels := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e struct {
			Level   string `json:"level"`
			Message string `json:"message"`
			Error   string `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			counts["(not JSON) "+cut(sc.Text(), 100)]++
			continue
		}
		levels[e.Level]++
		if e.Level == "warn" || e.Level == "error" || e.Level == "fatal" || e.Level == "panic" {
			counts[e.Level+": "+e.Message+errSuffix(e.Error)]++
		}
	}
	showf(b, "guichet's log (%s): lines by level %v", aw.guichet.logPath, levels)
	printCounts(b, "guichet", counts)
	printCounts(b, "the agents' clients", aw.warns.snapshot())
	for _, p := range []struct {
		name  string
		proxy *hsproxy.Proxy
	}{{"homeserver", aw.hs}} {
		if ev := p.proxy.Events(); len(ev) > 0 {
			showf(b, "the %s proxy met %d errors (latest first):\n%s", p.name, len(ev), strings.Join(ev[max(0, len(ev)-10):], "\n"))
		}
	}
}

// ownTimes reads the last n "Answered question" lines of guichet's log: from
// a question's receipt to its answer queued for sending, less the time spent
// waiting for Albert.
func (aw *agentsWorld) ownTimes(b *testing.B, n int) benchutil.Samples {
	raw, err := os.ReadFile(aw.guichet.logPath)
	if err != nil {
		b.Fatalf("no guichet log: %v", err)
	}
	var all benchutil.Samples
	for line := range strings.Lines(string(raw)) {
		var e struct {
			Message string  `json:"message"`
			Own     float64 `json:"own_ms"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Message == "Answered question" {
			all = append(all, time.Duration(e.Own*float64(time.Millisecond)))
		}
	}
	if len(all) < n {
		b.Fatalf("guichet logged %d answered questions, want at least %d", len(all), n)
	}
	return all[len(all)-n:]
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " (" + cut(e, 140) + ")"
}

func printCounts(b *testing.B, who string, counts map[string]int) {
	if len(counts) == 0 {
		showf(b, "%s logged no warning or error", who)
		return
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y string) int { return counts[y] - counts[x] })
	var lines []string
	for _, k := range keys[:min(len(keys), 15)] {
		lines = append(lines, fmt.Sprintf("  %5d × %s", counts[k], k))
	}
	showf(b, "%s logged, at warn and above:\n%s", who, strings.Join(lines, "\n"))
}

// warnCounter is a zerolog writer that counts messages.
type warnCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *warnCounter) Write(p []byte) (int, error) {
	var e struct {
		Level   string `json:"level"`
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	_ = json.Unmarshal(p, &e)
	c.mu.Lock()
	c.counts[e.Level+": "+e.Message+errSuffix(e.Error)]++
	c.mu.Unlock()
	return len(p), nil
}

func (c *warnCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}
