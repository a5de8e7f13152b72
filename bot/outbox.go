package bot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"

	"guichet/store"
)

// outboxRetry is how often undelivered messages are tried again when nothing
// nudges the outbox.
const outboxRetry = 5 * time.Second

// nudge wakes the outbox after new messages were queued (and committed).
func (b *Bot) nudge() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// deliverLoop sends queued messages until ctx ends.
func (b *Bot) deliverLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		case <-timer.C:
		}
		b.deliverPending(ctx)
		timer.Reset(outboxRetry)
	}
}

// outboxParallel bounds how many rooms are delivered to at once; messages
// to one room keep their order.
const outboxParallel = 8

func (b *Bot) deliverPending(ctx context.Context) {
	for ctx.Err() == nil {
		msgs, err := b.store.Unsent(ctx, 200)
		if err != nil {
			zerolog.Ctx(ctx).Err(err).Msg("Failed to read the outbox")
			return
		}
		if len(msgs) == 0 {
			return
		}
		var order []string
		byRoom := map[string][]store.Outgoing{}
		for _, m := range msgs {
			k := m.RoomID.String() + "|" + m.DMUser.String()
			if _, ok := byRoom[k]; !ok {
				order = append(order, k)
			}
			byRoom[k] = append(byRoom[k], m)
		}
		var wg sync.WaitGroup
		var sent atomic.Int64
		sem := make(chan struct{}, outboxParallel)
		for _, k := range order {
			sem <- struct{}{}
			wg.Add(1)
			go func(queue []store.Outgoing) {
				defer func() { <-sem; wg.Done() }()
				for _, m := range queue {
					if ctx.Err() != nil {
						return
					}
					sendCtx, done := finishing(ctx, sendGrace)
					err := b.deliver(sendCtx, m)
					done()
					if err != nil {
						zerolog.Ctx(ctx).Err(err).Str("key", m.Key).Int("attempts", m.Attempts+1).Msg("Failed to deliver message")
						if ferr := b.store.MarkFailed(ctx, m.Key, err.Error()); ferr != nil {
							zerolog.Ctx(ctx).Err(ferr).Msg("Failed to record delivery failure")
						}
						return // keep this room's order: retry later
					}
					sent.Add(1)
				}
			}(byRoom[k])
		}
		wg.Wait()
		if sent.Load() == 0 || len(msgs) < 200 {
			return
		}
	}
}

// sendGrace is how long a send already under way may still take once
// shutdown begins: cancelling it after the homeserver has accepted the event
// would leave it unrecorded, and it would be sent again after the restart.
const sendGrace = 5 * time.Second

// finishing returns a context that outlives ctx by grace, for work that must
// not be cut in the middle.
func finishing(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return c, func() { stop(); cancel() }
}

// txnID derives the Matrix transaction id from the outbox key, so that a
// send repeated after a crash is deduplicated by the homeserver.
func txnID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "guichet-" + hex.EncodeToString(sum[:12])
}

func (b *Bot) deliver(ctx context.Context, m store.Outgoing) error {
	room := m.RoomID
	if m.DMUser != "" {
		var err error
		if room, err = b.ensureDM(ctx, m.DMUser); err != nil {
			return err
		}
	}
	content := format.RenderMarkdown(m.Markdown, true, false)
	content.MsgType = event.MessageType(m.MsgType)
	content.Mentions = &event.Mentions{UserIDs: m.Mentions}
	if m.Replaces != "" {
		content.SetEdit(m.Replaces)
	} else if m.ReplyTo != "" {
		content.RelatesTo = &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: m.ReplyTo}}
	}
	resp, err := b.client.SendMessageEvent(ctx, room, event.EventMessage, &content, mautrix.ReqSendEvent{TransactionID: txnID(m.Key)})
	if err != nil {
		return err
	}
	zerolog.Ctx(ctx).Debug().Str("key", m.Key).Stringer("room_id", room).Stringer("event_id", resp.EventID).Msg("Delivered message")
	return b.store.MarkSent(ctx, m.Key, resp.EventID, b.now())
}

// ensureDM returns the encrypted direct-message room with user, creating it
// the first time.
func (b *Bot) ensureDM(ctx context.Context, user id.UserID) (id.RoomID, error) {
	room, err := b.store.DMRoom(ctx, user)
	if err != nil || room != "" {
		return room, err
	}
	// A DM created just before a crash, or opened by the agent without
	// is_direct: reuse an encrypted room where only the two of us are.
	if existing := b.findDM(ctx, user); existing != "" {
		return existing, b.store.SetDMRoom(ctx, user, existing, b.now())
	}
	resp, err := b.client.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset:   "trusted_private_chat",
		IsDirect: true,
		Invite:   []id.UserID{user},
		InitialState: []*event.Event{{
			Type:    event.StateEncryption,
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
		}},
	})
	if err != nil {
		return "", err
	}
	zerolog.Ctx(ctx).Info().Stringer("room_id", resp.RoomID).Stringer("user_id", user).Msg("Opened direct message")
	return resp.RoomID, b.store.SetDMRoom(ctx, user, resp.RoomID, b.now())
}

func (b *Bot) findDM(ctx context.Context, user id.UserID) id.RoomID {
	states, ok := b.client.StateStore.(crypto.StateStore)
	if !ok {
		return ""
	}
	rooms, err := states.FindSharedRooms(ctx, user)
	if err != nil {
		return ""
	}
	for _, room := range rooms {
		if room == b.supportRoom || room == b.opsRoom {
			continue
		}
		members, err := b.client.StateStore.GetRoomJoinedOrInvitedMembers(ctx, room)
		if err == nil && len(members) == 2 && slices.Contains(members, user) && slices.Contains(members, b.client.UserID) {
			return room
		}
	}
	return ""
}
