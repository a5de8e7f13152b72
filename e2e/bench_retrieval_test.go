package e2e

// BenchmarkRetrieval: what searching Albert's collections before each
// question costs one agent (N=1), in latency and in guichet's CPU.
//
// guichet runs as the real binary, as in BenchmarkAgents, so that its CPU
// time, read from /proc, is its own: not Dendrite's, not the clients', not
// the fake Albert's (all three run elsewhere: Dendrite in its process, the
// rest in this one). retrieval.collections is configured; one agent
// (mautrix-go, encrypted DM) asks questions one after another, each hitting
// the fake's library, half of them with her collections in use (the
// default) and half after "!collections aucune", which takes exactly the
// path of a guichet without collections (Prompt skips the search when none
// is in use). The two are interleaved in blocks, A B B A A B …, so that a
// drift (a growing conversation, a warming Dendrite) falls on both alike;
// the switch between them is outside the measured windows. The fake Albert
// answers both with texts of the same number of pieces, so that the chat
// stream lasts the same; with excerpts it cites [1] and [2].
//
// Latencies are from the agent's send call to what her client holds:
// guichet's first message (its placeholder, or the answer), the first
// words of the answer, and the final answer; next to the one-hop delivery
// between two people on the same Dendrite (alice → the moderator, in an
// encrypted room like the DM and in an unencrypted one), sampled between
// the blocks.
//
// guichet's CPU per answer is utime+stime of its process (all threads:
// Matrix sync, Olm/Megolm, SQLite, HTTP to Albert and Dendrite, Markdown,
// GC) from just before a block's first question to retrievalSettle after
// its last answer was seen, so that the tail of the last answer (its
// outbox row, typing off, its own events coming back by sync) is in; over
// the answers of the block. It is read as BenchmarkAgents reads it
// (benchutil.CPUTime: /proc/<pid>/stat, 10 ms ticks), and again from each
// thread's /proc/<pid>/task/<tid>/schedstat (ns), finer for a difference of
// a few milliseconds. Nothing is subtracted: the idle use over the same
// time, measured beforehand, is shown beside it.
//
// Knobs (environment):
//   GUICHET_BENCH_RETRIEVAL_QUESTIONS  questions each way (24; rounded up to whole blocks)
//   GUICHET_BENCH_SEARCH_LATENCY       fake Albert's search latency (50ms)

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/albert/fakealbert"
	"guichet/internal/benchutil"
	"guichet/internal/mxclient"
	"guichet/store"
)

const (
	retrievalChatLatency = 500 * time.Millisecond // fake Albert's delay to the first token
	retrievalStream      = 2 * time.Second        // its first to last token: longer than the edit interval, so words show before the end
	retrievalBlock       = 4                      // questions in a row with the same setting
	retrievalHops        = 3                      // one-hop samples per room after each block
	retrievalSettle      = time.Second            // after a block's last answer, before reading guichet's CPU
)

// retrievalQuestions hit the fake's library (DefaultLibrary). Each has at
// least 12 words, so that it is searched alone and not as a follow-up of
// the question before it.
var retrievalQuestions = []string{
	"Combien de semaines dure le congé de maternité d'une fonctionnaire pour un premier enfant ?",
	"Combien de jours de télétravail par semaine un agent public à temps plein peut-il demander ?",
	"Quel est le montant de l'allocation forfaitaire de télétravail versée aux agents publics chaque année ?",
	"Combien de jours de congé annuel a un agent contractuel de la fonction publique à temps plein ?",
	"Quel est le délai de rétractation après la signature d'une rupture conventionnelle du contrat de travail ?",
	"Que dit l'article L1225-17 du code du travail sur la durée du congé de maternité ?",
}

// retrievalAnswer is what the fake says; the slot holds three words either
// way ("[1] et [2]," with excerpts), so that both streams have the same
// pieces and last the same.
const retrievalAnswer = "D'après %s voici les **éléments** utiles pour répondre à votre question.\n\n" +
	"- Premier point : la durée ou le montant figure dans le texte de référence.\n" +
	"- Second point : vérifiez *toujours* votre situation auprès de votre service des ressources humaines.\n\n" +
	"Bonne journée !"

var (
	retrievalCited = fmt.Sprintf(retrievalAnswer, "[1] et [2],")
	retrievalPlain = fmt.Sprintf(retrievalAnswer, "mes connaissances générales,")
)

const retrievalMarker = "Bonne journée !" // ends the assistant's answer, before any Sources

// retrievalVariant is one setting's measurements.
type retrievalVariant struct {
	name                string
	first, text, final  benchutil.Samples
	own                 benchutil.Samples // guichet's log: receipt → answer queued, less the chat call
	cpu, window, settle time.Duration     // guichet's CPU over the measured windows, their length, the settle part
	schedCPU            time.Duration     // the same CPU from its threads' schedstat, in ns
	lostThreads         int               // threads that ended within a window: their schedstat time is missing
	answers             int
	chat, search, docs  int // fake Albert calls over the windows
	excerpts            int // chat calls whose prompt held numbered excerpts
	events              []id.EventID
}

// BenchmarkRetrieval: see the file comment.
func BenchmarkRetrieval(b *testing.B) {
	requireE2E(b)
	perVariant := envInt(b, "GUICHET_BENCH_RETRIEVAL_QUESTIONS", 24)
	searchLatency := envDuration(b, "GUICHET_BENCH_SEARCH_LATENCY", 50*time.Millisecond)
	if perVariant < 1 {
		b.Fatal("GUICHET_BENCH_RETRIEVAL_QUESTIONS must be at least 1")
	}
	if a, c := len(strings.Fields(retrievalCited)), len(strings.Fields(retrievalPlain)); a != c {
		b.Fatalf("the two answers have %d and %d words: their streams would not last the same", a, c)
	}
	pieces := len(strings.Fields(retrievalCited)) // fakealbert streams one piece per word
	tokenDelay := retrievalStream / time.Duration(pieces)
	rounds := (perVariant + retrievalBlock - 1) / retrievalBlock
	bin := buildGuichet(b)

	w := newWorld(b)
	fa := w.tb.Albert
	var withExcerpts atomic.Int64
	fa.SetReply(func(req fakealbert.Request) string {
		if strings.Contains(req.LastUserMessage(), "[1] «") {
			withExcerpts.Add(1)
			return retrievalCited
		}
		return retrievalPlain
	})
	fa.SetLatency(retrievalChatLatency)
	fa.SetTokenDelay(tokenDelay)
	fa.SetSearchLatency(searchLatency)

	cfg := *w.cfg
	cfg.Retrieval.Collections = []int{150281, 150277, 139226}
	cfg.Limits.PerUser.MessagesPerMinute = 1000
	cfg.Limits.PerUser.Burst = 1000
	cfg.Limits.PerUser.MessagesPerDay = 100_000
	cfg.Limits.PerUser.TokensPerDay = 100_000_000
	cfg.Limits.Global.RequestsPerMinute = 0
	cfg.Limits.Global.TokensPerMinute = 0
	configPath := filepath.Join(w.dir, "config.yaml")
	writeConfigYAML(b, configPath, &cfg)
	g := startBinary(b, bin, configPath, filepath.Join(w.dir, "guichet.log"))
	bot := w.tb.Bot.UserID

	alice, dm := activeAgent(b, w)
	mod := w.tb.Moderator
	encRoom := w.roomWith(alice, mod, true)
	plainRoom := w.roomWith(alice, mod, false)

	// Warm-up, not measured: each question once with the collections (the
	// documents' names are then in guichet's cache, as in a service that
	// has run for a while), and one without.
	inUse := true
	setCollections := func(on bool) {
		b.Helper()
		if on == inUse {
			return
		}
		arg := "aucune"
		if on {
			arg = "tout"
		}
		evt := w.send(alice, dm, "!collections "+arg)
		w.expect(alice, "the answer to !collections "+arg, from(bot), in(dm), replyTo(evt))
		inUse = on
	}
	for _, q := range retrievalQuestions {
		if s := askRetrieval(b, alice, dm, bot, q); !strings.Contains(s.body, "Sources") {
			b.Fatalf("warm-up: the answer to %q has no sources:\n%s", q, s.body)
		}
	}
	setCollections(false)
	askRetrieval(b, alice, dm, bot, retrievalQuestions[0])

	idle0, idleSched0 := cpuOf(b, g.pid), threadTimes(b, g.pid)
	time.Sleep(idleWindow)
	idleCPU := cpuOf(b, g.pid) - idle0
	idleSched, _ := threadTimesSince(idleSched0, threadTimes(b, g.pid))
	since := time.Now()

	off := &retrievalVariant{name: "without retrieval"}
	on := &retrievalVariant{name: fmt.Sprintf("with retrieval (search %s)", searchLatency)}
	var encHops, plainHops benchutil.Samples
	block := 0
	runBlock := func(v *retrievalVariant, useCollections bool, round int) {
		b.Helper()
		setCollections(useCollections)
		chat0, search0, docs0, excerpts0 := fa.Calls(), fa.SearchCalls(), fa.DocumentRequests(), withExcerpts.Load()
		start := time.Now()
		cpu0, sched0 := cpuOf(b, g.pid), threadTimes(b, g.pid)
		for k := range retrievalBlock {
			q := retrievalQuestions[(round*retrievalBlock+k)%len(retrievalQuestions)]
			s := askRetrieval(b, alice, dm, bot, q)
			if !strings.Contains(s.body, retrievalMarker) {
				b.Fatalf("%s: the reply to %q is not the assistant's answer:\n%s", v.name, q, s.body)
			}
			if has := strings.Contains(s.body, "Sources"); has != useCollections {
				b.Fatalf("%s: the answer to %q has sources: %v, want %v:\n%s", v.name, q, has, useCollections, s.body)
			}
			v.first, v.text, v.final = append(v.first, s.first), append(v.text, s.text), append(v.final, s.final)
			v.events = append(v.events, s.event)
		}
		settled := time.Now()
		time.Sleep(retrievalSettle)
		v.cpu += cpuOf(b, g.pid) - cpu0
		schedUsed, lost := threadTimesSince(sched0, threadTimes(b, g.pid))
		v.schedCPU, v.lostThreads = v.schedCPU+schedUsed, v.lostThreads+lost
		v.window += time.Since(start)
		v.settle += time.Since(settled)
		v.answers += retrievalBlock
		chat, search := fa.Calls()-chat0, fa.SearchCalls()-search0
		excerpts := int(withExcerpts.Load() - excerpts0)
		v.chat, v.search, v.docs, v.excerpts = v.chat+chat, v.search+search, v.docs+fa.DocumentRequests()-docs0, v.excerpts+excerpts
		wantSearch := 0
		if useCollections {
			wantSearch = retrievalBlock
		}
		if chat != retrievalBlock || search != wantSearch || excerpts != wantSearch {
			b.Fatalf("%s, block %d: %d chat calls, %d searches, %d prompts with excerpts; want %d, %d, %d",
				v.name, block+1, chat, search, excerpts, retrievalBlock, wantSearch, wantSearch)
		}
		block++
		for i := range retrievalHops {
			encHops = append(encHops, w.hop(alice, mod, encRoom, fmt.Sprintf("bloc %d, message n° %d", block, i+1)))
			plainHops = append(plainHops, w.hop(alice, mod, plainRoom, fmt.Sprintf("bloc %d, message n° %d", block, i+1)))
		}
	}
	for r := range rounds {
		// A B B A …: each setting comes first in every other round.
		if r%2 == 0 {
			runBlock(off, false, r)
			runBlock(on, true, r)
		} else {
			runBlock(on, true, r)
			runBlock(off, false, r)
		}
	}
	retrievalOwnTimes(b, g.logPath, off, on)
	searchLedger := ledgerLatencies(b, cfg.Database.URI, store.EndpointSearch, since)

	hop := encHops.P50()
	t := benchutil.NewTable(fmt.Sprintf("retrieval at N=1: %d questions each way, one after another, in blocks of %d (A B B A …); "+
		"fake Albert: search %s, chat %s to the first token + %d pieces × %s; edit interval %s",
		off.answers, retrievalBlock, searchLatency, retrievalChatLatency, pieces, tokenDelay.Round(100*time.Microsecond), cfg.Albert.EditInterval),
		"from alice's send to", "without p50", "without p99", "with p50", "with p99", "with − without (p50)", "with p50 vs one-hop p50")
	row := func(name string, a, c benchutil.Samples) {
		t.Row(name, benchutil.FormatMs(a.P50()), benchutil.FormatMs(a.P99()), benchutil.FormatMs(c.P50()), benchutil.FormatMs(c.P99()),
			benchutil.FormatMs(c.P50()-a.P50()), benchutil.Ratio(float64(c.P50()), float64(hop)))
	}
	row("guichet's first message (placeholder or answer)", off.first, on.first)
	row("first words of the answer", off.text, on.text)
	row("final answer (with its Sources when retrieving)", off.final, on.final)
	if len(off.own) > 0 && len(on.own) > 0 {
		row("  guichet's own work (its log: receipt → answer queued, less the chat call; search in)", off.own, on.own)
	}
	if len(searchLedger) > 0 {
		t.Row("  the search as timed by guichet (usage ledger)", "", "", benchutil.FormatMs(searchLedger.P50()), benchutil.FormatMs(searchLedger.P99()), "", "")
	}
	t.Row("one-hop alice → moderator, encrypted room (floor)", benchutil.FormatMs(encHops.P50()), benchutil.FormatMs(encHops.P99()), "", "", "", "×1.00")
	t.Row("one-hop alice → moderator, unencrypted room", benchutil.FormatMs(plainHops.P50()), benchutil.FormatMs(plainHops.P99()), "", "", "",
		benchutil.Ratio(float64(plainHops.P50()), float64(hop)))
	show(b, t)
	showf(b, "the first words wait for the first edit, %s after the placeholder, unless the answer is complete before", cfg.Albert.EditInterval)

	perAnswer := func(v *retrievalVariant) time.Duration { return v.cpu / time.Duration(max(v.answers, 1)) }
	idleOver := func(d time.Duration) time.Duration {
		return time.Duration(float64(idleSched) * float64(d) / float64(idleWindow))
	}
	c := benchutil.NewTable("guichet's CPU (its process: utime+stime in 10 ms ticks, all threads), per answer; nothing subtracted",
		"", "without", "with", "with − without")
	c.Row("CPU per answer", benchutil.FormatMs(perAnswer(off)), benchutil.FormatMs(perAnswer(on)), benchutil.FormatMs(perAnswer(on)-perAnswer(off)))
	schedPerAnswer := func(v *retrievalVariant) time.Duration { return v.schedCPU / time.Duration(max(v.answers, 1)) }
	c.Row(fmt.Sprintf("  the same from its threads' schedstat, ns (%d threads ended within a window)", off.lostThreads+on.lostThreads),
		benchutil.FormatMs(schedPerAnswer(off)), benchutil.FormatMs(schedPerAnswer(on)), benchutil.FormatMs(schedPerAnswer(on)-schedPerAnswer(off)))
	c.Row("CPU over the windows / answers", fmt.Sprintf("%s / %d", benchutil.FormatMs(off.cpu), off.answers),
		fmt.Sprintf("%s / %d", benchutil.FormatMs(on.cpu), on.answers), "")
	c.Row("window per answer (questions + "+retrievalSettle.String()+" settle per block)", benchutil.FormatMs(off.window/time.Duration(off.answers)),
		benchutil.FormatMs(on.window/time.Duration(on.answers)), "")
	c.Row(fmt.Sprintf("  idle use over that time (idle: %s in ticks, %s by schedstat, in %s), not subtracted",
		benchutil.FormatMs(idleCPU), benchutil.FormatMs(idleSched), idleWindow),
		benchutil.FormatMs(idleOver(off.window)/time.Duration(off.answers)), benchutil.FormatMs(idleOver(on.window)/time.Duration(on.answers)), "")
	c.Row("fake Albert calls per answer: chat / search / document names", albertPerAnswer(off), albertPerAnswer(on), "")
	c.Row("chat prompts with numbered excerpts", strconv.Itoa(off.excerpts), strconv.Itoa(on.excerpts), "")
	show(b, c)

	for _, v := range []struct {
		name string
		v    *retrievalVariant
	}{{"retrieval=off", off}, {"retrieval=on", on}} {
		b.Run(v.name, func(b *testing.B) {
			b.ReportMetric(benchutil.Ms(v.v.first.P50()), "ms-first-p50")
			b.ReportMetric(benchutil.Ms(v.v.text.P50()), "ms-text-p50")
			b.ReportMetric(benchutil.Ms(v.v.final.P50()), "ms-final-p50")
			b.ReportMetric(benchutil.Ms(v.v.final.P99()), "ms-final-p99")
			b.ReportMetric(benchutil.Ms(perAnswer(v.v)), "cpu-ms/answer")
			b.ReportMetric(benchutil.Ms(schedPerAnswer(v.v)), "schedstat-cpu-ms/answer")
			b.ReportMetric(benchutil.Ms(hop), "ms-hop-p50")
			if v.v == on {
				b.ReportMetric(benchutil.Ms(searchLatency), "ms-search")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

func albertPerAnswer(v *retrievalVariant) string {
	n := float64(max(v.answers, 1))
	return fmt.Sprintf("%.2f / %.2f / %.2f", float64(v.chat)/n, float64(v.search)/n, float64(v.docs)/n)
}

func cpuOf(b *testing.B, pid int) time.Duration {
	b.Helper()
	d, err := benchutil.CPUTime(pid)
	if err != nil {
		b.Fatalf("failed to read guichet's CPU time: %v", err)
	}
	return d
}

// threadTimes reads the CPU time of each of process pid's threads from
// /proc/<pid>/task/<tid>/schedstat (its first field: time on a CPU, in ns),
// finer than /proc/<pid>/stat's 10 ms ticks; a thread that ends takes its
// time with it.
func threadTimes(b *testing.B, pid int) map[string]time.Duration {
	b.Helper()
	dir := fmt.Sprintf("/proc/%d/task", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatalf("failed to list guichet's threads: %v", err)
	}
	out := make(map[string]time.Duration, len(entries))
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue // ended meanwhile
		}
		fields := strings.Fields(string(raw))
		if len(fields) == 0 {
			b.Fatalf("bad %s/%s/schedstat: %q", dir, e.Name(), raw)
		}
		ns, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			b.Fatalf("bad %s/%s/schedstat: %v", dir, e.Name(), err)
		}
		out[e.Name()] = time.Duration(ns)
	}
	return out
}

// threadTimesSince is the CPU time the threads used from before to after,
// and how many threads of before had ended (their time since before is
// missing from the sum).
func threadTimesSince(before, after map[string]time.Duration) (used time.Duration, ended int) {
	for tid, t := range after {
		used += t - before[tid] // a new thread started from 0
	}
	for tid := range before {
		if _, ok := after[tid]; !ok {
			ended++
		}
	}
	return used, ended
}

// retrievalSample is what the agent's client saw of one question.
type retrievalSample struct {
	event              id.EventID
	first, text, final time.Duration // from the send call
	body               string        // the final answer
}

// askRetrieval sends one question and waits for guichet's complete answer:
// a message replying to it, or the last edit of the placeholder that did.
func askRetrieval(b *testing.B, p *mxclient.Person, dm id.RoomID, bot id.UserID, question string) retrievalSample {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	sent := time.Now()
	evt, err := p.SendText(ctx, dm, question)
	if err != nil {
		b.Fatalf("could not send %q: %v", question, err)
	}
	first, err := p.WaitMessage(ctx, func(m mxclient.Message) bool { return m.Sender == bot && m.InReplyTo == evt })
	if err != nil {
		b.Fatalf("no reply to %q: %v", question, err)
	}
	final := first
	if partial(first) {
		if final, err = p.WaitMessage(ctx, func(m mxclient.Message) bool {
			return m.Sender == bot && m.ReplaceOf == first.EventID && !partial(m)
		}); err != nil {
			b.Fatalf("no final edit of the answer to %q: %v", question, err)
		}
	}
	s := retrievalSample{event: evt, first: first.At.Sub(sent), final: final.At.Sub(sent), body: final.Body}
	s.text = s.final
	if strings.TrimSuffix(first.Body, "…") != "" {
		s.text = s.first
	} else {
		for _, m := range p.Messages() {
			if m.ReplaceOf == first.EventID && m.Sender == bot && strings.TrimSuffix(m.Body, "…") != "" {
				s.text = min(s.text, m.At.Sub(sent))
			}
		}
	}
	return s
}

// retrievalOwnTimes reads guichet's "Answered question" lines (JSON, one per
// answer, with the question's event id) into each variant's own times.
func retrievalOwnTimes(b *testing.B, logPath string, variants ...*retrievalVariant) {
	raw, err := os.ReadFile(logPath)
	if err != nil {
		b.Logf("no guichet log: %v", err)
		return
	}
	own := map[id.EventID]time.Duration{}
	for line := range strings.Lines(string(raw)) {
		var e struct {
			Message string     `json:"message"`
			Event   id.EventID `json:"event_id"`
			Own     float64    `json:"own_ms"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Message == "Answered question" {
			own[e.Event] = time.Duration(e.Own * float64(time.Millisecond))
		}
	}
	for _, v := range variants {
		for _, evt := range v.events {
			if d, ok := own[evt]; ok {
				v.own = append(v.own, d)
			}
		}
		if len(v.own) != len(v.events) {
			showf(b, "guichet logged its own time for %d of %d answers %s", len(v.own), len(v.events), v.name)
		}
	}
}

// ledgerLatencies reads, from guichet's usage ledger, how long each call to
// endpoint since then took, as guichet timed it (whole milliseconds); nil,
// with a line, if the ledger cannot be read.
func ledgerLatencies(b *testing.B, dbPath, endpoint string, since time.Time) benchutil.Samples {
	db, err := store.Open(dbPath)
	if err != nil {
		showf(b, "cannot read the usage ledger: %v", err)
		return nil
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := db.Query(ctx, `SELECT latency_ms FROM usage_ledger WHERE endpoint = $1 AND at >= $2 AND outcome = 'ok'`, endpoint, since.UnixMilli())
	if err != nil {
		showf(b, "cannot read the usage ledger: %v", err)
		return nil
	}
	defer rows.Close()
	var out benchutil.Samples
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			showf(b, "cannot read the usage ledger: %v", err)
			return nil
		}
		out = append(out, time.Duration(v)*time.Millisecond)
	}
	return out
}
