package bot

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/approvals"
	"guichet/conversation"
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
		ch = make(chan store.InboxItem, 32)
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

// reply is what guichet says back to one DM message.
type reply struct {
	text     string
	msgType  event.MessageType
	replaces id.EventID             // the placeholder of a streamed answer
	notices  []string               // short notices sent before the reply
	after    []string               // short notices sent after it (quota warnings)
	exchange *conversation.Exchange // what the conversation records of a question's answer
	leave    bool                   // leave the room once the reply is sent
	albert   time.Duration          // spent waiting for the assistant, if it was asked
	charge   *charge                // what the question costs, settled with the reply
	outcome  string                 // a question's outcome, for Metrics ("" if not a question)
}

func noticeReply(text string) *reply { return &reply{text: text, msgType: event.MsgNotice} }

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
	r, err := b.answerDM(ctx, evt)
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: resumed at next start
		}
		log.Err(err).Msg("Failed to answer")
		r = noticeReply(textAssistantFailed)
	}
	if ctx.Err() != nil && r != nil && r.text == "" {
		return
	}
	if r != nil && r.leave {
		b.leaveGroup(ctx, item, r.text)
		return
	}
	b.finish(ctx, item, r)
	if r != nil && r.albert > 0 {
		// From receipt to the answer queued for sending: Albert's share and
		// guichet's own.
		log.Info().Dur("albert_ms", r.albert).Dur("own_ms", b.now().Sub(item.ReceivedAt)-r.albert).Msg("Answered question")
	}
	if r != nil && r.outcome == outcomeAnswered {
		b.metrics.Answered(b.now().Sub(item.ReceivedAt))
	}
}

// leaveGroup says why and leaves a room that is not a direct message. The
// notice is sent before leaving (the outbox could not deliver it after).
func (b *Bot) leaveGroup(ctx context.Context, item store.InboxItem, text string) {
	log := zerolog.Ctx(ctx)
	msg := outgoingNotice("reply:"+item.EventID.String(), item.RoomID, item.EventID, text, b.now())
	if err := b.deliver(ctx, msg); err != nil {
		log.Err(err).Msg("Failed to explain why guichet leaves")
	}
	b.finish(ctx, item, nil)
	if _, err := b.client.LeaveRoom(ctx, item.RoomID); err != nil {
		log.Err(err).Msg("Failed to leave group room")
	}
}

// finish queues the reply (if any), settles what the question costs,
// records the exchange and marks the message done, in one transaction: a stop
// before it handles the message again (continuing what was recorded of it,
// see count and placeholderOf), a stop after it never does. An answer too
// long for one event is queued as several messages (see splitAnswer): the
// first replaces the placeholder or replies to the question, the others
// reply to the first (to the question when the first is not sent yet).
func (b *Bot) finish(ctx context.Context, item store.InboxItem, r *reply) {
	ctx = context.WithoutCancel(ctx)
	err := b.store.InTx(ctx, func(ctx context.Context) error {
		if r != nil && r.charge != nil {
			warnings, err := b.settle(ctx, r.charge)
			if err != nil {
				return err
			}
			r.after = append(r.after, warnings...)
		}
		if r != nil && r.text != "" {
			// Recipient: the one who asked reads all of it (and the outbox
			// need not look up whose DM this is).
			for i, n := range r.notices {
				msg := outgoingNotice(fmt.Sprintf("notice:%s:%d", item.EventID, i), item.RoomID, "", n, b.now())
				msg.Recipient = item.Sender
				if err := b.store.Enqueue(ctx, msg); err != nil {
					return err
				}
			}
			for i, part := range splitAnswer(r.text, item.RoomID) {
				msg := store.Outgoing{
					Key: "reply:" + item.EventID.String(), Kind: store.KindReply, RoomID: item.RoomID, ReplyTo: item.EventID,
					Regarding: item.EventID, Recipient: item.Sender, Replaces: r.replaces, MsgType: string(r.msgType), Markdown: part,
					CreatedAt: b.now(),
				}
				if i > 0 {
					msg.Key, msg.Replaces = fmt.Sprintf("reply:%s:%d", item.EventID, i+1), ""
					msg.ReplyTo = cmp.Or(r.replaces, item.EventID)
				}
				if err := b.store.Enqueue(ctx, msg); err != nil {
					return err
				}
			}
			for i, n := range r.after {
				msg := outgoingNotice(fmt.Sprintf("after:%s:%d", item.EventID, i), item.RoomID, "", n, b.now())
				msg.Recipient = item.Sender
				if err := b.store.Enqueue(ctx, msg); err != nil {
					return err
				}
			}
		}
		if r != nil && r.exchange != nil {
			if err := b.profileOf(item.Sender).conv.Record(ctx, *r.exchange); err != nil {
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

// answerDM decides what to say to a message in a DM.
func (b *Bot) answerDM(ctx context.Context, evt *event.Event) (*reply, error) {
	content, ok := evt.Content.Parsed.(*event.MessageEventContent)
	if !ok || content.MsgType == event.MsgNotice || content.RelatesTo.GetReplaceID() != "" {
		return nil, nil // edits of answered questions and notices get nothing
	}
	if members, err := b.client.StateStore.GetRoomJoinedOrInvitedMembers(ctx, evt.RoomID); err == nil && len(members) > 2 {
		return &reply{text: textGroupRoom, msgType: event.MsgNotice, leave: true}, nil
	}
	switch content.MsgType {
	case event.MsgText, event.MsgEmote:
	default:
		return noticeReply(textTextOnly), nil
	}
	// A question is its Markdown body, without the reply fallback (the
	// quoted turn is added by context); commands are read with pills
	// resolved. Nothing visible (a lone U+200B) is nothing asked.
	if cmd, ok := parseCommand(messageText(ctx, content)); ok {
		return b.dispatchDM(ctx, evt, cmd)
	}
	text := messageBody(content)
	if text == "" {
		return nil, nil
	}
	if n := len([]rune(text)); n > b.cfg.MaxInputChars {
		return noticeReply(textTooLong(n, b.cfg.MaxInputChars)), nil
	}
	standing, err := b.approvals.Status(ctx, evt.Sender, b.cfg.PolicyVersion)
	if err != nil {
		return nil, err
	}
	if why := b.notAllowed(standing); why != "" {
		b.metrics.Question(outcomeRefused)
		return noticeReply(why), nil
	}
	r, err := b.question(ctx, evt, content, text)
	b.reportQuestion(ctx, r, err)
	return r, err
}

// notAllowed says why someone may not ask a question yet ("" if they may).
func (b *Bot) notAllowed(standing approvals.Standing) string {
	req := standing.Request
	switch {
	case req == nil:
		return textUnknownAgent(b.supportRoom)
	case req.Status == approvals.StatusPending:
		return textPending(req, b.now())
	case req.Status == approvals.StatusWaitlisted:
		return textWaitlisted(req)
	case req.Status == approvals.StatusRejected:
		return textRejectedStatus(req)
	case req.Status == approvals.StatusRevoked:
		return textRevokedStatus(req)
	case req.Status == approvals.StatusApproved:
		return textWelcome(b.cfg.PolicyURL, b.cfg.PolicyVersion)
	case !standing.Consented:
		return textPolicyChanged(b.cfg.PolicyURL, b.cfg.PolicyVersion)
	}
	return ""
}

// question asks the assistant with the prompt the conversation builds
// (history, excerpts of the agent's collections) and returns the answer,
// its sources listed under it, and the exchange to record with it.
func (b *Bot) question(ctx context.Context, evt *event.Event, content *event.MessageEventContent, text string) (*reply, error) {
	var notices []string
	pr := b.profileOf(evt.Sender)
	adm, refusal, err := b.admit(ctx, pr, evt, &notices)
	if err != nil || refusal != nil {
		if refusal != nil {
			refusal.notices, refusal.outcome = notices, outcomeLimited
		}
		return refusal, err
	}
	p, err := pr.conv.Prompt(ctx, conversation.Question{
		Room: evt.RoomID, User: evt.Sender, Event: evt.ID, Text: text, ReplyTo: content.RelatesTo.GetReplyTo(),
	})
	if err != nil {
		adm.release(0)
		if rerr := b.refund(context.WithoutCancel(ctx), pr, evt); rerr != nil {
			zerolog.Ctx(ctx).Err(rerr).Msg("Failed to refund a question")
		}
		return nil, err
	}
	if p.Reset {
		notices = append([]string{textNewConversation(pr.conv.IdleReset())}, notices...)
	}
	res := b.ask(ctx, pr, evt, adm.question, p.Messages, p.Model)
	adm.release(res.tokens)
	if call := p.Search; call != nil {
		res.usage = append(res.usage, b.searchUsage(pr, evt, call))
		if call.Err != nil {
			zerolog.Ctx(ctx).Warn().Err(call.Err).Ints("collections", call.Collections).Msg("Search failed: answering without sources")
		}
	}
	if res.text == "" {
		// Nothing to say (the call was cancelled): the question is given
		// back, unless guichet is stopping and will handle it again.
		return &reply{charge: &charge{pr: pr, evt: evt, usage: res.usage}}, ctx.Err()
	}
	over := adm.over
	r := &reply{text: res.text, msgType: event.MsgText, replaces: res.placeholder, notices: append(notices, res.notices...), albert: res.waited,
		charge: &charge{pr: pr, evt: evt, ok: res.ok, tokens: res.tokens, usage: res.usage, over: over}, outcome: outcomeAnswered}
	if !res.ok {
		r.outcome = outcomeFailed
		if res.cut {
			r.outcome = outcomeCut
		}
		r.msgType = event.MsgNotice
		if res.placeholder != "" {
			r.msgType = event.MsgText
		}
		return r, nil
	}
	switch cited := conversation.Cited(res.text, p.Sources); {
	case len(cited) > 0:
		r.text += "\n\n" + textSources(cited)
	case p.Search != nil && p.Search.Err != nil:
		r.text += "\n\n" + textSearchFailed
	}
	ex := p.Exchange(res.text, res.placeholder, b.now())
	r.exchange = &ex
	return r, nil
}

// searchUsage is the usage ledger's row for a question's search.
func (b *Bot) searchUsage(pr *profile, evt *event.Event, call *conversation.SearchCall) store.Usage {
	outcome := "ok"
	if call.Err != nil {
		outcome = string(call.Err.Class)
	}
	return store.Usage{
		UserID: evt.Sender, RoomID: evt.RoomID, Endpoint: store.EndpointSearch,
		PromptTokens: call.Usage.PromptTokens, CompletionTokens: call.Usage.CompletionTokens, Estimated: call.Usage.Estimated,
		Latency: call.Latency, Outcome: outcome, At: b.now(), Question: evt.ID,
		Partner: pr.id, Cost: call.Usage.Cost, KWh: call.Usage.KWh, KgCO2eq: call.Usage.KgCO2eq,
	}
}
