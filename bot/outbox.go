package bot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
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

// outboxRetry is the longest the outbox sleeps when nothing nudges it; it
// wakes earlier when a message's next attempt comes sooner.
const outboxRetry = 5 * time.Second

// outboxMinWait keeps a burst of due retries from spinning the loop.
const outboxMinWait = 100 * time.Millisecond

// outboxPage is how many due messages one pass reads.
const outboxPage = 200

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
	var retryAt time.Time // when the retries need the next pass; zero: ask the outbox
	for {
		fired := false
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		case <-timer.C:
			fired = true
		}
		failures := b.deliverPending(ctx)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		// Only a failed send schedules a retry (store.Failed): after a
		// pass without one, woken before the timer, the schedule read last
		// still holds. This spares a query per answer sent.
		now := b.now()
		if fired || failures > 0 || retryAt.IsZero() {
			retryAt = now.Add(b.nextPass(ctx))
		}
		timer.Reset(max(retryAt.Sub(now), 0))
	}
}

// nextPass is how long to wait before the next delivery pass: until the
// earliest retry is due, within [outboxMinWait, outboxRetry].
func (b *Bot) nextPass(ctx context.Context) time.Duration {
	now := b.now()
	next, ok, err := b.store.NextAttempt(ctx, now)
	if err != nil || !ok {
		return outboxRetry
	}
	return min(max(next.Sub(now), outboxMinWait), outboxRetry)
}

// outboxParallel bounds how many rooms are delivered to at once; messages
// to one room keep their order.
const outboxParallel = 8

// deliverPending sends the messages due now. A message that fails is tried
// again later, on its own schedule (store.RetryDelay), and only the later
// messages of its own room wait for it; one that cannot be delivered is
// given up at once, and the people concerned are told. It returns how many
// sends failed.
func (b *Bot) deliverPending(ctx context.Context) (failures int64) {
	var failed atomic.Int64
	defer func() { failures = failed.Load() }()
	for ctx.Err() == nil {
		msgs, err := b.store.Due(ctx, b.now(), outboxPage)
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
		var done atomic.Int64
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
					sendCtx, stop := finishing(ctx, sendGrace)
					err := b.send(sendCtx, &m)
					stop()
					if err == nil {
						done.Add(1)
						continue
					}
					if ctx.Err() != nil && errors.Is(err, context.Canceled) || errors.Is(err, errFenced) {
						return // cut by shutdown, or no longer the leader: not a failure of the message
					}
					failed.Add(1)
					gaveUp, ok := b.failed(ctx, m, err)
					if ok {
						done.Add(1)
					}
					if !gaveUp {
						return // keep this room's order: its next messages wait for this one
					}
				}
			}(byRoom[k])
		}
		wg.Wait()
		if done.Load() == 0 || len(msgs) < outboxPage {
			return
		}
	}
	return
}

// failed records a failed attempt at m and, when m is given up, tells the
// people concerned in the same transaction. ok is false if nothing could be
// recorded.
func (b *Bot) failed(ctx context.Context, m store.Outgoing, cause error) (gaveUp, ok bool) {
	ctx = context.WithoutCancel(ctx)
	log := zerolog.Ctx(ctx).With().Str("key", m.Key).Str("kind", string(m.Kind)).Int("attempts", m.Attempts+1).Logger()
	perm := permanent(cause)
	err := b.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		if gaveUp, err = b.store.Failed(ctx, m.Key, cause.Error(), b.now(), perm); err != nil {
			return err
		}
		if m.Kind == store.KindHook {
			if gaveUp || m.Attempts+1 == hookAlertAttempts {
				return b.reportHookDown(ctx, m, gaveUp, cause)
			}
			return nil
		}
		if !gaveUp {
			return nil
		}
		return b.reportGivenUp(ctx, m, cause)
	})
	if err != nil {
		log.Err(err).AnErr("cause", cause).Msg("Failed to record a delivery failure")
		return false, false
	}
	if !gaveUp {
		log.Warn().Err(cause).Msg("Failed to deliver message, will retry")
		return false, true
	}
	log.Error().Err(cause).Bool("permanent", perm).Msg("Gave up delivering message")
	b.metrics.OutboxGivenUp(string(m.Kind))
	if m.DMCreated != "" {
		// A room opened for this message that never became the person's DM
		// (the invite failed) is left, not kept as an orphan.
		if dm, err := b.store.DMRoom(ctx, m.DMUser); err == nil && dm != m.DMCreated {
			b.abandonRoom(ctx, m.DMCreated)
		}
	}
	b.nudge()
	return true, true
}

// reportGivenUp makes giving up visible: the moderators learn in the support
// room that an agent was not told about their access, and an agent whose
// answer could not be delivered is told so, in a room that works.
func (b *Bot) reportGivenUp(ctx context.Context, m store.Outgoing, cause error) error {
	user := m.Recipient
	var dead *deadRoomError
	if user == "" && errors.As(cause, &dead) {
		user = dead.reader
	}
	if user == "" && m.RoomID != "" && !b.serviceRoom(m.RoomID) {
		user = b.roomPartner(ctx, m.RoomID)
	}
	switch {
	case m.Kind.Decision() && b.supportRoom != "" && m.RoomID != b.supportRoom && user != "":
		return b.store.Enqueue(ctx, store.Outgoing{
			Key: "undelivered:" + m.Key, Kind: store.KindUndelivered, RoomID: b.supportRoom, RequestID: m.RequestID,
			MsgType: string(event.MsgNotice), Markdown: textModsUndelivered(user, m.Kind, m.RequestID, failureOf(cause)),
			CreatedAt: b.now(),
		})
	case m.Kind == store.KindReply && user != "":
		// One notice per question, however many parts its answer had.
		key := "undelivered:" + m.Key
		if m.Regarding != "" {
			key = "undelivered:reply:" + m.Regarding.String()
		}
		return b.store.Enqueue(ctx, store.Outgoing{
			Key: key, Kind: store.KindUndelivered, DMUser: user, Recipient: user, Regarding: m.Regarding,
			MsgType: string(event.MsgNotice), Markdown: textAnswerUndelivered, CreatedAt: b.now(),
		})
	}
	return nil
}

// roomPartner is the one person other than guichet in a direct-message
// room, whether or not they are still there ("" if unknown).
func (b *Bot) roomPartner(ctx context.Context, room id.RoomID) id.UserID {
	if user, err := b.store.DMUserOf(ctx, room); err != nil || user != "" {
		return user
	}
	if b.client == nil {
		return ""
	}
	members, err := b.client.StateStore.GetAllMembers(ctx, room)
	if err != nil {
		return ""
	}
	var partner id.UserID
	for user := range members {
		if user == b.client.UserID {
			continue
		}
		if partner != "" {
			return "" // a group: nobody in particular
		}
		partner = user
	}
	return partner
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

// errRoomGone is a room where the person the message is for, or guichet
// itself, no longer is: nobody would read what is sent there.
var errRoomGone = errors.New("nobody reads this room any more")

// deadRoomError is errRoomGone for a known room and reader (the reader's
// DM is forgotten by then: the error still says whom to tell).
type deadRoomError struct {
	room   id.RoomID
	reader id.UserID
}

func (e *deadRoomError) Error() string {
	return fmt.Sprintf("%s: %s no longer reads %s", errRoomGone, e.reader, e.room)
}
func (e *deadRoomError) Is(target error) bool { return target == errRoomGone }

// inviteError is a failed invitation to a new DM.
type inviteError struct {
	remote bool // the person is on another homeserver
	err    error
}

func (e *inviteError) Error() string { return "failed to invite to a direct message: " + e.err.Error() }
func (e *inviteError) Unwrap() error { return e.err }

// permanent tells the errors that the same request would meet again: the
// homeserver refused it (403, 404, 413, a bad request, an unknown room), the
// room is dead, or the person could not be invited (unknown, or on a
// homeserver that cannot be reached). Rate limits, 5xx and network errors
// are temporary.
func permanent(err error) bool {
	var inv *inviteError
	var refused interface{ Permanent() bool }
	switch {
	case errors.Is(err, errRoomGone), errors.Is(err, errHooksOff):
		return true
	case errors.As(err, &refused):
		return refused.Permanent()
	case errors.Is(err, mautrix.MLimitExceeded):
		return false
	case errors.Is(err, mautrix.MForbidden), errors.Is(err, mautrix.MNotFound), errors.Is(err, mautrix.MTooLarge),
		errors.Is(err, mautrix.MBadJSON), errors.Is(err, mautrix.MNotJSON), errors.Is(err, mautrix.MInvalidParam),
		errors.Is(err, mautrix.MUnrecognized), errors.Is(err, mautrix.MUnsupportedRoomVersion):
		return true
	case errors.As(err, &inv) && inv.remote && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
		// An invite to another homeserver that fails for any other reason
		// means that server could not be reached (Dendrite and Synapse
		// answer 500 or 502): it is not retried every few seconds.
		return true
	}
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) && httpErr.Response != nil {
		code := httpErr.Response.StatusCode
		switch {
		case code == http.StatusTooManyRequests, code == http.StatusRequestTimeout, code == http.StatusUnauthorized:
			// 401: guichet's own session, not the message.
			return false
		case code >= 400 && code < 500:
			return true
		}
	}
	return false
}

// failure is why a message could not be delivered, as told to moderators.
type failure int

const (
	failureRefused     failure = iota // the homeserver refused it
	failureGone                       // the person left, or refused the invite
	failureUnreachable                // the person could not be invited
	failureRetries                    // temporary errors, too many times
)

func failureOf(err error) failure {
	var inv *inviteError
	switch {
	case errors.Is(err, errRoomGone):
		return failureGone
	case errors.As(err, &inv):
		return failureUnreachable
	case permanent(err):
		return failureRefused
	}
	return failureRetries
}

// deliver sends m now (see send).
func (b *Bot) deliver(ctx context.Context, m store.Outgoing) error {
	return b.send(ctx, &m)
}

// send sends m to a room its reader can read and records it sent. What it
// learns on the way (the DM room opened for m) is set on m.
func (b *Bot) send(ctx context.Context, m *store.Outgoing) error {
	if err := b.fenced(ctx); err != nil {
		return err
	}
	if m.Kind == store.KindHook {
		return b.sendHook(ctx, m)
	}
	room, err := b.destination(ctx, m)
	if err != nil {
		return err
	}
	content := format.RenderMarkdown(m.Markdown, true, false)
	content.MsgType = event.MessageType(m.MsgType)
	content.Mentions = &event.Mentions{UserIDs: m.Mentions}
	if m.Replaces != "" {
		content.SetEdit(m.Replaces)
	} else if m.ReplyTo != "" {
		content.RelatesTo = &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: m.ReplyTo}}
	}
	if err := b.waitInFlight(ctx, m); err != nil {
		return err
	}
	if err := b.store.MarkSending(ctx, m.Key, b.now()); err != nil {
		return err
	}
	sendStart := time.Now()
	resp, err := b.client.SendMessageEvent(ctx, room, event.EventMessage, &content, mautrix.ReqSendEvent{TransactionID: txnID(m.Key)})
	b.sent(time.Since(sendStart))
	if err != nil && m.DMUser != "" && room != m.DMCreated && errors.Is(err, mautrix.MForbidden) {
		// The DM looked alive but guichet may no longer write there (it
		// left, or was removed, and the sync has not said so yet): the DM is
		// dead. Once per message, a new one is opened at once.
		b.forgetDM(ctx, m.DMUser, room)
		if room, err = b.destination(ctx, m); err != nil {
			return err
		}
		resp, err = b.client.SendMessageEvent(ctx, room, event.EventMessage, &content, mautrix.ReqSendEvent{TransactionID: txnID(m.Key)})
	}
	if err != nil {
		return fmt.Errorf("failed to send to %s: %w", room, err)
	}
	zerolog.Ctx(ctx).Debug().Str("key", m.Key).Stringer("room_id", room).Stringer("event_id", resp.EventID).Msg("Delivered message")
	return b.store.MarkSent(ctx, m.Key, resp.EventID, b.now())
}

// inFlightGrace is how long a send may still be in progress at the
// homeserver after guichet stopped waiting for it (a kill -9, a timeout).
// The homeserver deduplicates a repeated transaction id only once the first
// request has finished: repeated while the first is in flight, the message
// was delivered twice (an approval confirmation, in the kill -9 loop on
// PostgreSQL, where Dendrite answered sends in up to seconds).
const inFlightGrace = 5 * time.Second

// waitInFlight waits, when an earlier send of m started less than
// inFlightGrace ago and was not recorded as delivered, until that send must
// have finished: the homeserver then answers the repeat with the first
// event instead of a second one.
func (b *Bot) waitInFlight(ctx context.Context, m *store.Outgoing) error {
	if m.SendingAt.IsZero() {
		return nil
	}
	wait := m.SendingAt.Add(inFlightGrace).Sub(b.now())
	if wait <= 0 {
		return nil
	}
	zerolog.Ctx(ctx).Info().Str("key", m.Key).Dur("wait", wait).Msg("Waiting for an earlier send that may still be in flight")
	return sleep(ctx, wait)
}

// destination is the room to send m to, once it is known that its reader
// can read it there: for a message to a person's DM, their DM if it is
// alive, else the room an earlier attempt opened for m, else a new DM.
func (b *Bot) destination(ctx context.Context, m *store.Outgoing) (id.RoomID, error) {
	if m.DMUser == "" {
		if b.serviceRoom(m.RoomID) {
			return m.RoomID, nil
		}
		reader := m.Recipient
		if reader == "" {
			reader, _ = b.store.DMUserOf(ctx, m.RoomID)
		}
		if !b.readable(ctx, m.RoomID, reader) {
			if reader != "" {
				b.forgetDM(ctx, reader, m.RoomID)
			}
			return "", &deadRoomError{room: m.RoomID, reader: reader}
		}
		return m.RoomID, nil
	}
	user := m.DMUser
	room, err := b.store.DMRoom(ctx, user)
	if err != nil {
		return "", err
	}
	if room != "" {
		if b.readable(ctx, room, user) {
			return room, nil
		}
		b.forgetDM(ctx, user, room)
	}
	if m.DMCreated != "" {
		return b.finishDM(ctx, m)
	}
	// A DM created just before a crash, or opened by the agent without
	// is_direct: reuse an encrypted room where only the two of us are.
	if existing := b.findDM(ctx, user); existing != "" {
		return existing, b.store.SetDMRoom(ctx, user, existing, b.now())
	}
	return b.openDM(ctx, m)
}

// readable tells whether reader (if known) and guichet are both still in
// room: joined, or for the reader invited. What the state store does not
// know counts as readable; the homeserver then has the last word.
func (b *Bot) readable(ctx context.Context, room id.RoomID, reader id.UserID) bool {
	states := b.client.StateStore
	if self, err := states.TryGetMember(ctx, room, b.client.UserID); err == nil && self != nil && self.Membership != event.MembershipJoin {
		return false
	}
	if reader == "" {
		return true
	}
	member, err := states.TryGetMember(ctx, room, reader)
	return err != nil || member == nil || member.Membership == event.MembershipJoin || member.Membership == event.MembershipInvite
}

// forgetDM forgets a dead DM, so that the next message to user opens
// another; guichet leaves it if the agent left it alone there.
func (b *Bot) forgetDM(ctx context.Context, user id.UserID, room id.RoomID) {
	log := zerolog.Ctx(ctx).With().Stringer("user_id", user).Stringer("room_id", room).Logger()
	dm, err := b.store.DMRoom(ctx, user)
	if err != nil || dm != room {
		return
	}
	if err := b.store.ForgetDMRoom(ctx, user, room); err != nil {
		log.Err(err).Msg("Failed to forget a dead direct message")
		return
	}
	log.Info().Msg("Direct message is dead: the next message opens another")
	b.abandonRoom(ctx, room)
}

// abandonRoom leaves a room guichet has no more use for, if it is still in it.
func (b *Bot) abandonRoom(ctx context.Context, room id.RoomID) {
	if !b.client.StateStore.IsInRoom(ctx, room, b.client.UserID) {
		return
	}
	if _, err := b.client.LeaveRoom(ctx, room); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Stringer("room_id", room).Msg("Failed to leave an unused room")
	}
}

// openDM creates an encrypted direct-message room for m and records it on
// m before inviting anyone: creating a room is not idempotent, and an invite
// that fails (the person's homeserver is down) would otherwise leave one
// orphan room per attempt. The request itself is recorded first, and the
// room names m in its creation content, so that a room whose creation
// answer was lost (a timeout, a crash) is found and used, not created again.
func (b *Bot) openDM(ctx context.Context, m *store.Outgoing) (id.RoomID, error) {
	log := zerolog.Ctx(ctx).With().Stringer("user_id", m.DMUser).Str("key", m.Key).Logger()
	if !m.DMRequestedAt.IsZero() {
		room, err := b.findRequested(ctx, m)
		if err != nil {
			return "", err
		}
		if room != "" {
			if err := b.store.SetDMCreated(context.WithoutCancel(ctx), m.Key, room); err != nil {
				return "", err
			}
			m.DMCreated = room
			log.Info().Stringer("room_id", room).Msg("Found the direct message an interrupted attempt opened")
			return b.finishDM(ctx, m)
		}
	}
	if err := b.store.DMRequested(context.WithoutCancel(ctx), m.Key, b.now()); err != nil {
		return "", err
	}
	m.DMRequestedAt = b.now()
	resp, err := b.client.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset:          "trusted_private_chat",
		IsDirect:        true,
		CreationContent: map[string]any{dmMarker: txnID(m.Key)},
		InitialState: []*event.Event{{
			Type:    event.StateEncryption,
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
		}},
	})
	if err != nil {
		return "", fmt.Errorf("failed to create a direct message room: %w", err)
	}
	if err := b.store.SetDMCreated(context.WithoutCancel(ctx), m.Key, resp.RoomID); err != nil {
		return "", err
	}
	m.DMCreated = resp.RoomID
	log.Info().Stringer("room_id", resp.RoomID).Msg("Opened direct message")
	return b.finishDM(ctx, m)
}

// dmMarker is the creation-content key of a DM guichet opens, holding the
// transaction id of the message it was opened for.
const dmMarker = "guichet.outbox_txn"

// maxOrphanLookups bounds the create events fetched while looking for a
// room whose creation answer was lost.
const maxOrphanLookups = 50

// findRequested looks, among the rooms where guichet is alone, for the one
// an earlier attempt created for m. Create events the state store holds are
// read there; others are asked for, up to maxOrphanLookups.
func (b *Bot) findRequested(ctx context.Context, m *store.Outgoing) (id.RoomID, error) {
	resp, err := b.client.JoinedRooms(ctx)
	if err != nil {
		return "", fmt.Errorf("failed to list rooms to find one opened earlier: %w", err)
	}
	want := txnID(m.Key)
	states := b.client.StateStore
	lookups := 0
	for _, room := range resp.JoinedRooms {
		if b.serviceRoom(room) {
			continue
		}
		if members, err := states.GetRoomJoinedOrInvitedMembers(ctx, room); err == nil && len(members) > 1 {
			continue
		}
		if create, err := states.GetCreate(ctx, room); err == nil && create != nil {
			if create.Content.Raw[dmMarker] == want {
				return room, nil
			}
			continue
		}
		if lookups++; lookups > maxOrphanLookups {
			break
		}
		var content map[string]any
		if err := b.client.StateEvent(ctx, room, event.StateCreate, "", &content); err == nil && content[dmMarker] == want {
			return room, nil
		}
	}
	return "", nil
}

// finishDM invites m's reader to the room opened for m (unless they already
// are invited or in it) and makes it their DM.
func (b *Bot) finishDM(ctx context.Context, m *store.Outgoing) (id.RoomID, error) {
	room, user := m.DMCreated, m.DMUser
	states := b.client.StateStore
	// A room created just before a restart may not be synced yet: what the
	// state store does not know is asked of the homeserver, not taken for
	// a room guichet left (kill -9 loop on PostgreSQL: a welcome given up as
	// "nobody reads this room" in 2 runs of 8).
	if self, err := states.TryGetMember(ctx, room, b.client.UserID); err == nil && self != nil && self.Membership != event.MembershipJoin {
		return "", errRoomGone
	}
	member, err := states.TryGetMember(ctx, room, user)
	if err == nil && member == nil {
		var content event.MemberEventContent
		if serr := b.client.StateEvent(ctx, room, event.StateMember, user.String(), &content); serr == nil {
			member = &content
		} else if !errors.Is(serr, mautrix.MNotFound) {
			return "", fmt.Errorf("failed to read %s's membership of %s: %w", user, room, serr)
		}
	}
	switch {
	case err != nil:
		return "", fmt.Errorf("failed to read %s's membership: %w", user, err)
	case member == nil:
		if err := b.invite(ctx, room, user); err != nil {
			return "", err
		}
	case member.Membership != event.MembershipJoin && member.Membership != event.MembershipInvite:
		return "", errRoomGone // they refused the invitation or left: not asked again
	}
	return room, b.store.SetDMRoom(ctx, user, room, b.now())
}

// invite asks user into a new DM, as a member event with is_direct so that
// their client files the room among their direct messages (Synapse sends
// it over federation like any invite). Dendrite, though, does not send such
// an event to another homeserver, and a person there would never see it: a
// person on another homeserver is first invited the standard way, which
// reaches any homeserver or fails when theirs cannot be reached, then again
// with is_direct. A person on guichet's own homeserver gets the one
// invitation: invited twice on Dendrite, their client missed the room (its
// sync kept the first invitation while the server had them joined) in 2 of
// 8 runs of TestOutboxWelcomeAfterAgentLeftHerDM, and in none of 8 since.
func (b *Bot) invite(ctx context.Context, room id.RoomID, user id.UserID) error {
	remote := user.Homeserver() != b.client.UserID.Homeserver()
	if remote {
		if _, err := b.client.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: user}); err != nil {
			return &inviteError{remote: true, err: err}
		}
	}
	_, err := b.client.SendStateEvent(ctx, room, event.StateMember, user.String(),
		&event.MemberEventContent{Membership: event.MembershipInvite, IsDirect: true})
	switch {
	case err != nil && remote:
		// Invited already: only the direct-message flag is missing.
		zerolog.Ctx(ctx).Warn().Err(err).Stringer("room_id", room).Stringer("user_id", user).Msg("Failed to mark the invitation as a direct message")
	case err != nil:
		return &inviteError{err: err}
	default:
		if serr := b.client.StateStore.SetMembership(ctx, room, user, event.MembershipInvite); serr != nil {
			zerolog.Ctx(ctx).Warn().Err(serr).Msg("Failed to record an invitation in the state store")
		}
	}
	return nil
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
		if b.serviceRoom(room) {
			continue
		}
		members, err := b.client.StateStore.GetRoomJoinedOrInvitedMembers(ctx, room)
		if err == nil && len(members) == 2 && slices.Contains(members, user) && slices.Contains(members, b.client.UserID) {
			return room
		}
	}
	return ""
}
