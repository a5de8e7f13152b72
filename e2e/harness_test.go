// Package e2e tests guichet end to end: a real Dendrite on loopback, real
// clients on the human side (mautrix-go, and matrix-js-sdk with Rust crypto),
// guichet wired exactly as cmd/guichet wires it, and Albert faked only at its
// HTTP boundary.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"go.mau.fi/util/dbutil"
	"guichet/store"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/app"
	"guichet/config"
	"guichet/internal/dendrite"
	"guichet/internal/mxclient"
	"guichet/internal/testbed"
	"guichet/internal/testdb"
)

// wait is how long a test waits for something a person should see.
const wait = 30 * time.Second

type world struct {
	t   testing.TB
	tb  *testbed.Testbed
	cfg *config.Config
	dir string

	log *logBuffer // guichet's log, when it runs in this process

	app  *app.App
	opts app.Options
	stop context.CancelFunc
	done chan error
}

// logBuffer lets zerolog write while the test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func requireE2E(t testing.TB) {
	t.Helper()
	if os.Getenv("GUICHET_E2E") == "1" {
		return
	}
	bin, err := dendrite.BinDir()
	if err != nil {
		t.Skip("no Dendrite binaries:", err)
	}
	if _, err := os.Stat(filepath.Join(bin, "dendrite")); err != nil {
		t.Skip("no Dendrite binaries (run make test, or set GUICHET_E2E=1 to build them)")
	}
}

func newWorld(t testing.TB) *world {
	t.Helper()
	requireE2E(t)
	w := &world{t: t, dir: t.TempDir(), log: &logBuffer{}}
	ctx := w.ctx()
	tb, err := testbed.Start(ctx, testbed.Options{Dir: w.dir, Log: testLogWriter{t}})
	if err != nil {
		t.Fatalf("failed to start testbed: %v", err)
	}
	w.tb = tb
	w.cfg = tb.Config(filepath.Join(w.dir, "guichet.db"))
	// GUICHET_TEST_DATABASE=postgres: guichet on a PostgreSQL database.
	w.cfg.Database.Type, w.cfg.Database.URI = testdb.New(t, w.cfg.Database.URI)
	t.Cleanup(func() {
		w.stopGuichet()
		tb.Close()
		if t.Failed() {
			t.Logf("guichet's log:\n%s", w.log.String())
		}
	})
	return w
}

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// as returns the same world reporting to t, a subtest or sub-benchmark of
// the one that made it. Start and stop guichet on one of them only.
func (w *world) as(t testing.TB) *world {
	c := *w
	c.t = t
	return &c
}

func (w *world) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	w.t.Cleanup(cancel)
	return ctx
}

func (w *world) startGuichet() {
	w.t.Helper()
	level := zerolog.InfoLevel
	if os.Getenv("GUICHET_E2E_DEBUG") == "1" {
		level = zerolog.DebugLevel
	}
	logger := zerolog.New(w.log).With().Timestamp().Logger().Level(level)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, w.cfg, logger, w.opts)
	if err != nil {
		cancel()
		w.t.Fatalf("failed to build guichet: %v", err)
	}
	w.app, w.stop, w.done = a, cancel, make(chan error, 1)
	go func() { w.done <- a.Run(ctx) }()
	select {
	case <-a.Bot.Ready():
	case err := <-w.done:
		w.stop = nil
		w.t.Fatalf("guichet stopped during start-up: %v", err)
	case <-time.After(wait):
		w.t.Fatal("guichet was not ready in time")
	}
}

func (w *world) stopGuichet() {
	if w.stop == nil {
		return
	}
	w.stop()
	select {
	case err := <-w.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			w.t.Errorf("guichet stopped with an error: %v", err)
		}
	case <-time.After(wait):
		w.t.Error("guichet did not stop in time")
	}
	w.stop = nil
}

func (w *world) person(localpart string) *mxclient.Person {
	w.t.Helper()
	p, err := w.tb.NewPerson(w.ctx(), localpart)
	if err != nil {
		w.t.Fatalf("failed to create %s: %v", localpart, err)
	}
	return p
}

func (w *world) joinSupport(p *mxclient.Person) {
	w.t.Helper()
	if err := w.tb.JoinSupport(w.ctx(), p); err != nil {
		w.t.Fatalf("%s could not join the support room: %v", p.UserID(), err)
	}
}

func (w *world) send(p *mxclient.Person, room id.RoomID, text string) id.EventID {
	w.t.Helper()
	evtID, err := p.SendText(w.ctx(), room, text)
	if err != nil {
		w.t.Fatalf("%s could not send %q: %v", p.UserID(), text, err)
	}
	return evtID
}

// expect waits until p sees a message matching every condition.
// viewer is a person on Matrix whatever their client: mxclient.Person or
// jsagent.Agent (matrix-js-sdk).
type viewer interface {
	UserID() id.UserID
	WaitMessage(ctx context.Context, match func(mxclient.Message) bool) (mxclient.Message, error)
	Messages() []mxclient.Message
}

func (w *world) expect(p viewer, what string, conds ...cond) mxclient.Message {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	m, err := p.WaitMessage(ctx, func(m mxclient.Message) bool {
		for _, c := range conds {
			if !c(m) {
				return false
			}
		}
		return true
	})
	if err != nil {
		var seen []string
		for _, m := range p.Messages() {
			seen = append(seen, string(m.Sender)+": "+m.Body)
		}
		w.t.Fatalf("%s never saw %s; saw:\n%s", p.UserID(), what, strings.Join(seen, "\n"))
	}
	return m
}

// count returns how many messages p saw that match.
func count(p viewer, conds ...cond) int {
	n := 0
	for _, m := range p.Messages() {
		ok := true
		for _, c := range conds {
			ok = ok && c(m)
		}
		if ok {
			n++
		}
	}
	return n
}

type cond func(mxclient.Message) bool

func from(user id.UserID) cond { return func(m mxclient.Message) bool { return m.Sender == user } }
func in(room id.RoomID) cond   { return func(m mxclient.Message) bool { return m.RoomID == room } }
func contains(parts ...string) cond {
	return func(m mxclient.Message) bool {
		for _, p := range parts {
			if !strings.Contains(m.Body, p) {
				return false
			}
		}
		return true
	}
}
func replyTo(evt id.EventID) cond { return func(m mxclient.Message) bool { return m.InReplyTo == evt } }
func notInRoom(room id.RoomID) cond {
	return func(m mxclient.Message) bool { return m.RoomID != room }
}
func msgType(t event.MessageType) cond {
	return func(m mxclient.Message) bool { return m.MsgType == t }
}
func encrypted() cond { return func(m mxclient.Message) bool { return m.Encrypted } }
func mentions(user id.UserID) cond {
	return func(m mxclient.Message) bool { return slices.Contains(m.Mentions, user) }
}

// openDB opens guichet's database as an operator would (SQLite file or
// PostgreSQL), for a test to read or change it while guichet is stopped.
func openDB(t testing.TB, cfg config.Database) *dbutil.Database {
	t.Helper()
	db, err := store.OpenDatabase(cfg.Type, cfg.URI, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	return db
}
