// Package app wires guichet's packages into one running service. The
// command in cmd/guichet and the end-to-end tests both start guichet here, so
// what is tested is what runs.
package app

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"time"
	_ "time/tzdata" // dates shown to people are in Europe/Paris, wherever guichet runs

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"guichet/albert"
	"guichet/approvals"
	"guichet/bot"
	"guichet/config"
	"guichet/conversation"
	"guichet/ha"
	"guichet/hooks"
	"guichet/metrics"
	"guichet/ratelimit"
	"guichet/store"
)

// App is a configured guichet.
type App struct {
	Bot     *bot.Bot
	Store   *store.Store
	log     zerolog.Logger
	metrics *metrics.Server // nil when metrics.listen is empty
	rec     *metrics.Metrics
	elector *ha.Elector // nil without ha.enabled
	close   func() error
}

// ErrLostLeadership is returned by Run when this process, leader of a hot
// standby, lost its lock: build a new App (its state is the database's,
// which another leader may have moved on) to stand by again.
var ErrLostLeadership = ha.ErrLostLeadership

var (
	_ bot.Metrics    = (*metrics.Metrics)(nil)
	_ bot.HookSender = (*hooks.Sender)(nil)
)

// Options are the knobs tests turn; production uses the zero value.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ReminderCheck is how often stale requests are looked for (default 1 min).
	ReminderCheck time.Duration
	// HealthMaxSyncAge and HealthFailingFor tune /healthz (see
	// metrics.HealthConfig; zero: its defaults).
	HealthMaxSyncAge time.Duration
	HealthFailingFor time.Duration
}

// New opens the database, applies migrations and builds the bot.
func New(ctx context.Context, cfg *config.Config, log zerolog.Logger, opts Options) (*App, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	db, err := store.OpenDatabase(cfg.Database.Type, cfg.Database.URI, cfg.Database.MaxOpenConns, cfg.Database.MaxIdleConns)
	if err != nil {
		return nil, err
	}
	st := store.New(db, log)
	// Several processes of a hot standby start together: one migrates at a
	// time (the others then find nothing to do).
	unlock, err := migrationLock(ctx, cfg, db.RawDB)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	defer unlock()
	if err := st.Upgrade(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	mods := make([]id.UserID, len(cfg.Moderators.Users))
	for i, u := range cfg.Moderators.Users {
		mods[i] = id.UserID(u)
	}
	profiles := cfg.Profiles()
	rules := approvals.Rules{AutoApprove: cfg.Access.AutoApprove, Deny: cfg.Access.Deny, MaxActive: cfg.Access.MaxActiveUsers}
	for _, p := range profiles[1:] {
		rules.Partners = append(rules.Partners, approvals.PartnerRules{
			ID: p.ID, Match: p.Match, AutoApprove: p.Access.AutoApprove, MaxActive: p.Access.MaxActiveUsers,
		})
	}
	service := approvals.New(st, rules, now)
	// The partners in the configuration decide who belongs to whom: a
	// change moves agents (and their places) between profiles.
	if moved, err := service.AssignPartners(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("failed to assign agents to partners: %w", err)
	} else if moved > 0 {
		log.Info().Int("requests", moved).Msg("Agents moved between profiles after a change of partners")
	}
	loc, err := time.LoadLocation(cfg.Limits.Timezone)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("failed to load time zone %s: %w", cfg.Limits.Timezone, err)
	}
	parts := make([]profileParts, len(profiles))
	for i, p := range profiles {
		parts[i] = newProfileParts(cfg, p, st, loc, now)
	}
	limiter, gate := parts[0].limiter, parts[0].gate
	// The bot reports to the metrics only when they are served.
	var rec *metrics.Metrics
	var b *bot.Bot
	if cfg.Metrics.Listen != "" {
		rec = metrics.New(metrics.Sources{
			Requests: st, Queue: gate, Outbox: st,
			Breaker: metrics.BreakerFunc(func() bool { return b.BreakerOpen() }), // scraped once Run serves, b is set by then
		})
	}
	// A nil interface, not a nil *hooks.Sender, when hooks are off.
	var hookSender bot.HookSender
	if cfg.Hooks.DecisionsURL != "" {
		hookSender = hooks.New(cfg.Hooks.DecisionsURL, cfg.Hooks.Secret, &http.Client{Timeout: hooks.DefaultTimeout})
	}
	b = bot.New(bot.Config{
		Homeserver:        cfg.Matrix.Homeserver,
		UserID:            id.UserID(cfg.Matrix.UserID),
		Password:          cfg.Matrix.Password,
		AccessToken:       cfg.Matrix.AccessToken,
		DeviceID:          id.DeviceID(cfg.Matrix.DeviceID),
		DeviceName:        cfg.Matrix.DeviceName,
		PickleKey:         cfg.Matrix.PickleKey,
		RecoveryKeyFile:   cfg.Matrix.RecoveryKeyFile,
		SupportRoom:       cfg.SupportRoom,
		Moderators:        mods,
		MinPowerLevel:     cfg.Moderators.MinPowerLevel,
		PolicyURL:         cfg.Policy.URL,
		PolicyVersion:     cfg.Policy.Version,
		Model:             cfg.Albert.Model,
		Models:            cfg.Albert.Models,
		AlbertTimeout:     cfg.Albert.Timeout,
		MaxInputChars:     cfg.Albert.MaxInputChars,
		EditInterval:      cfg.Albert.EditInterval,
		FirstMessageAfter: cfg.Albert.FirstMessageAfter,
		MaxRetries:        cfg.Albert.MaxRetries,
		Retention:         cfg.Privacy.Retention,
		OpsRoom:           cfg.OpsRoom,
		OverloadFactor:    cfg.Limits.OverloadFactor,
		Breaker:           ratelimit.BreakerConfig{Failures: cfg.Limits.Breaker.Failures, OpenFor: cfg.Limits.Breaker.OpenFor},
		BreakerMaxWait:    cfg.Limits.Breaker.MaxWait,
		ReminderAfter:     cfg.Access.ReminderAfter,
		ReminderCheck:     opts.ReminderCheck,
		Location:          loc,
	}, bot.Deps{
		DB: db, Store: st, Approvals: service, Log: log, Now: now, Metrics: botMetrics(rec), Hooks: hookSender,
		Assistant: parts[0].assistant, Conversations: parts[0].conv, Limiter: limiter, Gate: gate, Partners: partnerDeps(profiles, parts),
	})
	a := &App{Bot: b, Store: st, log: log, close: db.Close, rec: rec}
	if cfg.HA.Enabled {
		a.elector = ha.New(db.RawDB, ha.Config{Retry: cfg.HA.Retry, OnChange: func(leading bool) {
			if rec != nil {
				rec.Leader(leading)
			}
		}}, log, now)
	} else if rec != nil {
		rec.Leader(true)
	}
	if rec != nil {
		// Bound now: a port already taken is a start-up error.
		a.metrics, err = metrics.Listen(cfg.Metrics.Listen, rec.Handler(metrics.HealthConfig{
			DB: st, Ready: b.Ready(), MaxSyncAge: opts.HealthMaxSyncAge, FailingFor: opts.HealthFailingFor, Now: now,
			Leading: leadingFunc(cfg, rec), Profiles: cfg.Metrics.Pprof,
		}))
		if err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	return a, nil
}

// botMetrics is rec as the bot's recorder; nil (not a nil pointer in an
// interface) when metrics are off, so that the bot records nothing.
func botMetrics(rec *metrics.Metrics) bot.Metrics {
	if rec == nil {
		return nil
	}
	return rec
}

// MetricsAddr is the address /metrics, /healthz and /readyz are served on
// ("" when metrics.listen is empty).
func (a *App) MetricsAddr() string {
	if a.metrics == nil {
		return ""
	}
	return a.metrics.Addr()
}

// Run serves until ctx ends, then closes the database.
func (a *App) Run(ctx context.Context) error {
	if a.metrics != nil {
		srvCtx, stop := context.WithCancel(a.log.WithContext(ctx))
		served := make(chan struct{})
		go func() {
			defer close(served)
			if err := a.metrics.Serve(srvCtx); err != nil {
				a.log.Err(err).Msg("Metrics server stopped")
			}
		}()
		// Served until the bot has stopped, so that health says so.
		defer func() { stop(); <-served }()
	}
	err := a.run(ctx)
	if cerr := a.close(); cerr != nil && err == nil {
		err = fmt.Errorf("failed to close database: %w", cerr)
	}
	return err
}

// run runs the bot: at once, or once this process leads the hot standby,
// until ctx ends or leadership is lost (ErrLostLeadership).
func (a *App) run(ctx context.Context) error {
	if a.elector == nil {
		return a.Bot.Run(ctx)
	}
	term, err := a.elector.Acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while standing by
		}
		return err
	}
	defer term.Release()
	a.Bot.SetFence(term)
	leadCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-term.Context().Done():
			stop()
		case <-leadCtx.Done():
		}
	}()
	err = a.Bot.Run(leadCtx)
	if term.Lost() && ctx.Err() == nil {
		return ErrLostLeadership
	}
	return err
}

// leadingFunc is what health asks about leadership: nil without a hot
// standby (always leading).
func leadingFunc(cfg *config.Config, rec *metrics.Metrics) func() bool {
	if !cfg.HA.Enabled {
		return nil
	}
	return rec.Leading
}

// migrationLockKey serialises migrations between the processes of a hot
// standby (a PostgreSQL advisory lock; "guichetm" in ASCII).
const migrationLockKey int64 = 0x67756963686574 + 1

// migrationLock holds migrationLockKey on a dedicated connection until the
// returned function is called (PostgreSQL only; a no-op on SQLite).
func migrationLock(ctx context.Context, cfg *config.Config, db *sql.DB) (func(), error) {
	if cfg.Database.Type != store.DialectPostgres {
		return func() {}, nil
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to connect to the database: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("failed to wait for other guichet processes' migrations: %w", err)
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, migrationLockKey)
		_ = conn.Close()
	}, nil
}

// profileParts are what one Albert key needs: its client, conversations,
// per-agent limits and global gate.
type profileParts struct {
	assistant *albert.Client
	conv      *conversation.Service
	limiter   *ratelimit.Limiter
	gate      *ratelimit.Gate
}

func newProfileParts(cfg *config.Config, p config.Profile, st *store.Store, loc *time.Location, now func() time.Time) profileParts {
	assistant := albert.New(albert.Config{BaseURL: p.Albert.BaseURL, APIKey: p.Albert.APIKey, Model: p.Albert.Model})
	return profileParts{
		assistant: assistant,
		conv: conversation.New(st, assistant, conversation.Config{
			SystemPrompt:     p.Albert.SystemPrompt,
			Model:            p.Albert.Model,
			Models:           p.Albert.Models,
			MaxContextTokens: p.Albert.MaxContextTokens,
			IdleReset:        cfg.Conversation.IdleReset,
			Retrieval: conversation.Retrieval{
				Collections:    p.Retrieval.Collections,
				Method:         p.Retrieval.Method,
				Limit:          p.Retrieval.Limit,
				ScoreThreshold: p.Retrieval.ScoreThreshold,
				Timeout:        p.Retrieval.Timeout,
			},
		}, now),
		limiter: ratelimit.NewLimiter(ratelimit.Config{
			PerUser: ratelimit.Limits{
				MessagesPerMinute: p.PerUser.MessagesPerMinute,
				MessagesPerDay:    p.PerUser.MessagesPerDay,
				TokensPerDay:      p.PerUser.TokensPerDay,
			},
			Burst:          p.PerUser.Burst,
			Exempt:         cfg.Limits.Exempt,
			OverloadFactor: cfg.Limits.OverloadFactor,
			Location:       loc,
		}, st, now),
		gate: ratelimit.NewGate(ratelimit.GlobalConfig{
			MaxConcurrent:     p.Global.MaxConcurrent,
			QueueSize:         p.Global.QueueSize,
			RequestsPerMinute: p.Global.RequestsPerMinute,
			TokensPerMinute:   p.Global.TokensPerMinute,
			WaitNotice:        p.Global.WaitNotice,
		}, now),
	}
}

// partnerDeps are the partners' profiles for the bot (profiles[0] is the
// default one, given to it separately).
func partnerDeps(profiles []config.Profile, parts []profileParts) []bot.ProfileDeps {
	var out []bot.ProfileDeps
	for i := 1; i < len(profiles); i++ {
		p := profiles[i]
		out = append(out, bot.ProfileDeps{
			ID: p.ID, Name: p.Name, Assistant: parts[i].assistant, Conversations: parts[i].conv,
			Limiter: parts[i].limiter, Gate: parts[i].gate, Model: p.Albert.Model, Models: p.Albert.Models,
		})
	}
	return out
}
