package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/albert"
	"guichet/albert/fakealbert"
	"guichet/internal/mxclient"
)

// offsetClock is the real clock plus an offset that tests move forward.
type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *offsetClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// activeAgent returns alice, approved and consented, with her DM.
func activeAgent(t testing.TB, w *world) (*mxclient.Person, id.RoomID) {
	t.Helper()
	alice := w.person("alice.martin-interieur.gouv.fr")
	dm := approveAndWelcome(t, w, alice)
	consent(t, w, alice, dm)
	return alice, dm
}

// consent has p type !accepter in dm and waits for the confirmation.
func consent(t testing.TB, w *world, p *mxclient.Person, dm id.RoomID) id.EventID {
	t.Helper()
	acc := w.send(p, dm, "!accepter")
	w.expect(p, "the consent confirmation", from(w.tb.Bot.UserID), in(dm), replyTo(acc), contains("Merci"))
	return acc
}

// ask sends a question and waits for guichet's final reply to it: a message
// replying to the question, or the last edit of the placeholder that did.
func ask(t testing.TB, w *world, p *mxclient.Person, dm id.RoomID, q string) mxclient.Message {
	t.Helper()
	evt := w.send(p, dm, q)
	return finalReply(t, w, p, evt)
}

func finalReply(t testing.TB, w *world, p viewer, question id.EventID) mxclient.Message {
	t.Helper()
	first := w.expect(p, "a reply", from(w.tb.Bot.UserID), replyTo(question))
	if !strings.HasSuffix(first.Body, "…") {
		return first
	}
	// A placeholder: the answer is its last edit, the one without " …".
	return w.expect(p, "the final edit", from(w.tb.Bot.UserID), func(m mxclient.Message) bool {
		return m.ReplaceOf == first.EventID && !strings.HasSuffix(m.Body, "…")
	})
}

// A slow answer shows a placeholder at once, grows by bounded edits, and
// ends as one edit with the whole answer rendered from Markdown.
func TestStreamingByEdits(t *testing.T) {
	w := newWorld(t)
	w.cfg.Albert.EditInterval = 300 * time.Millisecond
	w.startGuichet()
	alice, dm := activeAgent(t, w)
	w.tb.Albert.SetTokenDelay(60 * time.Millisecond) // about 40 pieces: 2.4 s

	sent := time.Now()
	q := w.send(alice, dm, "Explique-moi la réforme")
	placeholder := w.expect(alice, "the placeholder", from(w.tb.Bot.UserID), replyTo(q))
	if !strings.HasSuffix(placeholder.Body, "…") {
		t.Fatalf("first reply %q is not a growing placeholder", placeholder.Body)
	}
	final := finalReply(t, w, alice, q)
	elapsed := time.Since(sent)
	if final.Format != event.FormatHTML || !strings.Contains(final.FormattedBody, "<strong>Albert</strong>") {
		t.Errorf("final edit not rendered: %q", final.FormattedBody)
	}
	if !strings.Contains(final.Body, "Bonne journée !") {
		t.Errorf("final edit lacks the end of the answer: %q", final.Body)
	}
	edits := count(alice, from(w.tb.Bot.UserID), func(m mxclient.Message) bool { return m.ReplaceOf == placeholder.EventID })
	intermediate := edits - 1
	if intermediate < 1 {
		t.Errorf("no intermediate edit for a %s stream", elapsed)
	}
	if maxEdits := int(elapsed/w.cfg.Albert.EditInterval) + 2; edits > maxEdits {
		t.Errorf("%d edits in %s with an edit interval of %s (at most %d expected)", edits, elapsed, w.cfg.Albert.EditInterval, maxEdits)
	}
	if !final.Encrypted {
		t.Error("the answer was not encrypted")
	}
}

// Questions sent while an answer streams are answered one by one, in order.
func TestQuestionsAreAnsweredInOrder(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	alice, dm := activeAgent(t, w)
	w.tb.Albert.SetLatency(200 * time.Millisecond)
	var qs []id.EventID
	for _, q := range []string{"Première", "Deuxième", "Troisième"} {
		qs = append(qs, w.send(alice, dm, q))
	}
	var last time.Time
	for i, q := range qs {
		r := finalReply(t, w, alice, q)
		if r.At.Before(last) {
			t.Errorf("answer %d arrived before answer %d", i+1, i)
		}
		last = r.At
	}
	reqs := w.tb.Albert.Requests()
	if len(reqs) != 3 || reqs[2].LastUserMessage() != "Troisième" || len(reqs[2].Messages) != 6 {
		t.Errorf("third call did not carry the first two exchanges in order: %+v", reqs)
	}
}

// The context keeps the latest turns that fit albert.max_context_tokens; a
// long silence starts a new conversation; a reply brings back what it quotes.
func TestContextTrimIdleResetAndReplies(t *testing.T) {
	w := newWorld(t)
	clock := &offsetClock{}
	w.opts.Now = clock.Now
	w.cfg.Albert.MaxContextTokens = 400
	w.tb.Albert.SetReply(func(req fakealbert.Request) string { return "Réponse courte." })
	w.startGuichet()
	alice, dm := activeAgent(t, w)

	long := strings.Repeat("détail ", 60) // about 105 tokens
	for i := 0; i < 4; i++ {
		ask(t, w, alice, dm, long)
	}
	reqs := w.tb.Albert.Requests()
	lastReq := reqs[len(reqs)-1]
	tokens := 0
	for _, m := range lastReq.Messages {
		tokens += albert.EstimateTokens(m.Content)
	}
	if tokens > 400 {
		t.Errorf("prompt of %d estimated tokens exceeds max_context_tokens 400", tokens)
	}
	if n := len(lastReq.Messages); n >= 8 || n < 4 {
		t.Errorf("expected the oldest turns trimmed, got %d messages", n)
	}
	if lastReq.Messages[0].Role != "system" || lastReq.LastUserMessage() != strings.TrimSpace(long) {
		t.Errorf("context must start with the system prompt and end with the question")
	}

	first := ask(t, w, alice, dm, "Quelle est la capitale de la France ?")
	clock.Advance(31 * time.Minute)
	q := w.send(alice, dm, "Et de l'Italie ?")
	w.expect(alice, "the new-conversation notice", from(w.tb.Bot.UserID), in(dm), contains("Nouvelle conversation"))
	finalReply(t, w, alice, q)
	reqs = w.tb.Albert.Requests()
	if msgs := reqs[len(reqs)-1].Messages; len(msgs) != 2 {
		t.Errorf("after 31 min of silence the context still has %d messages", len(msgs))
	}

	// Replying to the answer about France brings it back.
	quote := &event.MessageEventContent{MsgType: event.MsgText, Body: "Tu es sûr ?",
		RelatesTo: &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: first.EventID}}}
	if first.ReplaceOf != "" {
		quote.RelatesTo.InReplyTo.EventID = first.ReplaceOf
	}
	evt, err := alice.Send(w.ctx(), dm, quote)
	if err != nil {
		t.Fatal(err)
	}
	finalReply(t, w, alice, evt)
	reqs = w.tb.Albert.Requests()
	found := false
	for _, m := range reqs[len(reqs)-1].Messages {
		found = found || (m.Role == "assistant" && m.Content == "Réponse courte.")
	}
	if !found {
		t.Errorf("the quoted answer is not in the context: %+v", reqs[len(reqs)-1].Messages)
	}
}

// Each Albert failure class gets a kind sentence; retryable ones are retried;
// operators get one alert per incident and one when it ends.
func TestAlbertErrors(t *testing.T) {
	w := newWorld(t)
	ops, err := w.tb.Moderator.Client.CreateRoom(w.ctx(), &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "ops", Name: "Exploitation"})
	if err != nil {
		t.Fatal(err)
	}
	w.cfg.OpsRoom = "#ops:" + w.tb.HS.ServerName
	clock := &offsetClock{}
	w.opts.Now = clock.Now
	w.startGuichet()
	bot, mod := w.tb.Bot.UserID, w.tb.Moderator
	alice, dm := activeAgent(t, w)

	// A 429 then success: retried, answered, nobody alerted.
	w.tb.Albert.FailNext(1, 429, "Rate limit exceeded")
	if r := ask(t, w, alice, dm, "Question 1"); !strings.Contains(r.Body, "Voici ma réponse") {
		t.Errorf("a single 429 was not retried: %q", r.Body)
	}
	// Budget spent: the key is paused, the next question does not reach
	// Albert, one alert.
	w.tb.Albert.FailNextWith(1, fakealbert.InsufficientBudget())
	mustContain(t, ask(t, w, alice, dm, "Question 2"), "budget épuisé")
	calls := w.tb.Albert.Calls()
	mustContain(t, ask(t, w, alice, dm, "Question 3"), "budget épuisé")
	if w.tb.Albert.Calls() != calls {
		t.Error("a question reached Albert while the budget was spent")
	}
	w.expect(mod, "the incident alert", from(bot), in(ops.RoomID), contains("Incident Albert API", "budget"))
	// An hour later the key is tried again; its success closes the incident.
	clock.Advance(61 * time.Minute)
	ask(t, w, alice, dm, "Question 4")
	w.expect(mod, "the resolution", from(bot), in(ops.RoomID), contains("✅", "résolu après"))
	if n := count(mod, from(bot), in(ops.RoomID), contains("🚨")); n != 1 {
		t.Errorf("operators got %d incident alerts, want 1", n)
	}
	// Other classes, each with its sentence and never the raw error.
	for _, c := range []struct {
		status int
		detail string
		want   string
	}{
		{401, "Invalid authentication scheme.", "indisponible"},
		{422, "body.messages: Field required", "reformuler"},
		{504, "Request timed out, model is too busy.", "très sollicité"},
	} {
		w.tb.Albert.FailNext(5, c.status, c.detail)
		r := ask(t, w, alice, dm, "Question sur le statut "+c.detail)
		mustContain(t, r, c.want)
		if strings.Contains(r.Body, c.detail) || strings.Contains(r.Body, "albert:") {
			t.Errorf("raw error shown to the agent: %q", r.Body)
		}
		w.tb.Albert.FailNext(0, 0, "")
	}
}

// A stream that breaks keeps what was shown and says the answer was cut.
func TestMidStreamFailure(t *testing.T) {
	for _, style := range []fakealbert.MidStreamStyle{fakealbert.BareJSON, fakealbert.EventError} {
		w := newWorld(t)
		w.startGuichet()
		alice, dm := activeAgent(t, w)
		w.tb.Albert.FailMidStream(1, style)
		r := ask(t, w, alice, dm, "Une question qui casse")
		mustContain(t, r, "Voici ma réponse", "Réponse interrompue")
		if w.tb.Albert.Calls() != 1 {
			t.Errorf("a cut answer was retried (%d calls)", w.tb.Albert.Calls())
		}
	}
}

// The DM commands, files, huge and empty messages, and group rooms.
func TestDMCommandsAndBadInput(t *testing.T) {
	w := newWorld(t)
	w.cfg.Albert.Models = []string{"openai/gpt-oss-120b", "modele-retire"}
	w.cfg.Albert.MaxInputChars = 500
	w.startGuichet()
	bot := w.tb.Bot.UserID
	alice, dm := activeAgent(t, w)
	cmd := func(text string) mxclient.Message { return ask(t, w, alice, dm, text) }

	mustContain(t, cmd("!aide"), "!reset", "!modele", "!quota", "!conditions", "!oublier")
	mustContain(t, cmd("!conditions"), w.cfg.Policy.URL, "acceptée le")
	models := cmd("!modele")
	mustContain(t, models, "mistral-medium-2508", "openai/gpt-oss-120b", "← actuel")
	if strings.Contains(models.Body, "modele-retire") || strings.Contains(models.Body, "albert-large") {
		t.Errorf("!modele lists a model Albert does not serve, or an alias: %q", models.Body)
	}
	mustContain(t, cmd("!modele inexistant"), "n'est pas disponible")
	mustContain(t, cmd("!modele openai/gpt-oss-120b"), "openai/gpt-oss-120b")
	ask(t, w, alice, dm, "Question avec le modèle choisi")
	reqs := w.tb.Albert.Requests()
	if got := reqs[len(reqs)-1].Model; got != "openai/gpt-oss-120b" {
		t.Errorf("the chosen model was not used: %s", got)
	}
	// The model disappears: back to the default, with a notice.
	w.tb.Albert.FailNext(1, 404, "Model not found.")
	q := w.send(alice, dm, "Et maintenant ?")
	w.expect(alice, "the fallback notice", from(bot), contains("n'est plus disponible"))
	mustContain(t, finalReply(t, w, alice, q), "Voici ma réponse")
	mustContain(t, cmd("!quota"), "questions : ", "remise à zéro")
	mustContain(t, cmd("!reset"), "nouvelle conversation")
	mustContain(t, cmd("!oublier"), "!oublier confirmer")
	mustContain(t, cmd("!oublier confirmer"), "effacées")
	if n, err := w.app.Store.CountQuestions(w.ctx(), alice.UserID()); err != nil || n != 0 {
		t.Errorf("after !oublier, %d questions remain (err %v)", n, err)
	}
	mustContain(t, cmd("!approve @x:y"), "salon « L'Assistant IA | Support et retours »")
	mustContain(t, cmd("!inconnue"), "Je ne connais pas la commande", "!aide")

	calls := w.tb.Albert.Calls()
	img := &event.MessageEventContent{MsgType: event.MsgImage, Body: "capture.png", URL: "mxc://example/abc"}
	evt, err := alice.Send(w.ctx(), dm, img)
	if err != nil {
		t.Fatal(err)
	}
	w.expect(alice, "text only", from(bot), replyTo(evt), contains("messages texte"))
	mustContain(t, cmd(strings.Repeat("a", 501)), "trop long", "501", "500")
	if w.tb.Albert.Calls() != calls {
		t.Error("a file or a huge message reached Albert")
	}
	empty := w.send(alice, dm, "   ")
	cmd("!aide") // a later exchange: the empty message had its chance to be answered
	if count(alice, from(bot), replyTo(empty)) != 0 {
		t.Error("an empty message was answered")
	}

	// A room with more than two people: one notice at once, then guichet
	// leaves, without waiting for anyone to write.
	group, err := alice.Client.CreateRoom(w.ctx(), &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bot, w.tb.Moderator.UserID()}})
	if err != nil {
		t.Fatal(err)
	}
	w.expect(alice, "the group refusal", from(bot), in(group.RoomID), contains("qu'en message privé"))
	if err := alice.WaitLeft(w.ctx(), group.RoomID, bot); err != nil {
		t.Errorf("guichet did not leave the group room: %v", err)
	}
}

// A message guichet cannot decrypt (its keys never arrive) gets one notice
// asking to send it again, after guichet asked the sender's devices for them.
func TestUndecryptableMessageGetsOneNotice(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	alice, dm := activeAgent(t, w)
	content := &event.EncryptedEventContent{
		Algorithm: id.AlgorithmMegolmV1,
		SenderKey: "c2VuZGVyIGtleSB0aGF0IGd1aWNoZXQgbmV2ZXIgc2F3",
		DeviceID:  alice.Client.DeviceID,
		SessionID: "c2Vzc2lvbiB0aGF0IG5ldmVyIGV4aXN0ZWQ",
	}
	content.Ciphertext = []byte(`"AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg"`)
	resp, err := alice.Client.SendMessageEvent(w.ctx(), dm, event.EventEncrypted, content, mautrix.ReqSendEvent{DontEncrypt: true})
	if err != nil {
		t.Fatal(err)
	}
	// cryptohelper waits 3 s, requests the keys, then waits 22 s more.
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	m, err := alice.WaitMessage(ctx, func(m mxclient.Message) bool {
		return m.Sender == w.tb.Bot.UserID && m.InReplyTo == resp.EventID
	})
	if err != nil {
		t.Fatalf("no notice about the undecryptable message: %v", err)
	}
	mustContain(t, m, "pas pu déchiffrer", "à nouveau")
	// Barrier: a normal exchange afterwards, then exactly one notice.
	ask(t, w, alice, dm, "Et celle-ci ?")
	if n := count(alice, from(w.tb.Bot.UserID), replyTo(resp.EventID)); n != 1 {
		t.Errorf("%d notices for one undecryptable message", n)
	}
	if w.tb.Albert.Calls() != 1 {
		t.Errorf("Albert called %d times, want 1 (only the readable question)", w.tb.Albert.Calls())
	}
}
