package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"guichet/ha"
	"guichet/internal/pgtest"
)

// haPair is two guichet binaries sharing one PostgreSQL database with
// ha.enabled, each with its own metrics port.
type haPair struct {
	w       *world
	bin     string
	configs [2]string
	ports   [2]int
	procs   [2]*guichetProcess
	runs    int
}

func newHAPair(tb testing.TB) *haPair {
	tb.Helper()
	requireE2E(tb)
	if _, err := pgtest.BinDir(); err != nil {
		tb.Fatal(err) // make test installs it (.ci/run): required
	}
	srv, err := pgtest.Shared()
	if err != nil {
		tb.Fatal(err)
	}
	p := &haPair{bin: buildBinary(tb), w: newWorld(tb)}
	uri, err := srv.NewDatabase(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	p.w.cfg.Database.Type, p.w.cfg.Database.URI = "postgres", uri
	p.w.cfg.HA.Enabled, p.w.cfg.HA.Retry = true, 500*time.Millisecond
	p.w.cfg.Albert.EditInterval = 300 * time.Millisecond
	for i := range p.configs {
		p.ports[i] = freeTCPPort(tb)
		cfg := *p.w.cfg
		cfg.Metrics.Listen = fmt.Sprintf("127.0.0.1:%d", p.ports[i])
		p.configs[i] = filepath.Join(p.w.dir, fmt.Sprintf("config-%c.yaml", 'a'+i))
		writeConfigYAML(tb, p.configs[i], &cfg)
	}
	return p
}

func freeTCPPort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// launch starts process i (not waiting: it may stand by).
func (p *haPair) launch(tb testing.TB, i int) *guichetProcess {
	tb.Helper()
	p.runs++
	p.procs[i] = launchBinary(tb, p.bin, p.configs[i], filepath.Join(p.w.dir, fmt.Sprintf("guichet-%c-%02d.log", 'a'+i, p.runs)))
	return p.procs[i]
}

// status returns the HTTP status of path on process i's metrics port (0 if
// it does not answer).
func (p *haPair) status(i int, path string) int {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", p.ports[i], path))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitStatus waits until path answers code on process i.
func (p *haPair) waitStatus(tb testing.TB, i int, path string, code int) {
	tb.Helper()
	deadline := time.Now().Add(wait)
	for p.status(i, path) != code {
		if time.Now().After(deadline) {
			tb.Fatalf("process %c: %s never answered %d (now %d)", 'a'+i, path, code, p.status(i, path))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// terminateLeaderConnection ends, from the database's side, the connection
// that holds the leadership lock (what a network cut or a failover of the
// database does to the leader).
func (p *haPair) terminateLeaderConnection(tb testing.TB) {
	tb.Helper()
	db := openDB(tb, p.w.cfg.Database)
	defer db.Close()
	var n int
	err := db.QueryRow(context.Background(), `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND classid = $1 AND objid = $2`,
		uint32(uint64(ha.LockKey)>>32), uint32(uint64(ha.LockKey)&0xffffffff)).Scan(&n)
	if err != nil || n != 1 {
		tb.Fatalf("terminated %d lock connections (%v), want 1", n, err)
	}
}

// haAgents onboards n agents through the leader and returns them.
func haAgents(tb testing.TB, w *world, n int) []*asker {
	tb.Helper()
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator
	out := make([]*asker, n)
	for i := range out {
		p := w.person(fmt.Sprintf("agent%02d.ha-interieur.gouv.fr", i+1))
		announce(tb, w, p, "Bonjour, je souhaite accéder à l'Assistant IA")
		w.send(mod, room, "!approve "+p.UserID().String())
		dm := w.expect(p, "the welcome in a DM", from(bot), notInRoom(room), contains("!accepter")).RoomID
		consent(tb, w, p, dm)
		out[i] = &asker{p: p, dm: dm}
	}
	return out
}

// askAll has every agent ask, one question after the other (each once the
// previous is answered), until total questions were asked in all; answered
// counts the final answers seen.
func askAll(tb testing.TB, w *world, agents []*asker, total int, answered *atomic.Int64) {
	tb.Helper()
	bot := w.tb.Bot.UserID
	var asked atomic.Int64
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; asked.Add(1) <= int64(total); n++ {
				q, err := a.p.SendText(w.ctx(), a.dm, fmt.Sprintf("Question %d de l'agent %d", n, i+1))
				if err != nil {
					tb.Errorf("%s could not ask: %v", a.p.UserID(), err)
					return
				}
				a.mu.Lock()
				a.questions = append(a.questions, q)
				a.mu.Unlock()
				for deadline := time.Now().Add(2 * wait); ; {
					if text, _ := finalAnswer(a.p, bot, q); text != "" && !strings.HasSuffix(text, "…") {
						answered.Add(1)
						break
					}
					if time.Now().After(deadline) {
						tb.Errorf("%s's question %s was never answered", a.p.UserID(), q)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
}

// lostAndDoubled counts the questions without exactly one final answer.
func lostAndDoubled(tb testing.TB, w *world, agents []*asker) (questions, lost, doubled int) {
	tb.Helper()
	bot := w.tb.Bot.UserID
	for _, a := range agents {
		for _, q := range a.asked() {
			questions++
			text, n := finalAnswer(a.p, bot, q)
			if n == 0 || !strings.Contains(text, "Voici ma réponse") {
				lost++
				tb.Logf("lost: %s's %s (%q)", a.p.UserID(), q, text)
			}
			if n > 1 {
				doubled++
				tb.Logf("doubled: %s's %s (%d answers)", a.p.UserID(), q, n)
			}
		}
	}
	return
}

// waitAnswered waits until more than n answers have been seen, and returns
// when.
func waitAnswered(tb testing.TB, answered *atomic.Int64, n int64) time.Time {
	tb.Helper()
	for deadline := time.Now().Add(2 * wait); answered.Load() <= n; {
		if time.Now().After(deadline) {
			tb.Fatalf("no answer after %d for %s", n, 2*wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Now()
}

// Two guichet processes share one PostgreSQL database. Ten agents ask 100
// questions in all; the leader is killed -9 in the middle and the standby
// takes over; then the new leader's lock connection is terminated by the
// database: it steps down and the other (restarted) takes over. No question
// is lost or answered twice; /readyz is 200 on the leader only, /healthz on
// both.
func TestHotStandby(t *testing.T) {
	p := newHAPair(t)
	w := p.w
	p.launch(t, 0).waitReady(t, wait)
	p.launch(t, 1)
	p.waitStatus(t, 1, "/healthz", http.StatusOK)
	if got := p.status(1, "/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("the standby's /readyz = %d, want 503", got)
	}
	if got := p.status(0, "/readyz"); got != http.StatusOK {
		t.Errorf("the leader's /readyz = %d, want 200", got)
	}

	agents := haAgents(t, w, 10)
	w.tb.Albert.SetLatency(100 * time.Millisecond)
	w.tb.Albert.SetTokenDelay(20 * time.Millisecond)

	var answered atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		askAll(t, w, agents, 100, &answered)
	}()

	// Kill -9 the leader in the middle: the standby takes over.
	waitAnswered(t, &answered, 30)
	killed := time.Now()
	p.procs[0].kill()
	p.procs[1].waitReady(t, wait)
	seen := waitAnswered(t, &answered, answered.Load())
	t.Logf("takeover after kill -9: %s to the standby ready, %s to the next answer seen",
		p.procs[1].wall-killed.Sub(p.procs[1].started), seen.Sub(killed))
	p.waitStatus(t, 1, "/readyz", http.StatusOK)

	// The killed one comes back (as systemd restarts it) and stands by.
	p.launch(t, 0)
	p.waitStatus(t, 0, "/healthz", http.StatusOK)
	if got := p.status(0, "/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("the restarted process's /readyz = %d, want 503 (standby)", got)
	}

	// The new leader loses its lock connection: it steps down, the other
	// takes over.
	waitAnswered(t, &answered, 65)
	p.terminateLeaderConnection(t)
	p.procs[0].waitReady(t, wait)
	p.waitStatus(t, 0, "/readyz", http.StatusOK)
	p.waitStatus(t, 1, "/readyz", http.StatusServiceUnavailable)
	<-done

	// Barrier: one more exchange per agent, so that a late double shows.
	w.tb.Albert.SetTokenDelay(0)
	for _, a := range agents {
		ask(t, w, a.p, a.dm, "Dernière question")
	}
	questions, lost, doubled := lostAndDoubled(t, w, agents)
	t.Logf("%d questions (and %d barrier questions), %d lost, %d doubled", questions, len(agents), lost, doubled)
	if questions != 100 || lost != 0 || doubled != 0 {
		t.Errorf("%d questions: %d lost, %d doubled", questions, lost, doubled)
	}
	if got := p.status(1, "/healthz"); got != http.StatusOK {
		t.Errorf("the stepped-down process's /healthz = %d, want 200", got)
	}
	for _, i := range []int{0, 1} {
		if err := p.procs[i].stop(); err != nil {
			t.Errorf("process %c did not stop cleanly: %v", 'a'+i, err)
		}
	}
}
