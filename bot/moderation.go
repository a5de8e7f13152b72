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

	"guichet/albert"
	"guichet/approvals"
	"guichet/hooks"
	"guichet/ratelimit"
	"guichet/store"
)

// moderatorCommands are the support room's commands; every one of them is
// for the room's moderators only (the dispatcher checks it).
var moderatorCommands = commandTable{
	{names: []string{"approve", "valider"}, args: "@agent|#N [@autre …] [note]", maxTargets: 50, run: (*Bot).cmdApprove,
		help: "valide une ou plusieurs demandes en attente ; `@agent` pré-valide aussi quelqu'un qui n'a rien demandé"},
	{names: []string{"reject", "refuser"}, args: "@agent|#N [motif]", maxTargets: 1, run: (*Bot).cmdReject,
		help: "refuse la demande en attente ; le motif est transmis à l'agent"},
	{names: []string{"revoke", "revoquer", "révoquer"}, args: "@agent|#N [motif]", maxTargets: 1, run: (*Bot).cmdRevoke,
		help: "retire l'accès ; le motif est transmis à l'agent"},
	{names: []string{"reverse", "annuler"}, args: "@agent|#N [note]", maxTargets: 1, run: (*Bot).cmdReverse,
		help: "revient sur un refus ou une révocation : l'accès est validé (décision tracée)"},
	{names: []string{"pending", "attente"}, run: (*Bot).cmdPending,
		help: "demandes en attente, de la plus ancienne à la plus récente"},
	{names: []string{"info"}, args: "@agent|#N", maxTargets: 1, run: (*Bot).cmdInfo,
		help: "statut, historique et usage d'un agent"},
	{names: []string{"capacity", "capacite", "capacité"}, args: "[partenaire] [N]", run: (*Bot).cmdCapacity,
		help: "affiche ou fixe le nombre maximal d'agents actifs (0 : sans limite), du profil par défaut ou d'un partenaire"},
	{names: []string{"surcharge", "overload"}, args: "on|off", run: (*Bot).cmdOverload,
		help: "mode surcharge : limites réduites, nouvelles validations en liste d'attente"},
	{names: []string{"quota"}, args: "@agent [limites]", maxTargets: 1, run: (*Bot).cmdQuotaOverride,
		help: "limites et usage d'un agent ; `500/jour`, `200000 tokens`, `10/min` ou `défaut` pour les changer"},
	{names: []string{"stats"}, args: "[partenaire]", run: (*Bot).cmdStats,
		help: "chiffres du jour : agents, questions, tokens, erreurs, file, temps de réponse (d'un partenaire avec son id)"},
	{names: []string{"partenaires", "partners"}, run: (*Bot).cmdPartners,
		help: "les administrations partenaires : agents, questions, tokens et coût du jour et du mois, budget, état"},
	{names: []string{"help", "aide"}, help: "cette aide"},
}

// ref turns a target into what a decision is about. A request number
// designates that request; a user id their latest request. why is the answer
// to give instead when the target cannot be decided on.
func (b *Bot) ref(ctx context.Context, t target) (ref approvals.Ref, user id.UserID, why string, err error) {
	if t.RequestID != 0 {
		req, err := b.store.RequestByID(ctx, t.RequestID)
		if errors.Is(err, approvals.ErrNotFound) {
			return ref, "", textUnknownRequest(t.RequestID), nil
		} else if err != nil {
			return ref, "", "", err
		}
		return approvals.Number(t.RequestID), req.UserID, "", nil
	}
	switch {
	case t.User == b.client.UserID:
		return ref, "", textIsBot(), nil
	case b.isModerator(ctx, t.User):
		return ref, "", textIsModerator(t.User), nil
	}
	return approvals.User(t.User), t.User, "", nil
}

// resolveTarget turns a target into a user id, or says why it cannot.
func (b *Bot) resolveTarget(ctx context.Context, t target) (id.UserID, string, error) {
	_, user, why, err := b.ref(ctx, t)
	return user, why, err
}

// accountExists asks the homeserver whether user exists, so that a typo is
// not pre-approved. Other errors (another homeserver unreachable) count as
// existing: the moderator knows better than a network failure.
func (b *Bot) accountExists(ctx context.Context, user id.UserID) bool {
	_, err := b.client.GetProfile(ctx, user)
	return !errors.Is(err, mautrix.MNotFound)
}

func (b *Bot) cmdApprove(ctx context.Context, inv *invocation) (string, error) {
	var lines []string
	for _, t := range inv.targets {
		line, err := b.approve(ctx, inv.evt.Sender, t, inv.rest)
		if err != nil {
			return "", err
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n\n"), nil
}

// approve applies one approval and queues what the agent must be told.
func (b *Bot) approve(ctx context.Context, actor id.UserID, t target, note string) (string, error) {
	ref, user, why, err := b.ref(ctx, t)
	if err != nil || why != "" {
		return why, err
	}
	pre := false
	if ref.Request == 0 {
		before, err := b.approvals.Status(ctx, user, b.cfg.PolicyVersion)
		if err != nil {
			return "", err
		}
		if pre = before.Request == nil; pre && !b.accountExists(ctx, user) {
			return textUnknownUser(user), nil
		}
	}
	req, err := b.approvals.Approve(ctx, actor, ref, note)
	var decided *approvals.DecidedError
	if errors.As(err, &decided) {
		return textAlreadyDecided(decided.Request, b.now()) + textReverseHint(decided.Request), nil
	} else if err != nil {
		return "", err
	}
	b.metrics.Decision(grantDecision(req, decisionApproved))
	if err := b.hookDecision(ctx, req, grantHook(req, hooks.Approved), actor, note); err != nil {
		return "", err
	}
	return b.granted(ctx, req, textApproved(user, req, pre))
}

// granted tells the agent whose request was just approved (or waitlisted)
// and returns the moderators' line (ok, for an approval).
func (b *Bot) granted(ctx context.Context, req *approvals.Request, ok string) (string, error) {
	if req.Status == approvals.StatusWaitlisted {
		limit, used, err := b.approvals.Capacity(ctx)
		if err != nil {
			return "", err
		}
		if err := b.notifyAgent(ctx, fmt.Sprintf("waitlisted:%d", req.ID), req, textWaitlistedNotice(req.UserID)); err != nil {
			return "", err
		}
		return textApprovedWaitlisted(req.UserID, req, limit, used), nil
	}
	return ok, b.sendWelcome(ctx, req)
}

func (b *Bot) cmdReject(ctx context.Context, inv *invocation) (string, error) {
	return b.reject(ctx, inv.evt.Sender, inv.targets[0], inv.rest)
}

func (b *Bot) reject(ctx context.Context, actor id.UserID, t target, reason string) (string, error) {
	ref, user, why, err := b.ref(ctx, t)
	if err != nil || why != "" {
		return why, err
	}
	req, err := b.approvals.Reject(ctx, actor, ref, reason)
	var decided *approvals.DecidedError
	if errors.Is(err, approvals.ErrNotFound) {
		return textNoRequest(user), nil
	} else if errors.As(err, &decided) {
		return textAlreadyDecided(decided.Request, b.now()) + textReverseHint(decided.Request), nil
	} else if err != nil {
		return "", err
	}
	b.metrics.Decision(decisionRejected)
	if err := b.hookDecision(ctx, req, hooks.Rejected, actor, reason); err != nil {
		return "", err
	}
	if err := b.notifyAgent(ctx, fmt.Sprintf("rejected:%d", req.ID), req, textRejectedNotice(user, reason)); err != nil {
		return "", err
	}
	return textRejected(user, req), nil
}

func (b *Bot) cmdRevoke(ctx context.Context, inv *invocation) (string, error) {
	ref, user, why, err := b.ref(ctx, inv.targets[0])
	if err != nil || why != "" {
		return why, err
	}
	reason := inv.rest
	req, promoted, err := b.approvals.Revoke(ctx, inv.evt.Sender, ref, reason)
	var decided *approvals.DecidedError
	if errors.Is(err, approvals.ErrNotFound) {
		return textNoRequest(user), nil
	} else if errors.As(err, &decided) {
		return textNotGranted(decided.Request) + textReverseHint(decided.Request), nil
	} else if err != nil {
		return "", err
	}
	b.metrics.Decision(decisionRevoked)
	if err := b.hookDecision(ctx, req, hooks.Revoked, inv.evt.Sender, reason); err != nil {
		return "", err
	}
	if err := b.notifyAgent(ctx, fmt.Sprintf("revoked:%d", req.ID), req, textRevokedNotice(user, reason)); err != nil {
		return "", err
	}
	line, err := b.welcomePromoted(ctx, inv.evt.Sender, promoted)
	return textRevoked(user, req) + line, err
}

// cmdReverse undoes a rejection or a revocation: the one explicit way back,
// audited as a reversal.
func (b *Bot) cmdReverse(ctx context.Context, inv *invocation) (string, error) {
	ref, user, why, err := b.ref(ctx, inv.targets[0])
	if err != nil || why != "" {
		return why, err
	}
	req, err := b.approvals.Reverse(ctx, inv.evt.Sender, ref, inv.rest)
	var decided *approvals.DecidedError
	switch {
	case errors.Is(err, approvals.ErrNotFound):
		return textNoRequest(user), nil
	case errors.As(err, &decided):
		return textNothingToReverse(decided.Request), nil
	case errors.Is(err, approvals.ErrNotLatest):
		return textNotLatest(ref.Request, user), nil
	case err != nil:
		return "", err
	}
	b.metrics.Decision(grantDecision(req, decisionReversed))
	if err := b.hookDecision(ctx, req, hooks.Reversed, inv.evt.Sender, inv.rest); err != nil {
		return "", err
	}
	return b.granted(ctx, req, textReversed(req))
}

// welcomePromoted queues the welcome (and the decision hook) of agents who
// left the waitlist because of actor, and returns a line for the moderators.
func (b *Bot) welcomePromoted(ctx context.Context, actor id.UserID, promoted []*approvals.Request) (string, error) {
	if len(promoted) == 0 {
		return "", nil
	}
	users := make([]string, len(promoted))
	for i, req := range promoted {
		users[i] = req.UserID.String()
		b.metrics.Decision(decisionPromoted)
		if err := b.hookDecision(ctx, req, hooks.Promoted, actor, ""); err != nil {
			return "", err
		}
		if err := b.sendWelcome(ctx, req); err != nil {
			zerolog.Ctx(ctx).Err(err).Msg("Failed to queue welcome")
		}
	}
	return "\n\n" + textPromoted(users), nil
}

// grantHook is the hook decision of a grant: waitlisted when no place was free.
func grantHook(req *approvals.Request, decision string) string {
	if req.Status == approvals.StatusWaitlisted {
		return hooks.Waitlisted
	}
	return decision
}

func (b *Bot) cmdPending(ctx context.Context, _ *invocation) (string, error) {
	reqs, total, err := b.store.PendingPage(ctx, time.Time{}, maxListed)
	return textPendingList(reqs, total, b.now()), err
}

func (b *Bot) cmdInfo(ctx context.Context, inv *invocation) (string, error) {
	t := inv.targets[0]
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
	text := textInfo(user, standing, audit, usage, b.loc)
	if pr := b.profileOf(user); pr.partner() {
		text += "\n" + textInfoPartner(pr.name, pr.id)
	}
	return text, nil
}

func (b *Bot) cmdCapacity(ctx context.Context, inv *invocation) (string, error) {
	evt, args := inv.evt, inv.cmd.Args
	pr := b.defaultProfile()
	if len(args) > 0 {
		if p := b.partnerArg(args[0]); p != nil {
			pr, args = p, args[1:]
		} else if _, err := strconv.Atoi(args[0]); err != nil {
			return textUnknownPartner(args[0], b.partnerIDs()), nil
		}
	}
	if len(args) == 0 {
		limit, used, err := b.approvals.CapacityOf(ctx, pr.id)
		if err != nil {
			return "", err
		}
		counts, err := b.store.CountByPartner(ctx)
		if err != nil {
			return "", err
		}
		over, err := b.approvals.Overloaded(ctx)
		return textCapacity(pr.name, pr.partner(), limit, used, counts[pr.id][approvals.StatusWaitlisted], over), err
	}
	// "1 000", as French writes thousands, arrives as two words.
	limit, err := strconv.Atoi(strings.Join(args, ""))
	if err != nil || limit < 0 {
		return textCapacityUsage, nil
	}
	promoted, err := b.approvals.SetCapacityOf(ctx, evt.Sender, pr.id, limit)
	if err != nil {
		return "", err
	}
	line, err := b.welcomePromoted(ctx, evt.Sender, promoted)
	if err != nil {
		return "", err
	}
	_, used, err := b.approvals.CapacityOf(ctx, pr.id)
	return textCapacitySet(pr.name, pr.partner(), limit, used) + line, err
}

// partnerArg is the partner profile a command argument names (by id, any
// case), or nil.
func (b *Bot) partnerArg(arg string) *profile {
	arg = strings.ToLower(strings.Trim(arg, " .,;:!«»\"'`"))
	for _, p := range b.partnerProfiles() {
		if p.id == arg {
			return p
		}
	}
	return nil
}

// partnerIDs are the partners' ids, in configuration order.
func (b *Bot) partnerIDs() []string {
	var ids []string
	for _, p := range b.partnerProfiles() {
		ids = append(ids, p.id)
	}
	return ids
}

// Reaction keys that decide on a request, without emoji variation selectors.
const (
	reactApprove = "✅"
	reactReject  = "❌"
)

// reactionCommands are the reactions that stand for a command on the request
// guichet acknowledged.
var reactionCommands = map[string]string{reactApprove: "approve", reactReject: "reject"}

// supportReaction routes a ✅ or ❌ on guichet's acknowledgement of a request
// through the dispatcher as `!approve #N` or `!reject #N`: the reaction
// designates that request and no other.
func (b *Bot) supportReaction(ctx context.Context, evt *event.Event, content *event.ReactionEventContent) error {
	key := strings.TrimRight(content.RelatesTo.Key, "\ufe0f")
	name, ok := reactionCommands[key]
	if !ok {
		return nil
	}
	target := content.RelatesTo.EventID
	req, err := b.requestOfEvent(ctx, target, false)
	if err != nil || req == nil {
		return err
	}
	zerolog.Ctx(ctx).Info().Str("reaction", key).Int64("request_id", req.ID).Msg("Reaction on a request")
	number := "#" + strconv.FormatInt(req.ID, 10)
	return b.dispatchSupport(ctx, evt, command{Name: name, Args: []string{number}, Raw: number}, target)
}

// requestOfEvent returns the request a support-room event stands for: the
// agent's message that opened it, guichet's acknowledgement of it, or, with
// followUps, a later message of the same agent (their latest request then);
// nil for any other event. Reactions do not read follow-ups: a ✅ on an
// agent's feedback is a moderator's thanks, not a decision.
func (b *Bot) requestOfEvent(ctx context.Context, evt id.EventID, followUps bool) (*approvals.Request, error) {
	announcement := evt
	if sent, err := b.store.OutgoingByEvent(ctx, evt); err != nil {
		return nil, err
	} else if sent != nil {
		if sent.Kind != store.KindAck {
			return nil, nil
		}
		announcement = sent.Regarding
	}
	req, err := b.store.RequestByEvent(ctx, announcement)
	if !errors.Is(err, approvals.ErrNotFound) {
		return req, err
	} else if !followUps {
		return nil, nil
	}
	sender, err := b.store.SenderOf(ctx, evt)
	if err != nil || sender == "" || b.isModerator(ctx, sender) || sender == b.client.UserID {
		return nil, err
	}
	standing, err := b.approvals.Status(ctx, sender, b.cfg.PolicyVersion)
	return standing.Request, err
}

func (b *Bot) cmdOverload(ctx context.Context, inv *invocation) (string, error) {
	evt, cmd := inv.evt, inv.cmd
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
	line, err := b.welcomePromoted(ctx, evt.Sender, promoted)
	return textOverloadSet(on, b.cfg.OverloadFactor) + line, err
}

func (b *Bot) cmdQuotaOverride(ctx context.Context, inv *invocation) (string, error) {
	user, why, err := b.resolveTarget(ctx, inv.targets[0])
	if err != nil || why != "" {
		return why, err
	}
	if spec := inv.rest; spec != "" {
		lim, err := ratelimit.ParseOverride(spec)
		if err != nil {
			return textQuotaUsage, nil
		}
		if err := b.profileOf(user).limiter.SetOverride(ctx, user, lim); err != nil {
			return "", err
		}
		if err := b.approvals.QuotaChanged(ctx, inv.evt.Sender, user, spec); err != nil {
			return "", err
		}
	}
	over, err := b.approvals.Overloaded(ctx)
	if err != nil {
		return "", err
	}
	q, err := b.profileOf(user).limiter.Quota(ctx, user, over)
	if err != nil {
		return "", err
	}
	return textQuotaOf(user, q, b.loc), nil
}

// cmdStats shows today's figures: of every profile, with the default
// profile's queue, breaker and pause (and a line per partner in trouble);
// of one partner with its id.
func (b *Bot) cmdStats(ctx context.Context, inv *invocation) (string, error) {
	pr, scope := b.defaultProfile(), store.AllPartners
	if len(inv.cmd.Args) > 0 {
		if pr = b.partnerArg(inv.cmd.Args[0]); pr == nil {
			return textUnknownPartner(inv.cmd.Args[0], b.partnerIDs()), nil
		}
		scope = pr.id
	}
	st, err := b.store.StatsSince(ctx, b.midnight(), scope)
	if err != nil {
		return "", err
	}
	over, err := b.approvals.Overloaded(ctx)
	if err != nil {
		return "", err
	}
	limit, used, err := b.approvals.CapacityOf(ctx, pr.id)
	if err != nil {
		return "", err
	}
	text := textStats(st, pr.gate.Stats(), pr.breaker.State(), over, limit, used)
	if pr.partner() {
		text = textStatsOf(pr.name) + "\n\n" + text
	}
	if reason, until, paused := pr.pause.Paused(); paused {
		text += "\n" + textStatsPaused(albert.Class(reason), until, b.now(), b.loc)
	}
	if !pr.partner() {
		for _, p := range b.partnerProfiles() {
			if line := b.partnerTrouble(p); line != "" {
				text += "\n" + line
			}
		}
	}
	return text, nil
}

// midnight is the start of today in the limits' time zone.
func (b *Bot) midnight() time.Time {
	now := b.now().In(b.loc)
	return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, b.loc)
}

// partnerState is what holds a profile's questions back, if anything.
func (b *Bot) partnerState(p *profile) partnerState {
	st := partnerState{breaker: p.breaker.State() != ratelimit.BreakerClosed}
	if reason, until, paused := p.pause.Paused(); paused {
		st.paused, st.reason, st.until = true, albert.Class(reason), until
	}
	return st
}

// partnerTrouble is one line naming a partner whose key is paused or
// whose breaker is open ("" when neither).
func (b *Bot) partnerTrouble(p *profile) string {
	st := b.partnerState(p)
	if !st.paused && !st.breaker {
		return ""
	}
	return textPartnerTrouble(p.name, p.id, st, b.now(), b.loc)
}

// cmdPartners lists the partners: agents active and waiting, questions,
// tokens and cost today and this month, budget left, state.
func (b *Bot) cmdPartners(ctx context.Context, _ *invocation) (string, error) {
	if len(b.partnerProfiles()) == 0 {
		return textNoPartners, nil
	}
	counts, err := b.store.CountByPartner(ctx)
	if err != nil {
		return "", err
	}
	today := b.midnight()
	month := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, b.loc)
	var rows []partnerRow
	for _, p := range b.partnerProfiles() {
		day, err := b.store.StatsSince(ctx, today, p.id)
		if err != nil {
			return "", err
		}
		mon, err := b.store.StatsSince(ctx, month, p.id)
		if err != nil {
			return "", err
		}
		limit, _, err := b.approvals.CapacityOf(ctx, p.id)
		if err != nil {
			return "", err
		}
		row := partnerRow{id: p.id, name: p.name, counts: counts[p.id], limit: limit, today: day, month: mon, state: b.partnerState(p)}
		if acc := p.lastAccount(); acc != nil {
			row.budget, row.budgetKnown, row.expires = acc.Budget, true, acc.Expires
		}
		rows = append(rows, row)
	}
	return textPartners(rows, b.now(), b.loc), nil
}
