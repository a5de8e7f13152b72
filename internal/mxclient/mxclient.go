// Package mxclient is a person on Matrix for end-to-end tests, benchmarks
// and the demo: a real mautrix-go client with end-to-end encryption that
// joins the rooms it is invited to and records every message it sees,
// decrypted.
package mxclient

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
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

	cancel context.CancelFunc
	done   chan struct{}
}

// Start logs the person in with encryption and starts syncing.
func Start(ctx context.Context, opts Options) (*Person, error) {
	cli, err := mautrix.NewClient(opts.Homeserver, opts.UserID, opts.AccessToken)
	if err != nil {
		return nil, err
	}
	cli.DeviceID = opts.DeviceID
	cli.Log = opts.Log
	helper, err := cryptohelper.NewCryptoHelper(cli, []byte("test pickle key for "+opts.UserID), filepath.Join(opts.Dir, "crypto-"+opts.DeviceID.String()+".db"))
	if err != nil {
		return nil, err
	}
	if err := helper.Init(ctx); err != nil {
		return nil, fmt.Errorf("failed to init crypto for %s: %w", opts.UserID, err)
	}
	cli.Crypto = helper
	p := &Person{Client: cli, crypto: helper, invites: map[id.RoomID]bool{}, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	syncer := cli.Syncer.(*mautrix.DefaultSyncer)
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
	switch evt.Content.AsMember().Membership {
	case event.MembershipInvite:
		if evt.Mautrix.EventSource&event.SourceInvite == 0 {
			return
		}
		p.mu.Lock()
		seen := p.invites[evt.RoomID]
		p.invites[evt.RoomID] = true
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
		}
		p.cond.Broadcast()
		p.mu.Unlock()
	}
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

// Close stops syncing and closes the crypto database.
func (p *Person) Close() {
	p.cancel()
	<-p.done
	_ = p.crypto.Close()
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
	for {
		m, err := p.Client.StateStore.GetMember(ctx, room, user)
		if err == nil && m != nil && m.Membership == event.MembershipJoin {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitLeft waits until user has left room, as seen by p.
func (p *Person) WaitLeft(ctx context.Context, room id.RoomID, user id.UserID) error {
	for {
		m, err := p.Client.StateStore.GetMember(ctx, room, user)
		if err == nil && m != nil && m.Membership == event.MembershipLeave {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
