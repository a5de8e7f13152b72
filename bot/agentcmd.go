package bot

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"

	"guichet/albert"
	"guichet/approvals"
)

// agentCommand runs a command typed in a DM.
func (b *Bot) agentCommand(ctx context.Context, evt *event.Event, cmd command) (*reply, error) {
	switch cmd.Name {
	case "accepter":
		return b.cmdAccept(ctx, evt)
	case "aide", "help":
		return noticeReply(textAgentHelp), nil
	case "conditions":
		at, ok, err := b.consentedAt(ctx, evt)
		return noticeReply(textConditions(b.cfg.PolicyURL, b.cfg.PolicyVersion, at, ok, b.loc)), err
	case "oublier":
		if len(cmd.Args) != 1 || cmd.Args[0] != "confirmer" {
			return noticeReply(textForgetConfirm), nil
		}
		if err := b.store.Forget(ctx, evt.Sender); err != nil {
			return nil, err
		}
		zerolog.Ctx(ctx).Info().Msg("Agent deleted their conversations")
		return noticeReply(textForgotten), b.store.StartConversation(ctx, evt.RoomID, b.now())
	}
	known := cmd.Name == "reset" || cmd.Name == "nouveau" || cmd.Name == "modele" || cmd.Name == "modèle" || cmd.Name == "quota"
	if !known && findModCommand(cmd.Name) != nil {
		return noticeReply(textModeratorCommandInDM), nil
	}
	// The rest is for agents who may use the assistant.
	standing, err := b.approvals.Status(ctx, evt.Sender, b.cfg.PolicyVersion)
	if err != nil {
		return nil, err
	}
	if why := b.notAllowed(standing); known && why != "" {
		return noticeReply(why), nil
	}
	switch cmd.Name {
	case "reset", "nouveau":
		return noticeReply(textConversationReset), b.store.StartConversation(ctx, evt.RoomID, b.now())
	case "modele", "modèle":
		return b.cmdModel(ctx, evt, cmd)
	case "quota":
		over, err := b.approvals.Overloaded(ctx)
		if err != nil {
			return nil, err
		}
		q, err := b.limiter.Quota(ctx, evt.Sender, over)
		return noticeReply(textMyQuota(q, over, b.loc)), err
	}
	return noticeReply(textUnknownCommand(cmd.Name) + "\n\n" + textAgentHelp), nil
}

func (b *Bot) consentedAt(ctx context.Context, evt *event.Event) (time.Time, bool, error) {
	standing, err := b.approvals.Status(ctx, evt.Sender, b.cfg.PolicyVersion)
	if err != nil || !standing.Consented {
		return time.Time{}, false, err
	}
	audit, err := b.store.Audit(ctx, evt.Sender)
	if err != nil {
		return time.Time{}, false, err
	}
	for i := len(audit) - 1; i >= 0; i-- {
		if audit[i].Action == approvals.ActionConsent && audit[i].Reason == b.cfg.PolicyVersion {
			return audit[i].At, true, nil
		}
	}
	return time.Time{}, false, nil
}

func (b *Bot) cmdAccept(ctx context.Context, evt *event.Event) (*reply, error) {
	standing, err := b.approvals.Status(ctx, evt.Sender, b.cfg.PolicyVersion)
	if err != nil {
		return nil, err
	}
	if standing.Consented && standing.Request != nil && standing.Request.Status == approvals.StatusActive {
		return noticeReply(textAlreadyAccepted), nil
	}
	if _, err := b.approvals.Accept(ctx, evt.Sender, b.cfg.PolicyVersion); errors.Is(err, approvals.ErrNotGranted) {
		return noticeReply(textAcceptNotGranted), nil
	} else if err != nil {
		return nil, err
	}
	return noticeReply(textAccepted), nil
}

// allowedModels are the configured models that Albert lists as chat models,
// by id (aliases are renamed without notice).
func (b *Bot) allowedModels(ctx context.Context) ([]string, error) {
	listed, err := b.assistant.Models(ctx)
	if err != nil {
		return nil, err
	}
	wanted := append([]string{b.cfg.Model}, b.cfg.Models...)
	var out []string
	for _, m := range listed {
		if m.Type == albert.TypeTextGeneration && slices.Contains(wanted, m.ID) && !slices.Contains(out, m.ID) {
			out = append(out, m.ID)
		}
	}
	return out, nil
}

func (b *Bot) cmdModel(ctx context.Context, evt *event.Event, cmd command) (*reply, error) {
	models, err := b.allowedModels(ctx)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to list models")
		return noticeReply(textModelsUnavailable), nil
	}
	current, err := b.store.ModelPref(ctx, evt.Sender)
	if err != nil {
		return nil, err
	}
	if current == "" {
		current = b.cfg.Model
	}
	if len(cmd.Args) == 0 {
		return noticeReply(textModels(models, current)), nil
	}
	choice := cmd.Args[0]
	if !slices.Contains(models, choice) {
		return noticeReply(textModelUnknown(choice, models)), nil
	}
	pref := choice
	if choice == b.cfg.Model {
		pref = ""
	}
	return noticeReply(textModelChosen(choice)), b.store.SetModelPref(ctx, evt.Sender, pref)
}
