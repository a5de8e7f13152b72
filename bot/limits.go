package bot

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"

	"guichet/albert"
	"guichet/ratelimit"
)

// admit applies the per-agent limits, the breaker and the global gate to a
// question. It returns the gate's release function, or a reply explaining
// why the question does not go to Albert now (and nothing is counted then).
func (b *Bot) admit(ctx context.Context, evt *event.Event, notices *[]string) (release func(tokens int), refusal *reply, err error) {
	over, err := b.approvals.Overloaded(ctx)
	if err != nil {
		return nil, nil, err
	}
	dec, err := b.limiter.Check(ctx, evt.Sender, over)
	if err != nil {
		return nil, nil, err
	}
	if !dec.Allowed {
		zerolog.Ctx(ctx).Info().Str("limit", string(dec.Limit)).Time("retry_at", dec.RetryAt).Msg("Question over a limit")
		return nil, noticeReply(textLimited(dec.Limit, dec.RetryAt, b.now(), b.loc)), nil
	}
	for _, k := range dec.Warn {
		*notices = append(*notices, textLimitWarning(k))
	}
	refund := func() {
		if err := b.limiter.Refund(context.WithoutCancel(ctx), evt.Sender); err != nil {
			zerolog.Ctx(ctx).Err(err).Msg("Failed to refund a question")
		}
	}
	if err := b.waitBreaker(ctx, evt); err != nil {
		refund()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, noticeReply(textAlbertError(albert.ClassBusy)), nil
	}
	release, err = b.gate.Acquire(ctx, evt.Sender, func(position int) {
		b.tellNow(ctx, fmt.Sprintf("queue:%s", evt.ID), evt, textQueuePosition(position))
	})
	switch {
	case errors.Is(err, ratelimit.ErrQueueFull), errors.Is(err, ratelimit.ErrBusyAgent):
		refund()
		b.breaker.Failure(false) // frees a half-open probe slot we may hold
		return nil, noticeReply(textSaturated), nil
	case err != nil:
		refund()
		return nil, nil, err
	}
	return release, nil, nil
}

// waitBreaker holds a question while Albert is overloaded, telling the agent
// once, and gives up after BreakerMaxWait.
func (b *Bot) waitBreaker(ctx context.Context, evt *event.Event) error {
	deadline := b.now().Add(b.cfg.BreakerMaxWait)
	told := false
	for {
		ok, retryIn := b.breaker.Allow()
		if ok {
			return nil
		}
		if !b.now().Add(retryIn).Before(deadline) {
			return errors.New("albert still overloaded")
		}
		if !told {
			b.tellNow(ctx, "breaker:"+evt.ID.String(), evt, textBreakerWait)
			told = true
		}
		if err := sleep(ctx, retryIn); err != nil {
			return err
		}
	}
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

// settle charges the answer's tokens and returns the daily-limit warnings.
func (b *Bot) settle(ctx context.Context, evt *event.Event, res answer) []string {
	ctx = context.WithoutCancel(ctx)
	if !res.ok {
		if err := b.limiter.Refund(ctx, evt.Sender); err != nil {
			zerolog.Ctx(ctx).Err(err).Msg("Failed to refund a question")
		}
		return nil
	}
	over, err := b.approvals.Overloaded(ctx)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to read overload mode")
	}
	warn, err := b.limiter.Record(ctx, evt.Sender, res.tokens, over)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to record tokens")
	}
	var out []string
	for _, k := range warn {
		out = append(out, textLimitWarning(k))
	}
	return out
}

// onBreaker tells the support room once when Albert's overload slows
// everyone down, and once when it is over.
func (b *Bot) onBreaker(open bool) {
	ctx := b.log.WithContext(context.Background())
	text, kind := textBreakerClosed, "closed"
	if open {
		text, kind = textBreakerOpened, "opened"
	}
	b.log.Warn().Bool("open", open).Msg("Albert overload breaker changed")
	if b.supportRoom == "" {
		return
	}
	key := fmt.Sprintf("breaker:%s:%d", kind, b.now().UnixMilli())
	if err := b.store.Enqueue(ctx, outgoingNotice(key, b.supportRoom, "", text, b.now())); err != nil {
		b.log.Err(err).Msg("Failed to queue breaker notice")
		return
	}
	b.nudge()
}

// isOverload tells the failures that mean Albert is overloaded.
func isOverload(class albert.Class) bool {
	return class == albert.ClassRateLimited || class == albert.ClassBusy || class == albert.ClassTimeout
}
