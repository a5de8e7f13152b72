package bot

import (
	"context"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/store"
)

// A command is one entry of its audience's table: adding a command is adding
// an entry. The dispatcher checks the entry's allowed predicate before its
// handler runs (and audits and bounds the refusals of untrusted senders),
// parses its targets once, and renders the help from the table.

// invocation is one command as its handler sees it.
type invocation struct {
	evt *event.Event
	cmd command
	// targets are the users or request numbers the command is about,
	// parsed once by the dispatcher (only for entries with maxTargets > 0).
	targets []target
	// rest is the text after the targets (a note, a reason, limits).
	rest string
}

// commandSpec is one command of one audience.
type commandSpec struct {
	// names are the command's name, then its aliases; matched after NFC
	// normalisation and lower-casing.
	names []string
	// args is the usage after the name, shown in the help ("" for none).
	args string
	// help is the French help line.
	help string
	// maxTargets > 0 makes the dispatcher parse between 1 and maxTargets
	// leading targets; 0 means the command takes none.
	maxTargets int
	// allowed returns "" when sender may run the command, or the French
	// sentence that tells them why not.
	allowed func(b *Bot, ctx context.Context, sender id.UserID) (refusal string, err error)
	// run does the work and returns the French reply (Markdown); nil
	// renders the audience's help.
	run func(b *Bot, ctx context.Context, inv *invocation) (string, error)
}

func (c *commandSpec) name() string { return c.names[0] }

// commandTable is one audience's commands.
type commandTable []commandSpec

func (t commandTable) find(name string) *commandSpec {
	for i := range t {
		for _, n := range t[i].names {
			if n == name {
				return &t[i]
			}
		}
	}
	return nil
}

// onlyModerators is the predicate of the support room's commands.
func onlyModerators(b *Bot, ctx context.Context, sender id.UserID) (string, error) {
	if b.isModerator(ctx, sender) {
		return "", nil
	}
	return textNotModerator, nil
}

// parseInvocation reads the spec's targets from the command; problem is the
// answer to give instead of running it. A command without a target that
// replies to an agent's request (their message or guichet's
// acknowledgement) is about that request.
func (b *Bot) parseInvocation(ctx context.Context, c *commandSpec, evt *event.Event, cmd command) (inv *invocation, problem string, err error) {
	inv = &invocation{evt: evt, cmd: cmd, rest: cmd.Raw}
	if c.maxTargets == 0 {
		return inv, "", nil
	}
	targets, bad, rest := splitTargets(cmd.Args)
	if len(targets) == 0 && len(bad) == 0 {
		if content, ok := evt.Content.Parsed.(*event.MessageEventContent); ok && content.RelatesTo.GetReplyTo() != "" {
			req, err := b.requestOfEvent(ctx, content.RelatesTo.GetReplyTo(), true)
			if err != nil {
				return nil, "", err
			}
			if req != nil {
				targets = []target{{RequestID: req.ID}}
			}
		}
	}
	switch {
	case len(bad) > 0:
		return nil, textBadTargets(bad), nil
	case len(targets) == 0:
		return nil, textNoTarget(c.name()), nil
	case len(targets) > c.maxTargets:
		return nil, textTooManyTargets(c.name(), c.maxTargets), nil
	}
	inv.targets, inv.rest = targets, rest
	return inv, "", nil
}

// dispatchSupport runs a command typed (or a reaction given) in the support
// room and queues guichet's answer as a reply to replyTo. Everything the
// dispatcher says to someone who may not run the command is bounded per
// person (approvals.RefusalQuiet); every attempt is audited.
func (b *Bot) dispatchSupport(ctx context.Context, evt *event.Event, cmd command, replyTo id.EventID) error {
	spec := moderatorCommands.find(cmd.Name)
	refusal, err := onlyModerators(b, ctx, evt.Sender)
	if err != nil {
		return err
	}
	if spec != nil && refusal == "" && spec.allowed != nil {
		if refusal, err = spec.allowed(b, ctx, evt.Sender); err != nil {
			return err
		}
	}
	reply := func(text string, mention ...id.UserID) error {
		msg := outgoingNotice("cmd:"+evt.ID.String(), evt.RoomID, replyTo, text, b.now(), mention...)
		msg.Kind, msg.Regarding = store.KindCmd, evt.ID
		return b.store.Enqueue(ctx, msg)
	}
	if refusal != "" {
		what, text := "!"+cmd.Name, mention(evt.Sender)+", "+lowerFirst(refusal)
		if evt.Type == event.EventReaction {
			what, text = "reaction "+cmd.Name, textNotModeratorReaction(evt.Sender)
		}
		tell, err := b.approvals.Refused(ctx, evt.Sender, truncateRunes(what, maxEchoed))
		if err != nil || !tell {
			return err
		}
		return reply(text, evt.Sender)
	}
	if spec == nil {
		return reply(textUnknownCommand(cmd.Name))
	}
	inv, problem, err := b.parseInvocation(ctx, spec, evt, cmd)
	if err != nil {
		return err
	} else if problem != "" {
		return reply(problem)
	}
	text := moderatorHelp()
	if spec.run != nil {
		if text, err = spec.run(b, ctx, inv); err != nil {
			return fmt.Errorf("failed to run !%s: %w", spec.name(), err)
		}
	}
	zerolog.Ctx(ctx).Info().Str("command", spec.name()).Msg("Moderator command")
	return reply(text)
}

// dispatchDM runs a command an agent typed in their DM.
func (b *Bot) dispatchDM(ctx context.Context, evt *event.Event, cmd command) (*reply, error) {
	spec := agentCommands.find(cmd.Name)
	if spec == nil {
		if moderatorCommands.find(cmd.Name) != nil {
			return noticeReply(textModeratorCommandInDM), nil
		}
		return noticeReply(textUnknownCommand(cmd.Name) + "\n\n" + agentHelp()), nil
	}
	if spec.allowed != nil {
		refusal, err := spec.allowed(b, ctx, evt.Sender)
		if err != nil || refusal != "" {
			return noticeReply(refusal), err
		}
	}
	inv, problem, err := b.parseInvocation(ctx, spec, evt, cmd)
	if err != nil || problem != "" {
		return noticeReply(problem), err
	}
	if spec.run == nil {
		return noticeReply(agentHelp()), nil
	}
	text, err := spec.run(b, ctx, inv)
	if err != nil {
		return nil, fmt.Errorf("failed to run !%s: %w", spec.name(), err)
	}
	return noticeReply(text), nil
}

// lowerFirst lower-cases the first letter of a sentence that follows a
// mention ("Alice, désolé…").
func lowerFirst(s string) string {
	for i, r := range s {
		return strings.ToLower(string(r)) + s[i+len(string(r)):]
	}
	return s
}

func truncateRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// moderatorHelp renders the moderators' commands as a table.
func moderatorHelp() string {
	var sb strings.Builder
	sb.WriteString("**Commandes des modérateurs** (dans ce salon) :\n\n| commande | alias | effet |\n| --- | --- | --- |\n")
	for _, c := range moderatorCommands {
		usage := "!" + c.name()
		if c.args != "" {
			usage += " " + c.args
		}
		aliases := make([]string, 0, len(c.names)-1)
		for _, a := range c.names[1:] {
			aliases = append(aliases, "`!"+a+"`")
		}
		fmt.Fprintf(&sb, "| `%s` | %s | %s |\n", strings.ReplaceAll(usage, "|", "\\|"), strings.Join(aliases, ", "), c.help)
	}
	sb.WriteString(textModeratorHelpFooter)
	return sb.String()
}

// agentHelp renders the agents' commands as a list.
func agentHelp() string {
	var sb strings.Builder
	sb.WriteString(textAgentHelpHeader)
	for _, c := range agentCommands {
		usage := "`!" + c.name() + "`"
		if c.args != "" {
			usage = "`!" + c.name() + " " + c.args + "`"
		}
		if len(c.names) > 1 {
			usage += " (ou `!" + c.names[1] + "`)"
		}
		fmt.Fprintf(&sb, "- %s : %s\n", usage, c.help)
	}
	sb.WriteString(textAgentHelpFooter)
	return sb.String()
}
