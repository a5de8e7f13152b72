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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"guichet/approvals"
	"guichet/config"
	"guichet/internal/benchutil"
	"guichet/internal/mxclient"
	"guichet/store"
)

const (
	hopSamples     = 50     // one-hop and answer samples
	benchAgents    = 100    // agents approved one at a time
	pendingRows    = 10_000 // waiting requests behind !pending
	pendingSamples = 20
	idleBeforeRSS  = 2 * time.Second
)

func isEvent(evt id.EventID) cond { return func(m mxclient.Message) bool { return m.EventID == evt } }

// roomWith has a create a room with other (an encrypted direct message, or a
// plain private room), waits until both are in, and sends one message that
// is not measured: the first one sets up the Olm and Megolm sessions.
func (w *world) roomWith(a, other *mxclient.Person, encrypted bool) id.RoomID {
	w.t.Helper()
	var room id.RoomID
	var err error
	if encrypted {
		room, err = a.CreateDM(w.ctx(), other.UserID())
	} else {
		var resp *mautrix.RespCreateRoom
		resp, err = a.Client.CreateRoom(w.ctx(), &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{other.UserID()}})
		if resp != nil {
			room = resp.RoomID
		}
	}
	if err != nil {
		w.t.Fatalf("failed to create a room: %v", err)
	}
	if err := other.WaitJoined(w.ctx(), room); err != nil {
		w.t.Fatalf("%s did not join: %v", other.UserID(), err)
	}
	if err := a.WaitMember(w.ctx(), room, other.UserID()); err != nil {
		w.t.Fatalf("%s did not see %s join: %v", a.UserID(), other.UserID(), err)
	}
	w.hop(a, other, room, "échauffement")
	return room
}

// hop times one message from sender's send call to receiver's client holding
// it (decrypted, in an encrypted room).
func (w *world) hop(sender, receiver *mxclient.Person, room id.RoomID, text string) time.Duration {
	w.t.Helper()
	start := time.Now()
	evt := w.send(sender, room, text)
	return w.expect(receiver, "the message "+evt.String(), isEvent(evt)).At.Sub(start)
}

// timedAsk times a question from p in its DM to guichet's final answer in
// p's client: the answer itself, or the last edit of its placeholder.
func timedAsk(tb testing.TB, w *world, p *mxclient.Person, dm id.RoomID, question string) time.Duration {
	tb.Helper()
	start := time.Now()
	return ask(tb, w, p, dm, question).At.Sub(start)
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
	w := newWorld(b)
	alice := w.person("alice.martin-interieur.gouv.fr")
	bob := w.person("bob.leroy-interieur.gouv.fr")
	for _, variant := range []struct {
		name      string
		encrypted bool
	}{{"unencrypted", false}, {"encrypted", true}} {
		b.Run(variant.name, func(b *testing.B) {
			w := w.as(b)
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
	w := newWorld(b)
	w.startGuichet()
	alice, dm := activeAgent(b, w)
	hopRoom := w.roomWith(alice, w.tb.Moderator, true)
	timedAsk(b, w, alice, dm, "Première question, pour s'échauffer ?")

	var answers, hops benchutil.Samples
	var statements int64
	events := 0
	for i := range hopSamples {
		before := w.app.Store.Statements()
		sent := time.Now()
		q := w.send(alice, dm, fmt.Sprintf("Question n° %d : comment rédiger une note de synthèse ?", i+1))
		answers = append(answers, finalReply(b, w, alice, q).At.Sub(sent))
		time.Sleep(50 * time.Millisecond) // the answer's transaction commits after its send
		statements += w.app.Store.Statements() - before
		events += roomEvents(alice, w.tb.Bot.UserID, q)
		hops = append(hops, w.hop(alice, w.tb.Moderator, hopRoom, fmt.Sprintf("message n° %d", i+1)))
	}
	overhead := answers.P50() - 2*hops.P50()
	reportLatency(b, "answer", answers)
	b.ReportMetric(benchutil.Ms(hops.P50()), "hop-p50-ms")
	b.ReportMetric(benchutil.Ms(overhead), "overhead-ms")
	b.ReportMetric(float64(answers.P50())/float64(hops.P50()), "answer/hop")
	perAnswer := float64(statements) / float64(len(answers))
	b.ReportMetric(perAnswer, "statements/answer")
	b.ReportMetric(float64(events)/float64(len(answers)), "events/answer")

	t := benchutil.NewTable(fmt.Sprintf("answer latency, encrypted DM, fake Albert without delay, %d questions", len(answers)), "figure", "value", "vs one-hop p50")
	t.Row("answer p50", benchutil.FormatMs(answers.P50()), benchutil.Ratio(float64(answers.P50()), float64(hops.P50())))
	t.Row("answer p99", benchutil.FormatMs(answers.P99()), benchutil.Ratio(float64(answers.P99()), float64(hops.P50())))
	t.Row("one-hop p50 (alice → moderator, encrypted)", benchutil.FormatMs(hops.P50()), "×1.00")
	t.Row("one-hop p99", benchutil.FormatMs(hops.P99()), benchutil.Ratio(float64(hops.P99()), float64(hops.P50())))
	t.Row("overhead = answer p50 - 2 × one-hop p50", benchutil.FormatMs(overhead), benchutil.Ratio(float64(overhead), float64(hops.P50())))
	t.Row("SQL statements per answer (guichet's and mautrix's)", fmt.Sprintf("%.1f", perAnswer), fmt.Sprintf("guard %d", maxStatementsPerAnswer))
	t.Row("room events per answer", fmt.Sprintf("%.2f", float64(events)/float64(len(answers))), "1 for an answer ready before albert.first_message_after")
	b.Log(t)
}

// BenchmarkStartupAndIdleRSS runs the real binary, as operators do: time to
// "guichet is ready" and memory after 2 s idle, on a fresh database and
// again on the same one. Dendrite's own memory is the baseline.
func BenchmarkStartupAndIdleRSS(b *testing.B) {
	requireE2E(b)
	bin := buildGuichet(b)
	w := newWorld(b)
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
	return buildCommand(b, "./cmd/guichet")
}

// buildCommand builds the main package pkg (relative to the module root)
// as make build does, into a temporary folder.
func buildCommand(b *testing.B, pkg string) string {
	b.Helper()
	root, err := benchutil.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-tags", "goolm", "-o", bin, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build failed: %v\n%s", err, out)
	}
	return bin
}

// writeConfigYAML writes cfg with the keys of config.example.yaml, logging
// at info as in production.
func writeConfigYAML(tb testing.TB, path string, cfg *config.Config) {
	tb.Helper()
	c := *cfg
	c.Log = config.Log{Level: "info", Format: "json"}
	raw, err := yaml.Marshal(benchutil.TagMap(c))
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		tb.Fatal(err)
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
	g := startBinary(b, bin, configPath, logPath)
	run := binaryRun{wall: g.wall, logged: g.logged}
	var err error
	run.cpuReady, err = benchutil.CPUTime(g.pid)
	if err == nil {
		time.Sleep(idleBeforeRSS)
		var cpu time.Duration
		if cpu, err = benchutil.CPUTime(g.pid); err == nil {
			run.cpuIdle = cpu - run.cpuReady
			run.rss, err = benchutil.RSS(g.pid)
		}
	}
	if serr := g.stop(); serr != nil || err != nil {
		logTail(b, "guichet", logPath)
		b.Fatalf("measuring guichet failed: %v; stop: %v", err, serr)
	}
	return run
}

// guichetProcess is the guichet binary running.
type guichetProcess struct {
	pid     int
	logPath string
	wall    time.Duration // from exec to the "guichet is ready" line
	logged  time.Duration // that line's own startup field

	cmd     *exec.Cmd
	exited  chan error
	ready   chan time.Duration // the "guichet is ready" line's startup field
	started time.Time
	once    sync.Once
	err     error
}

// startBinary starts guichet with configPath, its log (JSON lines, from
// stderr) copied to logPath, and returns once it is ready. It is stopped
// when tb ends, if not before.
func startBinary(tb testing.TB, bin, configPath, logPath string) *guichetProcess {
	tb.Helper()
	g := launchBinary(tb, bin, configPath, logPath)
	g.waitReady(tb, wait)
	return g
}

// waitReady returns once g logged "guichet is ready", failing tb if it
// exits or takes longer than d.
func (g *guichetProcess) waitReady(tb testing.TB, d time.Duration) {
	tb.Helper()
	select {
	case g.logged = <-g.ready:
		g.wall = time.Since(g.started)
	case err := <-g.exited:
		g.once.Do(func() { g.err = err })
		logTail(tb, "guichet", g.logPath)
		tb.Fatalf("guichet exited during start-up: %v", err)
	case <-time.After(d):
		logTail(tb, "guichet", g.logPath)
		tb.Fatal("guichet was not ready in time")
	}
}

// launchBinary starts guichet like startBinary, without waiting for it to
// be ready (a hot standby is not).
func launchBinary(tb testing.TB, bin, configPath, logPath string) *guichetProcess {
	tb.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	args := []string{"-config", configPath}
	if dir := os.Getenv("GUICHET_BENCH_CPUPROFILE"); dir != "" {
		name := filepath.Join(dir, strings.NewReplacer("/", "_", "=", "").Replace(tb.Name()))
		args = append(args, "-cpuprofile", name+".pprof", "-memprofile", name+".heap.pprof")
	}
	cmd := exec.Command(bin, args...)
	// Its own working directory, as a service has: relative paths of the
	// configuration (matrix.recovery_key_file) land there, not in the
	// source tree.
	cmd.Dir = filepath.Dir(configPath)
	cmd.Env = withoutGuichetEnv(os.Environ())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	ready := make(chan time.Duration, 1)
	scanned := make(chan struct{})
	start := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	g := &guichetProcess{pid: cmd.Process.Pid, logPath: logPath, cmd: cmd, exited: make(chan error, 1), ready: ready, started: start}
	go func() {
		defer close(scanned)
		defer logFile.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(logFile, "%s\n", sc.Bytes())
			var entry struct {
				Message string  `json:"message"`
				Startup float64 `json:"startup"` // zerolog writes durations in ms
			}
			if json.Unmarshal(sc.Bytes(), &entry) == nil && entry.Message == "guichet is ready" {
				select {
				case ready <- time.Duration(entry.Startup * float64(time.Millisecond)):
				default:
				}
			}
		}
	}()
	go func() {
		<-scanned // Wait closes the pipe: read it all first
		g.exited <- cmd.Wait()
	}()
	tb.Cleanup(func() {
		if err := g.stop(); err != nil {
			tb.Errorf("guichet did not stop cleanly: %v", err)
		}
	})
	return g
}

// stop sends SIGTERM and waits for the exit (killing after 10 s); it
// returns the same result however often it is called.
func (g *guichetProcess) stop() error {
	g.once.Do(func() {
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case g.err = <-g.exited:
		case <-time.After(10 * time.Second):
			_ = g.cmd.Process.Kill()
			<-g.exited
			g.err = errors.New("killed after 10 s")
		}
	})
	return g.err
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
	w := newWorld(b)
	w.startGuichet()
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator

	observer := w.person("observateur-interieur.gouv.fr")
	w.joinSupport(observer)
	setup := time.Now()
	agents := make([]*mxclient.Person, benchAgents)
	for i := range agents {
		agents[i] = w.person(fmt.Sprintf("agent%03d.test-interieur.gouv.fr", i+1))
		announce(b, w, agents[i], "Bonjour, je souhaite accéder à l'Assistant IA")
		// Leave once acknowledged: 100 idle clients in the room would make
		// every support-room event cost 100 syncs on the same 2 cores as
		// Dendrite and guichet, which production (clients elsewhere) does
		// not pay.
		if _, err := agents[i].Client.LeaveRoom(w.ctx(), room); err != nil {
			b.Fatalf("%s could not leave the support room: %v", agents[i].UserID(), err)
		}
	}
	b.Logf("%d agents created and acknowledged in %s", len(agents), time.Since(setup).Round(time.Millisecond))

	var invited, joined, welcomed, confirmed, hops benchutil.Samples
	for i, agent := range agents {
		start := time.Now()
		cmd := w.send(mod, room, "!approve "+agent.UserID().String())
		dm, invitedAt, joinedAt, err := dmJoined(w.ctx(), agent)
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

// dmJoined waits until p is invited to a room (agents have no other
// invitation than their DM) and has joined it, and returns when p's client
// saw each.
func dmJoined(ctx context.Context, p *mxclient.Person) (room id.RoomID, invited, joined time.Time, err error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if room, invited, err = p.WaitInvite(ctx, nil); err != nil {
		return room, invited, joined, err
	}
	if err = p.WaitJoined(ctx, room); err != nil {
		return room, invited, joined, err
	}
	joined, _ = p.JoinedAt(room)
	return room, invited, joined, nil
}

// BenchmarkPendingList times the moderator's !pending round trip with
// 10,000 waiting requests, next to the same command on an empty queue and
// the moderator's one-hop to a member of the support room.
func BenchmarkPendingList(b *testing.B) {
	w := newWorld(b)
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
	insertPending(w.ctx(), b, w.app.Store, pendingRows)
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
func (w *world) pending(want string) time.Duration {
	w.t.Helper()
	start := time.Now()
	cmd := w.send(w.tb.Moderator, w.tb.SupportRoom, "!pending")
	m := w.expect(w.tb.Moderator, "the pending list", from(w.tb.Bot.UserID), replyTo(cmd))
	if !strings.Contains(m.Body, want) {
		w.t.Fatalf("pending list %q lacks %q", m.Body[:min(len(m.Body), 200)], want)
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
