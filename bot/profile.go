package bot

import (
	"context"
	"slices"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/albert"
	"guichet/conversation"
	"guichet/ratelimit"
)

// ProfileDeps are a partner profile's collaborators: its own Albert key
// (Assistant), conversations (model, system prompt, collections), per-agent
// limits and global gate. Built by app from config.Profiles.
type ProfileDeps struct {
	// ID is the partner's id ([a-z0-9-]+); Name is shown to people.
	ID, Name      string
	Assistant     Assistant
	Conversations *conversation.Service
	Limiter       *ratelimit.Limiter
	Gate          *ratelimit.Gate
	// Model is the partner's default model; Models the others its agents
	// may choose.
	Model  string
	Models []string
}

// profile is one Albert key and everything attached to it: the default
// profile (id "") or a partner's. Each has its own gate, breaker, pause,
// incident alerts and account state, so that one key's trouble (an
// overload, a spent budget) slows no other profile.
type profile struct {
	id, name  string
	assistant Assistant
	conv      *conversation.Service
	limiter   *ratelimit.Limiter
	gate      *ratelimit.Gate
	breaker   *ratelimit.Breaker
	pause     *ratelimit.KeyPause
	alerts    *alerts
	model     string
	models    []string

	mu      sync.Mutex
	account *albert.Account // the last GET /me/info answer (nil: never read)
	readAt  time.Time
}

// partner reports whether the profile is a partner's (not the default one).
func (p *profile) partner() bool { return p.id != "" }

// setAccount records what Albert said of the key's account.
func (p *profile) setAccount(acc albert.Account, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.account, p.readAt = &acc, at
}

// lastAccount returns the last account read (nil if never).
func (p *profile) lastAccount() *albert.Account {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.account
}

func (b *Bot) newProfile(d ProfileDeps) *profile {
	p := &profile{
		id: d.ID, name: d.Name, assistant: d.Assistant, conv: d.Conversations, limiter: d.Limiter, gate: d.Gate,
		model: d.Model, models: d.Models, pause: ratelimit.NewKeyPause(b.now, 0),
	}
	p.alerts = &alerts{b: b, p: p, open: map[albert.Class]time.Time{}}
	p.breaker = ratelimit.NewBreaker(b.cfg.Breaker, b.now, func(open bool) { b.onBreaker(p, open) })
	return p
}

// profileOf is the profile user's questions are answered with: their
// partner's (approvals decides who belongs to whom), else the default one.
func (b *Bot) profileOf(user id.UserID) *profile {
	if pid := b.approvals.PartnerOf(user); pid != "" {
		if p := b.profileByID(pid); p != nil {
			return p
		}
	}
	return b.profiles[0]
}

// profileByID returns the profile with that id ("" is the default), or nil.
func (b *Bot) profileByID(pid string) *profile {
	i := slices.IndexFunc(b.profiles, func(p *profile) bool { return p.id == pid })
	if i < 0 {
		return nil
	}
	return b.profiles[i]
}

// defaultProfile is the top-level settings' profile.
func (b *Bot) defaultProfile() *profile { return b.profiles[0] }

// partnerProfiles are the partners' profiles, in configuration order.
func (b *Bot) partnerProfiles() []*profile { return b.profiles[1:] }

// accountCheck is how often each key's account (budget, expiry) is read.
const accountCheck = 5 * time.Minute

// expiryWarning is how long before a key expires the support room is told.
const expiryWarning = 14 * 24 * time.Hour

// watchAccounts reads each key's GET /me/info at start-up and then every
// accountCheck, never per question: the budget shown to moderators, and one
// warning in the support room when a key expires within expiryWarning.
func (b *Bot) watchAccounts(ctx context.Context) {
	defer b.work.Done()
	for {
		for _, p := range b.profiles {
			b.readAccount(ctx, p)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(accountCheck):
		}
	}
}

// accountReader is the part of albert.Client that reads the key's account.
type accountReader interface {
	MeInfo(ctx context.Context) (albert.Account, error)
}

func (b *Bot) readAccount(ctx context.Context, p *profile) {
	reader, ok := p.assistant.(accountReader)
	if !ok {
		return
	}
	acc, err := reader.MeInfo(ctx)
	if err != nil {
		if ctx.Err() == nil {
			b.log.Warn().Err(err).Str("partner", p.id).Msg("Failed to read the Albert account")
		}
		return
	}
	now := b.now()
	p.setAccount(acc, now)
	if !acc.Expires.IsZero() && acc.Expires.Sub(now) < expiryWarning {
		// Keyed by the expiry date: told once per key and date, across
		// restarts (the outbox ignores a key it already holds).
		key := "expiry:" + p.id + ":" + acc.Expires.UTC().Format(time.DateOnly)
		b.tellSupport(ctx, key, textModsKeyExpires(p.name, p.partner(), acc.Expires, now, b.loc))
	}
}
