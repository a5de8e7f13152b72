package bot

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/albert"
	"guichet/approvals"
	"guichet/conversation"
)

// agentCommands are the commands an agent types in their DM.
var agentCommands = commandTable{
	{names: []string{"accepter"}, run: (*Bot).cmdAccept,
		help: "accepter les conditions d'utilisation"},
	{names: []string{"conditions"}, run: (*Bot).cmdConditions,
		help: "la politique de traitement des données et quand vous l'avez acceptée"},
	{names: []string{"reset", "nouveau"}, allowed: mayUse, run: (*Bot).cmdReset,
		help: "commencer une nouvelle conversation"},
	{names: []string{"modele", "modèle"}, allowed: mayUse, run: (*Bot).cmdModel,
		help: "voir les modèles disponibles ; `!modele <id>` pour en choisir un"},
	{names: []string{"sources"}, allowed: mayUse, run: (*Bot).cmdSources,
		help: "les extraits de documents sur lesquels s'appuie ma dernière réponse"},
	{names: []string{"collections"}, allowed: mayUse, run: (*Bot).cmdCollections,
		help: "les collections de documents où je cherche ; `!collections <id> …`, `!collections tout` ou `!collections aucune` pour choisir"},
	{names: []string{"quota"}, allowed: mayUse, run: (*Bot).cmdMyQuota,
		help: "votre usage aujourd'hui"},
	{names: []string{"oublier"}, run: (*Bot).cmdForget,
		help: "effacer vos conversations enregistrées"},
	{names: []string{"aide", "help"}, help: "cette aide"},
}

// mayUse lets through agents who may ask questions (approved, consented).
func mayUse(b *Bot, ctx context.Context, sender id.UserID) (string, error) {
	standing, err := b.approvals.Status(ctx, sender, b.cfg.PolicyVersion)
	if err != nil {
		return "", err
	}
	return b.notAllowed(standing), nil
}

func (b *Bot) cmdConditions(ctx context.Context, inv *invocation) (string, error) {
	at, ok, err := b.consentedAt(ctx, inv.evt)
	return textConditions(b.cfg.PolicyURL, b.cfg.PolicyVersion, at, ok, b.loc), err
}

func (b *Bot) cmdForget(ctx context.Context, inv *invocation) (string, error) {
	pr := b.profileOf(inv.evt.Sender)
	if len(inv.cmd.Args) != 1 || !strings.EqualFold(strings.TrimRight(inv.cmd.Args[0], ".!"), "confirmer") {
		return textForgetConfirm, nil
	}
	if err := b.store.Forget(ctx, inv.evt.Sender); err != nil {
		return "", err
	}
	zerolog.Ctx(ctx).Info().Msg("Agent deleted their conversations")
	return textForgotten, pr.conv.Reset(ctx, inv.evt.RoomID)
}

func (b *Bot) cmdReset(ctx context.Context, inv *invocation) (string, error) {
	pr := b.profileOf(inv.evt.Sender)
	return textConversationReset, pr.conv.Reset(ctx, inv.evt.RoomID)
}

func (b *Bot) cmdSources(ctx context.Context, inv *invocation) (string, error) {
	pr := b.profileOf(inv.evt.Sender)
	sources, answered, err := pr.conv.LastSources(ctx, inv.evt.RoomID)
	switch {
	case err != nil:
		return "", err
	case !answered:
		return textNoAnswerYet, nil
	case len(sources) == 0 && !pr.conv.RetrievalEnabled():
		return textRetrievalOff, nil
	case len(sources) == 0:
		return textNoSources, nil
	}
	return textSourcesDetail(sources), nil
}

func (b *Bot) cmdCollections(ctx context.Context, inv *invocation) (string, error) {
	pr := b.profileOf(inv.evt.Sender)
	if !pr.conv.RetrievalEnabled() {
		return textRetrievalOff, nil
	}
	if len(inv.cmd.Args) > 0 {
		inUse, err := pr.conv.ChooseCollections(ctx, inv.evt.Sender, inv.cmd.Args)
		var choice *conversation.ChoiceError
		if errors.As(err, &choice) {
			offered, lerr := pr.conv.Offered(ctx, inv.evt.Sender)
			if lerr != nil {
				zerolog.Ctx(ctx).Warn().Err(lerr).Msg("Failed to list collections")
			}
			return textCollectionUnknown(choice.Arg) + "\n\n" + textCollections(offered), nil
		} else if err != nil {
			return "", err
		}
		offered, lerr := pr.conv.Offered(ctx, inv.evt.Sender)
		if lerr != nil {
			zerolog.Ctx(ctx).Warn().Err(lerr).Msg("Failed to list collections")
		}
		return textCollectionsChosen(inUse, offered), nil
	}
	offered, err := pr.conv.Offered(ctx, inv.evt.Sender)
	if err != nil {
		// Listed with their ids only: still enough to choose.
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to list collections")
	}
	return textCollections(offered), nil
}

func (b *Bot) cmdMyQuota(ctx context.Context, inv *invocation) (string, error) {
	pr := b.profileOf(inv.evt.Sender)
	over, err := b.approvals.Overloaded(ctx)
	if err != nil {
		return "", err
	}
	q, err := pr.limiter.Quota(ctx, inv.evt.Sender, over)
	return textMyQuota(q, over, b.loc), err
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

func (b *Bot) cmdAccept(ctx context.Context, inv *invocation) (string, error) {
	sender := inv.evt.Sender
	standing, err := b.approvals.Status(ctx, sender, b.cfg.PolicyVersion)
	if err != nil {
		return "", err
	}
	if standing.Consented && standing.Request != nil && standing.Request.Status == approvals.StatusActive {
		return textAlreadyAccepted, nil
	}
	if _, err := b.approvals.Accept(ctx, sender, b.cfg.PolicyVersion); errors.Is(err, approvals.ErrNotGranted) {
		// Where they stand and what to do: pending, waitlisted, rejected,
		// revoked or never asked.
		return textAcceptNotGranted + "\n\n" + b.notAllowed(standing), nil
	} else if err != nil {
		return "", err
	}
	return textAccepted, nil
}

// allowedModels are the profile's configured models that Albert lists as chat models,
// by id (aliases are renamed without notice).
func (b *Bot) allowedModels(ctx context.Context, pr *profile) ([]string, error) {
	listed, err := pr.assistant.Models(ctx)
	if err != nil {
		return nil, err
	}
	wanted := append([]string{pr.model}, pr.models...)
	var out []string
	for _, m := range listed {
		if m.Type == albert.TypeTextGeneration && slices.Contains(wanted, m.ID) && !slices.Contains(out, m.ID) {
			out = append(out, m.ID)
		}
	}
	return out, nil
}

func (b *Bot) cmdModel(ctx context.Context, inv *invocation) (string, error) {
	pr := b.profileOf(inv.evt.Sender)
	evt, cmd := inv.evt, inv.cmd
	models, err := b.allowedModels(ctx, pr)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to list models")
		return textModelsUnavailable, nil
	}
	current, err := pr.conv.Model(ctx, evt.Sender)
	if err != nil {
		return "", err
	}
	if len(cmd.Args) == 0 {
		return textModels(models, current), nil
	}
	choice := cmd.Args[0]
	if !slices.Contains(models, choice) {
		return textModelUnknown(choice, models), nil
	}
	return textModelChosen(choice), pr.conv.SetModel(ctx, evt.Sender, choice)
}
