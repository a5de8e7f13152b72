package bot

import (
	"context"
	"time"

	"guichet/approvals"
	"guichet/ratelimit"
)

// Metrics receives what the bot does, for operators' monitoring; the
// metrics package implements it (app wires it), so that bot never imports
// Prometheus. Label values are the fixed words below, never an id.
type Metrics interface {
	// Decision counts an access decision (one of the decision* words).
	Decision(decision string)
	// Question counts a DM question by outcome (one of the outcome* words).
	Question(outcome string)
	// Answered records the time from a question's receipt to its answer.
	Answered(d time.Duration)
	// AlbertFirstToken records the time from a call's start to its first piece.
	AlbertFirstToken(d time.Duration)
	// AlbertError counts a failed call by its albert.Class.
	AlbertError(class string)
	// AlbertTokens counts the tokens one call used.
	AlbertTokens(prompt, completion int)
	// QueueWait records how long a question waited for the global gate.
	QueueWait(d time.Duration)
	// OutboxGivenUp counts a message given up, by its store.Kind.
	OutboxGivenUp(kind string)
	// Synced and SyncFailed record each sync with the homeserver.
	Synced(at time.Time)
	SyncFailed(at time.Time)
}

// The outcomes of a question, as reported to Metrics.Question.
const (
	outcomeAnswered = "answered" // the agent got an answer
	outcomeLimited  = "limited"  // refused by a per-agent or global limit
	outcomeRefused  = "refused"  // refused by the agent's access status
	outcomeFailed   = "failed"   // Albert or guichet failed: an error sentence instead
	outcomeCut      = "cut"      // the answer stopped in the middle
)

// The access decisions, as reported to Metrics.Decision.
const (
	decisionApproved     = "approved"
	decisionAutoApproved = "auto_approved"
	decisionWaitlisted   = "waitlisted"
	decisionPromoted     = "promoted"
	decisionRejected     = "rejected"
	decisionDenied       = "denied"
	decisionRevoked      = "revoked"
	decisionReversed     = "reversed"
)

// noMetrics is the default: nothing is recorded.
type noMetrics struct{}

func (noMetrics) Decision(string)                {}
func (noMetrics) Question(string)                {}
func (noMetrics) Answered(time.Duration)         {}
func (noMetrics) AlbertFirstToken(time.Duration) {}
func (noMetrics) AlbertError(string)             {}
func (noMetrics) AlbertTokens(int, int)          {}
func (noMetrics) QueueWait(time.Duration)        {}
func (noMetrics) OutboxGivenUp(string)           {}
func (noMetrics) Synced(time.Time)               {}
func (noMetrics) SyncFailed(time.Time)           {}

// BreakerOpen tells whether the default profile's overload breaker holds
// questions back (open, or letting one probe through), for the metrics read
// at scrape time.
func (b *Bot) BreakerOpen() bool {
	return b.defaultProfile().breaker.State() != ratelimit.BreakerClosed
}

// reportQuestion counts a question that reached question(): its outcome, or
// a failure. One given back because guichet stops is not counted (it is
// handled again at the next start).
func (b *Bot) reportQuestion(ctx context.Context, r *reply, err error) {
	switch {
	case err != nil && ctx.Err() == nil:
		b.metrics.Question(outcomeFailed)
	case err == nil && r != nil && r.outcome != "":
		b.metrics.Question(r.outcome)
	}
}

// grantDecision is the decision reported for a granted request: waitlisted
// when capacity put it on the waitlist, otherwise how it was granted.
func grantDecision(req *approvals.Request, granted string) string {
	if req.Status == approvals.StatusWaitlisted {
		return decisionWaitlisted
	}
	return granted
}
