package bot

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"

	"guichet/store"
)

// syncer is mautrix's DefaultSyncer with one change: the sync token is
// persisted after a response was processed, not before. mautrix saves it
// first, so a crash could drop one sync's events; here every event is
// recorded in the inbox before the token moves, and a replayed sync is
// recognised by the inbox.
type syncer struct {
	*mautrix.DefaultSyncer
	bot   *Bot
	store *deferredStore
	otk   *otkKeeper
	keys  *keyWatch
}

func newSyncer(b *Bot) *syncer {
	s := &syncer{DefaultSyncer: mautrix.NewDefaultSyncer(), bot: b, keys: newKeyWatch(b)}
	// Typing notices, receipts and presence (our own included) would wake
	// the sync for nothing: guichet never reads them. (Dendrite 0.13.8
	// ignores the ephemeral filter: there, guichet's own typing notices
	// wake its sync twice per answer; Synapse applies it.)
	s.FilterJSON = &mautrix.Filter{
		Presence: &mautrix.FilterPart{NotTypes: []event.Type{event.EphemeralEventPresence}},
		Room: &mautrix.RoomFilter{
			Timeline:  &mautrix.FilterPart{Limit: 50},
			Ephemeral: &mautrix.FilterPart{NotTypes: []event.Type{event.EphemeralEventTyping, event.EphemeralEventReceipt}},
		},
	}
	return s
}

type deferredStore struct {
	mautrix.SyncStore
	mu      sync.Mutex
	user    id.UserID
	pending string
}

func (d *deferredStore) SaveNextBatch(_ context.Context, user id.UserID, token string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.user, d.pending = user, token
	return nil
}

func (d *deferredStore) commit(ctx context.Context) error {
	d.mu.Lock()
	user, token := d.user, d.pending
	d.mu.Unlock()
	if token == "" {
		return nil
	}
	return d.SyncStore.SaveNextBatch(ctx, user, token)
}

func (s *syncer) wrapStore(inner mautrix.SyncStore) mautrix.SyncStore {
	s.store = &deferredStore{SyncStore: inner}
	return s.store
}

// ProcessResponse implements mautrix.Syncer.
func (s *syncer) ProcessResponse(ctx context.Context, res *mautrix.RespSync, since string) error {
	if s.otk != nil {
		s.otk.hide(res)
	}
	if err := s.DefaultSyncer.ProcessResponse(ctx, res, since); err != nil {
		return err
	}
	// Invites of this sync are joined in parallel; the token moves only
	// once they are all done, so a crash cannot lose one.
	s.bot.joins.Wait()
	if err := s.store.commit(ctx); err != nil {
		return err
	}
	s.bot.metrics.Synced(s.bot.now())
	s.bot.markReady()
	return nil
}

// OnFailedSync implements mautrix.Syncer: the failure is recorded for the
// health check, and mautrix's own retry policy applies.
func (s *syncer) OnFailedSync(res *mautrix.RespSync, err error) (time.Duration, error) {
	s.bot.metrics.SyncFailed(s.bot.now())
	return s.DefaultSyncer.OnFailedSync(res, err)
}

// register adds guichet's handlers; it runs after cryptohelper.Init so the
// crypto machine sees to-device keys first.
func (s *syncer) register() {
	if s.otk != nil {
		s.OnSync(s.otk.topUp)
	}
	s.OnSync(s.dropOldMessages)
	s.OnEventType(event.StateMember, s.bot.onMember)
	// After cryptohelper's own handler: what it could not decrypt yet is
	// recorded before the sync token moves.
	s.OnEventType(event.EventEncrypted, s.keys.onEncrypted)
	s.OnEventType(event.EventMessage, s.bot.onMessage)
	s.OnEventType(event.EventReaction, s.bot.onMessage)
	s.OnEventType(event.EventRedaction, s.bot.onRedaction)
}

// dropOldMessages removes timeline messages guichet must not act on: all of
// them in the very first sync (history), its own, and in the support room
// those older than the bot's own join. State events stay, so members and power
// levels are known.
func (s *syncer) dropOldMessages(ctx context.Context, res *mautrix.RespSync, since string) bool {
	for roomID, room := range res.Rooms.Join {
		if since == "" {
			room.Timeline.Events = keepState(room.Timeline.Events, len(room.Timeline.Events))
			continue
		}
		// guichet's own messages come back in every sync: nothing to do with
		// them, and decrypting them would cost as much as reading a question.
		room.Timeline.Events = slices.DeleteFunc(room.Timeline.Events, func(evt *event.Event) bool {
			return evt.Sender == s.bot.client.UserID && evt.StateKey == nil
		})
		if roomID != s.bot.supportRoom {
			continue
		}
		for i, evt := range room.Timeline.Events {
			if evt.Type == event.StateMember && evt.GetStateKey() == s.bot.client.UserID.String() &&
				evt.Content.AsMember().Membership == event.MembershipJoin && isNewJoin(evt) {
				room.Timeline.Events = keepState(room.Timeline.Events, i)
			}
		}
	}
	return true
}

// isNewJoin tells a join from a profile change of an existing member.
func isNewJoin(evt *event.Event) bool {
	if evt.Unsigned.PrevContent == nil {
		return true
	}
	_ = evt.Unsigned.PrevContent.ParseRaw(event.StateMember)
	prev, ok := evt.Unsigned.PrevContent.Parsed.(*event.MemberEventContent)
	return !ok || prev.Membership != event.MembershipJoin
}

// keepState keeps state events and every event from index upto on.
func keepState(events []*event.Event, upto int) []*event.Event {
	out := events[:0:0]
	for i, evt := range events {
		if i >= upto || evt.StateKey != nil {
			out = append(out, evt)
		}
	}
	return out
}

// onMember accepts invitations (direct messages from agents, and the support
// room if an admin invites the bot there) and leaves a direct message that
// became a group.
func (b *Bot) onMember(ctx context.Context, evt *event.Event) {
	content := evt.Content.AsMember()
	if evt.GetStateKey() != b.client.UserID.String() {
		b.checkStillDirect(ctx, evt, content)
		return
	}
	if evt.Mautrix.EventSource&event.SourceInvite == 0 || content.Membership != event.MembershipInvite {
		return
	}
	// Joining takes a round trip per room (a second under load): done in
	// parallel, so that a burst of new DMs does not hold the sync back, and
	// with it the to-device messages that start their Olm sessions.
	b.joins.Add(1)
	go func() {
		defer b.joins.Done()
		b.joinSem <- struct{}{}
		defer func() { <-b.joinSem }()
		b.acceptInvite(ctx, evt, content)
	}()
}

// serviceRoom tells the rooms guichet is in on purpose, not as a DM.
func (b *Bot) serviceRoom(room id.RoomID) bool {
	return room == b.supportRoom || room == b.opsRoom
}

func (b *Bot) acceptInvite(ctx context.Context, evt *event.Event, content *event.MemberEventContent) {
	log := zerolog.Ctx(ctx).With().Stringer("room_id", evt.RoomID).Stringer("inviter", evt.Sender).Logger()
	if _, err := b.client.JoinRoomByID(ctx, evt.RoomID); err != nil {
		log.Err(err).Msg("Failed to accept invite")
		return
	}
	log.Info().Bool("is_direct", content.IsDirect).Msg("Accepted invite")
	if b.serviceRoom(evt.RoomID) {
		return
	}
	if !content.IsDirect {
		// Joined only to say why guichet will not stay: the room's state
		// (encryption, members) is read first so that the notice is
		// encrypted when the room is.
		if _, err := b.client.State(ctx, evt.RoomID); err != nil {
			log.Warn().Err(err).Msg("Failed to read the state of a room that is not a DM")
		}
		b.leaveNotDirect(log.WithContext(ctx), evt.RoomID)
		return
	}
	// Reuse the agent's own DM rather than opening another one later.
	existing, err := b.store.DMRoom(ctx, evt.Sender)
	if err == nil && existing == "" {
		err = b.store.SetDMRoom(ctx, evt.Sender, evt.RoomID, b.now())
	}
	if err != nil {
		log.Err(err).Msg("Failed to record direct message room")
	}
}

// checkStillDirect leaves a DM as soon as a third person joins or is
// invited: guichet answers one person at a time, in private.
func (b *Bot) checkStillDirect(ctx context.Context, evt *event.Event, content *event.MemberEventContent) {
	if evt.Mautrix.EventSource&event.SourceJoin == 0 || b.serviceRoom(evt.RoomID) ||
		content.Membership != event.MembershipJoin && content.Membership != event.MembershipInvite {
		return
	}
	members, err := b.client.StateStore.GetRoomJoinedOrInvitedMembers(ctx, evt.RoomID)
	if err != nil || len(members) <= 2 || !slices.Contains(members, b.client.UserID) {
		return
	}
	b.background(ctx, func(ctx context.Context) { b.leaveNotDirect(ctx, evt.RoomID) })
}

// leaveNotDirect says that guichet works only in direct messages, then
// leaves the room. The notice is sent before leaving (the outbox could not
// deliver it after), once per room.
func (b *Bot) leaveNotDirect(ctx context.Context, room id.RoomID) {
	if _, busy := b.leaving.LoadOrStore(room, true); busy {
		return
	}
	defer b.leaving.Delete(room)
	log := zerolog.Ctx(ctx).With().Stringer("room_id", room).Logger()
	log.Info().Msg("Leaving a room that is not a direct message")
	// The room is nobody's DM any more: later messages open a real one.
	if user, err := b.store.DMUserOf(ctx, room); err != nil {
		log.Err(err).Msg("Failed to read whose DM the room was")
	} else if user != "" {
		if err := b.store.ForgetDMRoom(ctx, user, room); err != nil {
			log.Err(err).Msg("Failed to forget a DM that became a group")
		}
	}
	// Sent directly, not through the outbox: guichet has just joined (its
	// own membership may not be synced yet) and leaves right after.
	content := format.RenderMarkdown(textGroupRoom, true, false)
	content.MsgType = event.MsgNotice
	content.Mentions = &event.Mentions{}
	if err := b.fenced(ctx); err != nil {
		return
	}
	if _, err := b.client.SendMessageEvent(ctx, room, event.EventMessage, &content,
		mautrix.ReqSendEvent{TransactionID: txnID("notdm:" + room.String())}); err != nil {
		log.Err(err).Msg("Failed to explain why guichet leaves")
	}
	if _, err := b.client.LeaveRoom(ctx, room); err != nil {
		log.Err(err).Msg("Failed to leave a room that is not a DM")
	}
}

// onMessage records each message in the inbox, then acts: support-room
// messages at once (database work only), DM questions in the background.
func (b *Bot) onMessage(ctx context.Context, evt *event.Event) {
	if evt.Sender == b.client.UserID || evt.Mautrix.EventSource&event.SourceTimeline == 0 && evt.Mautrix.EventSource&event.SourceDecrypted == 0 {
		return
	}
	if k := b.keys(); k != nil {
		k.sawDecrypted(evt)
	}
	if evt.Type == event.EventReaction && evt.RoomID != b.supportRoom {
		return
	}
	raw, err := json.Marshal(evt)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Stringer("event_id", evt.ID).Msg("Failed to serialise event")
		return
	}
	item := store.InboxItem{EventID: evt.ID, RoomID: evt.RoomID, Sender: evt.Sender, EventJSON: raw, ReceivedAt: b.now()}
	if evt.RoomID == b.supportRoom {
		b.handleSupport(ctx, item, evt)
		return
	}
	fresh, err := b.store.AddInbox(ctx, item)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Stringer("event_id", evt.ID).Msg("Failed to record message")
		return
	}
	if fresh {
		b.converse(ctx, item)
	}
}

// onRedaction forgets at once what guichet stored of a DM message its sender
// deleted: the question, the answer recorded with it (which may quote it)
// and the decrypted event, so that none of it goes back to Albert as context
// or stays in the database files.
func (b *Bot) onRedaction(ctx context.Context, evt *event.Event) {
	if evt.RoomID == b.supportRoom || evt.Sender == b.client.UserID || evt.Mautrix.EventSource&event.SourceTimeline == 0 {
		return
	}
	redacts := evt.Redacts
	if content, ok := evt.Content.Parsed.(*event.RedactionEventContent); ok && content.Redacts != "" {
		redacts = content.Redacts
	}
	if redacts == "" {
		return
	}
	log := zerolog.Ctx(ctx).With().Stringer("room_id", evt.RoomID).Stringer("redacts", redacts).Logger()
	if err := b.store.ForgetEvent(ctx, evt.RoomID, redacts); err != nil {
		log.Err(err).Msg("Failed to forget a redacted message")
		return
	}
	log.Info().Msg("Forgot a redacted message")
}

// resumeInbox restarts the work a stop interrupted, and starts the watch
// of the messages waiting for their key (those recorded before the stop
// first: their key may have come meanwhile).
func (b *Bot) resumeInbox(ctx context.Context) error {
	items, err := b.store.UnfinishedInbox(ctx)
	if err != nil {
		return err
	}
	// Support-room events are handled in one transaction with their inbox
	// row, so only DM messages can be left unfinished (and events of any
	// room still waiting for their key, left to the watch).
	for _, item := range items {
		if item.WaitingSession != "" {
			continue
		}
		zerolog.Ctx(ctx).Info().Stringer("event_id", item.EventID).Msg("Resuming interrupted work")
		b.converse(ctx, item)
	}
	if k := b.keys(); k != nil {
		b.work.Add(1)
		go func() {
			defer b.work.Done()
			k.run(ctx)
		}()
	}
	return nil
}
