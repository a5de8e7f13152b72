// Package metrics serves what operators watch guichet with: Prometheus
// metrics on /metrics, and /healthz and /readyz for the service manager or
// the orchestrator. It owns its registry (never the global one) and is fed by
// the other packages through small interfaces: the bot reports events as
// they happen (Metrics implements bot.Metrics), and what is better read when
// Prometheus asks (requests by status, the queue, the breaker, the outbox)
// is read then, through Sources.
//
// No label carries a user or room id: every label value is one of a small
// fixed vocabulary, and a value outside it is counted as "other", so that
// 100,000 agents make as many series as one.
package metrics

import (
	"context"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"guichet/approvals"
	"guichet/ratelimit"
)

// namespace prefixes every guichet metric.
const namespace = "guichet"

// The outcomes of a question (guichet_questions_total's outcome label).
const (
	OutcomeAnswered = "answered" // the agent got an answer
	OutcomeLimited  = "limited"  // refused by a per-agent or global limit
	OutcomeRefused  = "refused"  // refused by the agent's access status
	OutcomeFailed   = "failed"   // Albert or guichet failed: the agent got an error sentence
	OutcomeCut      = "cut"      // the answer stopped in the middle
)

// The access decisions (guichet_access_decisions_total's decision label).
const (
	DecisionApproved     = "approved"
	DecisionAutoApproved = "auto_approved"
	DecisionWaitlisted   = "waitlisted"
	DecisionPromoted     = "promoted" // left the waitlist
	DecisionRejected     = "rejected"
	DecisionDenied       = "denied" // rejected by a deny rule
	DecisionRevoked      = "revoked"
	DecisionReversed     = "reversed"
)

// other replaces a label value outside the vocabulary.
const other = "other"

var (
	outcomes  = []string{OutcomeAnswered, OutcomeLimited, OutcomeRefused, OutcomeFailed, OutcomeCut}
	decisions = []string{DecisionApproved, DecisionAutoApproved, DecisionWaitlisted, DecisionPromoted,
		DecisionRejected, DecisionDenied, DecisionRevoked, DecisionReversed}
	tokenKinds = []string{"prompt", "completion"}
	statuses   = []approvals.Status{approvals.StatusPending, approvals.StatusWaitlisted, approvals.StatusApproved,
		approvals.StatusActive, approvals.StatusRejected, approvals.StatusRevoked}
)

// labelValue is what a free label value (an error class, a message kind)
// may look like: a short lower-case word. A Matrix id (@a:b, !r:b) never
// does.
var labelValue = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// known keeps value if it is in vocab, else "other".
func known(value string, vocab []string) string {
	for _, v := range vocab {
		if v == value {
			return value
		}
	}
	return other
}

// word keeps value if it looks like a label value, else "other".
func word(value string) string {
	if labelValue.MatchString(value) {
		return value
	}
	return other
}

// Requests counts access requests by status; store.Store implements it.
type Requests interface {
	CountByStatus(ctx context.Context) (map[approvals.Status]int, error)
}

// Queue is the global gate's state; ratelimit.Gate implements it.
type Queue interface {
	Stats() ratelimit.GateStats
}

// Breaker tells whether Albert's overload breaker holds questions back;
// bot.Bot implements it.
type Breaker interface {
	BreakerOpen() bool
}

// Outbox counts the messages still to deliver; store.Store implements it.
type Outbox interface {
	CountUnsent(ctx context.Context) (int, error)
}

// Sources are read at scrape time. A nil source is left out.
type Sources struct {
	Requests Requests
	Queue    Queue
	Breaker  Breaker
	Outbox   Outbox
}

// scrapeTimeout bounds the database reads of one scrape.
const scrapeTimeout = 5 * time.Second

// Metrics is guichet's registry and the recorder the bot reports to.
type Metrics struct {
	reg *prometheus.Registry

	decisions      *prometheus.CounterVec
	questions      *prometheus.CounterVec
	answerDuration prometheus.Histogram
	firstToken     prometheus.Histogram
	albertErrors   *prometheus.CounterVec
	tokens         *prometheus.CounterVec
	queueWait      prometheus.Histogram
	givenUp        *prometheus.CounterVec
	lastSync       prometheus.Gauge
	leader         prometheus.Gauge
	leaderChanges  prometheus.Counter
	leading        atomic.Bool
	leadingSince   atomic.Int64 // unix ns of the last Leader(true)

	mu           sync.Mutex
	synced       time.Time // last successful sync
	failingSince time.Time // first failed sync since the last success (zero: not failing)
}

// New builds the registry with the Go and process collectors, guichet's
// counters and histograms, and the gauges read from src at scrape time.
func New(src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "access_decisions_total",
		Help: "Access decisions taken, by moderators or by the automatic rules.",
	}, []string{"decision"})
	m.questions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "questions_total",
		Help: "Questions asked in direct messages, by outcome.",
	}, []string{"outcome"})
	m.answerDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "answer_duration_seconds",
		Help:    "Time from the receipt of a question to its final answer (answered questions).",
		Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300},
	})
	m.firstToken = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "albert_first_token_seconds",
		Help:    "Time from the start of a call to Albert to the first piece of its answer.",
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60},
	})
	m.albertErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "albert_errors_total",
		Help: "Failed calls to Albert, by error class.",
	}, []string{"class"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "albert_tokens_total",
		Help: "Tokens used by calls to Albert, by kind (prompt, completion).",
	}, []string{"kind"})
	m.queueWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "queue_wait_seconds",
		Help:    "Time a question waited for a slot to call Albert.",
		Buckets: []float64{0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120},
	})
	m.givenUp = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "outbox_given_up_total",
		Help: "Messages guichet gave up delivering, by kind of message.",
	}, []string{"kind"})
	m.lastSync = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "sync_last_success_timestamp_seconds",
		Help: "Unix time of the last successful sync with the homeserver.",
	})
	m.leader = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "ha_leader",
		Help: "1 while this process is the leader (always 1 without ha.enabled), 0 while it stands by.",
	})
	m.leaderChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "ha_leader_changes_total",
		Help: "Times this process became or stopped being the leader (ha.enabled).",
	})
	// Every known label value exists from the start, at zero: rate() and
	// alerts see a series before its first event.
	for _, v := range decisions {
		m.decisions.WithLabelValues(v)
	}
	for _, v := range outcomes {
		m.questions.WithLabelValues(v)
	}
	for _, v := range tokenKinds {
		m.tokens.WithLabelValues(v)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.decisions, m.questions, m.answerDuration, m.firstToken, m.albertErrors, m.tokens,
		m.queueWait, m.givenUp, m.lastSync, m.leader, m.leaderChanges,
		newScrapeCollector(src),
	)
	return m
}

// Leader records that this process became the leader (true) or stopped
// being it; without a hot standby, call it once with true.
func (m *Metrics) Leader(leading bool) {
	if m.leading.Swap(leading) != leading {
		m.leaderChanges.Inc()
		if leading {
			m.leadingSince.Store(time.Now().UnixNano())
		}
	}
	if leading {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}

// LeadingSince is when this process last became the leader (zero if never).
func (m *Metrics) LeadingSince() time.Time {
	if ns := m.leadingSince.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Leading reports what Leader last recorded.
func (m *Metrics) Leading() bool { return m.leading.Load() }

// Registry is the registry /metrics serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Decision counts an access decision.
func (m *Metrics) Decision(decision string) {
	m.decisions.WithLabelValues(known(decision, decisions)).Inc()
}

// Question counts a question by outcome.
func (m *Metrics) Question(outcome string) {
	m.questions.WithLabelValues(known(outcome, outcomes)).Inc()
}

// Answered records the time from a question's receipt to its final answer.
func (m *Metrics) Answered(d time.Duration) { m.answerDuration.Observe(d.Seconds()) }

// AlbertFirstToken records the time to the first piece of an answer.
func (m *Metrics) AlbertFirstToken(d time.Duration) { m.firstToken.Observe(d.Seconds()) }

// AlbertError counts a failed call to Albert by its class.
func (m *Metrics) AlbertError(class string) { m.albertErrors.WithLabelValues(word(class)).Inc() }

// AlbertTokens counts the tokens of one call.
func (m *Metrics) AlbertTokens(prompt, completion int) {
	if prompt > 0 {
		m.tokens.WithLabelValues("prompt").Add(float64(prompt))
	}
	if completion > 0 {
		m.tokens.WithLabelValues("completion").Add(float64(completion))
	}
}

// QueueWait records how long a question waited for the gate.
func (m *Metrics) QueueWait(d time.Duration) { m.queueWait.Observe(d.Seconds()) }

// OutboxGivenUp counts a message given up, by kind.
func (m *Metrics) OutboxGivenUp(kind string) { m.givenUp.WithLabelValues(word(kind)).Inc() }

// Synced records a successful sync at at.
func (m *Metrics) Synced(at time.Time) {
	m.lastSync.Set(float64(at.UnixMilli()) / 1000)
	m.mu.Lock()
	m.synced, m.failingSince = at, time.Time{}
	m.mu.Unlock()
}

// SyncFailed records a failed sync at at.
func (m *Metrics) SyncFailed(at time.Time) {
	m.mu.Lock()
	if m.failingSince.IsZero() {
		m.failingSince = at
	}
	m.mu.Unlock()
}

// syncState is the last success and the start of the current failure.
func (m *Metrics) syncState() (synced, failingSince time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.synced, m.failingSince
}

// scrapeCollector reads the gauges whose truth is elsewhere, when
// Prometheus asks: one query for the requests by status, one for the
// outbox, and the gate's and breaker's state in memory.
type scrapeCollector struct {
	src       Sources
	requests  *prometheus.Desc
	queue     *prometheus.Desc
	inFlight  *prometheus.Desc
	breaker   *prometheus.Desc
	unsent    *prometheus.Desc
	readError *prometheus.Desc
}

func newScrapeCollector(src Sources) *scrapeCollector {
	name := func(n string) string { return prometheus.BuildFQName(namespace, "", n) }
	return &scrapeCollector{
		src:      src,
		requests: prometheus.NewDesc(name("access_requests"), "Access requests, by current status.", []string{"status"}, nil),
		queue:    prometheus.NewDesc(name("queue_length"), "Questions waiting for a slot to call Albert.", nil, nil),
		inFlight: prometheus.NewDesc(name("albert_calls_in_flight"), "Calls to Albert in flight.", nil, nil),
		breaker: prometheus.NewDesc(name("breaker_open"),
			"1 while Albert's overload breaker holds questions back (open or probing), else 0.", nil, nil),
		unsent: prometheus.NewDesc(name("outbox_unsent"), "Messages queued and not delivered yet (given-up ones excluded).", nil, nil),
		readError: prometheus.NewDesc(name("scrape_read_errors"),
			"Sources that could not be read during this scrape (the database, usually).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.queue, c.inFlight, c.breaker, c.unsent, c.readError} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A source that cannot be read
// is left out of this scrape and counted in guichet_scrape_read_errors,
// so that the rest is still served.
func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	failed := 0
	if c.src.Requests != nil {
		if counts, err := c.src.Requests.CountByStatus(ctx); err != nil {
			failed++
		} else {
			for _, st := range statuses {
				ch <- prometheus.MustNewConstMetric(c.requests, prometheus.GaugeValue, float64(counts[st]), string(st))
			}
		}
	}
	if c.src.Queue != nil {
		st := c.src.Queue.Stats()
		ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(st.Queued))
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(st.InFlight))
	}
	if c.src.Breaker != nil {
		open := 0.0
		if c.src.Breaker.BreakerOpen() {
			open = 1
		}
		ch <- prometheus.MustNewConstMetric(c.breaker, prometheus.GaugeValue, open)
	}
	if c.src.Outbox != nil {
		if n, err := c.src.Outbox.CountUnsent(ctx); err != nil {
			failed++
		} else {
			ch <- prometheus.MustNewConstMetric(c.unsent, prometheus.GaugeValue, float64(n))
		}
	}
	ch <- prometheus.MustNewConstMetric(c.readError, prometheus.GaugeValue, float64(failed))
}

// BreakerFunc adapts a function to Breaker, for a breaker that exists only
// once the bot is built.
type BreakerFunc func() bool

// BreakerOpen implements Breaker.
func (f BreakerFunc) BreakerOpen() bool { return f() }
