package e2e

// BenchmarkFairShare: issue 5's figures for the global gate. Many agents
// each ask a few questions, one after another, as soon as the previous
// answer arrives; the fake Albert takes L per answer (no streaming delay) and
// guichet lets C calls run at once (limits.global.max_concurrent), the rest
// wait in its first come, first served queue. With the queue always full,
// the whole run should take about questions*L/C, and each agent should wait
// about as long as any other: its fair share.
//
// guichet runs as the real binary behind the counting proxy, the agents are
// mautrix-go clients in encrypted DMs, as in BenchmarkAgents, whose helpers
// this reuses. Per-agent limits are opened wide and the queue is large, so
// only the gate shapes the run. The one-hop delivery between two people in
// an encrypted room is measured in the same run, idle and during the
// questions. Nothing here asserts a wall-clock time: the figures are printed.
//
// Time on 2 cores: onboarding 200 agents about 1 min, then about
// 1000*L/C (250 s with the defaults).
//
// Knobs (environment):
//   GUICHET_BENCH_FAIR_AGENTS          agents (default 200)
//   GUICHET_BENCH_FAIR_QUESTIONS       questions per agent, one after another (5)
//   GUICHET_BENCH_FAIR_LATENCY         fake Albert's time per answer, L (2s)
//   GUICHET_BENCH_FAIR_STREAM          fake Albert's first to last token (0)
//   GUICHET_BENCH_FAIR_MAX_CONCURRENT  limits.global.max_concurrent, C (8)
//   GUICHET_BENCH_FAIR_DEADLINE        an answer not complete by then is lost (5m)
//   GUICHET_BENCH_LOGS                 a folder to copy guichet's logs into

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/internal/benchutil"
	"guichet/internal/mxclient"
)

// fairWant is in every complete answer of the fake Albert (benchAnswer).
const fairWant = "Bonne journée"

// BenchmarkFairShare runs GUICHET_BENCH_FAIR_AGENTS agents asking
// GUICHET_BENCH_FAIR_QUESTIONS questions each through a gate of C; see the
// file comment.
func BenchmarkFairShare(b *testing.B) {
	requireE2E(b)
	agentsN := envInt(b, "GUICHET_BENCH_FAIR_AGENTS", 200)
	perAgent := envInt(b, "GUICHET_BENCH_FAIR_QUESTIONS", 5)
	conc := envInt(b, "GUICHET_BENCH_FAIR_MAX_CONCURRENT", 8)
	params := agentsParams{
		maxAgents:    agentsN,
		latency:      envDuration(b, "GUICHET_BENCH_FAIR_LATENCY", 2*time.Second),
		stream:       envDuration(b, "GUICHET_BENCH_FAIR_STREAM", 0),
		questions:    perAgent,
		questions1k:  perAgent,
		soloQuestion: perAgent,
		deadline:     envDuration(b, "GUICHET_BENCH_FAIR_DEADLINE", 5*time.Minute),
		logDir:       os.Getenv("GUICHET_BENCH_LOGS"),
	}
	if agentsN < 1 || perAgent < 1 || conc < 1 {
		b.Fatal("GUICHET_BENCH_FAIR_AGENTS, _QUESTIONS and _MAX_CONCURRENT must be at least 1")
	}
	bin := buildGuichet(b)
	for range b.N {
		runFairShare(b, bin, params, agentsN, perAgent, conc)
	}
}

// fairQuestion is what an agent saw of one question.
type fairQuestion struct {
	agent    int
	event    id.EventID
	sent     time.Time
	done     time.Time     // when the complete answer was seen
	reply    time.Duration // send → complete answer seen
	answered bool
	queued   bool   // guichet told the agent its place in the queue
	other    string // a reply that is neither the answer nor a queue notice
}

// askFair sends one question and waits for guichet's complete answer: a
// reply holding it, or a complete edit of one of guichet's replies. Queue
// notices and placeholders are not the answer; any other complete reply
// ends the wait and is kept in other.
func (aw *agentsWorld) askFair(agent int, a *mxclient.Person, dm id.RoomID, text string) fairQuestion {
	q := fairQuestion{agent: agent, sent: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), aw.params.deadline)
	defer cancel()
	evt, err := a.SendText(ctx, dm, text)
	if err != nil {
		q.other = "not sent: " + err.Error()
		return q
	}
	q.event = evt
	// The match sees the client's messages in the order they arrived, a
	// placeholder before its edits; it may not call back into the client.
	replies := map[id.EventID]bool{}
	m, err := a.WaitMessage(ctx, func(m mxclient.Message) bool {
		if m.Sender != aw.bot {
			return false
		}
		if m.InReplyTo == evt && m.ReplaceOf == "" {
			replies[m.EventID] = true
			return !partial(m) && !isQueueNotice(m.Body)
		}
		return m.ReplaceOf != "" && replies[m.ReplaceOf] && !partial(m) && strings.Contains(m.Body, fairWant)
	})
	if err != nil {
		q.queued = aw.wasQueued(a, evt)
		return q
	}
	q.done, q.reply, q.answered = m.At, m.At.Sub(q.sent), true
	if !strings.Contains(m.Body, fairWant) {
		q.other = m.Body
	}
	q.queued = aw.wasQueued(a, evt)
	return q
}

func isQueueNotice(body string) bool { return strings.Contains(body, "dans la file") }

func (aw *agentsWorld) wasQueued(a *mxclient.Person, evt id.EventID) bool {
	for _, m := range a.Messages() {
		if m.Sender == aw.bot && m.InReplyTo == evt && isQueueNotice(m.Body) {
			return true
		}
	}
	return false
}

// fairDuplicates counts the complete answers guichet sent to q beyond the
// first: replies holding the answer, and placeholders completed by an edit.
func (aw *agentsWorld) fairDuplicates(a *mxclient.Person, q fairQuestion) int {
	if q.event == "" {
		return 0
	}
	msgs := a.Messages()
	replies := map[id.EventID]bool{}
	answers := 0
	for _, m := range msgs {
		if m.Sender == aw.bot && m.InReplyTo == q.event && m.ReplaceOf == "" {
			replies[m.EventID] = true
			if !partial(m) && strings.Contains(m.Body, fairWant) {
				answers++
			}
		}
	}
	completed := map[id.EventID]bool{}
	for _, m := range msgs {
		if m.Sender == aw.bot && replies[m.ReplaceOf] && !partial(m) && strings.Contains(m.Body, fairWant) {
			completed[m.ReplaceOf] = true
		}
	}
	return max(answers+len(completed)-1, 0)
}

func runFairShare(b *testing.B, bin string, params agentsParams, n, perAgent, conc int) {
	aw := newAgentsWorld(b, bin, params, n, conc)
	L := params.albertTime()
	setup := time.Now()
	agents := aw.newAgents("equite", n)
	started := time.Since(setup)
	dms, onboarding := aw.onboard(agents)
	showf(b, "set-up: %d clients started in %s; %s", n, started.Round(time.Millisecond), onboarding)
	from, to, hopRoom, idle := aw.hopPair(20)

	ready := 0
	for _, dm := range dms {
		if dm != "" {
			ready++
		}
	}
	ph := aw.begin()
	calls0 := aw.tb.Albert.Calls()
	load := aw.startHops(from, to, hopRoom, time.Second)
	perAgentQs := make([][]fairQuestion, n)
	begin := time.Now()
	parallel(n, n, func(i int) {
		if dms[i] == "" {
			return
		}
		for k := range perAgent {
			text := fmt.Sprintf("Question n° %d de l'agent %d : comment rédiger une note de synthèse ?", k+1, i+1)
			q := aw.askFair(i, agents[i], dms[i], text)
			perAgentQs[i] = append(perAgentQs[i], q)
			if !q.answered || q.other != "" {
				return // the next question would not be one after an answer
			}
		}
	})
	elapsed := time.Since(begin)
	hopLoad := load.finish()
	time.Sleep(2 * time.Second) // late duplicates
	aw.end(ph)

	var reply, waits, agentWaits benchutil.Samples
	asked, answered, lost, dups, queued := 0, 0, 0, 0, 0
	others := map[string]int{}
	var last time.Time
	for i, qs := range perAgentQs {
		if dms[i] == "" {
			continue
		}
		var total time.Duration
		for _, q := range qs {
			asked++
			if q.queued {
				queued++
			}
			if !q.answered {
				lost++
				continue
			}
			if q.other != "" {
				others[cut(q.other, 80)]++
				continue
			}
			answered++
			reply = append(reply, q.reply)
			wait := max(q.reply-L, 0)
			waits = append(waits, wait)
			total += wait
			if q.done.After(last) {
				last = q.done
			}
			dups += aw.fairDuplicates(agents[i], q)
		}
		agentWaits = append(agentWaits, total)
	}
	notAsked := ready*perAgent - asked

	ideal := time.Duration(int64(ready*perAgent) * int64(L) / int64(conc))
	span := elapsed
	if !last.IsZero() {
		span = last.Sub(begin)
	}
	var sum time.Duration
	for _, w := range agentWaits {
		sum += w
	}
	meanWait := sum / time.Duration(max(len(agentWaits), 1))
	maxWait := time.Duration(0)
	if len(agentWaits) > 0 {
		maxWait = slices.Max(agentWaits)
	}
	minWait := time.Duration(0)
	if len(agentWaits) > 0 {
		minWait = slices.Min(agentWaits)
	}
	hop := idle.P50()

	t := benchutil.NewTable(fmt.Sprintf("fair share: %d agents ready, %d questions each (one after another), max_concurrent C=%d, fake Albert L=%s",
		ready, perAgent, conc, benchutil.FormatMs(L)), "figure", "value", "", "note")
	t.Row("total time (first question sent → last answer seen)", benchutil.FormatMs(span), "",
		fmt.Sprintf("all agents done after %s", elapsed.Round(time.Millisecond)))
	t.Row(fmt.Sprintf("ideal %d*L/C", ready*perAgent), benchutil.FormatMs(ideal), "", "")
	t.Row("total / ideal (issue: within 10 %)", benchutil.Ratio(float64(span), float64(ideal)), "",
		fmt.Sprintf("%+.1f %%", 100*(float64(span)/float64(max(ideal, 1))-1)))
	t.Row("per-agent total wait (Σ reply − L): mean = fair share", benchutil.FormatMs(meanWait), "", "")
	t.Row("per-agent total wait: max / min", benchutil.FormatMs(maxWait), benchutil.FormatMs(minWait), "")
	t.Row("max / fair share (issue: at most ×2)", benchutil.Ratio(float64(maxWait), float64(meanWait)), "", "")
	t.Row("per-agent total wait p50 / p99", benchutil.FormatMs(agentWaits.P50()), benchutil.FormatMs(agentWaits.P99()), "")
	t.Row("reply latency p50 / p99 (send → complete answer seen)", benchutil.FormatMs(reply.P50()), benchutil.FormatMs(reply.P99()),
		"vs one-hop p50 idle: "+benchutil.Ratio(float64(reply.P50()), float64(hop)))
	t.Row("wait per question (reply − L) p50 / p99", benchutil.FormatMs(waits.P50()), benchutil.FormatMs(waits.P99()), "")
	t.Row("Albert calls as timed by guichet p50 / p99", benchutil.FormatMs(ph.albert.P50()), benchutil.FormatMs(ph.albert.P99()), "")
	t.Row("one-hop, encrypted room, idle (baseline) p50 / p99", benchutil.FormatMs(hop), benchutil.FormatMs(idle.P99()), "two plain clients")
	t.Row(fmt.Sprintf("one-hop during the questions p50 / p99 (%d lost)", hopLoad.lost), formatMsOrDash(hopLoad.samples),
		func() string {
			if len(hopLoad.samples) == 0 {
				return "-"
			}
			return benchutil.FormatMs(hopLoad.samples.P99())
		}(), fmt.Sprintf("%d samples, one a second", len(hopLoad.samples)))
	t.Row("answers: complete / lost / duplicated / not the answer", strconv.Itoa(answered), strconv.Itoa(lost),
		fmt.Sprintf("%d / %d; %d not asked (an agent stops after a lost answer)", dups, asked-answered-lost, notAsked))
	t.Row("questions told their place in the queue", strconv.Itoa(queued), "", "")
	calls := aw.tb.Albert.Calls() - calls0
	t.Row("Albert calls", strconv.Itoa(calls), "", fmt.Sprintf("%.2f per question", float64(calls)/float64(max(asked, 1))))
	t.Row(ph.cores(), "", "", "")
	show(b, t)
	for what, k := range others {
		showf(b, "%d replies were not the assistant's answer: %q", k, what)
	}
	show(b, requestsTable("fair share: guichet's homeserver requests during the questions, per complete answer", ph.hs, max(answered, 1)))
	aw.logSummary(b)

	b.ReportMetric(benchutil.Ms(span), "total-ms")
	b.ReportMetric(benchutil.Ms(ideal), "ideal-ms")
	b.ReportMetric(float64(span)/float64(max(ideal, 1)), "total/ideal")
	b.ReportMetric(float64(maxWait)/float64(max(meanWait, 1)), "maxwait/fair")
	b.ReportMetric(benchutil.Ms(reply.P50()), "reply-p50-ms")
	b.ReportMetric(benchutil.Ms(reply.P99()), "reply-p99-ms")
	b.ReportMetric(benchutil.Ms(hop), "hop-p50-ms")
	b.ReportMetric(float64(lost), "lost")
	b.ReportMetric(float64(dups), "dup")
	b.ReportMetric(0, "ns/op")
}
