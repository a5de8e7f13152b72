package ha_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"guichet/ha"
	"guichet/internal/pgtest"
	"guichet/store"
)

// database returns a fresh, migrated PostgreSQL database's URI.
func database(t *testing.T) string {
	t.Helper()
	if _, err := pgtest.BinDir(); err != nil {
		t.Skip(err)
	}
	srv, err := pgtest.Shared()
	if err != nil {
		t.Fatal(err)
	}
	uri, err := srv.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.OpenDatabase(store.DialectPostgres, uri, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := store.New(db, zerolog.Nop()).Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	return uri
}

func pool(t *testing.T, uri string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", uri)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func elector(db *sql.DB, holder string) *ha.Elector {
	return ha.New(db, ha.Config{Retry: 100 * time.Millisecond, Ping: 100 * time.Millisecond, Holder: holder}, zerolog.Nop(), time.Now)
}

// One leader at a time; a release hands over; the takeover counter fences
// the former leader's sends.
func TestOneLeaderAndTheFence(t *testing.T) {
	uri := database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := elector(pool(t, uri), "a"), elector(pool(t, uri), "b")

	termA, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := termA.Check(ctx); err != nil {
		t.Fatalf("the leader's fence refuses: %v", err)
	}
	waiting, stop := context.WithTimeout(ctx, time.Second)
	if _, err := b.Acquire(waiting); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second leader while the first holds the lock: %v", err)
	}
	stop()

	got := make(chan *ha.Term, 1)
	go func() {
		termB, err := b.Acquire(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- termB
	}()
	termA.Release()
	termB := <-got
	if termB == nil {
		t.Fatal("no takeover after the release")
	}
	defer termB.Release()
	if termB.Epoch != termA.Epoch+1 {
		t.Errorf("epochs %d then %d, want consecutive", termA.Epoch, termB.Epoch)
	}
	if err := termA.Check(ctx); err == nil {
		t.Error("the released leader's fence still lets it send")
	}
	if err := termB.Check(ctx); err != nil {
		t.Errorf("the new leader's fence refuses: %v", err)
	}
}

// A leader whose lock connection goes silent (a network cut: no FIN, no
// RST) ends its term within the ping deadline, and its fence refuses, even
// though the driver would wait on the socket for ever.
func TestSilentConnectionEndsTheTerm(t *testing.T) {
	uri := database(t)
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newFreezingProxy(t, u.Host)
	u.Host = proxy.addr
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader := elector(pool(t, u.String()), "cut")
	term, err := leader.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	proxy.freeze()
	cut := time.Now()
	select {
	case <-term.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the term did not end after its connection went silent")
	}
	if !term.Lost() {
		t.Error("the term ended, but not as lost")
	}
	t.Logf("term ended %s after the cut", time.Since(cut).Round(10*time.Millisecond))
	if err := term.Check(ctx); err == nil {
		t.Error("the fence lets a leader cut from the database send")
	}
	released := make(chan struct{})
	go func() { term.Release(); close(released) }()
	select {
	case <-released:
	case <-time.After(10 * time.Second):
		t.Error("Release hangs on a silent connection")
	}
}

// freezingProxy relays TCP to a target until frozen; then it keeps the
// connections open and relays nothing, as a network cut does.
type freezingProxy struct {
	addr   string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{addr: l.Addr().String()}
	t.Cleanup(func() {
		_ = l.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
	})
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go p.relay(in, out)
			go p.relay(out, in)
		}
	}()
	return p
}

func (p *freezingProxy) relay(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if p.frozen.Load() {
			continue // swallowed: nothing goes through any more
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (p *freezingProxy) freeze() { p.frozen.Store(true) }
