package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/internal/benchutil"
	"guichet/internal/mxclient"
)

// crashLoop is one run of the kill -9 loop: the real binary, agents asking
// questions to a slow Albert (kills land mid-stream), newcomers announcing
// themselves and being approved, guichet killed at random moments and
// restarted each time.
type crashLoop struct {
	Kills     int
	Agents    int
	Newcomers int
	Seed      uint64
}

// crashFigures is what a crash loop showed.
type crashFigures struct {
	Kills, Questions                  int
	Lost, Doubled, Stuck              int // questions with no answer, with two, with one left at "…"
	Newcomers, Welcomes               int
	WelcomesDoubled, DecisionsDoubled int // more than one welcome, approval confirmation or acknowledgement
	Counted, Charged                  int // questions counted by the per-agent limits, answered calls in the usage ledger
	Duration                          time.Duration
}

func (f crashFigures) String() string {
	return fmt.Sprintf("%d kills, %d questions: %d lost, %d doubled, %d stuck at \"…\"; %d newcomers, %d welcomed, %d welcomes or decisions doubled; counters %d, usage %d (want %d each); %s",
		f.Kills, f.Questions, f.Lost, f.Doubled, f.Stuck, f.Newcomers, f.Welcomes, f.WelcomesDoubled+f.DecisionsDoubled,
		f.Counted, f.Charged, f.Questions, f.Duration.Round(time.Second))
}

// buildBinary builds cmd/guichet as make build does, into a temporary folder.
func buildBinary(tb testing.TB) string {
	tb.Helper()
	root, err := benchutil.ModuleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	bin := filepath.Join(tb.TempDir(), "guichet")
	cmd := exec.Command("go", "build", "-tags", "goolm", "-o", bin, "./cmd/guichet")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build failed: %v\n%s", err, out)
	}
	return bin
}

// kill ends guichet with SIGKILL: nothing of it runs after.
func (g *guichetProcess) kill() {
	g.once.Do(func() {
		_ = g.cmd.Process.Kill()
		<-g.exited
	})
}

// asker is an agent asking one question after another.
type asker struct {
	p         *mxclient.Person
	dm        id.RoomID
	mu        sync.Mutex
	questions []id.EventID
}

func (a *asker) asked() []id.EventID {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]id.EventID(nil), a.questions...)
}

// finalAnswer is the text alice sees as guichet's answer to q ("" if none),
// and how many answers (placeholders or whole answers) she got.
func finalAnswer(p viewer, bot id.UserID, q id.EventID) (string, int) {
	got := answers(p, bot, q)
	if len(got) == 0 {
		return "", 0
	}
	return shownText(p, got[0]), len(got)
}

func (l crashLoop) run(tb testing.TB) crashFigures {
	requireE2E(tb)
	bin := buildBinary(tb)
	w := newWorld(tb)
	w.cfg.Albert.EditInterval = 300 * time.Millisecond
	configPath := filepath.Join(w.dir, "config.yaml")
	writeConfigYAML(tb, configPath, w.cfg)
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator
	rng := rand.New(rand.NewPCG(l.Seed, 0x9e3779b97f4a7c15))
	run := 0
	start := func() *guichetProcess {
		run++
		return startBinary(tb, bin, configPath, filepath.Join(w.dir, fmt.Sprintf("guichet-%02d.log", run)))
	}
	began := time.Now()
	g := start()

	askers := make([]*asker, l.Agents)
	for i := range askers {
		p := w.person(fmt.Sprintf("agent%02d.crash-interieur.gouv.fr", i+1))
		announce(tb, w, p, "Bonjour, je souhaite accéder à l'Assistant IA")
		w.send(mod, room, "!approve "+p.UserID().String())
		dm := w.expect(p, "the welcome in a DM", from(bot), notInRoom(room), contains("!accepter")).RoomID
		consent(tb, w, p, dm)
		askers[i] = &asker{p: p, dm: dm}
	}
	newcomers := make([]*mxclient.Person, l.Newcomers)
	for i := range newcomers {
		newcomers[i] = w.person(fmt.Sprintf("nouveau%02d.crash-interieur.gouv.fr", i+1))
		w.joinSupport(newcomers[i])
	}
	// Slow enough that most kills land while answers grow.
	w.tb.Albert.SetLatency(200 * time.Millisecond)
	w.tb.Albert.SetTokenDelay(40 * time.Millisecond)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, a := range askers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(l.Seed, uint64(i)))
			for n := 1; ; n++ {
				q, err := a.p.SendText(w.ctx(), a.dm, fmt.Sprintf("Question %d de l'agent %d", n, i+1))
				if err != nil {
					tb.Errorf("%s could not ask: %v", a.p.UserID(), err)
					return
				}
				a.mu.Lock()
				a.questions = append(a.questions, q)
				a.mu.Unlock()
				// The next question once this one is answered (or
				// guichet was killed meanwhile), after a pause.
				for {
					if text, _ := finalAnswer(a.p, bot, q); text != "" && !strings.HasSuffix(text, "…") {
						break
					}
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(r.IntN(1500)) * time.Millisecond):
				}
			}
		}()
	}

	announcements := make([]id.EventID, len(newcomers))
	approvals := make([]id.EventID, len(newcomers))
	next := 0 // the next newcomer to announce herself
	for k := 0; k < l.Kills; k++ {
		// Newcomers announce themselves, and are approved once
		// acknowledged, on their own schedule across restarts.
		if next < len(newcomers) && rng.IntN(2) == 0 {
			announcements[next] = w.send(newcomers[next], room, "Bonjour, je souhaite accéder à l'Assistant IA")
			next++
		}
		for i := range next {
			if approvals[i] == "" && count(newcomers[i], from(bot), in(room), replyTo(announcements[i])) > 0 {
				approvals[i] = w.send(mod, room, "!approve "+newcomers[i].UserID().String())
				break
			}
		}
		time.Sleep(time.Duration(300+rng.IntN(2200)) * time.Millisecond) // a random moment to kill at
		g.kill()
		if rng.IntN(3) == 0 {
			// Down for a while: questions and commands wait for the restart.
			time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		}
		g = start()
	}
	close(stop)
	wg.Wait()
	// The rest of the newcomers, with guichet up for good.
	for i := range newcomers {
		if announcements[i] == "" {
			announcements[i], _ = announce(tb, w, newcomers[i], "Bonjour, je souhaite accéder à l'Assistant IA")
		}
		if approvals[i] == "" {
			w.expect(newcomers[i], "the acknowledgement", from(bot), in(room), replyTo(announcements[i]))
			approvals[i] = w.send(mod, room, "!approve "+newcomers[i].UserID().String())
		}
	}

	// Everything asked is answered in the end: wait for it, then count.
	settled := func() bool {
		for _, a := range askers {
			for _, q := range a.asked() {
				if text, _ := finalAnswer(a.p, bot, q); text == "" || strings.HasSuffix(text, "…") {
					return false
				}
			}
		}
		for i, p := range newcomers {
			if count(p, from(bot), contains("!accepter")) == 0 || count(mod, from(bot), replyTo(approvals[i])) == 0 {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(2 * wait); !settled() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond) // polling what the clients received
	}
	// Barrier: one more exchange per agent, so that a late double shows.
	for _, a := range askers {
		w.tb.Albert.SetTokenDelay(0)
		ask(tb, w, a.p, a.dm, "Dernière question")
	}
	if err := g.stop(); err != nil {
		tb.Errorf("guichet did not stop cleanly: %v", err)
	}

	f := crashFigures{Kills: l.Kills, Newcomers: l.Newcomers, Duration: time.Since(began)}
	for _, a := range askers {
		qs := a.asked()
		f.Questions += len(qs)
		for _, q := range qs {
			text, n := finalAnswer(a.p, bot, q)
			switch {
			case n == 0 || !strings.Contains(text, "Voici ma réponse"):
				f.Lost++
				tb.Logf("lost: %s's %s (%q)", a.p.UserID(), q, text)
			case strings.HasSuffix(text, "…"):
				f.Stuck++
				tb.Logf("stuck: %s's %s", a.p.UserID(), q)
			}
			if n > 1 {
				f.Doubled++
				tb.Logf("doubled: %s's %s (%d answers)", a.p.UserID(), q, n)
			}
		}
		user := a.p.UserID().String()
		// The barrier question counts too.
		f.Counted += dbCount(tb, w.cfg.Database, `SELECT messages FROM limit_state WHERE user_id=$1`, user) - 1
		f.Charged += dbCount(tb, w.cfg.Database, `SELECT COUNT(*) FROM usage_ledger WHERE user_id=$1 AND outcome='ok'`, user) - 1
	}
	for i, p := range newcomers {
		welcomes := count(p, from(bot), contains("!accepter"))
		if welcomes > 0 {
			f.Welcomes++
		} else {
			var said []string
			for _, m := range mod.Messages() {
				if m.Sender == bot && m.InReplyTo == approvals[i] {
					said = append(said, m.Body)
				}
			}
			tb.Logf("not welcomed: %s (the moderator was told %q)", p.UserID(), said)
		}
		if welcomes > 1 {
			f.WelcomesDoubled++
			tb.Logf("doubled: %d welcomes for %s", welcomes, p.UserID())
		}
		acks := count(p, from(bot), in(room), replyTo(announcements[i]))
		confirmations := count(mod, from(bot), replyTo(approvals[i]))
		if acks > 1 || confirmations > 1 {
			f.DecisionsDoubled++
			tb.Logf("doubled: %s got %d acknowledgements, the moderator %d confirmations", p.UserID(), acks, confirmations)
		}
	}
	if f.Lost+f.Doubled+f.Stuck > 0 || f.Counted != f.Questions {
		logTail(tb, "guichet (last run)", filepath.Join(w.dir, fmt.Sprintf("guichet-%02d.log", run)))
	}
	if f.Welcomes != f.Newcomers || f.WelcomesDoubled+f.DecisionsDoubled > 0 {
		// What happened to the newcomers' messages, run by run: their
		// outbox keys, DMs and sends.
		for r := 1; r <= run; r++ {
			path := filepath.Join(w.dir, fmt.Sprintf("guichet-%02d.log", r))
			b, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "nouveau") || strings.Contains(line, `"key":"welcome:`) || strings.Contains(line, `"key":"cmd:`) ||
					strings.Contains(line, "in flight") || strings.Contains(line, "direct message") {
					tb.Logf("run %02d: %s", r, line)
				}
			}
		}
	}
	return f
}

// Kill -9 at random moments, at least ten times, while agents ask and
// newcomers are approved: nothing is lost, nothing doubled, no answer stays
// cut at "…", and every question counts once.
func TestCrashLoop(t *testing.T) {
	f := crashLoop{Kills: 12, Agents: 4, Newcomers: 3, Seed: uint64(time.Now().UnixNano())}.run(t)
	t.Log(f)
	if f.Lost != 0 || f.Doubled != 0 || f.Stuck != 0 {
		t.Errorf("questions: %d lost, %d doubled, %d stuck of %d", f.Lost, f.Doubled, f.Stuck, f.Questions)
	}
	if f.Welcomes != f.Newcomers || f.WelcomesDoubled != 0 || f.DecisionsDoubled != 0 {
		t.Errorf("newcomers: %d of %d welcomed, %d welcomes doubled, %d decisions doubled", f.Welcomes, f.Newcomers, f.WelcomesDoubled, f.DecisionsDoubled)
	}
	if f.Counted != f.Questions || f.Charged != f.Questions {
		t.Errorf("%d questions, counted %d times by the limits and %d in the usage ledger", f.Questions, f.Counted, f.Charged)
	}
}
