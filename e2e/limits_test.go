package e2e

import (
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/internal/mxclient"
)

// agent returns a new person, pre-approved by the moderator, consented, with
// their DM.
func agent(t *testing.T, w *world, localpart string) (*mxclient.Person, id.RoomID) {
	t.Helper()
	bot := w.tb.Bot.UserID
	p := w.person(localpart)
	command(t, w, w.tb.Moderator, "!approve "+p.UserID().String())
	welcome := w.expect(p, "the welcome", from(bot), contains("!accepter"))
	consent(t, w, p, welcome.RoomID)
	return p, welcome.RoomID
}

// Over the per-minute limit the agent is told exactly when to ask again,
// nothing reaches Albert, and the next allowed question is answered. With
// messages_per_minute: 2 (and the default burst), the third question within
// a minute is refused: the limit holds over any 60 seconds.
func TestPerMinuteLimit(t *testing.T) {
	w := newWorld(t)
	clock := &offsetClock{}
	w.opts.Now = clock.Now
	w.cfg.Limits.PerUser.MessagesPerMinute, w.cfg.Limits.PerUser.Burst = 2, 0
	w.startGuichet()
	alice, dm := agent(t, w, "alice.martin-interieur.gouv.fr")

	mustContain(t, ask(t, w, alice, dm, "Première question"), "Voici ma réponse")
	mustContain(t, ask(t, w, alice, dm, "Deuxième question"), "Voici ma réponse")
	refused := ask(t, w, alice, dm, "Troisième, dans la même minute")
	mustContain(t, refused, "patienter", "Vous pourrez reposer votre question à ", "(dans ")
	if w.tb.Albert.Calls() != 2 {
		t.Errorf("a refused question reached Albert (%d calls)", w.tb.Albert.Calls())
	}
	clock.Advance(61 * time.Second)
	mustContain(t, ask(t, w, alice, dm, "Troisième, une minute après"), "Voici ma réponse")
	mustContain(t, ask(t, w, alice, dm, "!quota"), "questions : 3 sur", "2 questions par minute")
}

// Daily counters survive a restart; a moderator's !quota override applies
// at once; 80 % of the day gives one warning.
func TestDailyLimitOverrideAndRestart(t *testing.T) {
	w := newWorld(t)
	w.cfg.Limits.PerUser.MessagesPerDay = 5
	w.startGuichet()
	alice, dm := agent(t, w, "alice.martin-interieur.gouv.fr")
	for i := 0; i < 4; i++ {
		ask(t, w, alice, dm, "Question")
	}
	w.expect(alice, "the 80 % warning", from(w.tb.Bot.UserID), contains("80 %"))
	w.stopGuichet()
	w.startGuichet()
	mustContain(t, ask(t, w, alice, dm, "Cinquième"), "Voici ma réponse")
	mustContain(t, ask(t, w, alice, dm, "Sixième"), "nombre de questions pour aujourd'hui", "demain à partir de 00:00")

	set := command(t, w, w.tb.Moderator, "!quota "+alice.UserID().String()+" 10/jour")
	// The refused sixth question was not counted.
	mustContain(t, set, "limites personnalisées", "5 question(s) sur 10 par jour")
	mustContain(t, ask(t, w, alice, dm, "Avec la nouvelle limite"), "Voici ma réponse")
	if n := count(alice, from(w.tb.Bot.UserID), contains("80 %")); n != 1 {
		t.Errorf("%d warnings at 80 %%, want 1 (6 of 10 is below 80 %%)", n)
	}
	mustContain(t, command(t, w, w.tb.Moderator, "!quota "+alice.UserID().String()+" n'importe quoi"), "Usage")
}

// Repeated overload errors open the breaker: one notice in the support room,
// waiting agents are told, and it closes by itself when Albert recovers.
func TestBreakerOpensAndRecovers(t *testing.T) {
	w := newWorld(t)
	w.cfg.Albert.MaxRetries = 0
	w.cfg.Limits.Breaker.Failures, w.cfg.Limits.Breaker.OpenFor = 2, time.Second
	w.startGuichet()
	bot, room, mod := w.tb.Bot.UserID, w.tb.SupportRoom, w.tb.Moderator
	alice, dm := agent(t, w, "alice.martin-interieur.gouv.fr")

	w.tb.Albert.FailNext(2, 429, "Rate limit exceeded")
	mustContain(t, ask(t, w, alice, dm, "Q1"), "très sollicité")
	mustContain(t, ask(t, w, alice, dm, "Q2"), "très sollicité")
	w.expect(mod, "the breaker notice", from(bot), in(room), contains("surchargé"))

	q := w.send(alice, dm, "Q3 pendant la surcharge")
	w.expect(alice, "being told to wait", from(bot), replyTo(q), contains("partira dès qu'il ira mieux"))
	w.expect(alice, "the answer after recovery", from(bot), replyTo(q), contains("Voici ma réponse"))
	w.expect(mod, "the recovery notice", from(bot), in(room), contains("répond de nouveau"))
	mustContain(t, command(t, w, mod, "!stats"), "rate_limited 2", "disjoncteur Albert : fermé")
	if n := count(mod, from(bot), in(room), contains("surchargé (erreurs")); n != 1 {
		t.Errorf("%d breaker notices, want 1", n)
	}
}

// A full queue answers at once that the service is saturated.
func TestFullQueueAnswersAtOnce(t *testing.T) {
	w := newWorld(t)
	w.cfg.Limits.Global.MaxConcurrent, w.cfg.Limits.Global.QueueSize = 1, 1
	w.startGuichet()
	a, dmA := agent(t, w, "agent.a-interieur.gouv.fr")
	b, dmB := agent(t, w, "agent.b-interieur.gouv.fr")
	c, dmC := agent(t, w, "agent.c-interieur.gouv.fr")
	w.tb.Albert.SetLatency(1500 * time.Millisecond)

	qa := w.send(a, dmA, "A occupe Albert")
	// Wait until A's question is in flight, then B queues and C overflows.
	waitCalls(t, w, 1)
	qb := w.send(b, dmB, "B attend")
	// The moderators' !stats shows when B's question waits in the queue.
	deadline := time.Now().Add(wait)
	for !strings.Contains(command(t, w, w.tb.Moderator, "!stats").Body, "1 en cours, 1 en attente") {
		if time.Now().After(deadline) {
			t.Fatal("B's question never queued")
		}
	}
	qc := w.send(c, dmC, "C déborde")
	refusal := w.expect(c, "the saturation notice", from(w.tb.Bot.UserID), replyTo(qc))
	mustContain(t, refusal, "saturé")
	answerA := finalReply(t, w, a, qa)
	mustContain(t, answerA, "Voici ma réponse")
	if !refusal.At.Before(answerA.At) {
		t.Error("C was not answered at once: the refusal came after A's answer")
	}
	mustContain(t, finalReply(t, w, b, qb), "Voici ma réponse")
}

func waitCalls(t *testing.T, w *world, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for w.tb.Albert.Calls() < n {
		if time.Now().After(deadline) {
			t.Fatalf("Albert never got %d calls", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// !surcharge sends new approvals to the waitlist and tightens limits; off
// lets the waiting agents in; the state survives a restart.
func TestOverloadMode(t *testing.T) {
	w := newWorld(t)
	w.cfg.Limits.PerUser.MessagesPerDay = 10
	w.startGuichet()
	mod := w.tb.Moderator
	mustContain(t, command(t, w, mod, "!surcharge on"), "Mode surcharge activé", "0.5")
	bob := w.person("bob.bernard-justice.gouv.fr")
	mustContain(t, command(t, w, mod, "!approve "+bob.UserID().String()), "liste d'attente", "mode surcharge")
	w.stopGuichet()
	w.startGuichet()
	mustContain(t, command(t, w, mod, "!stats"), "mode surcharge : actif")
	mustContain(t, command(t, w, mod, "!quota "+bob.UserID().String()), "sur 5 par jour")
	off := command(t, w, mod, "!surcharge off")
	mustContain(t, off, "désactivé", bob.UserID().String())
	w.expect(bob, "the welcome", from(w.tb.Bot.UserID), contains("!accepter"))
	if !strings.Contains(command(t, w, mod, "!surcharge").Body, "inactif") {
		t.Error("overload mode still on")
	}
}
