package bot

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/approvals"
	"guichet/hooks"
	"guichet/store"
)

// handleSupport acts on one support-room event in a single transaction:
// the inbox row, the decision, its audit row and the replies it queues commit
// together or not at all, so a crash replays the event cleanly.
func (b *Bot) handleSupport(ctx context.Context, item store.InboxItem, evt *event.Event) {
	log := zerolog.Ctx(ctx).With().Stringer("event_id", evt.ID).Stringer("sender", evt.Sender).Logger()
	ctx = log.WithContext(ctx)
	err := b.store.InTx(ctx, func(ctx context.Context) error {
		fresh, err := b.store.AddInbox(ctx, item)
		if err != nil || !fresh {
			return err
		}
		switch content := evt.Content.Parsed.(type) {
		case *event.MessageEventContent:
			err = b.supportMessage(ctx, evt, content)
		case *event.ReactionEventContent:
			err = b.supportReaction(ctx, evt, content)
		}
		if err != nil {
			return err
		}
		return b.store.MarkDone(ctx, evt.ID, b.now())
	})
	if err != nil {
		log.Err(err).Msg("Failed to handle support room event")
		return
	}
	b.nudge()
}

func (b *Bot) supportMessage(ctx context.Context, evt *event.Event, content *event.MessageEventContent) error {
	if content.MsgType == event.MsgNotice || content.RelatesTo.GetReplaceID() != "" {
		return nil
	}
	text := messageText(ctx, content)
	if cmd, ok := parseCommand(text); ok {
		return b.dispatchSupport(ctx, evt, cmd, evt.ID)
	}
	if text == "" && (content.MsgType == event.MsgText || content.MsgType == event.MsgEmote) {
		return nil // nothing visible: not a request
	}
	if b.isModerator(ctx, evt.Sender) {
		return nil
	}
	req, result, err := b.approvals.Announce(ctx, evt.Sender, evt.RoomID, evt.ID)
	if err != nil {
		return err
	}
	zerolog.Ctx(ctx).Info().Int64("request_id", req.ID).Int("result", int(result)).Msg("Agent announced")
	switch result {
	case approvals.Created:
		return b.replyRoom(ctx, evt, "ack", textAcknowledged(evt.Sender, req), evt.Sender)
	case approvals.AutoApproved:
		b.metrics.Decision(grantDecision(req, decisionAutoApproved))
		if err := b.hookDecision(ctx, req, grantHook(req, hooks.AutoApproved), "", ""); err != nil {
			return err
		}
		if req.Status == approvals.StatusWaitlisted {
			return b.replyRoom(ctx, evt, "ack", textAutoWaitlisted(evt.Sender, req), evt.Sender)
		}
		if err := b.replyRoom(ctx, evt, "ack", textAutoApproved(evt.Sender, req), evt.Sender); err != nil {
			return err
		}
		return b.sendWelcome(ctx, req)
	case approvals.Denied:
		b.metrics.Decision(decisionDenied)
		if err := b.hookDecision(ctx, req, hooks.Denied, "", ""); err != nil {
			return err
		}
		return b.replyRoom(ctx, evt, "ack", textDenied(evt.Sender), evt.Sender)
	}
	return nil
}

// replyRoom queues a notice of the given kind replying to evt; only mention
// is pinged.
func (b *Bot) replyRoom(ctx context.Context, evt *event.Event, kind store.Kind, markdown string, mention ...id.UserID) error {
	msg := outgoingNotice(string(kind)+":"+evt.ID.String(), evt.RoomID, evt.ID, markdown, b.now(), mention...)
	msg.Kind, msg.Regarding = kind, evt.ID
	return b.store.Enqueue(ctx, msg)
}

// outgoingNotice is a notice to a room. Its kind is the key's prefix unless
// the caller sets Kind (and Regarding, RequestID, Recipient) on the result.
func outgoingNotice(key string, room id.RoomID, replyTo id.EventID, markdown string, at time.Time, mention ...id.UserID) store.Outgoing {
	return store.Outgoing{
		Key: key, Kind: store.KindOfKey(key), RoomID: room, ReplyTo: replyTo,
		MsgType: string(event.MsgNotice), Markdown: markdown, Mentions: mention, CreatedAt: at,
	}
}

func (b *Bot) sendWelcome(ctx context.Context, req *approvals.Request) error {
	return b.store.Enqueue(ctx, store.Outgoing{
		Key: fmt.Sprintf("%s:%d", store.KindWelcome, req.ID), Kind: store.KindWelcome, RequestID: req.ID,
		DMUser: req.UserID, Recipient: req.UserID,
		MsgType: string(event.MsgText), Markdown: textWelcome(b.cfg.PolicyURL, b.cfg.PolicyVersion), CreatedAt: b.now(),
	})
}

// notifyAgent tells an agent about a decision: in their DM if there is one
// or was (a revocation; a new DM if theirs is dead by then), otherwise in the
// support room as a reply to their request. The key's prefix is the decision's kind.
func (b *Bot) notifyAgent(ctx context.Context, key string, req *approvals.Request, markdown string) error {
	dm, err := b.store.DMRoom(ctx, req.UserID)
	if err != nil {
		return err
	}
	msg := store.Outgoing{
		Key: key, Kind: store.KindOfKey(key), RequestID: req.ID, Recipient: req.UserID, Regarding: req.EventID,
		MsgType: string(event.MsgNotice), Markdown: markdown, Mentions: []id.UserID{req.UserID}, CreatedAt: b.now(),
	}
	// Someone whose access ends had a DM with guichet: they are told in
	// private (a new DM if theirs is gone), not in the shared room.
	if dm != "" || req.Status == approvals.StatusRevoked {
		msg.DMUser = req.UserID
	} else {
		msg.RoomID, msg.ReplyTo = b.supportRoom, req.EventID
	}
	return b.store.Enqueue(ctx, msg)
}
