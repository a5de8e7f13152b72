package e2e

// BenchmarkDatabases: guichet's binary on SQLite and on PostgreSQL, side by
// side in one run, each on its own fresh Dendrite, with BenchmarkAgents'
// machinery (agents with end-to-end encryption in their DMs, a counting
// proxy in front of Dendrite, the fake Albert streaming an answer of about
// 1.5 s) and BenchmarkPendingList's !pending with 10,000 waiting requests.
// The database is set explicitly, whatever GUICHET_TEST_DATABASE says: a
// SQLite file in the run's folder, or a new database on the PostgreSQL
// server internal/pgtest starts (one server for the whole test binary, on
// the same machine, fsync off as for every test).
//
// On PostgreSQL part of the work moves out of guichet's process into the
// server's; its CPU time (the postmaster, its live backends and those it
// reaped, from /proc) is shown beside guichet's, so that the two databases
// compare on guichet + database. Latencies are shown next to the one-hop
// baselines measured in the same world.
//
// Knobs (environment), besides BenchmarkAgents' GUICHET_BENCH_ALBERT_*,
// GUICHET_BENCH_QUESTIONS (3 per agent), GUICHET_BENCH_DEADLINE and
// GUICHET_BENCH_LOGS:
//   GUICHET_BENCH_DB_AGENTS   agents in encrypted DMs (default 100)
//   GUICHET_BENCH_DB_ROUNDS   rounds of both databases (default 1); the
//                             order alternates: SQLite first in odd rounds

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"guichet/albert/fakealbert"
	"guichet/config"
	"guichet/internal/benchutil"
	"guichet/internal/hsproxy"
	"guichet/internal/pgtest"
	"guichet/store"
)

type benchDB struct{ name, dialect string }

var benchDBs = []benchDB{{"SQLite", store.DialectSQLite}, {"PostgreSQL", store.DialectPostgres}}

// dbFigures is what the runs on one database measured (summed over rounds).
type dbFigures struct {
	runs                        int
	asked, answered, lost, dups int
	wrong                       int // replies that were not the assistant's answer
	reply, first                benchutil.Samples
	hopIdle, hopLoad            benchutil.Samples
	elapsed                     time.Duration // of the question phases
	guichetCPU, guichetIdle     time.Duration // used, and what idling would have used over the same time
	serverCPU, serverIdle       time.Duration // the same for PostgreSQL's processes
	hsRequests, syncs           int
	rss, peak                   int64 // the largest of the rounds
	pendingFull, pendingEmpty   benchutil.Samples
	pendingHops, query          benchutil.Samples
	insert                      benchutil.Samples
}

func (f *dbFigures) add(g dbFigures) {
	f.runs += g.runs
	f.asked, f.answered, f.lost, f.dups, f.wrong = f.asked+g.asked, f.answered+g.answered, f.lost+g.lost, f.dups+g.dups, f.wrong+g.wrong
	f.reply, f.first = append(f.reply, g.reply...), append(f.first, g.first...)
	f.hopIdle, f.hopLoad = append(f.hopIdle, g.hopIdle...), append(f.hopLoad, g.hopLoad...)
	f.elapsed += g.elapsed
	f.guichetCPU, f.guichetIdle = f.guichetCPU+g.guichetCPU, f.guichetIdle+g.guichetIdle
	f.serverCPU, f.serverIdle = f.serverCPU+g.serverCPU, f.serverIdle+g.serverIdle
	f.hsRequests, f.syncs = f.hsRequests+g.hsRequests, f.syncs+g.syncs
	f.rss, f.peak = max(f.rss, g.rss), max(f.peak, g.peak)
	f.pendingFull, f.pendingEmpty = append(f.pendingFull, g.pendingFull...), append(f.pendingEmpty, g.pendingEmpty...)
	f.pendingHops, f.query = append(f.pendingHops, g.pendingHops...), append(f.query, g.query...)
	f.insert = append(f.insert, g.insert...)
}

func (f dbFigures) perAnswer(d time.Duration) time.Duration {
	return d / time.Duration(max(f.answered, 1))
}

// BenchmarkDatabases runs N agents (100) in encrypted DMs and !pending with
// 10,000 waiting requests on SQLite and on PostgreSQL; see the file comment.
func BenchmarkDatabases(b *testing.B) {
	requireE2E(b)
	if _, err := pgtest.BinDir(); err != nil {
		b.Fatal(err) // make test installs it (.ci/run): required
	}
	params := agentsParamsFromEnv(b)
	n := envInt(b, "GUICHET_BENCH_DB_AGENTS", 100)
	rounds := envInt(b, "GUICHET_BENCH_DB_ROUNDS", 1)
	if n < 1 || rounds < 1 {
		b.Fatal("GUICHET_BENCH_DB_AGENTS and GUICHET_BENCH_DB_ROUNDS must be at least 1")
	}
	bin := buildGuichet(b)
	figures := map[string]*dbFigures{}
	for _, db := range benchDBs {
		figures[db.name] = &dbFigures{}
	}
	var order []string
	for r := range rounds {
		dbs := benchDBs
		if r%2 == 1 {
			dbs = []benchDB{benchDBs[1], benchDBs[0]}
		}
		for _, db := range dbs {
			name := db.name
			if rounds > 1 {
				name = fmt.Sprintf("%s-round%d", db.name, r+1)
			}
			order = append(order, name)
			b.Run(name, func(b *testing.B) {
				figures[db.name].add(runDatabase(b, bin, params, n, db))
			})
		}
	}

	sq, pg := figures[benchDBs[0].name], figures[benchDBs[1].name]
	if sq.runs == 0 || pg.runs == 0 {
		return // a sub-benchmark failed: nothing to compare
	}
	t := benchutil.NewTable(fmt.Sprintf("guichet on SQLite and on PostgreSQL: %d agents in encrypted DMs, %d questions each, fake Albert %s per answer; !pending with %d waiting (runs: %s)",
		n, params.questions, benchutil.FormatMs(params.albertTime()), pendingRows, strings.Join(order, ", ")),
		"figure", "SQLite", "PostgreSQL", "PostgreSQL / SQLite")
	ms := func(name string, a, b time.Duration) {
		t.Row(name, benchutil.FormatMs(a), benchutil.FormatMs(b), benchutil.Ratio(float64(b), float64(a)))
	}
	text := func(name, a, b string) { t.Row(name, a, b, "") }
	text("answers complete / asked", fmt.Sprintf("%d / %d", sq.answered, sq.asked), fmt.Sprintf("%d / %d", pg.answered, pg.asked))
	text("answers lost / duplicated / not the assistant's", fmt.Sprintf("%d / %d / %d", sq.lost, sq.dups, sq.wrong), fmt.Sprintf("%d / %d / %d", pg.lost, pg.dups, pg.wrong))
	ms("guichet CPU per answer (utime+stime, 10 ms ticks)", sq.perAnswer(sq.guichetCPU), pg.perAnswer(pg.guichetCPU))
	ms("  the same less guichet's idle use", sq.perAnswer(max(sq.guichetCPU-sq.guichetIdle, 0)), pg.perAnswer(max(pg.guichetCPU-pg.guichetIdle, 0)))
	t.Row("PostgreSQL server's CPU per answer (its processes)", "- (in guichet)", benchutil.FormatMs(pg.perAnswer(pg.serverCPU)),
		fmt.Sprintf("server idle: %s over the phase", benchutil.FormatMs(pg.serverIdle)))
	ms("guichet + database server CPU per answer", sq.perAnswer(sq.guichetCPU), pg.perAnswer(pg.guichetCPU+pg.serverCPU))
	ms("reply latency p50 (send → complete answer seen)", sq.reply.P50(), pg.reply.P50())
	ms("reply latency p99", sq.reply.P99(), pg.reply.P99())
	ms("first visible p50 (placeholder or answer)", sq.first.P50(), pg.first.P50())
	ms("one-hop p50, encrypted room, idle (baseline)", sq.hopIdle.P50(), pg.hopIdle.P50())
	ms("one-hop p50 during the questions", sq.hopLoad.P50(), pg.hopLoad.P50())
	text("reply p50 / one-hop p50 idle", benchutil.Ratio(float64(sq.reply.P50()), float64(sq.hopIdle.P50())),
		benchutil.Ratio(float64(pg.reply.P50()), float64(pg.hopIdle.P50())))
	t.Row("homeserver requests per answer (+ /sync)",
		fmt.Sprintf("%.2f (+ %.2f)", float64(sq.hsRequests)/float64(max(sq.answered, 1)), float64(sq.syncs)/float64(max(sq.answered, 1))),
		fmt.Sprintf("%.2f (+ %.2f)", float64(pg.hsRequests)/float64(max(pg.answered, 1)), float64(pg.syncs)/float64(max(pg.answered, 1))), "")
	t.Row("guichet VmRSS after the questions", benchutil.FormatMB(sq.rss), benchutil.FormatMB(pg.rss), benchutil.Ratio(float64(pg.rss), float64(sq.rss)))
	t.Row("guichet VmHWM (peak)", benchutil.FormatMB(sq.peak), benchutil.FormatMB(pg.peak), benchutil.Ratio(float64(pg.peak), float64(sq.peak)))
	ms(fmt.Sprintf("!pending, %d waiting: p50 (send → reply seen)", pendingRows), sq.pendingFull.P50(), pg.pendingFull.P50())
	ms(fmt.Sprintf("!pending, %d waiting: p99", pendingRows), sq.pendingFull.P99(), pg.pendingFull.P99())
	ms("!pending, none waiting: p50", sq.pendingEmpty.P50(), pg.pendingEmpty.P50())
	ms("one-hop p50, moderator → member, support room (baseline)", sq.pendingHops.P50(), pg.pendingHops.P50())
	ms(fmt.Sprintf("the query alone (PendingRequests, %d rows, another process) p50", pendingRows), sq.query.P50(), pg.query.P50())
	ms(fmt.Sprintf("inserting %d requests, one transaction", pendingRows), sq.insert.P50(), pg.insert.P50())
	show(b, t)
}

// runDatabase is one world on one database: onboarding, questions, then
// !pending.
func runDatabase(b *testing.B, bin string, params agentsParams, n int, db benchDB) dbFigures {
	aw, dbCfg := newDBAgentsWorld(b, bin, params, n, db.dialect)
	f := dbFigures{runs: 1}
	setup := time.Now()
	agents := aw.newAgents("agent", n)
	started := time.Since(setup)
	dms, onboarding := aw.onboard(agents)
	showf(b, "set-up on %s: %d clients started in %s; %s", db.name, n, started.Round(time.Millisecond), onboarding)
	from, to, hopRoom, idle := aw.hopPair(20)
	f.hopIdle = idle
	server := serverCPU(b, dbCfg)

	// Questions, as runAgents does; the server's idle use is read over
	// the same window as guichet's.
	s0, at0 := server(), time.Now()
	ph := aw.begin()
	s1, at1 := server(), time.Now()
	load := aw.startHops(from, to, hopRoom, 500*time.Millisecond)
	var mu sync.Mutex
	var qs []question
	begin := time.Now()
	parallel(len(agents), len(agents), func(i int) {
		if dms[i] == "" {
			return
		}
		for k := range params.questions {
			q := aw.askOne(agents[i], dms[i], fmt.Sprintf("Question n° %d de l'agent %d : comment rédiger une note de synthèse ?", k+1, i+1), "Bonne journée")
			mu.Lock()
			qs = append(qs, q)
			mu.Unlock()
		}
	})
	elapsed := time.Since(begin)
	f.hopLoad = load.finish().samples
	time.Sleep(2 * time.Second) // late duplicates, typing off
	dbEnd(aw, ph)
	s2 := server()

	for _, q := range qs {
		f.asked++
		if !q.answered {
			f.lost++
			continue
		}
		f.answered++
		f.reply, f.first = append(f.reply, q.final), append(f.first, q.first)
		if q.errText != "" {
			f.wrong++
		}
		f.dups += aw.duplicates(q)
	}
	f.elapsed = ph.elapsed
	f.guichetCPU = ph.cpu1 - ph.cpu0
	f.guichetIdle = time.Duration(float64(ph.idleCPU) * float64(ph.elapsed) / float64(idleWindow))
	f.serverCPU = s2 - s1
	f.serverIdle = time.Duration(float64(s1-s0) * float64(ph.elapsed) / float64(at1.Sub(at0)))
	total, _ := ph.hs.Total()
	f.syncs = ph.hs[syncEndpoint].Requests
	f.hsRequests = total - f.syncs
	f.rss, f.peak = ph.mem.RSS, ph.mem.Peak

	t := benchutil.NewTable(fmt.Sprintf("%s: %d agents, %d questions each, %d asked in %s", db.name, n, params.questions, f.asked, elapsed.Round(time.Millisecond)),
		"figure", "p50", "p99", "p50 vs one-hop p50 (idle)")
	row := func(name string, s benchutil.Samples) {
		t.Row(name, benchutil.FormatMs(s.P50()), benchutil.FormatMs(s.P99()), benchutil.Ratio(float64(s.P50()), float64(idle.P50())))
	}
	row("reply latency (send → complete answer seen)", f.reply)
	row("first visible (send → placeholder or answer seen)", f.first)
	row("one-hop, encrypted room, idle (baseline)", f.hopIdle)
	row("one-hop during the questions", f.hopLoad)
	t.Row("guichet CPU per answer", benchutil.FormatMs(f.perAnswer(f.guichetCPU)), "",
		fmt.Sprintf("%s over %d answers in %s (idle: %s in %s)", benchutil.FormatMs(f.guichetCPU), f.answered, ph.elapsed.Round(time.Millisecond),
			benchutil.FormatMs(ph.idleCPU), idleWindow))
	if db.dialect == store.DialectPostgres {
		t.Row("PostgreSQL server CPU per answer", benchutil.FormatMs(f.perAnswer(f.serverCPU)), "",
			fmt.Sprintf("%s over the phase (idle: %s in %s)", benchutil.FormatMs(f.serverCPU), benchutil.FormatMs(s1-s0), at1.Sub(at0).Round(time.Millisecond)))
	}
	t.Row(ph.cores(), "", "", "")
	t.Row("answers: complete / lost / duplicated / not the assistant's", strconv.Itoa(f.answered), strconv.Itoa(f.lost),
		fmt.Sprintf("%d / %d", f.dups, f.wrong))
	show(b, t)

	// !pending, as BenchmarkPendingList does, the requests inserted from
	// this process into the running guichet's database.
	aw.joinSupport(to)
	mod, room := aw.tb.Moderator, aw.tb.SupportRoom
	measure := func(want string) (rtts, hops benchutil.Samples) {
		aw.pending(want) // warm-up
		for i := range pendingSamples {
			rtts = append(rtts, aw.pending(want))
			hops = append(hops, aw.hop(mod, to, room, fmt.Sprintf("message n° %d", i+1)))
		}
		return rtts, hops
	}
	emptyRTT, emptyHops := measure("Aucune demande")
	ctx := context.Background()
	sdb, err := store.OpenDatabase(dbCfg.Type, dbCfg.URI, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer sdb.Close()
	st := store.New(sdb, zerolog.Nop())
	start := time.Now()
	insertPending(ctx, b, st, pendingRows)
	f.insert = benchutil.Samples{time.Since(start)}
	fullRTT, fullHops := measure(fmt.Sprintf("%d demande(s)", pendingRows))
	f.pendingEmpty, f.pendingFull, f.pendingHops = emptyRTT, fullRTT, append(emptyHops, fullHops...)
	list := func() time.Duration {
		start := time.Now()
		reqs, err := st.PendingRequests(ctx)
		if err != nil || len(reqs) != pendingRows {
			b.Fatalf("PendingRequests = %d rows, %v; want %d", len(reqs), err, pendingRows)
		}
		return time.Since(start)
	}
	list() // warm-up
	for range pendingSamples {
		f.query = append(f.query, list())
	}
	aw.logSummary(b)

	b.ReportMetric(benchutil.Ms(f.reply.P50()), "reply-p50-ms")
	b.ReportMetric(benchutil.Ms(f.reply.P99()), "reply-p99-ms")
	b.ReportMetric(benchutil.Ms(f.hopIdle.P50()), "hop-p50-ms")
	b.ReportMetric(benchutil.Ms(f.perAnswer(f.guichetCPU)), "cpu-ms/answer")
	b.ReportMetric(benchutil.Ms(f.perAnswer(f.serverCPU)), "db-cpu-ms/answer")
	b.ReportMetric(benchutil.Ms(f.pendingFull.P50()), "pending-p50-ms")
	b.ReportMetric(benchutil.Ms(f.query.P50()), "query-p50-ms")
	b.ReportMetric(float64(f.rss)/(1<<20), "rss-MB")
	b.ReportMetric(float64(f.lost), "lost")
	b.ReportMetric(float64(f.dups), "dup")
	b.ReportMetric(0, "ns/op")
	return f
}

// newDBAgentsWorld is newAgentsWorld with the database chosen here: a
// SQLite file in the world's folder, or a new database on the shared
// PostgreSQL server.
func newDBAgentsWorld(b *testing.B, bin string, params agentsParams, n int, dialect string) (*agentsWorld, config.Database) {
	b.Helper()
	w := newWorld(b)
	switch dialect {
	case store.DialectSQLite:
		w.cfg.Database = config.Database{Type: store.DialectSQLite, URI: filepath.Join(w.dir, "guichet.db")}
	case store.DialectPostgres:
		srv, err := pgtest.Shared()
		if err != nil {
			b.Fatalf("PostgreSQL for the benchmark: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		uri, err := srv.NewDatabase(ctx)
		if err != nil {
			b.Fatal(err)
		}
		w.cfg.Database = config.Database{Type: store.DialectPostgres, URI: uri}
	default:
		b.Fatalf("unknown database %q", dialect)
	}
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
	return aw, cfg.Database
}

// dbEnd is agentsWorld.end without the usage ledger, which end reads from
// a SQLite file.
func dbEnd(aw *agentsWorld, p *phase) {
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
}

// serverCPU returns a function reading the CPU time the database's server
// has used so far: on PostgreSQL the postmaster's (with the backends it
// reaped) and its live processes'; nothing for SQLite, which works in
// guichet's process.
func serverCPU(tb testing.TB, db config.Database) func() time.Duration {
	tb.Helper()
	if db.Type != store.DialectPostgres {
		return func() time.Duration { return 0 }
	}
	srv, err := pgtest.Shared()
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(srv.Dir, "data", "postmaster.pid"))
	if err != nil {
		tb.Fatalf("cannot find PostgreSQL's process: %v", err)
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		tb.Fatalf("postmaster.pid starts with %q", first)
	}
	return func() time.Duration {
		total, err := processTreeCPU(pm)
		if err != nil {
			tb.Fatalf("cannot read PostgreSQL's CPU time: %v", err)
		}
		return total
	}
}

// processTreeCPU is pid's utime+stime+cutime+cstime plus the utime+stime of
// its live children.
func processTreeCPU(pid int) (time.Duration, error) {
	own, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	ticks := own.utime + own.stime + own.cutime + own.cstime
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		s, err := procStat(child)
		if err != nil || s.ppid != int64(pid) {
			continue // gone, or not a child
		}
		ticks += s.utime + s.stime
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil // USER_HZ = 100
}

type procTimes struct{ ppid, utime, stime, cutime, cstime int64 }

func procStat(pid int) (procTimes, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procTimes{}, err
	}
	// Fields start after the command name, in parentheses.
	end := strings.LastIndexByte(string(raw), ')')
	if end < 0 {
		return procTimes{}, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(raw[end+1:]))
	if len(fields) < 15 {
		return procTimes{}, fmt.Errorf("short /proc/%d/stat", pid)
	}
	// fields[0] is field 3 (state): ppid is field 4, utime to cstime 14 to 17.
	var v [5]int64
	for i, k := range []int{1, 11, 12, 13, 14} {
		if v[i], err = strconv.ParseInt(fields[k], 10, 64); err != nil {
			return procTimes{}, err
		}
	}
	return procTimes{ppid: v[0], utime: v[1], stime: v[2], cutime: v[3], cstime: v[4]}, nil
}
