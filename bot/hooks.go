package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/approvals"
	"guichet/hooks"
	"guichet/store"
)

// HookSender posts one decision to the configured receiver; hooks.Sender
// implements it. An error with a Permanent() bool method that returns true
// gives the delivery up at once.
type HookSender interface {
	Send(ctx context.Context, deliveryID string, body []byte) error
}

// hookAlertAttempts is the failed attempt at a decision hook after which the
// moderators are told the receiver seems down (about three minutes of
// failures with the outbox's backoff), without waiting for it to be given up.
const hookAlertAttempts = 6

// errHooksOff is a queued decision hook found when hooks are no longer
// configured: it cannot be delivered.
var errHooksOff = errors.New("decision hooks are not configured any more")

// hookDecision queues the decision on req for the decision hook, in the
// caller's transaction (nothing when hooks are off). Each decision gets its
// own delivery id, kept across retries.
func (b *Bot) hookDecision(ctx context.Context, req *approvals.Request, decision string, actor id.UserID, reason string) error {
	if b.hooks == nil || req == nil {
		return nil
	}
	delivery := hooks.NewDeliveryID()
	body, err := hooks.NewPayload(delivery, req.ID, req.UserID.String(), decision, actor.String(), reason, b.now()).Body()
	if err != nil {
		return err
	}
	return b.store.Enqueue(ctx, store.Outgoing{
		Key: string(store.KindHook) + ":" + delivery, Kind: store.KindHook,
		// One queue per agent: their decisions reach the receiver in order.
		RoomID:    id.RoomID(string(store.KindHook) + ":" + req.UserID.String()),
		RequestID: req.ID, Recipient: req.UserID, Markdown: string(body), CreatedAt: b.now(),
	})
}

// sendHook posts a queued decision hook and records it sent.
func (b *Bot) sendHook(ctx context.Context, m *store.Outgoing) error {
	if b.hooks == nil {
		return errHooksOff
	}
	delivery := strings.TrimPrefix(m.Key, string(store.KindHook)+":")
	if err := b.hooks.Send(ctx, delivery, []byte(m.Markdown)); err != nil {
		return fmt.Errorf("failed to deliver decision hook %s: %w", delivery, err)
	}
	return b.store.MarkSent(ctx, m.Key, "", b.now())
}

// reportHookDown tells the moderators, once a day at most, that the
// decision receiver does not take deliveries (given up, or failing for a
// while).
func (b *Bot) reportHookDown(ctx context.Context, m store.Outgoing, gaveUp bool, cause error) error {
	if b.supportRoom == "" || errors.Is(cause, errHooksOff) {
		return nil
	}
	return b.store.Enqueue(ctx, store.Outgoing{
		Key:  "undelivered:hook:" + b.now().UTC().Format("2006-01-02"),
		Kind: store.KindUndelivered, RoomID: b.supportRoom, RequestID: m.RequestID,
		MsgType: string(event.MsgNotice), Markdown: textHookDown(m.RequestID, gaveUp, permanent(cause)), CreatedAt: b.now(),
	})
}
