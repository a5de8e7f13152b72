// Package testbed sets up the world guichet lives in, for end-to-end tests,
// benchmarks and the demo: a real Dendrite on loopback, a fake Albert at the
// HTTP boundary, guichet's account, a moderator and the support room.
package testbed

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/albert/fakealbert"
	"guichet/config"
	"guichet/internal/dendrite"
	"guichet/internal/mxclient"
)

// SupportRoomName is the support room's name on Tchap.
const SupportRoomName = "L'Assistant IA | Support et retours"

// Password is every test account's password (Dendrite wants 8+ characters).
const Password = "mot-de-passe-de-test"

// The fake Albert's API key and the model guichet is configured with.
const (
	AlbertKey   = "cle-de-test"
	AlbertModel = "mistral-medium-2508"
)

// Options configures a testbed.
type Options struct {
	Dir        string    // fresh working directory
	ServerName string    // default "localhost"
	Log        io.Writer // Dendrite's output and build output; nil discards
	ClientLog  zerolog.Logger
}

// Testbed is a running homeserver with guichet's surroundings.
type Testbed struct {
	HS          *dendrite.Server
	Albert      *fakealbert.Server
	Bot         dendrite.Account
	Moderator   *mxclient.Person
	SupportRoom id.RoomID
	SupportName string // the room's alias

	dir     string
	log     zerolog.Logger
	devices atomic.Int64
	people  []*mxclient.Person
}

// Start builds Dendrite if needed, starts it, the fake Albert, and creates
// the accounts and the support room (public, unencrypted, like a Tchap forum).
func Start(ctx context.Context, opts Options) (*Testbed, error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	bin, err := dendrite.BinDir()
	if err != nil {
		return nil, err
	}
	if err := dendrite.EnsureBinaries(ctx, bin, opts.Log); err != nil {
		return nil, err
	}
	hsDir := filepath.Join(opts.Dir, "dendrite")
	if err := os.MkdirAll(hsDir, 0o700); err != nil {
		return nil, err
	}
	hs, err := dendrite.Start(ctx, dendrite.Options{BinDir: bin, DataDir: hsDir, ServerName: opts.ServerName, Log: opts.Log})
	if err != nil {
		return nil, err
	}
	tb := &Testbed{HS: hs, Albert: fakealbert.Start(), dir: opts.Dir, log: opts.ClientLog}
	tb.Albert.SetAPIKey(AlbertKey)
	fail := func(err error) (*Testbed, error) {
		tb.Close()
		return nil, err
	}
	if tb.Bot, err = hs.Register(ctx, "assistant-ia", Password, false); err != nil {
		return fail(err)
	}
	if tb.Moderator, err = tb.NewPerson(ctx, "moderateur"); err != nil {
		return fail(err)
	}
	resp, err := tb.Moderator.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset:        "public_chat",
		Name:          SupportRoomName,
		RoomAliasName: "support",
		Topic:         "Demandes d'accès et retours sur l'Assistant IA",
	})
	if err != nil {
		return fail(fmt.Errorf("failed to create support room: %w", err))
	}
	tb.SupportRoom = resp.RoomID
	tb.SupportName = "#support:" + hs.ServerName
	return tb, nil
}

// NewPerson registers localpart and starts an encrypted client for it on a
// device of its own.
func (tb *Testbed) NewPerson(ctx context.Context, localpart string) (*mxclient.Person, error) {
	if _, err := tb.HS.Register(ctx, localpart, Password, false); err != nil {
		return nil, err
	}
	return tb.Login(ctx, localpart)
}

// Login starts one more client (a new device) for an existing account.
func (tb *Testbed) Login(ctx context.Context, localpart string) (*mxclient.Person, error) {
	device := fmt.Sprintf("DEV%d%s", tb.devices.Add(1), strings.ToUpper(strings.Map(keepAlnum, localpart)))
	acct, err := tb.HS.Login(ctx, localpart, Password, device)
	if err != nil {
		return nil, err
	}
	p, err := mxclient.Start(ctx, mxclient.Options{
		Homeserver: tb.HS.URL, UserID: acct.UserID, AccessToken: acct.AccessToken, DeviceID: acct.DeviceID,
		Dir: tb.dir, Log: tb.log.With().Stringer("person", acct.UserID).Logger(),
	})
	if err != nil {
		return nil, err
	}
	tb.people = append(tb.people, p)
	return p, nil
}

func keepAlnum(r rune) rune {
	if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
		return r
	}
	return -1
}

// JoinSupport makes p join the support room.
func (tb *Testbed) JoinSupport(ctx context.Context, p *mxclient.Person) error {
	if _, err := p.Client.JoinRoomByID(ctx, tb.SupportRoom); err != nil {
		return err
	}
	return p.WaitJoined(ctx, tb.SupportRoom)
}

// SetPowerLevel changes user's power level in the support room, as its admin.
func (tb *Testbed) SetPowerLevel(ctx context.Context, user id.UserID, level int) error {
	var pl event.PowerLevelsEventContent
	if err := tb.Moderator.Client.StateEvent(ctx, tb.SupportRoom, event.StatePowerLevels, "", &pl); err != nil {
		return err
	}
	pl.SetUserLevel(user, level)
	_, err := tb.Moderator.Client.SendStateEvent(ctx, tb.SupportRoom, event.StatePowerLevels, "", &pl)
	return err
}

// Config is a valid guichet configuration for this testbed, with its
// database at dbPath. It starts from config.Defaults, so that a key added
// later has its documented default here too (the demo writes this
// configuration to a file and guichet validates it).
func (tb *Testbed) Config(dbPath string) *config.Config {
	cfg, err := config.Defaults()
	if err != nil {
		panic(err) // the defaults are a constant: a test fails at once
	}
	cfg.Matrix = config.Matrix{
		Homeserver: tb.HS.URL, UserID: tb.Bot.UserID.String(), Password: Password,
		PickleKey: "cle-de-chiffrement-de-test-0123456789", DeviceName: "guichet",
		// Not written: tests that need it name a file in their own folder.
		RecoveryKeyFile: "",
	}
	cfg.SupportRoom = tb.SupportName
	cfg.Access.ReminderAfter = 0 // tests that move the clock by hours expect no reminder
	cfg.Albert.BaseURL, cfg.Albert.APIKey, cfg.Albert.Model = tb.Albert.URL, AlbertKey, AlbertModel
	cfg.Albert.Timeout = time.Minute
	cfg.Limits.PerUser = config.PerUserLimits{MessagesPerMinute: 60, Burst: 20, MessagesPerDay: 1000, TokensPerDay: 1000000}
	cfg.Limits.Global.QueueSize = 2000
	cfg.Database.URI = dbPath
	cfg.Policy = config.Policy{URL: "https://albert.example.gouv.fr/politique-donnees", Version: "2026-11"}
	cfg.Log.Level = "debug"
	return cfg
}

// Close stops everything it started.
func (tb *Testbed) Close() {
	for _, p := range tb.people {
		p.Close()
	}
	if tb.Albert != nil {
		tb.Albert.Close()
	}
	if tb.HS != nil {
		_ = tb.HS.Stop()
	}
}
