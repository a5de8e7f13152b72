package e2e

// Benchmarks of guichet on a real Dendrite. They print figures and never
// assert wall-clock times. The machine is small and noisy, so every latency
// is shown next to a baseline measured in the same run: one-hop delivery,
// from a person's send call to another person's client holding the message.
//
// Each benchmark does its whole measurement once, whatever b.N is; run them
// with make bench (-benchtime 1x).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/id"

	"guichet/app"
	"guichet/approvals"
	"guichet/config"
	"guichet/internal/benchutil"
	"guichet/internal/dendrite"
	"guichet/internal/mxclient"
	"guichet/internal/testbed"
	"guichet/store"
)

const (
	hopSamples     = 50     // one-hop and answer samples
	benchAgents    = 100    // agents approved one at a time
	pendingRows    = 10_000 // waiting requests behind !pending
	pendingSamples = 20
	idleBeforeRSS  = 2 * time.Second
	benchTimeout   = 4 * time.Minute // one benchmark, set-up included
)

// benchWorld is the harness's world for benchmarks (world is bound to a
// *testing.T): a testbed and, once started, guichet in-process.
type benchWorld struct {
	b   *testing.B
	ctx context.Context
	dir string
	tb  *testbed.Testbed
	cfg *config.Config

	app     *app.App
	stop    context.CancelFunc
	done    chan error
	logPath string
	logFile *os.File
}

func newBenchWorld(b *testing.B) *benchWorld {
	b.Helper()
	skipUnlessE2E(b)
	dir := b.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	b.Cleanup(cancel)
	tb, err := testbed.Start(ctx, testbed.Options{Dir: dir})
	if err != nil {
		b.Fatalf("failed to start testbed: %v", err)
	}
	w := &benchWorld{b: b, ctx: ctx, dir: dir, tb: tb, cfg: tb.Config(filepath.Join(dir, "guichet.db")),
		logPath: filepath.Join(dir, "guichet.log")}
	b.Cleanup(func() {
		w.stopGuichet()
		tb.Close()
		if b.Failed() {
			logTail(b, "guichet", w.logPath)
		}
	})
	return w
}

// skipUnlessE2E is requireE2E for benchmarks.
func skipUnlessE2E(tb testing.TB) {
	tb.Helper()
	if os.Getenv("GUICHET_E2E") == "1" {
		return
	}
	bin, err := dendrite.BinDir()
	if err == nil {
		_, err = os.Stat(filepath.Join(bin, "dendrite"))
	}
	if err != nil {
		tb.Skip("no Dendrite binaries (run make bench, or set GUICHET_E2E=1 to build them)")
	}
}

// logTail shows the end of a log file after a failure.
func logTail(tb testing.TB, name, path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	tb.Logf("%s's log (last lines):\n%s", name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
}

// bind returns the same world reporting to a sub-benchmark.
func (w *benchWorld) bind(b *testing.B) *benchWorld {
	c := *w
	c.b = b
	return &c
}

func (w *benchWorld) startGuichet() {
	w.b.Helper()
	logFile, err := os.OpenFile(w.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		w.b.Fatal(err)
	}
	w.logFile = logFile
	level := zerolog.InfoLevel
	if os.Getenv("GUICHET_E2E_DEBUG") == "1" {
		level = zerolog.DebugLevel
	}
	logger := zerolog.New(logFile).With().Timestamp().Logger().Level(level)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, w.cfg, logger, app.Options{})
	if err != nil {
		cancel()
		w.b.Fatalf("failed to build guichet: %v", err)
	}
	w.app, w.stop, w.done = a, cancel, make(chan error, 1)
	go func() { w.done <- a.Run(ctx) }()
	select {
	case <-a.Bot.Ready():
	case err := <-w.done:
		w.stop = nil
		_ = logFile.Close()
		w.b.Fatalf("guichet stopped during start-up: %v", err)
	case <-time.After(wait):
		w.b.Fatal("guichet was not ready in time")
	}
}

func (w *benchWorld) stopGuichet() {
	if w.stop == nil {
		return
	}
	w.stop()
	select {
	case err := <-w.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			w.b.Errorf("guichet stopped with an error: %v", err)
		}
	case <-time.After(wait):
		w.b.Error("guichet did not stop in time")
	}
	w.stop = nil
	_ = w.logFile.Close()
}

func (w *benchWorld) person(localpart string) *mxclient.Person {
	w.b.Helper()
	p, err := w.tb.NewPerson(w.ctx, localpart)
	if err != nil {
		w.b.Fatalf("failed to create %s: %v", localpart, err)
	}
	return p
}

func (w *benchWorld) joinSupport(p *mxclient.Person) {
	w.b.Helper()
	if err := w.tb.JoinSupport(w.ctx, p); err != nil {
		w.b.Fatalf("%s could not join the support room: %v", p.UserID(), err)
	}
}

func (w *benchWorld) send(p *mxclient.Person, room id.RoomID, text string) id.EventID {
	w.b.Helper()
	evt, err := p.SendText(w.ctx, room, text)
	if err != nil {
		w.b.Fatalf("%s could not send %q: %v", p.UserID(), text, err)
	}
	return evt
}

// expect waits until p sees a message matching every condition.
func (w *benchWorld) expect(p *mxclient.Person, what string, conds ...cond) mxclient.Message {
	w.b.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, wait)
	defer cancel()
	m, err := p.WaitMessage(ctx, func(m mxclient.Message) bool {
		for _, c := range conds {
			if !c(m) {
				return false
			}
		}
		return true
	})
	if err != nil {
		w.b.Fatalf("%s never saw %s", p.UserID(), what)
	}
	return m
}

func isEvent(evt id.EventID) cond { return func(m mxclient.Message) bool { return m.EventID == evt } }

// roomWith has a create a room with other (an encrypted direct message, or a
// plain private room), waits until both are in, and sends one message that
// is not measured: the first one sets up the Olm and Megolm sessions.
func (w *benchWorld) roomWith(a, other *mxclient.Person, encrypted bool) id.RoomID {
	w.b.Helper()
	var room id.RoomID
	var err error
	if encrypted {
		room, err = a.CreateDM(w.ctx, other.UserID())
	} else {
		var resp *mautrix.RespCreateRoom
		resp, err = a.Client.CreateRoom(w.ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{other.UserID()}})
		if resp != nil {
			room = resp.RoomID
		}
	}
	if err != nil {
		w.b.Fatalf("failed to create a room: %v", err)
	}
	if err := other.WaitJoined(w.ctx, room); err != nil {
		w.b.Fatalf("%s did not join: %v", other.UserID(), err)
	}
	if err := a.WaitMember(w.ctx, room, other.UserID()); err != nil {
		w.b.Fatalf("%s did not see %s join: %v", a.UserID(), other.UserID(), err)
	}
	w.hop(a, other, room, "échauffement")
	return room
}

// hop times one message from sender's send call to receiver's client holding
// it (decrypted, in an encrypted room).
func (w *benchWorld) hop(sender, receiver *mxclient.Person, room id.RoomID, text string) time.Duration {
	w.b.Helper()
	start := time.Now()
	evt := w.send(sender, room, text)
	return w.expect(receiver, "the message "+evt.String(), isEvent(evt)).At.Sub(start)
}

// ask times a question from p in its DM to guichet's final answer in p's
// client. A slow answer starts as a placeholder that edits complete: then the
// last edit counts.
func (w *benchWorld) ask(p *mxclient.Person, dm id.RoomID, question string) time.Duration {
	w.b.Helper()
	bot := w.tb.Bot.UserID
	start := time.Now()
	q := w.send(p, dm, question)
	m := w.expect(p, "the answer", from(bot), in(dm), replyTo(q))
	for partial(m) {
		placeholder := m.EventID
		m = w.expect(p, "the completed answer", from(bot), func(m mxclient.Message) bool {
			return m.ReplaceOf == placeholder && !partial(m)
		})
	}
	return m.At.Sub(start)
}

func partial(m mxclient.Message) bool { return strings.HasSuffix(m.Body, "…") }

// approveAndConsent plays approveAndWelcome and !accepter; it returns p's DM.
func (w *benchWorld) approveAndConsent(p *mxclient.Person) id.RoomID {
	w.b.Helper()
	bot, room := w.tb.Bot.UserID, w.tb.SupportRoom
	w.announce(p)
	cmd := w.send(w.tb.Moderator, room, "!approve "+p.UserID().String())
	w.expect(w.tb.Moderator, "the approval confirmation", from(bot), in(room), replyTo(cmd))
	dm := w.expect(p, "the welcome", from(bot), notInRoom(room), contains("!accepter")).RoomID
	acc := w.send(p, dm, "!accepter")
	w.expect(p, "the consent confirmation", from(bot), in(dm), replyTo(acc), contains("Merci"))
	return dm
}

// announce has p join the support room and ask for access, and waits for the
// acknowledgement.
func (w *benchWorld) announce(p *mxclient.Person) {
	w.b.Helper()
	w.joinSupport(p)
	ask := w.send(p, w.tb.SupportRoom, "Bonjour, je souhaite accéder à l'Assistant IA")
	w.expect(p, "the acknowledgement", from(w.tb.Bot.UserID), in(w.tb.SupportRoom), replyTo(ask))
}

// reportLatency reports p50 and p99 as metrics, prefixed by name, and hides
// ns/op, which means nothing for a whole scenario run once.
func reportLatency(b *testing.B, name string, s benchutil.Samples) {
	b.ReportMetric(benchutil.Ms(s.P50()), name+"-p50-ms")
	b.ReportMetric(benchutil.Ms(s.P99()), name+"-p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkOneHopDelivery is the baseline: person A sends, person B's client
// has the message, in a plain room and in an encrypted one.
func BenchmarkOneHopDelivery(b *testing.B) {
	w := newBenchWorld(b)
	alice := w.person("alice.martin-interieur.gouv.fr")
	bob := w.person("bob.leroy-interieur.gouv.fr")
	for _, variant := range []struct {
		name      string
		encrypted bool
	}{{"unencrypted", false}, {"encrypted", true}} {
		b.Run(variant.name, func(b *testing.B) {
			w := w.bind(b)
			room := w.roomWith(alice, bob, variant.encrypted)
			var hops benchutil.Samples
			for i := range hopSamples {
				hops = append(hops, w.hop(alice, bob, room, fmt.Sprintf("message n° %d", i+1)))
			}
			reportLatency(b, "hop", hops)
			t := benchutil.NewTable(fmt.Sprintf("one-hop delivery, %s room, %d samples", variant.name, len(hops)), "p50", "p99")
			t.Row(benchutil.FormatMs(hops.P50()), benchutil.FormatMs(hops.P99()))
			b.Log(t)
		})
	}
}

// BenchmarkAnswerLatency times a question to guichet's answer with a fake
// Albert that answers at once, so that what remains is two deliveries and
// guichet's own work. The baseline is alice's one-hop to the moderator in an
// encrypted room, sampled between the questions.
func BenchmarkAnswerLatency(b *testing.B) {
	w := newBenchWorld(b)
	w.startGuichet()
	alice := w.person("alice.martin-interieur.gouv.fr")
	dm := w.approveAndConsent(alice)
	hopRoom := w.roomWith(alice, w.tb.Moderator, true)
	w.ask(alice, dm, "Première question, pour s'échauffer ?")

	var answers, hops benchutil.Samples
	for i := range hopSamples {
		answers = append(answers, w.ask(alice, dm, fmt.Sprintf("Question n° %d : comment rédiger une note de synthèse ?", i+1)))
		hops = append(hops, w.hop(alice, w.tb.Moderator, hopRoom, fmt.Sprintf("message n° %d", i+1)))
	}
	overhead := answers.P50() - 2*hops.P50()
	reportLatency(b, "answer", answers)
	b.ReportMetric(benchutil.Ms(hops.P50()), "hop-p50-ms")
	b.ReportMetric(benchutil.Ms(overhead), "overhead-ms")
	b.ReportMetric(float64(answers.P50())/float64(hops.P50()), "answer/hop")

	t := benchutil.NewTable(fmt.Sprintf("answer latency, encrypted DM, fake Albert without delay, %d questions", len(answers)), "figure", "value", "vs one-hop p50")
	t.Row("answer p50", benchutil.FormatMs(answers.P50()), benchutil.Ratio(float64(answers.P50()), float64(hops.P50())))
	t.Row("answer p99", benchutil.FormatMs(answers.P99()), benchutil.Ratio(float64(answers.P99()), float64(hops.P50())))
	t.Row("one-hop p50 (alice → moderator, encrypted)", benchutil.FormatMs(hops.P50()), "×1.00")
	t.Row("one-hop p99", benchutil.FormatMs(hops.P99()), benchutil.Ratio(float64(hops.P99()), float64(hops.P50())))
	t.Row("overhead = answer p50 - 2 × one-hop p50", benchutil.FormatMs(overhead), benchutil.Ratio(float64(overhead), float64(hops.P50())))
	b.Log(t)
}

// BenchmarkStartupAndIdleRSS runs the real binary, as operators do: time to
// "guichet is ready" and memory after 2 s idle, on a fresh database and
// again on the same one. Dendrite's own memory is the baseline.
func BenchmarkStartupAndIdleRSS(b *testing.B) {
	skipUnlessE2E(b)
	bin := buildGuichet(b)
	w := newBenchWorld(b)
	configPath := filepath.Join(w.dir, "config.yaml")
	writeConfigYAML(b, configPath, w.cfg)

	cold := runBinary(b, bin, configPath, filepath.Join(w.dir, "guichet-cold.log"))
	warm := runBinary(b, bin, configPath, filepath.Join(w.dir, "guichet-warm.log"))
	hsPID, err := benchutil.FindProcess(filepath.Join(w.dir, "dendrite", "dendrite.yaml"))
	if err != nil {
		b.Fatalf("failed to find Dendrite's process: %v", err)
	}
	hsRSS, err := benchutil.RSS(hsPID)
	if err != nil {
		b.Fatalf("failed to read Dendrite's memory: %v", err)
	}

	b.ReportMetric(benchutil.Ms(cold.wall), "cold-start-ms")
	b.ReportMetric(benchutil.Ms(warm.wall), "warm-start-ms")
	b.ReportMetric(float64(cold.rss)/(1<<20), "cold-idle-MB")
	b.ReportMetric(float64(warm.rss)/(1<<20), "warm-idle-MB")
	b.ReportMetric(float64(hsRSS)/(1<<20), "dendrite-MB")
	b.ReportMetric(0, "ns/op")

	t := benchutil.NewTable("guichet binary: start-up and memory after 2 s idle (CPU times in 10 ms ticks)",
		"run", "exec → ready", "logged startup", "CPU to ready", "CPU idle 2 s", "VmRSS idle", "vs Dendrite RSS")
	for _, r := range []struct {
		name string
		run  binaryRun
	}{{"cold (fresh database)", cold}, {"warm (same database)", warm}} {
		t.Row(r.name, benchutil.FormatMs(r.run.wall), benchutil.FormatMs(r.run.logged), r.run.cpuReady.String(),
			r.run.cpuIdle.String(), benchutil.FormatMB(r.run.rss), benchutil.Ratio(float64(r.run.rss), float64(hsRSS)))
	}
	t.Row("Dendrite (baseline)", "", "", "", "", benchutil.FormatMB(hsRSS), "×1.00")
	b.Log(t)
}

// buildGuichet builds cmd/guichet as make build does, into a temporary folder.
func buildGuichet(b *testing.B) string {
	b.Helper()
	root, err := benchutil.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "guichet")
	cmd := exec.Command("go", "build", "-tags", "goolm", "-o", bin, "./cmd/guichet")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build failed: %v\n%s", err, out)
	}
	return bin
}

// writeConfigYAML writes cfg with the keys of config.example.yaml, logging
// at info as in production.
func writeConfigYAML(b *testing.B, path string, cfg *config.Config) {
	b.Helper()
	c := *cfg
	c.Log = config.Log{Level: "info", Format: "json"}
	raw, err := yaml.Marshal(benchutil.TagMap(c))
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		b.Fatal(err)
	}
}

// binaryRun is what one run of the binary showed.
type binaryRun struct {
	wall     time.Duration // from exec to the "guichet is ready" line
	logged   time.Duration // the line's own startup field
	cpuReady time.Duration // CPU time used until ready
	cpuIdle  time.Duration // CPU time used while idle
	rss      int64         // VmRSS after idling
}

// runBinary starts guichet with configPath, waits until it is ready, lets it
// idle, measures it and stops it with SIGTERM.
func runBinary(b *testing.B, bin, configPath, logPath string) binaryRun {
	b.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "-config", configPath)
	cmd.Env = withoutGuichetEnv(os.Environ())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	ready := make(chan time.Duration, 1)
	scanned := make(chan struct{})
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(logFile, "%s\n", sc.Bytes())
			var entry struct {
				Message string  `json:"message"`
				Startup float64 `json:"startup"` // zerolog writes durations in ms
			}
			if json.Unmarshal(sc.Bytes(), &entry) == nil && entry.Message == "guichet is ready" {
				ready <- time.Duration(entry.Startup * float64(time.Millisecond))
			}
		}
	}()
	go func() {
		<-scanned // Wait closes the pipe: read it all first
		exited <- cmd.Wait()
	}()
	stop := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return errors.New("killed after 10 s")
		}
	}

	var run binaryRun
	select {
	case run.logged = <-ready:
		run.wall = time.Since(start)
	case err := <-exited:
		logTail(b, "guichet", logPath)
		b.Fatalf("guichet exited during start-up: %v", err)
	case <-time.After(wait):
		_ = stop()
		logTail(b, "guichet", logPath)
		b.Fatal("guichet was not ready in time")
	}
	pid := cmd.Process.Pid
	run.cpuReady, err = benchutil.CPUTime(pid)
	if err == nil {
		time.Sleep(idleBeforeRSS)
		var cpu time.Duration
		if cpu, err = benchutil.CPUTime(pid); err == nil {
			run.cpuIdle = cpu - run.cpuReady
			run.rss, err = benchutil.RSS(pid)
		}
	}
	if serr := stop(); serr != nil || err != nil {
		logTail(b, "guichet", logPath)
		b.Fatalf("measuring guichet failed: %v; stop: %v", err, serr)
	}
	return run
}

// withoutGuichetEnv drops GUICHET_* variables (GUICHET_E2E, a real Albert
// key…): the binary reads only the benchmark's config file.
func withoutGuichetEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "GUICHET_") {
			out = append(out, kv)
		}
	}
	return out
}

// BenchmarkApproveToWelcome has a moderator approve 100 agents who asked in
// the support room, one at a time, and times what each agent's client sees:
// the invitation to the DM, its own join, and the decrypted welcome; and the
// moderator's confirmation. The baseline is the moderator's one-hop to a
// member of the support room, sampled between approvals.
func BenchmarkApproveToWelcome(b *testing.B) {
	w := newBenchWorld(b)
	w.startGuichet()
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator

	observer := w.person("observateur-interieur.gouv.fr")
	w.joinSupport(observer)
	setup := time.Now()
	agents := make([]*mxclient.Person, benchAgents)
	for i := range agents {
		agents[i] = w.person(fmt.Sprintf("agent%03d.test-interieur.gouv.fr", i+1))
		w.announce(agents[i])
		// Leave once acknowledged: 100 idle clients in the room would make
		// every support-room event cost 100 syncs on the same 2 cores as
		// Dendrite and guichet, which production (clients elsewhere) does
		// not pay.
		if _, err := agents[i].Client.LeaveRoom(w.ctx, room); err != nil {
			b.Fatalf("%s could not leave the support room: %v", agents[i].UserID(), err)
		}
	}
	b.Logf("%d agents created and acknowledged in %s", len(agents), time.Since(setup).Round(time.Millisecond))

	var invited, joined, welcomed, confirmed, hops benchutil.Samples
	for i, agent := range agents {
		start := time.Now()
		cmd := w.send(mod, room, "!approve "+agent.UserID().String())
		dm, invitedAt, joinedAt, err := watchDM(w.ctx, agent)
		if err != nil {
			b.Fatalf("%s never saw its DM: %v", agent.UserID(), err)
		}
		welcome := w.expect(agent, "the welcome", from(bot), in(dm), contains("!accepter"))
		if !welcome.Encrypted {
			b.Fatalf("the welcome of %s was not encrypted", agent.UserID())
		}
		confirmation := w.expect(mod, "the approval confirmation", from(bot), in(room), replyTo(cmd))
		confirmed = append(confirmed, confirmation.At.Sub(start))
		invited = append(invited, invitedAt.Sub(start))
		joined = append(joined, joinedAt.Sub(start))
		welcomed = append(welcomed, welcome.At.Sub(start))
		hops = append(hops, w.hop(mod, observer, room, fmt.Sprintf("message n° %d", i+1)))
	}
	reportLatency(b, "welcome", welcomed)
	b.ReportMetric(benchutil.Ms(invited.P50()), "invite-p50-ms")
	b.ReportMetric(benchutil.Ms(hops.P50()), "hop-p50-ms")

	t := benchutil.NewTable(fmt.Sprintf("!approve → what the agent's client sees, %d agents approved one at a time", len(agents)),
		"from the moderator's send to", "p50", "p99", "p50 vs one-hop p50")
	for _, r := range []struct {
		name string
		s    benchutil.Samples
	}{
		{"the DM invitation seen", invited},
		{"the agent joined (auto-join)", joined},
		{"the welcome decrypted", welcomed},
		{"the confirmation, in the moderator's client", confirmed},
		{"one-hop, moderator → member, support room", hops},
	} {
		t.Row(r.name, benchutil.FormatMs(r.s.P50()), benchutil.FormatMs(r.s.P99()), benchutil.Ratio(float64(r.s.P50()), float64(hops.P50())))
	}
	b.Log(t)
}

// watchDM polls p's state store until p knows of an encrypted room it is
// invited to (agents have no other), then until p is in it, and returns when
// each happened, give or take the 2 ms polling period. mxclient records
// neither time.
func watchDM(ctx context.Context, p *mxclient.Person) (room id.RoomID, invited, joined time.Time, err error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	states, ok := p.Client.StateStore.(crypto.StateStore)
	if !ok {
		return "", invited, joined, errors.New("the client's state store cannot list rooms")
	}
	poll := time.NewTicker(2 * time.Millisecond)
	defer poll.Stop()
	for {
		if room == "" {
			rooms, err := states.FindSharedRooms(ctx, p.UserID())
			if err != nil && ctx.Err() == nil {
				return "", invited, joined, err
			}
			if len(rooms) > 0 {
				room, invited = rooms[0], time.Now()
			}
		}
		if room != "" && p.Client.StateStore.IsInRoom(ctx, room, p.UserID()) {
			return room, invited, time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return room, invited, joined, ctx.Err()
		case <-poll.C:
		}
	}
}

// BenchmarkPendingList times the moderator's !pending round trip with
// 10,000 waiting requests, next to the same command on an empty queue and
// the moderator's one-hop to a member of the support room.
func BenchmarkPendingList(b *testing.B) {
	w := newBenchWorld(b)
	w.startGuichet()
	mod, room := w.tb.Moderator, w.tb.SupportRoom
	observer := w.person("observateur-interieur.gouv.fr")
	w.joinSupport(observer)

	measure := func(want string) (rtts, hops benchutil.Samples) {
		w.pending(want) // warm-up
		for i := range pendingSamples {
			rtts = append(rtts, w.pending(want))
			hops = append(hops, w.hop(mod, observer, room, fmt.Sprintf("message n° %d", i+1)))
		}
		return rtts, hops
	}
	emptyRTT, emptyHops := measure("Aucune demande")
	insertPending(w.ctx, b, w.app.Store, pendingRows)
	fullRTT, fullHops := measure(fmt.Sprintf("%d demande(s)", pendingRows))
	hops := append(emptyHops, fullHops...)

	reportLatency(b, "pending", fullRTT)
	b.ReportMetric(benchutil.Ms(emptyRTT.P50()), "empty-p50-ms")
	b.ReportMetric(benchutil.Ms(hops.P50()), "hop-p50-ms")
	t := benchutil.NewTable(fmt.Sprintf("!pending round trip (moderator's send → reply in his client), %d samples each", pendingSamples),
		"", "p50", "p99", "p50 vs one-hop p50")
	for _, r := range []struct {
		name string
		s    benchutil.Samples
	}{
		{fmt.Sprintf("!pending, %d waiting", pendingRows), fullRTT},
		{"!pending, none waiting", emptyRTT},
		{"one-hop, moderator → member, support room", hops},
	} {
		t.Row(r.name, benchutil.FormatMs(r.s.P50()), benchutil.FormatMs(r.s.P99()), benchutil.Ratio(float64(r.s.P50()), float64(hops.P50())))
	}
	b.Log(t)
}

// pending times one !pending from the moderator's send to the reply, which
// must contain want.
func (w *benchWorld) pending(want string) time.Duration {
	w.b.Helper()
	start := time.Now()
	cmd := w.send(w.tb.Moderator, w.tb.SupportRoom, "!pending")
	m := w.expect(w.tb.Moderator, "the pending list", from(w.tb.Bot.UserID), replyTo(cmd))
	if !strings.Contains(m.Body, want) {
		w.b.Fatalf("pending list %q lacks %q", m.Body[:min(len(m.Body), 200)], want)
	}
	return m.At.Sub(start)
}

// insertPending stores n waiting requests from distinct agents, oldest
// first, in one transaction.
func insertPending(ctx context.Context, tb testing.TB, st *store.Store, n int) {
	tb.Helper()
	created := time.Now().Add(-time.Duration(n) * time.Second)
	err := st.InTx(ctx, func(ctx context.Context) error {
		for i := range n {
			at := created.Add(time.Duration(i) * time.Second)
			err := st.CreateRequest(ctx, &approvals.Request{
				UserID: id.UserID(fmt.Sprintf("@agent%05d.test-interieur.gouv.fr:localhost", i+1)),
				Status: approvals.StatusPending, RoomID: "!support:localhost", EventID: id.EventID(fmt.Sprintf("$demande%05d", i+1)),
				CreatedAt: at, UpdatedAt: at, LastSeenAt: at,
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("failed to insert %d requests: %v", n, err)
	}
}

// BenchmarkStorePendingRequests is the query behind !pending alone, with
// 10,000 waiting requests in SQLite.
func BenchmarkStorePendingRequests(b *testing.B) {
	ctx := context.Background()
	db, err := store.Open(filepath.Join(b.TempDir(), "guichet.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	st := store.New(db, zerolog.Nop())
	if err := st.Upgrade(ctx); err != nil {
		b.Fatal(err)
	}
	insertPending(ctx, b, st, pendingRows)
	list := func() {
		reqs, err := st.PendingRequests(ctx)
		if err != nil || len(reqs) != pendingRows {
			b.Fatalf("PendingRequests = %d rows, %v; want %d", len(reqs), err, pendingRows)
		}
	}
	list() // warm SQLite's page cache
	for b.Loop() {
		list()
	}
	b.ReportMetric(pendingRows, "rows")
}
