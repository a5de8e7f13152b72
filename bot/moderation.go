package bot

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/approvals"
	"guichet/ratelimit"
)

// modCommand is one support-room command: its names and what it does. The
// dispatcher checks the moderator right before any handler runs.
type modCommand struct {
	names []string
	run   func(b *Bot, ctx context.Context, evt *event.Event, cmd command) (string, error)
}

var moderatorCommands = []modCommand{
	{[]string{"approve", "valider"}, (*Bot).cmdApprove},
	{[]string{"reject", "refuser"}, (*Bot).cmdReject},
	{[]string{"revoke", "revoquer", "révoquer"}, (*Bot).cmdRevoke},
	{[]string{"pending", "attente"}, (*Bot).cmdPending},
	{[]string{"info"}, (*Bot).cmdInfo},
	{[]string{"capacity", "capacite", "capacité"}, (*Bot).cmdCapacity},
	{[]string{"surcharge", "overload"}, (*Bot).cmdOverload},
	{[]string{"quota"}, (*Bot).cmdQuotaOverride},
	{[]string{"stats"}, (*Bot).cmdStats},
	{[]string{"help", "aide"}, func(*Bot, context.Context, *event.Event, command) (string, error) {
		return textModeratorHelp, nil
	}},
}

func findModCommand(name string) *modCommand {
	for i, c := range moderatorCommands {
		for _, n := range c.names {
			if n == name {
				return &moderatorCommands[i]
			}
		}
	}
	return nil
}

func (b *Bot) moderatorCommand(ctx context.Context, evt *event.Event, cmd command) error {
	reply := textUnknownCommand(cmd.Name)
	if c := findModCommand(cmd.Name); c != nil {
		var err error
		if reply, err = c.run(b, ctx, evt, cmd); err != nil {
			return err
		}
		zerolog.Ctx(ctx).Info().Str("command", c.names[0]).Msg("Moderator command")
	}
	return b.replyRoom(ctx, evt, "cmd", reply)
}

// resolveTarget turns a target into a user id, or says why it cannot.
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

// accountExists asks the homeserver whether user exists, so that a typo is
// not pre-approved. Other errors (another homeserver unreachable) count as
// existing: the moderator knows better than a network failure.
func (b *Bot) accountExists(ctx context.Context, user id.UserID) bool {
	_, err := b.client.GetProfile(ctx, user)
	return !errors.Is(err, mautrix.MNotFound)
}

// parseTargets reads the targets of a command and the text after them.
func parseTargets(cmd command, max int) ([]target, string, string) {
	targets, bad, rest := splitTargets(cmd.Args)
	switch {
	case len(bad) > 0:
		return nil, "", textBadTargets(bad)
	case len(targets) == 0 || len(targets) > max:
		return nil, "", textNoTarget(cmd.Name)
	}
	return targets, rest, ""
}

func (b *Bot) cmdApprove(ctx context.Context, evt *event.Event, cmd command) (string, error) {
	targets, note, problem := parseTargets(cmd, 50)
	if problem != "" {
		return problem, nil
	}
	var lines []string
	for _, t := range targets {
		line, err := b.approve(ctx, evt.Sender, t, note)
		if err != nil {
			return "", err
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n\n"), nil
}

// approve applies one approval and queues what the agent must be told.
func (b *Bot) approve(ctx context.Context, actor id.UserID, t target, note string) (string, error) {
	user, why, err := b.resolveTarget(ctx, t)
	if err != nil || why != "" {
		return why, err
	}
	before, err := b.approvals.Status(ctx, user, b.cfg.PolicyVersion)
	if err != nil {
		return "", err
	}
	if before.Request == nil && !b.accountExists(ctx, user) {
		return textUnknownUser(user), nil
	}
	req, err := b.approvals.Approve(ctx, actor, user, note)
	var decided *approvals.DecidedError
	if errors.As(err, &decided) {
		return textAlreadyDecided(decided.Request, b.now()), nil
	} else if err != nil {
		return "", err
	}
	if req.Status == approvals.StatusWaitlisted {
		limit, used, err := b.approvals.Capacity(ctx)
		if err != nil {
			return "", err
		}
		if err := b.notifyAgent(ctx, fmt.Sprintf("waitlisted:%d", req.ID), req, textWaitlistedNotice(user)); err != nil {
			return "", err
		}
		return textApprovedWaitlisted(user, req, limit, used), nil
	}
	pre := before.Request == nil || !before.Request.Status.Open()
	return textApproved(user, req, pre), b.sendWelcome(ctx, req)
}

func (b *Bot) cmdReject(ctx context.Context, evt *event.Event, cmd command) (string, error) {
	targets, reason, problem := parseTargets(cmd, 1)
	if problem != "" {
		return problem, nil
	}
	return b.reject(ctx, evt.Sender, targets[0], reason)
}

func (b *Bot) reject(ctx context.Context, actor id.UserID, t target, reason string) (string, error) {
	user, why, err := b.resolveTarget(ctx, t)
	if err != nil || why != "" {
		return why, err
	}
	req, err := b.approvals.Reject(ctx, actor, user, reason)
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

func (b *Bot) cmdRevoke(ctx context.Context, evt *event.Event, cmd command) (string, error) {
	targets, reason, problem := parseTargets(cmd, 1)
	if problem != "" {
		return problem, nil
	}
	user, why, err := b.resolveTarget(ctx, targets[0])
	if err != nil || why != "" {
		return why, err
	}
	req, promoted, err := b.approvals.Revoke(ctx, evt.Sender, user, reason)
	var decided *approvals.DecidedError
	if errors.Is(err, approvals.ErrNotFound) {
		return textNoRequest(user), nil
	} else if errors.As(err, &decided) {
		return textNotGranted(decided.Request), nil
	} else if err != nil {
		return "", err
	}
	if err := b.notifyAgent(ctx, fmt.Sprintf("revoked:%d", req.ID), req, textRevokedNotice(user, reason)); err != nil {
		return "", err
	}
	return textRevoked(user, req) + b.welcomePromoted(ctx, promoted), nil
}

// welcomePromoted queues the welcome of agents who left the waitlist and
// returns a line for the moderators.
func (b *Bot) welcomePromoted(ctx context.Context, promoted []*approvals.Request) string {
	if len(promoted) == 0 {
		return ""
	}
	users := make([]string, len(promoted))
	for i, req := range promoted {
		users[i] = req.UserID.String()
		if err := b.sendWelcome(ctx, req); err != nil {
			zerolog.Ctx(ctx).Err(err).Msg("Failed to queue welcome")
		}
	}
	return "\n\n" + textPromoted(users)
}

func (b *Bot) cmdPending(ctx context.Context, _ *event.Event, _ command) (string, error) {
	reqs, total, err := b.store.PendingPage(ctx, time.Time{}, maxListed)
	return textPendingList(reqs, total, b.now()), err
}

func (b *Bot) cmdInfo(ctx context.Context, _ *event.Event, cmd command) (string, error) {
	targets, _, problem := parseTargets(cmd, 1)
	if problem != "" {
		return problem, nil
	}
	t := targets[0]
	user := t.User
	if t.RequestID != 0 {
		req, err := b.store.RequestByID(ctx, t.RequestID)
		if errors.Is(err, approvals.ErrNotFound) {
			return textUnknownRequest(t.RequestID), nil
		} else if err != nil {
			return "", err
		}
		user = req.UserID
	}
	standing, err := b.approvals.Status(ctx, user, b.cfg.PolicyVersion)
	if err != nil {
		return "", err
	}
	audit, err := b.store.Audit(ctx, user)
	if err != nil {
		return "", err
	}
	usage, err := b.store.UsageSince(ctx, user, time.Time{})
	if err != nil {
		return "", err
	}
	return textInfo(user, standing, audit, usage, b.loc), nil
}

func (b *Bot) cmdCapacity(ctx context.Context, evt *event.Event, cmd command) (string, error) {
	if len(cmd.Args) == 0 {
		limit, used, err := b.approvals.Capacity(ctx)
		if err != nil {
			return "", err
		}
		counts, err := b.store.CountByStatus(ctx)
		if err != nil {
			return "", err
		}
		over, err := b.approvals.Overloaded(ctx)
		return textCapacity(limit, used, counts[approvals.StatusWaitlisted], over), err
	}
	limit, err := strconv.Atoi(cmd.Args[0])
	if err != nil || limit < 0 || len(cmd.Args) > 1 {
		return textCapacityUsage, nil
	}
	promoted, err := b.approvals.SetCapacity(ctx, evt.Sender, limit)
	if err != nil {
		return "", err
	}
	_, used, err := b.approvals.Capacity(ctx)
	return textCapacitySet(limit, used) + b.welcomePromoted(ctx, promoted), err
}

// Reaction keys that decide on a request, without emoji variation selectors.
const (
	reactApprove = "✅"
	reactReject  = "❌"
)

// supportReaction lets a moderator approve (✅) or reject (❌) a request by
// reacting to guichet's acknowledgement of it.
func (b *Bot) supportReaction(ctx context.Context, evt *event.Event, content *event.ReactionEventContent) error {
	key := strings.TrimRight(content.RelatesTo.Key, "\ufe0f")
	if key != reactApprove && key != reactReject {
		return nil
	}
	ackEvent := content.RelatesTo.EventID
	outKey, ok, err := b.store.OutgoingKeyForEvent(ctx, ackEvent)
	if err != nil || !ok || !strings.HasPrefix(outKey, "ack:") {
		return err
	}
	req, err := b.store.RequestByEvent(ctx, id.EventID(strings.TrimPrefix(outKey, "ack:")))
	if errors.Is(err, approvals.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	reply := func(text string, mention ...id.UserID) error {
		return b.store.Enqueue(ctx, outgoingNotice("reaction:"+evt.ID.String(), b.supportRoom, ackEvent, text, b.now(), mention...))
	}
	if !b.isModerator(ctx, evt.Sender) {
		if err := b.approvals.Refused(ctx, evt.Sender, "reaction "+key); err != nil {
			return err
		}
		return reply(textNotModeratorReaction(evt.Sender), evt.Sender)
	}
	var line string
	if key == reactApprove {
		line, err = b.approve(ctx, evt.Sender, target{RequestID: req.ID}, "")
	} else {
		line, err = b.reject(ctx, evt.Sender, target{RequestID: req.ID}, "")
	}
	if err != nil {
		return err
	}
	zerolog.Ctx(ctx).Info().Str("reaction", key).Int64("request_id", req.ID).Msg("Moderator reaction")
	return reply(line)
}

func (b *Bot) cmdOverload(ctx context.Context, evt *event.Event, cmd command) (string, error) {
	if len(cmd.Args) == 0 {
		over, err := b.approvals.Overloaded(ctx)
		return textOverloadState(over), err
	}
	var on bool
	switch strings.ToLower(cmd.Args[0]) {
	case "on", "oui":
		on = true
	case "off", "non":
	default:
		return textOverloadUsage, nil
	}
	promoted, err := b.approvals.SetOverload(ctx, evt.Sender, on)
	if err != nil {
		return "", err
	}
	return textOverloadSet(on, b.cfg.OverloadFactor) + b.welcomePromoted(ctx, promoted), nil
}

func (b *Bot) cmdQuotaOverride(ctx context.Context, _ *event.Event, cmd command) (string, error) {
	targets, spec, problem := parseTargets(cmd, 1)
	if problem != "" {
		return problem, nil
	}
	user, why, err := b.resolveTarget(ctx, targets[0])
	if err != nil || why != "" {
		return why, err
	}
	if spec != "" {
		lim, err := ratelimit.ParseOverride(spec)
		if err != nil {
			return textQuotaUsage, nil
		}
		if err := b.limiter.SetOverride(ctx, user, lim); err != nil {
			return "", err
		}
	}
	over, err := b.approvals.Overloaded(ctx)
	if err != nil {
		return "", err
	}
	q, err := b.limiter.Quota(ctx, user, over)
	if err != nil {
		return "", err
	}
	return textQuotaOf(user, q, b.loc), nil
}

func (b *Bot) cmdStats(ctx context.Context, _ *event.Event, _ command) (string, error) {
	now := b.now().In(b.loc)
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, b.loc)
	st, err := b.store.StatsSince(ctx, midnight)
	if err != nil {
		return "", err
	}
	over, err := b.approvals.Overloaded(ctx)
	if err != nil {
		return "", err
	}
	limit, used, err := b.approvals.Capacity(ctx)
	if err != nil {
		return "", err
	}
	return textStats(st, b.gate.Stats(), b.breaker.State(), over, limit, used), nil
}
