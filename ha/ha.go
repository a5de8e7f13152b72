// Package ha lets several guichet processes share one PostgreSQL database
// with exactly one of them working: the leader, which holds a session-level
// advisory lock on a dedicated connection. The others wait and retry. The E2EE
// device must have one writer: a leader that loses its lock connection
// stops at once (its Term's context ends), and every send it would still try
// is refused by the fence (Term.Check), which compares the takeover counter
// it was elected with to the current one in the database.
package ha

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// LockKey is the advisory lock guichet's leader holds (pg_advisory_lock's
// 64-bit key space is shared by every application of the database: "guichet"
// in ASCII).
const LockKey int64 = 0x67756963686574

// ErrLostLeadership is the cause of a Term's context when the lock
// connection failed, and what Check returns once another process took over.
var ErrLostLeadership = errors.New("lost leadership: another guichet may have taken over")

// Config configures an Elector.
type Config struct {
	// Retry is how often a standby tries to take the lock (default 2 s).
	Retry time.Duration
	// Ping is how often the leader checks its lock connection (default
	// 500 ms): how long a leader cut from the database may go on before it
	// stops on its own; the fence covers the meantime.
	Ping time.Duration
	// Holder names this process in the database and the logs (default
	// hostname:pid).
	Holder string
	// OnChange is called when this process becomes leader (true) or stops
	// being it (false); may be nil.
	OnChange func(leader bool)
}

// Elector takes and watches leadership.
type Elector struct {
	db  *sql.DB
	cfg Config
	log zerolog.Logger
	now func() time.Time
}

// New returns an Elector on db (the PostgreSQL pool; one connection is
// taken out of it while leading). The table ha_leader must exist (store's
// migrations create it).
func New(db *sql.DB, cfg Config, log zerolog.Logger, now func() time.Time) *Elector {
	if cfg.Retry <= 0 {
		cfg.Retry = 2 * time.Second
	}
	if cfg.Ping <= 0 {
		cfg.Ping = 500 * time.Millisecond
	}
	if cfg.Holder == "" {
		host, _ := os.Hostname()
		cfg.Holder = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	return &Elector{db: db, cfg: cfg, log: log.With().Str("component", "ha").Str("holder", cfg.Holder).Logger(), now: now}
}

// Term is one leadership: from the lock taken to its loss or release.
type Term struct {
	// Epoch is the takeover counter this term was elected with.
	Epoch int64

	e      *Elector
	conn   *sql.Conn
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
	once   sync.Once
}

// Acquire waits until this process holds the lock (trying every Retry), then
// bumps the takeover counter and returns the term. It returns ctx's error if
// ctx ends first.
func (e *Elector) Acquire(ctx context.Context) (*Term, error) {
	waiting := false
	for {
		t, err := e.try(ctx)
		if t != nil {
			e.log.Info().Int64("epoch", t.Epoch).Msg("This guichet is now the leader")
			if e.cfg.OnChange != nil {
				e.cfg.OnChange(true)
			}
			return t, nil
		}
		if err != nil && ctx.Err() == nil {
			e.log.Warn().Err(err).Msg("Failed to try for leadership")
		} else if !waiting && ctx.Err() == nil {
			e.log.Info().Dur("retry", e.cfg.Retry).Msg("Standing by: another guichet is the leader")
			waiting = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(e.cfg.Retry):
		}
	}
}

// try takes the lock if it is free; nil, nil when another process holds it.
func (e *Elector) try(ctx context.Context) (*Term, error) {
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	// The server must notice a leader that vanished without closing its
	// connection (power loss, a network cut): its keepalives are two hours
	// by default, and the lock would be held that long. These are the
	// session's own settings (any user may set them).
	for _, set := range []string{
		`SET tcp_keepalives_idle = 5`, `SET tcp_keepalives_interval = 2`, `SET tcp_keepalives_count = 3`, `SET tcp_user_timeout = 10000`,
	} {
		if _, err := conn.ExecContext(ctx, set); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("failed to set the lock connection's keepalives: %w", err)
		}
	}
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, LockKey).Scan(&got); err != nil || !got {
		_ = conn.Close()
		return nil, err
	}
	var epoch int64
	err = conn.QueryRowContext(ctx, `INSERT INTO ha_leader (id, epoch, holder, since) VALUES (1, 1, $1, $2)
		ON CONFLICT (id) DO UPDATE SET epoch = ha_leader.epoch + 1, holder = excluded.holder, since = excluded.since
		RETURNING epoch`, e.cfg.Holder, e.now().UnixMilli()).Scan(&epoch)
	if err != nil {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, LockKey)
		_ = conn.Close()
		return nil, fmt.Errorf("failed to record the takeover: %w", err)
	}
	tctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	t := &Term{Epoch: epoch, e: e, conn: conn, ctx: tctx, cancel: cancel, done: make(chan struct{})}
	go t.watch()
	return t, nil
}

// watch checks the lock connection every Ping; a failure ends the term.
func (t *Term) watch() {
	defer close(t.done)
	tick := time.NewTicker(t.e.cfg.Ping)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
		// lib/pq does not give up a read on a silent socket when the
		// context ends: the answer is awaited in its own goroutine.
		err := within(t.ctx, t.pingDeadline(), func(ctx context.Context) error {
			var one int
			return t.conn.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
		})
		if err != nil && t.ctx.Err() == nil {
			t.e.log.Error().Err(err).Int64("epoch", t.Epoch).Msg("Lost the lock connection: stepping down")
			t.lose()
			return
		}
	}
}

// pingDeadline is how long the lock connection may take to answer a ping.
func (t *Term) pingDeadline() time.Duration { return max(t.e.cfg.Ping*4, 2*time.Second) }

// within runs fn and returns its error, or a timeout error after d even if
// fn is still blocked (it then ends on its own, its result ignored).
func within(ctx context.Context, d time.Duration, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer within %s: %w", d, ctx.Err())
	}
}

func (t *Term) lose() {
	t.once.Do(func() {
		t.cancel(ErrLostLeadership)
		if t.e.cfg.OnChange != nil {
			t.e.cfg.OnChange(false)
		}
	})
}

// Context ends when the term does: leadership lost (its cause is
// ErrLostLeadership) or released.
func (t *Term) Context() context.Context { return t.ctx }

// Lost reports whether the term ended because leadership was lost.
func (t *Term) Lost() bool { return errors.Is(context.Cause(t.ctx), ErrLostLeadership) }

// Check is the fence before a send: an error when the term has ended or
// another process has been elected since (the takeover counter moved). It
// costs one indexed read of one row.
func (t *Term) Check(ctx context.Context) error {
	if t.ctx.Err() != nil {
		return ErrLostLeadership
	}
	var epoch int64
	err := within(ctx, t.pingDeadline(), func(ctx context.Context) error {
		return t.e.db.QueryRowContext(ctx, `SELECT epoch FROM ha_leader WHERE id = 1`).Scan(&epoch)
	})
	if err != nil {
		return fmt.Errorf("failed to check leadership: %w", err) // fails closed: nothing is sent
	}
	if epoch != t.Epoch {
		t.e.log.Error().Int64("epoch", t.Epoch).Int64("current", epoch).Msg("Another guichet took over: stepping down")
		t.lose()
		return ErrLostLeadership
	}
	return nil
}

// Release gives the lock back and ends the term (a clean stop: a standby
// takes over at its next try).
func (t *Term) Release() {
	t.once.Do(func() {
		t.cancel(context.Canceled)
		if t.e.cfg.OnChange != nil {
			t.e.cfg.OnChange(false)
		}
	})
	<-t.done // watch waits no longer than pingDeadline for a ping
	// The unlock may hang on a dead connection: bounded, then the
	// connection is dropped (the server releases the lock with the session).
	_ = within(context.Background(), 5*time.Second, func(ctx context.Context) error {
		_, err := t.conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, LockKey)
		return err
	})
	go func() { _ = t.conn.Close() }()
}
