// Package mxclient is a person on Matrix for end-to-end tests, benchmarks
// and the demo: a real mautrix-go client with end-to-end encryption that
// joins the rooms it is invited to and records every message it sees,
// decrypted.
package mxclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Message is what a person saw of one message.
type Message struct {
	RoomID        id.RoomID
	EventID       id.EventID
	Sender        id.UserID
	MsgType       event.MessageType
	Body          string
	Format        event.Format
	FormattedBody string
	Encrypted     bool
	InReplyTo     id.EventID
	ReplaceOf     id.EventID
	Mentions      []id.UserID
	At            time.Time // when the client received it
}

// Options configures a person.
type Options struct {
	Homeserver  string
	UserID      id.UserID
	AccessToken string
	DeviceID    id.DeviceID
	Dir         string // for the crypto database
	Log         zerolog.Logger
	// InMemory keeps the E2EE keys and the room state in memory instead of
	// a SQLite file: a cheaper person for benchmarks with many of them (Dir
	// is then unused, and nothing survives Close).
	InMemory bool
	// HTTPClient replaces mautrix's own (whose transport keeps only two
	// idle connections per host), e.g. to share one pool among many people.
	HTTPClient *http.Client
}

// Person is a syncing Matrix client.
type Person struct {
	Client *mautrix.Client
	crypto *cryptohelper.CryptoHelper

	mu       sync.Mutex
	cond     *sync.Cond
	messages []Message
	joined   []id.RoomID
	invites  map[id.RoomID]bool
	invitAt  map[id.RoomID]time.Time // when each invitation was first seen
	joinAt   map[id.RoomID]time.Time // when the person's own join was first seen

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// Start logs the person in with encryption and starts syncing.
func Start(ctx context.Context, opts Options) (*Person, error) {
	cli, err := mautrix.NewClient(opts.Homeserver, opts.UserID, opts.AccessToken)
	if err != nil {
		return nil, err
	}
	cli.DeviceID = opts.DeviceID
	cli.Log = opts.Log
	if opts.HTTPClient != nil {
		cli.Client = opts.HTTPClient
	}
	var store any = filepath.Join(opts.Dir, "crypto-"+opts.DeviceID.String()+".db")
	if opts.InMemory {
		cli.StateStore = mautrix.NewMemoryStateStore()
		store = crypto.NewMemoryStore(nil)
	}
	helper, err := cryptohelper.NewCryptoHelper(cli, []byte("test pickle key for "+opts.UserID), store)
	if err != nil {
		return nil, err
	}
	if err := helper.Init(ctx); err != nil {
		return nil, fmt.Errorf("failed to init crypto for %s: %w", opts.UserID, err)
	}
	cli.Crypto = helper
	p := &Person{Client: cli, crypto: helper, invites: map[id.RoomID]bool{},
		invitAt: map[id.RoomID]time.Time{}, joinAt: map[id.RoomID]time.Time{}, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	syncer := cli.Syncer.(*mautrix.DefaultSyncer)
	if opts.InMemory {
		// cryptohelper keeps a state store up to date only when it made it.
		syncer.OnEvent(cli.StateStoreSyncHandler)
	}
	syncer.OnEventType(event.EventMessage, p.onMessage)
	syncer.OnEventType(event.StateMember, p.onMember)

	syncCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	firstSync := make(chan struct{})
	var once sync.Once
	syncer.OnSync(func(context.Context, *mautrix.RespSync, string) bool {
		once.Do(func() { close(firstSync) })
		return true
	})
	go func() {
		defer close(p.done)
		err := cli.SyncWithContext(syncCtx)
		if err != nil && !errors.Is(err, context.Canceled) {
			opts.Log.Err(err).Msg("sync stopped")
		}
	}()
	select {
	case <-firstSync:
	case <-ctx.Done():
		p.Close()
		return nil, ctx.Err()
	}
	return p, nil
}

// UserID is the person's Matrix id.
func (p *Person) UserID() id.UserID { return p.Client.UserID }

func (p *Person) onMember(ctx context.Context, evt *event.Event) {
	if evt.GetStateKey() != p.Client.UserID.String() {
		return
	}
	now := time.Now()
	switch evt.Content.AsMember().Membership {
	case event.MembershipInvite:
		if evt.Mautrix.EventSource&event.SourceInvite == 0 {
			return
		}
		p.mu.Lock()
		seen := p.invites[evt.RoomID]
		if !seen {
			p.invites[evt.RoomID] = true
			p.invitAt[evt.RoomID] = now
		}
		p.cond.Broadcast()
		p.mu.Unlock()
		if !seen {
			go func() {
				_, _ = p.Client.JoinRoomByID(context.WithoutCancel(ctx), evt.RoomID)
			}()
		}
	case event.MembershipJoin:
		p.mu.Lock()
		if !slices.Contains(p.joined, evt.RoomID) {
			p.joined = append(p.joined, evt.RoomID)
			p.joinAt[evt.RoomID] = now
		}
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// InviteAt tells when the person's client first saw an invitation to room.
func (p *Person) InviteAt(room id.RoomID) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.invitAt[room]
	return at, ok
}

// JoinedAt tells when the person's client first saw its own join of room
// (the sync that carried it, not the join call's answer).
func (p *Person) JoinedAt(room id.RoomID) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.joinAt[room]
	return at, ok
}

// WaitInvite waits until the person has been invited to a room that match
// accepts (nil: any) and returns the earliest such room with the time its
// invitation was seen.
func (p *Person) WaitInvite(ctx context.Context, match func(id.RoomID) bool) (id.RoomID, time.Time, error) {
	var room id.RoomID
	var at time.Time
	err := p.waitFor(ctx, func() bool {
		for r, t := range p.invitAt {
			if (match == nil || match(r)) && (room == "" || t.Before(at)) {
				room, at = r, t
			}
		}
		return room != ""
	})
	return room, at, err
}

func (p *Person) onMessage(_ context.Context, evt *event.Event) {
	content, ok := evt.Content.Parsed.(*event.MessageEventContent)
	if !ok {
		return
	}
	m := Message{
		RoomID: evt.RoomID, EventID: evt.ID, Sender: evt.Sender, At: time.Now(),
		Encrypted: evt.Mautrix.WasEncrypted,
	}
	if content.RelatesTo != nil {
		m.InReplyTo = content.RelatesTo.GetReplyTo()
		m.ReplaceOf = content.RelatesTo.GetReplaceID()
	}
	if m.ReplaceOf != "" && content.NewContent != nil {
		content = content.NewContent
	}
	m.MsgType, m.Body, m.Format, m.FormattedBody = content.MsgType, content.Body, content.Format, content.FormattedBody
	if content.Mentions != nil {
		m.Mentions = content.Mentions.UserIDs
	}
	p.mu.Lock()
	p.messages = append(p.messages, m)
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Messages returns every message seen so far.
func (p *Person) Messages() []Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.messages)
}

// waitFor blocks until check finds what it wants or ctx ends.
func (p *Person) waitFor(ctx context.Context, check func() bool) error {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for !check() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.cond.Wait()
	}
	return nil
}

// WaitMessage returns the first message, from the start, that matches.
func (p *Person) WaitMessage(ctx context.Context, match func(Message) bool) (Message, error) {
	var found Message
	err := p.waitFor(ctx, func() bool {
		for _, m := range p.messages {
			if match(m) {
				found = m
				return true
			}
		}
		return false
	})
	return found, err
}

// WaitJoined waits until the person is in room.
func (p *Person) WaitJoined(ctx context.Context, room id.RoomID) error {
	return p.waitFor(ctx, func() bool { return slices.Contains(p.joined, room) })
}

// SendText sends a plain text message (encrypted if the room is).
func (p *Person) SendText(ctx context.Context, room id.RoomID, text string) (id.EventID, error) {
	return p.Send(ctx, room, &event.MessageEventContent{MsgType: event.MsgText, Body: text})
}

// Send sends any message content.
func (p *Person) Send(ctx context.Context, room id.RoomID, content *event.MessageEventContent) (id.EventID, error) {
	resp, err := p.Client.SendMessageEvent(ctx, room, event.EventMessage, content)
	if err != nil {
		return "", err
	}
	return resp.EventID, nil
}

// Close stops syncing and closes the crypto database. It may be called
// more than once.
func (p *Person) Close() {
	p.cancel()
	<-p.done
	p.closeOnce.Do(func() { _ = p.crypto.Close() })
}

// CreateDM opens an encrypted direct message with other, as Tchap clients do.
func (p *Person) CreateDM(ctx context.Context, other id.UserID) (id.RoomID, error) {
	resp, err := p.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset:   "trusted_private_chat",
		IsDirect: true,
		Invite:   []id.UserID{other},
		InitialState: []*event.Event{{
			Type:    event.StateEncryption,
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
		}},
	})
	if err != nil {
		return "", err
	}
	return resp.RoomID, nil
}

// WaitMember waits until user has joined room, as seen by p.
func (p *Person) WaitMember(ctx context.Context, room id.RoomID, user id.UserID) error {
	return p.WaitMembership(ctx, room, user, event.MembershipJoin)
}

// WaitLeft waits until user has left room, as seen by p.
func (p *Person) WaitLeft(ctx context.Context, room id.RoomID, user id.UserID) error {
	return p.WaitMembership(ctx, room, user, event.MembershipLeave)
}

// WaitMembership waits until user's membership of room is one of want, as
// seen by p's state store.
func (p *Person) WaitMembership(ctx context.Context, room id.RoomID, user id.UserID, want ...event.Membership) error {
	for {
		m, err := p.Client.StateStore.GetMember(ctx, room, user)
		if err == nil && m != nil && slices.Contains(want, m.Membership) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
