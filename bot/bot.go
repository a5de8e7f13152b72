// Package bot is guichet on Matrix: it syncs with the homeserver, keeps the
// end-to-end encryption going, registers agents who announce themselves in
// the support room, takes the moderators' decisions and answers approved
// agents in their direct messages.
package bot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/albert"
	"guichet/approvals"
	"guichet/conversation"
	"guichet/ratelimit"
	"guichet/store"
)

// Config is what the bot needs to know, already validated.
type Config struct {
	Homeserver    string
	UserID        id.UserID
	Password      string
	AccessToken   string
	DeviceID      id.DeviceID
	DeviceName    string
	PickleKey     string
	SupportRoom   string // id or alias
	Moderators    []id.UserID
	MinPowerLevel int
	PolicyURL     string
	PolicyVersion string
	Model         string
	Models        []string // the models agents may choose (Model always may)
	AlbertTimeout time.Duration
	MaxInputChars int
	EditInterval  time.Duration
	// FirstMessageAfter bounds the wait for a streamed answer's first
	// message (see stream.run).
	FirstMessageAfter time.Duration
	MaxRetries        int
	// Retention is how long conversation turns and stored message texts
	// are kept (0: 30 days).
	Retention time.Duration
	// OpsRoom receives operator alerts (optional).
	OpsRoom string
	// Breaker slows everyone down while Albert is overloaded.
	Breaker ratelimit.BreakerConfig
	// OverloadFactor tightens per-agent limits in overload mode (shown to moderators).
	OverloadFactor float64
	// BreakerMaxWait is how long a question waits for an open breaker
	// before the agent is told to try again later.
	BreakerMaxWait time.Duration
	// ReminderAfter is how long a request may wait before the room is
	// reminded of it (0: never); ReminderCheck how often that is checked.
	ReminderAfter time.Duration
	ReminderCheck time.Duration
	// Location is the time zone of dates shown to people.
	Location *time.Location

	// RecoveryKeyFile receives, once, the recovery key of the cross-signing
	// keys guichet creates (empty: not written).
	RecoveryKeyFile string
}

// Fence says whether this process may still send (ha.Term implements it):
// with a hot standby, a leader that lost its lock must send nothing more,
// even what it had already claimed.
type Fence interface {
	// Check returns an error unless this process may send now.
	Check(ctx context.Context) error
	// Lost reports whether the leadership was lost (an expected refusal,
	// not a failure to check).
	Lost() bool
}

// errFenced is returned for a send refused by the fence.
var errFenced = errors.New("not the leader any more: sending nothing")

// SetFence makes every send check f first; call it before Run.
func (b *Bot) SetFence(f Fence) { b.fence = f }

// fenced returns errFenced when the fence refuses (nil without a fence).
func (b *Bot) fenced(ctx context.Context) error {
	if b.fence == nil {
		return nil
	}
	if err := b.fence.Check(ctx); err != nil {
		if ctx.Err() == nil && !b.fence.Lost() {
			// Refusing is right (the leadership cannot be checked), and it
			// must be seen: every delivery waits for it.
			b.log.Error().Err(err).Msg("Fence check failed: sending nothing until it works again")
		}
		return fmt.Errorf("%w: %v", errFenced, err)
	}
	return nil
}

// Assistant answers questions; albert.Client implements it.
type Assistant interface {
	Stream(ctx context.Context, model string, msgs []albert.Message, onDelta func(textSoFar string)) (albert.Answer, error)
	Models(ctx context.Context) ([]albert.Model, error)
}

// Store is the persistence the bot uses; store.Store implements it.
type Store interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	AddInbox(ctx context.Context, item store.InboxItem) (bool, error)
	MarkDone(ctx context.Context, eventID id.EventID, at time.Time) error
	UnfinishedInbox(ctx context.Context) ([]store.InboxItem, error)
	AddUndecrypted(ctx context.Context, item store.InboxItem) error
	WaitingForKey(ctx context.Context, session id.SessionID) ([]store.InboxItem, error)
	SettleWaiting(ctx context.Context, evt id.EventID, at time.Time) error
	Question(ctx context.Context, evt id.EventID) (store.QuestionState, error)
	SetAdmitted(ctx context.Context, evt id.EventID, room id.RoomID, user id.UserID, at time.Time, admitted bool) error
	PlaceholderSending(ctx context.Context, evt id.EventID, room id.RoomID, user id.UserID, at time.Time) error
	SetPlaceholder(ctx context.Context, evt id.EventID, placeholder id.EventID) error
	Enqueue(ctx context.Context, msg store.Outgoing) error
	Due(ctx context.Context, now time.Time, limit int) ([]store.Outgoing, error)
	NextAttempt(ctx context.Context, now time.Time) (time.Time, bool, error)
	MarkSending(ctx context.Context, key string, at time.Time) error
	MarkSent(ctx context.Context, key string, eventID id.EventID, at time.Time) error
	Failed(ctx context.Context, key, reason string, at time.Time, permanent bool) (bool, error)
	DMRequested(ctx context.Context, key string, at time.Time) error
	SetDMCreated(ctx context.Context, key string, room id.RoomID) error
	CountGivenUp(ctx context.Context, since time.Time) (map[store.Kind]int, error)
	OutgoingByEvent(ctx context.Context, evt id.EventID) (*store.Outgoing, error)
	DMRoom(ctx context.Context, user id.UserID) (id.RoomID, error)
	DMUserOf(ctx context.Context, room id.RoomID) (id.UserID, error)
	SetDMRoom(ctx context.Context, user id.UserID, room id.RoomID, at time.Time) error
	ForgetDMRoom(ctx context.Context, user id.UserID, room id.RoomID) error
	Forget(ctx context.Context, user id.UserID) error
	ForgetEvent(ctx context.Context, room id.RoomID, evt id.EventID) error
	ExpireTexts(ctx context.Context, before time.Time) (int64, error)
	AddUsage(ctx context.Context, u store.Usage) error
	UsageSince(ctx context.Context, user id.UserID, since time.Time) (store.UsageTotals, error)
	PendingPage(ctx context.Context, olderThan time.Time, limit int) ([]*approvals.Request, int, error)
	RequestByID(ctx context.Context, reqID int64) (*approvals.Request, error)
	RequestByEvent(ctx context.Context, evt id.EventID) (*approvals.Request, error)
	SenderOf(ctx context.Context, evt id.EventID) (id.UserID, error)
	CountByStatus(ctx context.Context) (map[approvals.Status]int, error)
	CountByPartner(ctx context.Context) (map[string]map[approvals.Status]int, error)
	Audit(ctx context.Context, target id.UserID) ([]approvals.AuditEntry, error)
	Setting(ctx context.Context, key string) (string, bool, error)
	SetSetting(ctx context.Context, key, value string, at time.Time) error
	StatsSince(ctx context.Context, since time.Time, partner string) (store.Stats, error)
	Prune(ctx context.Context, before time.Time) (int64, error)
}

var _ Store = (*store.Store)(nil)

// Deps are the bot's collaborators.
type Deps struct {
	DB        *dbutil.Database // shared with the crypto and state stores
	Store     Store
	Approvals *approvals.Service
	// Conversations builds prompts (history, excerpts) and records answers.
	Conversations *conversation.Service
	Assistant     Assistant
	Limiter       *ratelimit.Limiter // per-agent limits and quotas
	Gate          *ratelimit.Gate    // global concurrency and rate limits
	Log           zerolog.Logger
	Now           func() time.Time
	Metrics       Metrics // nil: nothing recorded
	// Hooks posts access decisions to hooks.decisions_url (nil: off).
	Hooks HookSender
	// Partners are the partners' profiles, in configuration order (the
	// default profile is made of Assistant, Conversations, Limiter and
	// Gate above).
	Partners []ProfileDeps
}

// Bot is guichet's Matrix side.
type Bot struct {
	cfg       Config
	db        *dbutil.Database
	store     Store
	approvals *approvals.Service
	fence     Fence // nil: no hot standby
	// sendLatency is the homeserver's recent time to accept a message, in
	// ns (see sent, editInterval).
	sendLatency atomic.Int64
	// profiles are the default profile, then the partners': each question
	// is answered with its agent's (see profileOf).
	profiles []*profile
	log      zerolog.Logger
	now      func() time.Time
	metrics  Metrics
	hooks    HookSender

	loc         *time.Location
	opsRoom     id.RoomID
	client      *mautrix.Client
	crypto      *cryptohelper.CryptoHelper
	supportRoom id.RoomID
	moderators  map[id.UserID]bool

	ready     chan struct{}
	readyOnce sync.Once
	wake      chan struct{}  // nudges the outbox
	joins     sync.WaitGroup // invites being accepted
	joinSem   chan struct{}  // bounds parallel joins
	work      sync.WaitGroup

	leaving sync.Map // rooms guichet is leaving (id.RoomID -> bool)

	convMu sync.Mutex
	convs  map[id.RoomID]chan store.InboxItem
}

// New prepares a bot; Run connects it.
func New(cfg Config, deps Deps) *Bot {
	mods := make(map[id.UserID]bool, len(cfg.Moderators))
	for _, m := range cfg.Moderators {
		mods[m] = true
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	loc := cfg.Location
	if loc == nil {
		loc = time.UTC
	}
	if cfg.ReminderCheck <= 0 {
		cfg.ReminderCheck = time.Minute
	}
	b := &Bot{
		cfg: cfg, loc: loc, db: deps.DB, store: deps.Store, approvals: deps.Approvals,
		log: deps.Log, now: now, metrics: cmp.Or[Metrics](deps.Metrics, noMetrics{}), moderators: mods, hooks: deps.Hooks,
		ready: make(chan struct{}), wake: make(chan struct{}, 1), joinSem: make(chan struct{}, 8),
		convs: make(map[id.RoomID]chan store.InboxItem),
	}
	b.profiles = append(b.profiles, b.newProfile(ProfileDeps{
		Name: textDefaultProfile, Assistant: deps.Assistant, Conversations: deps.Conversations,
		Limiter: deps.Limiter, Gate: deps.Gate, Model: cfg.Model, Models: cfg.Models,
	}))
	for _, d := range deps.Partners {
		b.profiles = append(b.profiles, b.newProfile(d))
	}
	if b.cfg.BreakerMaxWait <= 0 {
		b.cfg.BreakerMaxWait = 2 * time.Minute
	}
	return b
}

// promoteAtStart approves the waitlisted agents that fit: a change of
// partners in the configuration may have moved them to a profile with room.
// They are welcomed, and the support room told.
func (b *Bot) promoteAtStart(ctx context.Context) {
	// One transaction: promoted and told, or neither (a crash between the
	// two would leave agents approved that nobody tells).
	err := b.store.InTx(ctx, func(ctx context.Context) error {
		promoted, err := b.approvals.Promote(ctx)
		if err != nil || len(promoted) == 0 {
			return err
		}
		line, err := b.welcomePromoted(ctx, "", promoted)
		if err != nil {
			return err
		}
		return b.store.Enqueue(ctx, outgoingNotice(fmt.Sprintf("promoted:%d", promoted[0].ID), b.supportRoom, "", strings.TrimSpace(line), b.now()))
	})
	if err != nil {
		b.log.Err(err).Msg("Failed to promote waitlisted agents at start-up")
		return
	}
	b.nudge()
}

// Ready is closed once the bot has joined the support room and processed its
// first sync.
func (b *Bot) Ready() <-chan struct{} { return b.ready }

// SupportRoomID is the resolved support room (set once ready).
func (b *Bot) SupportRoomID() id.RoomID { return b.supportRoom }

// DeviceID is the bot's Matrix device (set once ready).
func (b *Bot) DeviceID() id.DeviceID { return b.client.DeviceID }

// ErrExpiredAccount is returned when Tchap says the bot's account expired.
var ErrExpiredAccount = errors.New("the bot's Matrix account has expired (ORG_MATRIX_EXPIRED_ACCOUNT): renew it")

// Run connects, syncs and serves until ctx ends; it returns after in-flight
// work has finished.
func (b *Bot) Run(ctx context.Context) error {
	ctx = b.log.WithContext(ctx)
	if err := b.connect(ctx); err != nil {
		return err
	}
	defer b.work.Wait()

	syncCtx, stopSync := context.WithCancel(ctx)
	defer stopSync()
	b.work.Add(2)
	go func() {
		defer b.work.Done()
		b.deliverLoop(syncCtx)
	}()
	go func() {
		defer b.work.Done()
		b.housekeeping(syncCtx)
	}()
	b.work.Add(1)
	go b.watchAccounts(syncCtx)
	if err := b.resumeInbox(syncCtx); err != nil {
		return err
	}
	b.promoteAtStart(syncCtx)
	err := b.client.SyncWithContext(syncCtx)
	stopSync()
	if err != nil && !errors.Is(err, context.Canceled) {
		if strings.Contains(err.Error(), "ORG_MATRIX_EXPIRED_ACCOUNT") {
			return ErrExpiredAccount
		}
		return fmt.Errorf("sync stopped: %w", err)
	}
	return nil
}

// homeserverTransport is Go's default transport with room for the
// requests guichet keeps in flight to its homeserver under load: a
// streamed answer's sends and typing notices each, plus the outbox's
// parallel sends. With Go's default of two idle connections per host, all
// but two of them were closed after use and dialled again at the next
// request, on both sides.
func homeserverTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = maxIdleHomeserverConns
	t.MaxIdleConnsPerHost = maxIdleHomeserverConns
	t.IdleConnTimeout = 30 * time.Second
	return t
}

// maxIdleHomeserverConns bounds the idle connections kept to the
// homeserver (each holds about 10 kB and two goroutines).
const maxIdleHomeserverConns = 64

// connect logs in, sets up encryption and joins the support room.
func (b *Bot) connect(ctx context.Context) error {
	cli, err := mautrix.NewClient(b.cfg.Homeserver, b.cfg.UserID, b.cfg.AccessToken)
	if err != nil {
		return fmt.Errorf("failed to create Matrix client: %w", err)
	}
	cli.Log = b.log.With().Str("component", "matrix").Logger()
	cli.Client = &http.Client{Timeout: 180 * time.Second, Transport: homeserverTransport()}
	cli.DeviceID = b.cfg.DeviceID
	syncer := newSyncer(b)
	cli.Syncer = syncer
	b.client = cli

	helper, err := cryptohelper.NewCryptoHelper(cli, []byte(b.cfg.PickleKey), b.db)
	if err != nil {
		return fmt.Errorf("failed to set up encryption: %w", err)
	}
	resumed := false
	if b.cfg.AccessToken == "" {
		if resumed, err = b.resumeSession(ctx, cli); err != nil {
			return err
		}
	}
	if b.cfg.AccessToken == "" && !resumed {
		helper.LoginAs = &mautrix.ReqLogin{
			Type:                     mautrix.AuthTypePassword,
			Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: string(b.cfg.UserID)},
			Password:                 b.cfg.Password,
			InitialDeviceDisplayName: b.cfg.DeviceName,
		}
	}
	helper.DecryptErrorCallback = b.onDecryptError
	if err := helper.Init(ctx); err != nil {
		if strings.Contains(err.Error(), "ORG_MATRIX_EXPIRED_ACCOUNT") {
			return ErrExpiredAccount
		}
		return fmt.Errorf("failed to start encryption: %w", err)
	}
	// Messages recorded while their key was missing are decrypted as soon
	// as it arrives, whenever that is.
	helper.Machine().SessionReceived = syncer.keys.sessionReceived
	cli.Crypto = helper
	b.crypto = helper
	if helper.LoginAs != nil {
		b.saveSession(ctx, cli)
	}
	b.crossSign(ctx, helper.Machine())
	syncer.otk = &otkKeeper{mach: helper.Machine(), now: b.now}
	// The sync token is saved only after each sync's events are recorded.
	cli.Store = syncer.wrapStore(cli.Store)
	syncer.register()

	room, err := b.resolveRoom(ctx, b.cfg.SupportRoom)
	if err != nil {
		return err
	}
	b.supportRoom = room
	if _, err := cli.JoinRoom(ctx, b.cfg.SupportRoom, nil); err != nil {
		return fmt.Errorf("failed to join support room %s: %w", b.cfg.SupportRoom, err)
	}
	if b.cfg.OpsRoom != "" {
		if b.opsRoom, err = b.resolveRoom(ctx, b.cfg.OpsRoom); err != nil {
			return err
		}
		if _, err := cli.JoinRoom(ctx, b.cfg.OpsRoom, nil); err != nil {
			return fmt.Errorf("failed to join ops room %s: %w", b.cfg.OpsRoom, err)
		}
	}
	zerolog.Ctx(ctx).Info().Stringer("device_id", cli.DeviceID).Stringer("support_room", room).Msg("Connected to the homeserver")
	return nil
}

// sessionKey is the setting holding the session obtained with the password.
const sessionKey = "matrix_session"

// resumeSession reuses the access token of the last password login when it is
// still valid. Keeping one token keeps the homeserver's transaction-id
// deduplication working across restarts, so a send interrupted by a crash and
// repeated afterwards is not delivered twice.
// sessionRetries is how many times a saved session is checked again when
// the homeserver does not answer (1 s, 2 s, … apart: about 45 s in all).
const sessionRetries = 9

func (b *Bot) resumeSession(ctx context.Context, cli *mautrix.Client) (bool, error) {
	raw, ok, err := b.store.Setting(ctx, sessionKey)
	if err != nil || !ok {
		return false, nil
	}
	user, rest, _ := strings.Cut(raw, "|")
	device, token, _ := strings.Cut(rest, "|")
	if id.UserID(user) != b.cfg.UserID || device == "" || token == "" {
		return false, nil
	}
	cli.AccessToken, cli.DeviceID = token, id.DeviceID(device)
	resp, err := cli.Whoami(ctx)
	// Only the homeserver saying the token is gone ends the session: a
	// busy or restarting homeserver must not make guichet log in again,
	// which would create a new device (agents' clients would then see a
	// new, unverified device, and the homeserver would no longer recognise
	// the transaction ids of sends repeated after a crash).
	for attempt := 0; err != nil && !errors.Is(err, mautrix.MUnknownToken) && !errors.Is(err, mautrix.MForbidden) && attempt < sessionRetries; attempt++ {
		zerolog.Ctx(ctx).Warn().Err(err).Int("attempt", attempt+1).Msg("Failed to check the saved session: trying again")
		if sleep(ctx, time.Duration(attempt+1)*time.Second) != nil {
			break
		}
		resp, err = cli.Whoami(ctx)
	}
	if err != nil && !errors.Is(err, mautrix.MUnknownToken) && !errors.Is(err, mautrix.MForbidden) {
		// Still no answer: better to stop (and be restarted) than to
		// replace the device.
		return false, fmt.Errorf("failed to check the saved session with the homeserver: %w", err)
	}
	if err != nil || resp.DeviceID != cli.DeviceID {
		zerolog.Ctx(ctx).Info().Err(err).Msg("Saved session no longer valid, logging in again")
		cli.AccessToken, cli.DeviceID = "", b.cfg.DeviceID
		return false, nil
	}
	return true, nil
}

func (b *Bot) saveSession(ctx context.Context, cli *mautrix.Client) {
	value := cli.UserID.String() + "|" + cli.DeviceID.String() + "|" + cli.AccessToken
	if err := b.store.SetSetting(ctx, sessionKey, value, b.now()); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Failed to save the session")
	}
}

func (b *Bot) resolveRoom(ctx context.Context, room string) (id.RoomID, error) {
	if strings.HasPrefix(room, "!") {
		return id.RoomID(room), nil
	}
	resp, err := b.client.ResolveAlias(ctx, id.RoomAlias(room))
	if err != nil {
		return "", fmt.Errorf("failed to resolve support room alias %s: %w", room, err)
	}
	return resp.RoomID, nil
}

func (b *Bot) markReady() {
	b.readyOnce.Do(func() { close(b.ready) })
}

// isModerator reads the moderators list and the support room's current power
// levels, so a promotion or demotion applies at once.
func (b *Bot) isModerator(ctx context.Context, user id.UserID) bool {
	if user == b.client.UserID {
		return false
	}
	if b.moderators[user] {
		return true
	}
	pl, err := b.client.StateStore.GetPowerLevels(ctx, b.supportRoom)
	if err != nil || pl == nil {
		return false
	}
	return pl.GetUserLevel(user) >= b.cfg.MinPowerLevel
}

// onDecryptError is told by cryptohelper that a message could not be
// decrypted. A missing key is waited for longer (see keyWatch): the message
// is in the inbox, and is answered whenever its key arrives; its sender is
// asked to send it again only after keyWait. Any other failure will not
// get better: the sender is asked at once.
func (b *Bot) onDecryptError(evt *event.Event, err error) {
	ctx := b.log.WithContext(context.Background())
	if errors.Is(err, crypto.ErrNoSessionFound) {
		b.log.Info().Err(err).Stringer("event_id", evt.ID).Stringer("room_id", evt.RoomID).Stringer("sender", evt.Sender).Msg("Still waiting for the key of an event")
		return
	}
	b.log.Warn().Err(err).Stringer("event_id", evt.ID).Stringer("room_id", evt.RoomID).Stringer("sender", evt.Sender).Msg("Failed to decrypt event")
	if evt.Sender == b.client.UserID {
		return
	}
	if k := b.keys(); k != nil {
		k.failed.Store(evt.ID, true)
	}
	if serr := b.store.SettleWaiting(ctx, evt.ID, b.now()); serr != nil {
		b.log.Err(serr).Msg("Failed to settle an undecryptable event")
	}
	b.tellUndecryptable(ctx, evt.ID, evt.RoomID, evt.Sender)
}

// tellUndecryptable asks the sender of a message guichet cannot decrypt,
// once per message, to send it again.
func (b *Bot) tellUndecryptable(ctx context.Context, evtID id.EventID, room id.RoomID, sender id.UserID) {
	if room == b.supportRoom {
		// Anyone can make the shared room fill with these notices: asked
		// once per person per approvals.RefusalQuiet.
		if tell, err := b.approvals.Undecryptable(ctx, sender, evtID); err != nil || !tell {
			if err != nil {
				b.log.Err(err).Msg("Failed to audit an undecryptable message")
			}
			return
		}
	}
	msg := outgoingNotice("undecryptable:"+evtID.String(), room, evtID, textUndecryptable, b.now(), sender)
	if err := b.store.Enqueue(ctx, msg); err != nil {
		b.log.Err(err).Msg("Failed to queue decryption notice")
		return
	}
	b.nudge()
}
