package metrics

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"guichet/approvals"
	"guichet/ratelimit"
)

type fakeRequests struct {
	counts map[approvals.Status]int
	err    error
}

func (f *fakeRequests) CountByStatus(context.Context) (map[approvals.Status]int, error) {
	return f.counts, f.err
}

type fakeQueue ratelimit.GateStats

func (f fakeQueue) Stats() ratelimit.GateStats { return ratelimit.GateStats(f) }

type fakeOutbox struct {
	n   int
	err error
}

func (f *fakeOutbox) CountUnsent(context.Context) (int, error) { return f.n, f.err }

// gather returns the registry's families by name.
func gather(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// value is the value of the series of name whose labels are labels
// ("k=v" pairs); ok is false if there is no such series.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		var got []string
		for _, l := range m.GetLabel() {
			got = append(got, l.GetName()+"="+l.GetValue())
		}
		if !slices.Equal(got, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func newTestMetrics() (*Metrics, *fakeRequests, *fakeOutbox, *bool) {
	req := &fakeRequests{counts: map[approvals.Status]int{approvals.StatusPending: 3, approvals.StatusActive: 7}}
	out := &fakeOutbox{n: 2}
	open := new(bool)
	m := New(Sources{
		Requests: req, Queue: fakeQueue{InFlight: 4, Queued: 5}, Outbox: out,
		Breaker: BreakerFunc(func() bool { return *open }),
	})
	return m, req, out, open
}

// Every metric of the README is registered under its name, with its type
// and exactly its labels, once each event happened.
func TestRegistryContents(t *testing.T) {
	m, _, _, _ := newTestMetrics()
	m.Decision(DecisionApproved)
	m.Question(OutcomeAnswered)
	m.Answered(3 * time.Second)
	m.AlbertFirstToken(200 * time.Millisecond)
	m.AlbertError("rate_limited")
	m.AlbertTokens(100, 20)
	m.QueueWait(time.Second)
	m.OutboxGivenUp("reply")
	m.Synced(time.Unix(1700000000, 500e6))
	fams := gather(t, m)

	tests := []struct {
		name   string
		typ    dto.MetricType
		labels []string
	}{
		{"guichet_access_requests", dto.MetricType_GAUGE, []string{"status"}},
		{"guichet_access_decisions_total", dto.MetricType_COUNTER, []string{"decision"}},
		{"guichet_questions_total", dto.MetricType_COUNTER, []string{"outcome"}},
		{"guichet_answer_duration_seconds", dto.MetricType_HISTOGRAM, nil},
		{"guichet_albert_first_token_seconds", dto.MetricType_HISTOGRAM, nil},
		{"guichet_albert_errors_total", dto.MetricType_COUNTER, []string{"class"}},
		{"guichet_albert_tokens_total", dto.MetricType_COUNTER, []string{"kind"}},
		{"guichet_albert_calls_in_flight", dto.MetricType_GAUGE, nil},
		{"guichet_queue_length", dto.MetricType_GAUGE, nil},
		{"guichet_queue_wait_seconds", dto.MetricType_HISTOGRAM, nil},
		{"guichet_breaker_open", dto.MetricType_GAUGE, nil},
		{"guichet_outbox_unsent", dto.MetricType_GAUGE, nil},
		{"guichet_outbox_given_up_total", dto.MetricType_COUNTER, []string{"kind"}},
		{"guichet_sync_last_success_timestamp_seconds", dto.MetricType_GAUGE, nil},
		{"guichet_scrape_read_errors", dto.MetricType_GAUGE, nil},
		{"guichet_ha_leader", dto.MetricType_GAUGE, nil},
		{"guichet_ha_leader_changes_total", dto.MetricType_COUNTER, nil},
		{"go_goroutines", dto.MetricType_GAUGE, nil},
		{"process_cpu_seconds_total", dto.MetricType_COUNTER, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fams[tt.name]
			if f == nil {
				t.Fatalf("%s not registered", tt.name)
			}
			if f.GetType() != tt.typ {
				t.Errorf("type %v, want %v", f.GetType(), tt.typ)
			}
			for _, s := range f.GetMetric() {
				var names []string
				for _, l := range s.GetLabel() {
					names = append(names, l.GetName())
				}
				if !slices.Equal(names, tt.labels) {
					t.Errorf("labels %v, want %v", names, tt.labels)
				}
			}
		})
	}
	for name := range fams {
		if strings.HasPrefix(name, "guichet_") && !slices.ContainsFunc(tests, func(tt struct {
			name   string
			typ    dto.MetricType
			labels []string
		}) bool {
			return tt.name == name
		}) {
			t.Errorf("%s is registered but not listed here (and in the README)", name)
		}
	}
}

func TestEventsMoveTheirSeries(t *testing.T) {
	m, _, _, _ := newTestMetrics()
	m.Question(OutcomeAnswered)
	m.Question(OutcomeAnswered)
	m.Question(OutcomeLimited)
	m.Decision(DecisionRejected)
	m.AlbertTokens(100, 20)
	m.AlbertTokens(5, 0)
	m.AlbertError("timeout")
	m.OutboxGivenUp("welcome")
	m.Synced(time.Unix(1700000000, 250e6))
	fams := gather(t, m)
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"guichet_questions_total", []string{"outcome=answered"}, 2},
		{"guichet_questions_total", []string{"outcome=limited"}, 1},
		{"guichet_questions_total", []string{"outcome=cut"}, 0}, // known values exist at zero
		{"guichet_access_decisions_total", []string{"decision=rejected"}, 1},
		{"guichet_access_decisions_total", []string{"decision=approved"}, 0},
		{"guichet_albert_tokens_total", []string{"kind=prompt"}, 105},
		{"guichet_albert_tokens_total", []string{"kind=completion"}, 20},
		{"guichet_albert_errors_total", []string{"class=timeout"}, 1},
		{"guichet_outbox_given_up_total", []string{"kind=welcome"}, 1},
		{"guichet_sync_last_success_timestamp_seconds", nil, 1700000000.25},
	}
	for _, tt := range tests {
		if got, ok := value(fams, tt.name, tt.labels...); !ok || got != tt.want {
			t.Errorf("%s%v = %v (present %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
}

// A label value outside the vocabulary, an id above all, becomes "other":
// however many agents, as many series as one.
func TestLabelValuesNeverCarryIDs(t *testing.T) {
	m, _, _, _ := newTestMetrics()
	for _, v := range []string{"@alice:agent.tchap.gouv.fr", "!room:server", "$event", "Answered", strings.Repeat("a", 40)} {
		m.Question(v)
		m.Decision(v)
		m.AlbertError(v)
		m.OutboxGivenUp(v)
	}
	fams := gather(t, m)
	for name, want := range map[string][]string{
		"guichet_questions_total":        {"outcome=other"},
		"guichet_access_decisions_total": {"decision=other"},
		"guichet_albert_errors_total":    {"class=other"},
		"guichet_outbox_given_up_total":  {"kind=other"},
	} {
		if got, ok := value(fams, name, want...); !ok || got != 5 {
			t.Errorf("%s%v = %v (present %v), want 5", name, want, got, ok)
		}
	}
	for _, f := range fams {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if strings.ContainsAny(l.GetValue(), "@!$:") {
					t.Errorf("%s has label %s=%q", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// Gauges read at scrape time follow their sources; a source that fails is
// left out and counted, and the rest is still served.
func TestScrapeTimeGauges(t *testing.T) {
	m, req, out, open := newTestMetrics()
	fams := gather(t, m)
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"guichet_access_requests", []string{"status=pending"}, 3},
		{"guichet_access_requests", []string{"status=active"}, 7},
		{"guichet_access_requests", []string{"status=revoked"}, 0},
		{"guichet_queue_length", nil, 5},
		{"guichet_albert_calls_in_flight", nil, 4},
		{"guichet_outbox_unsent", nil, 2},
		{"guichet_breaker_open", nil, 0},
		{"guichet_scrape_read_errors", nil, 0},
	} {
		if got, ok := value(fams, tt.name, tt.labels...); !ok || got != tt.want {
			t.Errorf("%s%v = %v (present %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}

	*open = true
	req.counts[approvals.StatusPending] = 1
	out.err = errors.New("database is locked")
	fams = gather(t, m)
	if got, _ := value(fams, "guichet_breaker_open"); got != 1 {
		t.Errorf("breaker_open = %v after the breaker opened", got)
	}
	if got, _ := value(fams, "guichet_access_requests", "status=pending"); got != 1 {
		t.Errorf("pending = %v, want 1", got)
	}
	if _, ok := value(fams, "guichet_outbox_unsent"); ok {
		t.Error("outbox_unsent served although it could not be read")
	}
	if got, _ := value(fams, "guichet_scrape_read_errors"); got != 1 {
		t.Errorf("scrape_read_errors = %v, want 1", got)
	}
}
