package bot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"

	"guichet/albert"
	"guichet/ratelimit"
	"guichet/store"
)

// admit applies the key's pause, the per-agent limits, the breaker and the
// global gate to a question. It returns the gate's release function, or a
// reply explaining why the question does not go to Albert now (and nothing
// is counted then). It takes no breaker ticket: ask takes one for each call.
func (b *Bot) admit(ctx context.Context, pr *profile, evt *event.Event, notices *[]string) (adm admission, refusal *reply, err error) {
	if text, paused := b.pausedText(pr); paused {
		zerolog.Ctx(ctx).Info().Msg("Question while the Albert key is paused")
		return adm, noticeReply(text), nil
	}
	if adm.over, err = b.approvals.Overloaded(ctx); err != nil {
		return adm, nil, err
	}
	dec, q, err := b.count(ctx, pr, evt, adm.over)
	if err != nil {
		return adm, nil, err
	}
	adm.question = q
	if !dec.Allowed {
		zerolog.Ctx(ctx).Info().Str("limit", string(dec.Limit)).Time("retry_at", dec.RetryAt).Msg("Question over a limit")
		return adm, noticeReply(textLimited(dec.Limit, dec.RetryAt, b.now(), b.loc)), nil
	}
	for _, k := range dec.Warn {
		*notices = append(*notices, textLimitWarning(k))
	}
	refund := func() {
		if err := b.refund(context.WithoutCancel(ctx), pr, evt); err != nil {
			zerolog.Ctx(ctx).Err(err).Msg("Failed to refund a question")
		}
	}
	if err := b.waitBreaker(ctx, pr, evt); err != nil {
		refund()
		if ctx.Err() != nil {
			return adm, nil, ctx.Err()
		}
		return adm, noticeReply(textAlbertError(albert.ClassBusy)), nil
	}
	queued := b.now()
	adm.release, err = pr.gate.Acquire(ctx, evt.Sender, func(position int) {
		b.tellNow(ctx, fmt.Sprintf("queue:%s", evt.ID), evt, textQueuePosition(position))
	})
	if err == nil {
		b.metrics.QueueWait(b.now().Sub(queued))
	}
	switch {
	case errors.Is(err, ratelimit.ErrQueueFull), errors.Is(err, ratelimit.ErrBusyAgent):
		refund()
		return adm, noticeReply(textSaturated), nil
	case err != nil:
		refund()
		return adm, nil, err
	}
	return adm, nil, nil
}

// admission is what admit lets through: the gate's release, the overload
// mode the question was counted in, and what was recorded of the question
// (read once: ask continues what an earlier attempt showed).
type admission struct {
	release  func(tokens int)
	over     bool
	question store.QuestionState
}

// errStillOverloaded ends a wait for the breaker that lasted BreakerMaxWait.
var errStillOverloaded = errors.New("albert still overloaded")

// waitBreaker holds a question while Albert is overloaded, telling the agent
// once, and gives up after BreakerMaxWait. It only looks: the ticket is
// taken by ask when it calls.
func (b *Bot) waitBreaker(ctx context.Context, pr *profile, evt *event.Event) error {
	_, err := b.breakerWait(ctx, pr, evt, false)
	return err
}

// takeTicket waits like waitBreaker and takes the ticket of the call.
func (b *Bot) takeTicket(ctx context.Context, pr *profile, evt *event.Event) (ratelimit.Ticket, error) {
	return b.breakerWait(ctx, pr, evt, true)
}

func (b *Bot) breakerWait(ctx context.Context, pr *profile, evt *event.Event, take bool) (ratelimit.Ticket, error) {
	deadline := b.now().Add(b.cfg.BreakerMaxWait)
	told := false
	for {
		var ticket ratelimit.Ticket
		var ok bool
		var retryIn time.Duration
		if take {
			ticket, ok, retryIn = pr.breaker.Allow()
		} else {
			ok, retryIn = pr.breaker.Ready()
		}
		if ok {
			return ticket, nil
		}
		if !b.now().Add(retryIn).Before(deadline) {
			return ratelimit.Ticket{}, errStillOverloaded
		}
		if !told {
			// One notice per question, whichever of admit and ask waits.
			b.tellNow(ctx, "breaker:"+evt.ID.String(), evt, textBreakerWait)
			told = true
		}
		if err := sleep(ctx, retryIn); err != nil {
			return ratelimit.Ticket{}, err
		}
	}
}

// pausedText is what to tell an agent while their profile's key is paused.
func (b *Bot) pausedText(pr *profile) (string, bool) {
	reason, until, paused := pr.pause.Paused()
	if !paused {
		return "", false
	}
	return textKeyPaused(pr.name, pr.partner(), albert.Class(reason), until, b.now(), b.loc), true
}

// pausesKey tells the refusals that hold for hours: no call with the key
// can succeed before its window rolls or its budget is topped up.
func pausesKey(class albert.Class) bool {
	return class == albert.ClassDailyLimit || class == albert.ClassBudget
}

// pauseKey stops calls with the key after a daily-limit or budget refusal:
// until the server's Retry-After or x-ratelimit-reset-* when it gave one,
// else until the next midnight (daily limit) or for the pause's Recheck
// (budget). The support room is told when a pause starts, not when it is
// extended. It returns the agent's sentence.
func (b *Bot) pauseKey(ctx context.Context, pr *profile, aerr *albert.Error) string {
	now := b.now()
	until, known := now.Add(aerr.RetryAfter), aerr.RetryAfter > 0
	switch {
	case known:
	case aerr.Class == albert.ClassDailyLimit:
		// Albert does not say in which time zone its days end; guichet's
		// own midnight is the guess, and a refusal after it makes the
		// pause recheck sooner (KeyPause.Stop).
		y, m, d := now.In(b.loc).Date()
		until = time.Date(y, m, d+1, 0, 0, 0, 0, b.loc)
	default:
		until = now.Add(pr.pause.Recheck())
	}
	started, end := pr.pause.Stop(string(aerr.Class), until, known)
	zerolog.Ctx(ctx).Warn().Str("partner", pr.id).Str("reason", string(aerr.Class)).Time("until", end).Bool("started", started).Msg("Albert key paused")
	if started {
		b.tellSupport(ctx, fmt.Sprintf("pause:%s%s:%d", partnerKey(pr), aerr.Class, now.UnixMilli()), textModsKeyPaused(pr.name, pr.partner(), aerr.Class, end, now, b.loc))
	}
	return textKeyPaused(pr.name, pr.partner(), aerr.Class, end, now, b.loc)
}

// keyWorks ends the key's pause, if any, after a call that started at
// callStart succeeded, and tells the support room once.
func (b *Bot) keyWorks(ctx context.Context, pr *profile, callStart time.Time) {
	ended, reason := pr.pause.Resume(callStart)
	if !ended {
		return
	}
	zerolog.Ctx(ctx).Info().Str("partner", pr.id).Str("reason", reason).Msg("Albert key resumed")
	b.tellSupport(ctx, fmt.Sprintf("resume:%s%s:%d", partnerKey(pr), reason, b.now().UnixMilli()), textModsKeyResumed(pr.name, pr.partner(), albert.Class(reason)))
}

// partnerKey is the part of an outbox key that names a partner's profile
// ("" for the default one, so that its keys are unchanged).
func partnerKey(pr *profile) string {
	if !pr.partner() {
		return ""
	}
	return pr.id + ":"
}

// tellSupport queues a notice for the moderators in the support room.
func (b *Bot) tellSupport(ctx context.Context, key, text string) {
	if b.supportRoom == "" {
		return
	}
	if err := b.store.Enqueue(context.WithoutCancel(ctx), outgoingNotice(key, b.supportRoom, "", text, b.now())); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to queue a support room notice")
		return
	}
	b.nudge()
}

// tellNow queues a notice for the agent while their question waits.
func (b *Bot) tellNow(ctx context.Context, key string, evt *event.Event, text string) {
	msg := outgoingNotice(key, evt.RoomID, evt.ID, text, b.now())
	if err := b.store.Enqueue(context.WithoutCancel(ctx), msg); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to queue a waiting notice")
		return
	}
	b.nudge()
}

// count applies the per-agent limits to a question, once: its admission is
// recorded under its event id in the transaction that counts it, so that a
// question handled again after a stop or a crash is not counted again.
func (b *Bot) count(ctx context.Context, pr *profile, evt *event.Event, over bool) (ratelimit.Decision, store.QuestionState, error) {
	var dec ratelimit.Decision
	var q store.QuestionState
	err := b.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		if q, err = b.store.Question(ctx, evt.ID); err != nil {
			return err
		}
		if !q.AdmittedAt.IsZero() {
			zerolog.Ctx(ctx).Info().Msg("Question counted before a restart: not counted again")
			dec = ratelimit.Decision{Allowed: true}
			return nil
		}
		if dec, err = pr.limiter.Check(ctx, evt.Sender, over); err != nil || !dec.Allowed {
			return err
		}
		return b.store.SetAdmitted(ctx, evt.ID, evt.RoomID, evt.Sender, b.now(), true)
	})
	if err != nil {
		return ratelimit.Decision{}, q, fmt.Errorf("failed to count a question: %w", err)
	}
	return dec, q, nil
}

// refund gives back a counted question, once, in one transaction with the
// record of its admission.
func (b *Bot) refund(ctx context.Context, pr *profile, evt *event.Event) error {
	return b.store.InTx(ctx, func(ctx context.Context) error {
		q, err := b.store.Question(ctx, evt.ID)
		if err != nil || q.AdmittedAt.IsZero() {
			return err
		}
		if err := pr.limiter.Refund(ctx, evt.Sender); err != nil {
			return err
		}
		return b.store.SetAdmitted(ctx, evt.ID, evt.RoomID, evt.Sender, b.now(), false)
	})
}

// charge is what a question costs: settled in the transaction that
// finishes it, so that it is charged once whatever stops guichet.
type charge struct {
	pr     *profile
	evt    *event.Event
	ok     bool // answered: the tokens are counted; otherwise the question is given back
	tokens int
	usage  []store.Usage
	over   bool // overload mode when the answer came
}

// settle charges the answer's tokens (or gives the question back) and
// writes its usage; it runs in finish's transaction and returns the
// daily-limit warnings.
func (b *Bot) settle(ctx context.Context, c *charge) ([]string, error) {
	for _, u := range c.usage {
		if err := b.store.AddUsage(ctx, u); err != nil {
			return nil, err
		}
	}
	if !c.ok {
		return nil, b.refund(ctx, c.pr, c.evt)
	}
	warn, err := c.pr.limiter.Record(ctx, c.evt.Sender, c.tokens, c.over)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range warn {
		out = append(out, textLimitWarning(k))
	}
	return out, nil
}

// onBreaker tells the support room once when Albert's overload slows
// everyone down, and once when it is over.
func (b *Bot) onBreaker(pr *profile, open bool) {
	ctx := b.log.WithContext(context.Background())
	text, kind := textBreakerClosed(pr.name, pr.partner()), "closed"
	if open {
		text, kind = textBreakerOpened(pr.name, pr.partner()), "opened"
	}
	b.log.Warn().Str("partner", pr.id).Bool("open", open).Msg("Albert overload breaker changed")
	if b.supportRoom == "" {
		return
	}
	key := fmt.Sprintf("breaker:%s%s:%d", partnerKey(pr), kind, b.now().UnixMilli())
	if err := b.store.Enqueue(ctx, outgoingNotice(key, b.supportRoom, "", text, b.now())); err != nil {
		b.log.Err(err).Msg("Failed to queue breaker notice")
		return
	}
	b.nudge()
}

// isOverload tells the failures that mean Albert is overloaded: per-minute
// 429s (a daily one is ClassDailyLimit), 503 and 504.
func isOverload(class albert.Class) bool {
	return class == albert.ClassRateLimited || class == albert.ClassBusy || class == albert.ClassTimeout
}
