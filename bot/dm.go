package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/albert"
	"guichet/approvals"
	"guichet/store"
)

// convIdle is how long a conversation worker waits for the next message.
const convIdle = time.Minute

// converse hands a DM message to its room's worker: one worker per room keeps
// an agent's questions in order without blocking the sync.
func (b *Bot) converse(ctx context.Context, item store.InboxItem) {
	b.convMu.Lock()
	ch, ok := b.convs[item.RoomID]
	if !ok {
		ch = make(chan store.InboxItem, 256)
		b.convs[item.RoomID] = ch
		b.work.Add(1)
		go b.convWorker(ctx, item.RoomID, ch)
	}
	b.convMu.Unlock()
	select {
	case ch <- item:
	case <-ctx.Done():
	}
}

func (b *Bot) convWorker(ctx context.Context, room id.RoomID, ch chan store.InboxItem) {
	defer b.work.Done()
	idle := time.NewTimer(convIdle)
	defer idle.Stop()
	for {
		select {
		case item := <-ch:
			b.handleDM(ctx, item)
			idle.Reset(convIdle)
		case <-idle.C:
			b.convMu.Lock()
			if len(ch) == 0 {
				delete(b.convs, room)
				b.convMu.Unlock()
				return
			}
			b.convMu.Unlock()
			idle.Reset(convIdle)
		case <-ctx.Done():
			return
		}
	}
}

func decodeInbox(item store.InboxItem) (*event.Event, error) {
	var evt event.Event
	if err := json.Unmarshal(item.EventJSON, &evt); err != nil {
		return nil, err
	}
	evt.Type.Class = event.MessageEventType
	if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
		return nil, err
	}
	return &evt, nil
}

// handleDM answers one message in a direct message. The reply is queued in
// the same transaction that marks the message done, so a stop before that
// point answers it again after restart and a stop after it never does.
func (b *Bot) handleDM(ctx context.Context, item store.InboxItem) {
	log := zerolog.Ctx(ctx).With().Stringer("event_id", item.EventID).Stringer("sender", item.Sender).Stringer("room_id", item.RoomID).Logger()
	ctx = log.WithContext(ctx)
	evt, err := decodeInbox(item)
	if err != nil {
		log.Err(err).Msg("Failed to decode recorded event")
		b.finish(ctx, item, nil)
		return
	}
	reply, turns, err := b.answerDM(ctx, evt)
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: resumed at next start
		}
		log.Err(err).Msg("Failed to answer")
		reply = &store.Outgoing{Markdown: textAssistantFailed, MsgType: string(event.MsgNotice)}
	}
	b.finish(ctx, item, reply, turns...)
}

// finish queues the reply (if any), stores the turns and marks the message done.
func (b *Bot) finish(ctx context.Context, item store.InboxItem, reply *store.Outgoing, turns ...store.Turn) {
	err := b.store.InTx(ctx, func(ctx context.Context) error {
		if reply != nil {
			reply.Key = "reply:" + item.EventID.String()
			reply.RoomID, reply.ReplyTo, reply.CreatedAt = item.RoomID, item.EventID, b.now()
			if err := b.store.Enqueue(ctx, *reply); err != nil {
				return err
			}
		}
		if len(turns) > 0 {
			if err := b.store.AddTurns(ctx, item.RoomID, item.Sender, turns...); err != nil {
				return err
			}
		}
		return b.store.MarkDone(ctx, item.EventID, b.now())
	})
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to record answer")
		return
	}
	b.nudge()
}

func notice(markdown string) *store.Outgoing {
	return &store.Outgoing{Markdown: markdown, MsgType: string(event.MsgNotice)}
}

// answerDM decides what to say to a message in a DM.
func (b *Bot) answerDM(ctx context.Context, evt *event.Event) (*store.Outgoing, []store.Turn, error) {
	content, ok := evt.Content.Parsed.(*event.MessageEventContent)
	if !ok || content.MsgType == event.MsgNotice || content.RelatesTo.GetReplaceID() != "" {
		return nil, nil, nil
	}
	switch content.MsgType {
	case event.MsgText, event.MsgEmote:
	default:
		return notice(textTextOnly), nil, nil
	}
	content.RemoveReplyFallback()
	text := strings.TrimSpace(content.Body)
	if text == "" {
		return nil, nil, nil
	}
	if cmd, ok := parseCommand(text); ok {
		return b.agentCommand(ctx, evt, cmd)
	}
	standing, err := b.approvals.Status(ctx, evt.Sender, b.cfg.PolicyVersion)
	if err != nil {
		return nil, nil, err
	}
	req := standing.Request
	switch {
	case req == nil:
		return notice(textUnknownAgent(b.supportRoom)), nil, nil
	case req.Status == approvals.StatusPending:
		return notice(textPending(req, b.now())), nil, nil
	case req.Status == approvals.StatusWaitlisted:
		return notice(textWaitlisted(req)), nil, nil
	case req.Status == approvals.StatusRejected:
		return notice(textRejectedStatus(req)), nil, nil
	case req.Status == approvals.StatusRevoked:
		return notice(textRevokedStatus(req)), nil, nil
	case req.Status == approvals.StatusApproved:
		return notice(textWelcome(b.cfg.PolicyURL, b.cfg.PolicyVersion)), nil, nil
	case !standing.Consented:
		return notice(textPolicyChanged(b.cfg.PolicyURL, b.cfg.PolicyVersion)), nil, nil
	}
	return b.ask(ctx, evt, text)
}

func (b *Bot) agentCommand(ctx context.Context, evt *event.Event, cmd command) (*store.Outgoing, []store.Turn, error) {
	switch cmd.Name {
	case "accepter":
		standing, err := b.approvals.Status(ctx, evt.Sender, b.cfg.PolicyVersion)
		if err != nil {
			return nil, nil, err
		}
		if standing.Consented && standing.Request != nil && standing.Request.Status == approvals.StatusActive {
			return notice(textAlreadyAccepted), nil, nil
		}
		if _, err := b.approvals.Accept(ctx, evt.Sender, b.cfg.PolicyVersion); errors.Is(err, approvals.ErrNotGranted) {
			return notice(textAcceptNotGranted), nil, nil
		} else if err != nil {
			return nil, nil, err
		}
		return notice(textAccepted), nil, nil
	case "aide", "help":
		return notice(textAgentHelp), nil, nil
	default:
		return notice(textUnknownCommand(cmd.Name) + "\n\n" + textAgentHelp), nil, nil
	}
}

// ask sends the question with its context to the assistant.
func (b *Bot) ask(ctx context.Context, evt *event.Event, question string) (*store.Outgoing, []store.Turn, error) {
	history, err := b.store.RecentTurns(ctx, evt.RoomID, b.cfg.MaxTurns)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read conversation: %w", err)
	}
	msgs := make([]albert.Message, 0, len(history)+2)
	msgs = append(msgs, albert.Message{Role: "system", Content: b.cfg.SystemPrompt})
	for _, t := range history {
		msgs = append(msgs, albert.Message{Role: t.Role, Content: t.Content})
	}
	msgs = append(msgs, albert.Message{Role: "user", Content: question})

	callCtx, cancel := context.WithTimeout(ctx, b.cfg.AlbertTimeout)
	defer cancel()
	start := time.Now()
	answer, err := b.assistant.Stream(callCtx, b.cfg.Model, msgs, nil)
	log := zerolog.Ctx(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to get an answer: %w", err)
	}
	log.Info().Dur("latency", time.Since(start)).Int("prompt_tokens", answer.Usage.PromptTokens).
		Int("completion_tokens", answer.Usage.CompletionTokens).Msg("Answered question")
	text := strings.TrimSpace(answer.Text)
	if text == "" {
		return notice(textEmptyAnswer), nil, nil
	}
	now := b.now()
	turns := []store.Turn{
		{Role: "user", Content: question, EventID: evt.ID, At: now},
		{Role: "assistant", Content: text, At: now},
	}
	return &store.Outgoing{Markdown: text, MsgType: string(event.MsgText)}, turns, nil
}
