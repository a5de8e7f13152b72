package bot

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/store"
)

// An encrypted message can arrive before its Megolm key: cryptohelper then
// waits 25 s in memory, after the sync token has moved, and gives up. Here
// the encrypted event is recorded in the inbox before the token moves, and
// decrypted whenever its key arrives (OlmMachine.SessionReceived), at
// start-up, or on the watch below; its sender is asked to send it again
// only after keyWait, and it is given up after keyGiveUp.
const (
	// keyWait is how long a message may wait for its key before its sender
	// is asked to send it again. It is still answered if the key comes later.
	keyWait = 30 * time.Second
	// keyGiveUp is when a message whose key never came is dropped.
	keyGiveUp = 24 * time.Hour
	// keyCheck is how often the messages waiting for a key are looked at.
	keyCheck = 2 * time.Second
)

// keyWatch decrypts the recorded messages whose key arrived late.
type keyWatch struct {
	b *Bot

	decrypted sync.Map // event ids dispatched decrypted in this process (id.EventID -> bool)
	failed    sync.Map // event ids whose decryption failed for good
	told      sync.Map // event ids whose sender was asked to send again
	mu        sync.Mutex
	wake      chan struct{}
}

func newKeyWatch(b *Bot) *keyWatch {
	return &keyWatch{b: b, wake: make(chan struct{}, 1)}
}

// keys is the bot's key watch (nil before connect).
func (b *Bot) keys() *keyWatch {
	if b.client == nil {
		return nil
	}
	if s, ok := b.client.Syncer.(*syncer); ok {
		return s.keys
	}
	return nil
}

// onEncrypted runs after cryptohelper's handler: an event it could not
// decrypt yet is recorded, waiting for its key, before the sync token
// moves. One it decrypted (and onMessage recorded) is not.
func (k *keyWatch) onEncrypted(ctx context.Context, evt *event.Event) {
	b := k.b
	if evt.Sender == b.client.UserID || evt.Mautrix.EventSource&event.SourceTimeline == 0 {
		return
	}
	if _, ok := k.decrypted.LoadAndDelete(evt.ID); ok {
		return
	}
	if _, ok := k.failed.Load(evt.ID); ok {
		return
	}
	content, ok := evt.Content.Parsed.(*event.EncryptedEventContent)
	if !ok || content.SessionID == "" {
		return
	}
	raw, err := json.Marshal(evt)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Stringer("event_id", evt.ID).Msg("Failed to serialise event")
		return
	}
	item := store.InboxItem{EventID: evt.ID, RoomID: evt.RoomID, Sender: evt.Sender, EventJSON: raw, ReceivedAt: b.now(),
		WaitingSession: content.SessionID}
	if err := b.store.AddUndecrypted(ctx, item); err != nil {
		zerolog.Ctx(ctx).Err(err).Stringer("event_id", evt.ID).Msg("Failed to record an encrypted message")
		return
	}
	zerolog.Ctx(ctx).Debug().Stringer("event_id", evt.ID).Stringer("session_id", content.SessionID).Msg("Recorded a message waiting for its key")
	k.nudge()
}

func (k *keyWatch) nudge() {
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// sawDecrypted notes an event that reached onMessage decrypted.
func (k *keyWatch) sawDecrypted(evt *event.Event) {
	if evt.Mautrix.EventSource&event.SourceDecrypted != 0 {
		k.decrypted.Store(evt.ID, true)
	}
}

// sessionReceived is OlmMachine.SessionReceived: it runs while the sync is
// processed, so the decryption is left to the watch.
func (k *keyWatch) sessionReceived(_ context.Context, _ id.RoomID, _ id.SessionID, _ uint32) {
	k.nudge()
}

// run looks at the waiting messages at once (those of an earlier run
// first), whenever a key arrives or a message is recorded, and every
// keyCheck while some wait: an idle guichet does nothing.
func (k *keyWatch) run(ctx context.Context) {
	timer := time.NewTimer(keyCheck)
	defer timer.Stop()
	for {
		var tick <-chan time.Time
		if k.pass(ctx) > 0 {
			timer.Reset(keyCheck)
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-k.wake:
		case <-tick:
		}
	}
}

// pass decrypts the waiting messages whose key is there, asks the senders
// of those waiting longer than keyWait, and drops those older than
// keyGiveUp. It returns how many still wait.
func (k *keyWatch) pass(ctx context.Context) (waiting int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.b
	log := zerolog.Ctx(ctx)
	items, err := b.store.WaitingForKey(ctx, "")
	if err != nil {
		log.Err(err).Msg("Failed to read the messages waiting for a key")
		return 1 // try again on the next tick
	}
	// Only an optimisation of onEncrypted (a recorded event is not
	// recorded again): forgetting it costs one statement at most.
	k.decrypted.Clear()
	for _, item := range items {
		if ctx.Err() != nil {
			return 0
		}
		age := b.now().Sub(item.ReceivedAt)
		if k.retry(ctx, item) {
			continue
		}
		waiting++
		switch {
		case age >= keyGiveUp:
			log.Warn().Stringer("event_id", item.EventID).Msg("Gave up waiting for the key of a message")
			if err := b.store.SettleWaiting(ctx, item.EventID, b.now()); err != nil {
				log.Err(err).Msg("Failed to give up an encrypted message")
			}
		case age >= keyWait:
			if _, told := k.told.LoadOrStore(item.EventID, true); !told {
				log.Info().Stringer("event_id", item.EventID).Msg("Asking to send again a message whose key did not come")
				b.tellUndecryptable(ctx, item.EventID, item.RoomID, item.Sender)
			}
		}
	}
	return waiting
}

// retry decrypts a recorded message if its key is there now and hands it
// to the handlers as the sync would have; it reports whether it did.
func (k *keyWatch) retry(ctx context.Context, item store.InboxItem) bool {
	b := k.b
	var evt event.Event
	if err := json.Unmarshal(item.EventJSON, &evt); err != nil {
		zerolog.Ctx(ctx).Err(err).Stringer("event_id", item.EventID).Msg("Failed to decode a recorded encrypted event")
		_ = b.store.SettleWaiting(ctx, item.EventID, b.now())
		return true
	}
	evt.Type.Class = event.MessageEventType
	if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
		_ = b.store.SettleWaiting(ctx, item.EventID, b.now())
		return true
	}
	dec, err := b.crypto.Decrypt(ctx, &evt)
	if err != nil {
		zerolog.Ctx(ctx).Debug().Err(err).Stringer("event_id", item.EventID).Msg("Still no key for a recorded message")
		return false // still no key (or never: keyGiveUp ends it)
	}
	zerolog.Ctx(ctx).Info().Stringer("event_id", item.EventID).Dur("waited", b.now().Sub(item.ReceivedAt)).Msg("Decrypted a message whose key came late")
	dec.Mautrix.EventSource = event.SourceJoin | event.SourceTimeline | event.SourceDecrypted
	if d, ok := b.client.Syncer.(mautrix.DispatchableSyncer); ok {
		d.Dispatch(ctx, dec)
	}
	// Something guichet does not act on (its handler left the row as it
	// was) is done with.
	if err := b.store.SettleWaiting(ctx, item.EventID, b.now()); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to settle a decrypted message")
	}
	return true
}
