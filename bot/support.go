package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/approvals"
	"guichet/store"
)

// handleSupport acts on one support-room message in a single transaction:
// the inbox row, the decision, its audit row and the replies it queues commit
// together or not at all, so a crash replays the message cleanly.
func (b *Bot) handleSupport(ctx context.Context, item store.InboxItem, evt *event.Event) {
	content, ok := evt.Content.Parsed.(*event.MessageEventContent)
	if !ok {
		return
	}
	log := zerolog.Ctx(ctx).With().Stringer("event_id", evt.ID).Stringer("sender", evt.Sender).Logger()
	ctx = log.WithContext(ctx)
	err := b.store.InTx(ctx, func(ctx context.Context) error {
		fresh, err := b.store.AddInbox(ctx, item)
		if err != nil || !fresh {
			return err
		}
		if err := b.supportMessage(ctx, evt, content); err != nil {
			return err
		}
		return b.store.MarkDone(ctx, evt.ID, b.now())
	})
	if err != nil {
		log.Err(err).Msg("Failed to handle support room message")
		return
	}
	b.nudge()
}

func (b *Bot) supportMessage(ctx context.Context, evt *event.Event, content *event.MessageEventContent) error {
	if content.MsgType == event.MsgNotice || content.RelatesTo.GetReplaceID() != "" {
		return nil
	}
	if cmd, ok := parseCommand(messageText(ctx, content)); ok {
		if !b.isModerator(ctx, evt.Sender) {
			if err := b.approvals.Refused(ctx, evt.Sender, "!"+cmd.Name); err != nil {
				return err
			}
			return b.replyRoom(ctx, evt, "refused", textNotModerator, evt.Sender)
		}
		return b.moderatorCommand(ctx, evt, cmd)
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
		if err := b.replyRoom(ctx, evt, "ack", textAutoApproved(evt.Sender, req), evt.Sender); err != nil {
			return err
		}
		return b.sendWelcome(ctx, req)
	case approvals.Denied:
		return b.replyRoom(ctx, evt, "ack", textDenied(evt.Sender), evt.Sender)
	}
	return nil
}

// replyRoom queues a notice replying to evt; only mention is pinged.
func (b *Bot) replyRoom(ctx context.Context, evt *event.Event, kind, markdown string, mention ...id.UserID) error {
	return b.store.Enqueue(ctx, store.Outgoing{
		Key: kind + ":" + evt.ID.String(), RoomID: evt.RoomID, ReplyTo: evt.ID,
		MsgType: string(event.MsgNotice), Markdown: markdown, Mentions: mention, CreatedAt: b.now(),
	})
}

func (b *Bot) sendWelcome(ctx context.Context, req *approvals.Request) error {
	return b.store.Enqueue(ctx, store.Outgoing{
		Key: fmt.Sprintf("welcome:%d", req.ID), DMUser: req.UserID,
		MsgType: string(event.MsgText), Markdown: textWelcome(b.cfg.PolicyURL, b.cfg.PolicyVersion), CreatedAt: b.now(),
	})
}

func (b *Bot) moderatorCommand(ctx context.Context, evt *event.Event, cmd command) error {
	var reply string
	var err error
	switch cmd.Name {
	case "approve", "valider":
		reply, err = b.cmdApprove(ctx, evt, cmd)
	case "reject", "refuser":
		reply, err = b.cmdReject(ctx, evt, cmd)
	case "pending", "attente":
		var reqs []*approvals.Request
		reqs, err = b.store.PendingRequests(ctx)
		reply = textPendingList(reqs, b.now())
	case "help", "aide":
		reply = textModeratorHelp
	default:
		reply = textUnknownCommand(cmd.Name)
	}
	if err != nil {
		return err
	}
	zerolog.Ctx(ctx).Info().Str("command", cmd.Name).Msg("Moderator command")
	return b.replyRoom(ctx, evt, "cmd", reply)
}

// resolveTarget turns a target into a user id, answering why not otherwise.
func (b *Bot) resolveTarget(ctx context.Context, t target) (id.UserID, string, error) {
	user := t.User
	if t.RequestID != 0 {
		req, err := b.store.RequestByID(ctx, t.RequestID)
		if errors.Is(err, approvals.ErrNotFound) {
			return "", textUnknownRequest(t.RequestID), nil
		} else if err != nil {
			return "", "", err
		}
		user = req.UserID
	}
	switch {
	case user == b.client.UserID:
		return "", textIsBot(), nil
	case b.isModerator(ctx, user):
		return "", textIsModerator(user), nil
	}
	return user, "", nil
}

func (b *Bot) cmdApprove(ctx context.Context, evt *event.Event, cmd command) (string, error) {
	targets, bad, note := splitTargets(cmd.Args)
	if len(bad) > 0 {
		return textBadTargets(bad), nil
	}
	if len(targets) == 0 {
		return textNoTarget(cmd.Name), nil
	}
	var lines []string
	for _, t := range targets {
		user, why, err := b.resolveTarget(ctx, t)
		if err != nil {
			return "", err
		}
		if why != "" {
			lines = append(lines, why)
			continue
		}
		before, err := b.approvals.Status(ctx, user, b.cfg.PolicyVersion)
		if err != nil {
			return "", err
		}
		req, err := b.approvals.Approve(ctx, evt.Sender, user, note)
		var decided *approvals.DecidedError
		if errors.As(err, &decided) {
			lines = append(lines, textAlreadyDecided(decided.Request, b.now()))
			continue
		} else if err != nil {
			return "", err
		}
		pre := before.Request == nil || !before.Request.Status.Open()
		lines = append(lines, textApproved(user, req, pre))
		if err := b.sendWelcome(ctx, req); err != nil {
			return "", err
		}
	}
	return strings.Join(lines, "\n\n"), nil
}

func (b *Bot) cmdReject(ctx context.Context, evt *event.Event, cmd command) (string, error) {
	targets, bad, reason := splitTargets(cmd.Args)
	if len(bad) > 0 {
		return textBadTargets(bad), nil
	}
	if len(targets) != 1 {
		return textNoTarget(cmd.Name), nil
	}
	user, why, err := b.resolveTarget(ctx, targets[0])
	if err != nil || why != "" {
		return why, err
	}
	req, err := b.approvals.Reject(ctx, evt.Sender, user, reason)
	var decided *approvals.DecidedError
	if errors.Is(err, approvals.ErrNotFound) {
		return textNoRequest(user), nil
	} else if errors.As(err, &decided) {
		return textAlreadyDecided(decided.Request, b.now()), nil
	} else if err != nil {
		return "", err
	}
	if err := b.notifyAgent(ctx, fmt.Sprintf("rejected:%d", req.ID), req, textRejectedNotice(user, reason)); err != nil {
		return "", err
	}
	return textRejected(user, req), nil
}

// notifyAgent tells an agent about a decision: in their DM if there is one,
// otherwise in the support room as a reply to their request.
func (b *Bot) notifyAgent(ctx context.Context, key string, req *approvals.Request, markdown string) error {
	dm, err := b.store.DMRoom(ctx, req.UserID)
	if err != nil {
		return err
	}
	msg := store.Outgoing{Key: key, MsgType: string(event.MsgNotice), Markdown: markdown, Mentions: []id.UserID{req.UserID}, CreatedAt: b.now()}
	if dm != "" {
		msg.DMUser = req.UserID
	} else {
		msg.RoomID, msg.ReplyTo = b.supportRoom, req.EventID
	}
	return b.store.Enqueue(ctx, msg)
}
