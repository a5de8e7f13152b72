package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"guichet/albert"
	"guichet/internal/mxclient"
)

// searchesSince returns the searches the fake received after the first n.
func searchesSince(w *world, n int) []string {
	var out []string
	for _, r := range w.tb.Albert.SearchRequests()[n:] {
		out = append(out, r.Query)
	}
	return out
}

// An agent asks with collections configured: guichet searches them with the
// configured method and limit, asks Albert with its own French prompt
// around the numbered excerpts, and the answer cites [1] and ends with the
// sources by document and collection name; !sources shows the excerpts; a
// follow-up is searched with the question before it.
func TestAnswerWithSources(t *testing.T) {
	w := newWorld(t)
	w.cfg.Retrieval.Collections = []int{150281, 139226}
	w.cfg.Retrieval.Method = albert.MethodHybrid
	w.cfg.Retrieval.Limit = 3
	w.startGuichet()
	alice, dm := activeAgent(t, w)
	bot := w.tb.Bot.UserID

	const question = "Combien de semaines dure le congé de maternité d'une fonctionnaire ?"
	answer := ask(t, w, alice, dm, question)
	searches := w.tb.Albert.SearchRequests()
	if len(searches) != 1 {
		t.Fatalf("searches = %d, want 1", len(searches))
	}
	if s := searches[0]; s.Query != question || !slices.Equal(s.CollectionIDs, []int{150281, 139226}) ||
		s.Method != "hybrid" || s.Limit != 3 || s.ScoreThreshold != 0 || s.Aliases {
		t.Errorf("search = %+v, want the question in 150281 and 139226, hybrid, limit 3, 2026 names", s)
	}
	reqs := w.tb.Albert.Requests()
	prompt := reqs[len(reqs)-1].LastUserMessage()
	for _, want := range []string{"Extraits numérotés de documents publics", "[1] « Congé de maternité d'une fonctionnaire » (mediatech-fiches-service-public)",
		"cite chaque extrait", "Question : " + question} {
		if !strings.Contains(prompt, want) {
			t.Errorf("prompt lacks %q:\n%s", want, prompt)
		}
	}
	for _, want := range []string{"[1]", "Sources", "Congé de maternité d'une fonctionnaire", "mediatech-fiches-service-public"} {
		if !strings.Contains(answer.Body, want) {
			t.Errorf("answer lacks %q:\n%s", want, answer.Body)
		}
	}
	if !strings.Contains(answer.FormattedBody, `href="https://www.service-public.fr/particuliers/vosdroits/F519"`) {
		t.Errorf("the source has no link:\n%s", answer.FormattedBody)
	}
	if n := w.tb.Albert.DocumentRequests(); n == 0 || n > 3 {
		t.Errorf("document lookups = %d, want 1 to 3 (one per document)", n)
	}

	src := w.send(alice, dm, "!sources")
	shown := w.expect(alice, "the sources", from(bot), in(dm), replyTo(src))
	for _, want := range []string{"[1]", "Congé de maternité d'une fonctionnaire", "mediatech-fiches-service-public", "pertinence", "La fonctionnaire enceinte a droit"} {
		if !strings.Contains(shown.Body, want) {
			t.Errorf("!sources lacks %q:\n%s", want, shown.Body)
		}
	}

	// A follow-up is searched with the question it follows; names are cached.
	lookups := w.tb.Albert.DocumentRequests()
	before := len(w.tb.Albert.SearchRequests())
	ask(t, w, alice, dm, "et pour les contractuelles ?")
	if got := searchesSince(w, before); len(got) != 1 || got[0] != question+"\net pour les contractuelles ?" {
		t.Errorf("follow-up searched %q, want it with the previous question", got)
	}
	if w.tb.Albert.DocumentRequests() > lookups+3 {
		t.Errorf("document lookups went from %d to %d", lookups, w.tb.Albert.DocumentRequests())
	}

	// No hits: a normal answer without a list (in a new conversation: a
	// short follow-up would be searched with the question before it).
	reset := w.send(alice, dm, "!reset")
	w.expect(alice, "the reset", from(bot), in(dm), replyTo(reset))
	plain := ask(t, w, alice, dm, "Zorglub xylophone ?")
	reqs = w.tb.Albert.Requests()
	if strings.Contains(plain.Body, "Sources") || reqs[len(reqs)-1].LastUserMessage() != "Zorglub xylophone ?" {
		t.Errorf("an answer without hits has sources:\n%s", plain.Body)
	}

	// The ledger records each search beside the chat calls; quotas count
	// the chat calls only.
	if rows := ledger(t, w); rows["search"] != 3 || rows["chat"] != 3 {
		t.Errorf("ledger = %v, want 3 searches and 3 chat calls", rows)
	}
	usage, err := w.app.Store.UsageSince(w.ctx(), alice.UserID(), time.Now().Add(-time.Hour))
	if err != nil || usage.Questions != 3 {
		t.Errorf("UsageSince = %+v, %v; want 3 questions", usage, err)
	}
}

// ledger counts the usage ledger's rows by endpoint, read from the database
// file as an operator would.
func ledger(t *testing.T, w *world) map[string]int {
	t.Helper()
	db := openDB(t, w.cfg.Database)
	defer db.Close()
	rows, err := db.Query(w.ctx(), `SELECT endpoint, COUNT(*) FROM usage_ledger GROUP BY endpoint`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var endpoint string
		var n int
		if err := rows.Scan(&endpoint, &n); err != nil {
			t.Fatal(err)
		}
		out[endpoint] = n
	}
	return out
}

// !collections lists the offered collections with Albert's names, chooses
// among them (kept for the next questions), and "aucune" stops searching.
func TestChooseCollections(t *testing.T) {
	w := newWorld(t)
	w.cfg.Retrieval.Collections = []int{150281, 139226}
	w.startGuichet()
	alice, dm := activeAgent(t, w)
	bot := w.tb.Bot.UserID
	command := func(text string, want ...string) mxclient.Message {
		t.Helper()
		evt := w.send(alice, dm, text)
		return w.expect(alice, "the answer to "+text, from(bot), in(dm), replyTo(evt), contains(want...))
	}

	list := command("!collections", "150281", "mediatech-fiches-service-public", "139226", "mediatech-legifrance", "Codes et textes consolidés")
	if strings.Count(list.Body, "✅ `") != 2 {
		t.Errorf("both collections should be in use:\n%s", list.Body)
	}
	command("!collections 139226", "C'est noté", "139226")
	before := len(w.tb.Albert.SearchRequests())
	ask(t, w, alice, dm, "Que dit l'article L1225-17 du code du travail ?")
	if s := w.tb.Albert.SearchRequests()[before:]; len(s) != 1 || !slices.Equal(s[0].CollectionIDs, []int{139226}) {
		t.Errorf("searches after choosing 139226 = %+v", s)
	}
	command("!collections 999", "999", "collections proposées")
	command("!collections aucune", "modèle seul")
	before = len(w.tb.Albert.SearchRequests())
	plain := ask(t, w, alice, dm, "Combien dure le congé de maternité ?")
	if n := len(w.tb.Albert.SearchRequests()) - before; n != 0 || strings.Contains(plain.Body, "Sources") {
		t.Errorf("after !collections aucune: %d searches, answer %q", n, plain.Body)
	}
	command("!sources", "aucun extrait")

	// The choice survives a restart.
	w.stopGuichet()
	w.startGuichet()
	list = command("!collections", "150281")
	if strings.Contains(list.Body, "✅ `") {
		t.Errorf("after a restart, collections in use again:\n%s", list.Body)
	}
	command("!collections tout", "C'est noté", "150281", "139226")
	before = len(w.tb.Albert.SearchRequests())
	ask(t, w, alice, dm, "Combien dure le congé de maternité ?")
	if s := w.tb.Albert.SearchRequests()[before:]; len(s) != 1 || !slices.Equal(s[0].CollectionIDs, []int{150281, 139226}) {
		t.Errorf("searches after !collections tout = %+v", s)
	}
	help := command("!aide", "!sources", "!collections")
	_ = help
}

// A search that fails (500) or hangs past retrieval.timeout never blocks the
// answer: it comes without sources and says so in one line.
func TestSearchFailureStillAnswers(t *testing.T) {
	w := newWorld(t)
	w.cfg.Retrieval.Collections = []int{150281}
	w.cfg.Retrieval.Timeout = time.Second
	w.startGuichet()
	alice, dm := activeAgent(t, w)

	for _, tt := range []struct {
		name   string
		status int
	}{{"500", 500}, {"timeout", 0}} {
		w.tb.Albert.FailSearchNext(1, tt.status, "Internal Server Error")
		start := time.Now()
		answer := ask(t, w, alice, dm, "Combien dure le congé de maternité ?")
		if !strings.Contains(answer.Body, "Voici ma réponse") || !strings.Contains(answer.Body, "n'a pas abouti") || strings.Contains(answer.Body, "Sources") {
			t.Errorf("%s: answer = %q, want an answer saying it has no sources", tt.name, answer.Body)
		}
		if tt.status == 0 && time.Since(start) > 30*time.Second {
			t.Errorf("timeout: the answer took %s", time.Since(start))
		}
	}
	if rows := ledger(t, w); rows["search"] != 2 {
		t.Errorf("ledger = %v, want the 2 failed searches recorded", rows)
	}
	// And the next one has its sources again.
	if answer := ask(t, w, alice, dm, "Combien dure le congé de maternité ?"); !strings.Contains(answer.Body, "Sources") {
		t.Errorf("after the failures: %q", answer.Body)
	}
}

// One full exchange from matrix-js-sdk with Rust crypto (Tchap's web
// client): the sourced answer and !sources decrypt and read as on mautrix.
func TestTchapWebClientSourcedAnswer(t *testing.T) {
	w := newWorld(t)
	w.cfg.Retrieval.Collections = []int{150281}
	w.startGuichet()
	ctx := w.ctx()
	bot, room := w.tb.Bot.UserID, w.tb.SupportRoom
	alice, aliceID := webAgent(t, w, "alice.martin-interieur.gouv.fr", "ALICEWEB")
	if err := alice.Join(ctx, room.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, room, "Bonjour, je souhaite accéder à l'Assistant IA"); err != nil {
		t.Fatal(err)
	}
	w.expect(alice, "the acknowledgement", from(bot), in(room), contains("n° 1"))
	w.send(w.tb.Moderator, room, "!approve "+aliceID.String())
	dm := w.expect(alice, "the welcome", from(bot), notInRoom(room), contains("!accepter")).RoomID
	acc, err := alice.SendText(ctx, dm, "!accepter")
	if err != nil {
		t.Fatal(err)
	}
	w.expect(alice, "the consent confirmation", from(bot), in(dm), replyTo(acc), contains("Merci"))
	q, err := alice.SendText(ctx, dm, "Combien de jours de télétravail par semaine ?")
	if err != nil {
		t.Fatal(err)
	}
	// One message, or a first one (the first sentence) and the edit that
	// completes it, as the stream's timing has it.
	answer := finalReply(t, w, alice, q)
	if !answer.Encrypted || answer.RoomID != dm || !strings.Contains(answer.Body, "Sources") ||
		!strings.Contains(answer.Body, "Télétravail dans la fonction publique") {
		t.Errorf("the sourced answer (encrypted %v, in the DM %v):\n%s", answer.Encrypted, answer.RoomID == dm, answer.Body)
	}
	if !strings.Contains(answer.FormattedBody, "<a href=\"https://www.service-public.fr/") {
		t.Errorf("the source link did not reach the web client:\n%s", answer.FormattedBody)
	}
	s, err := alice.SendText(ctx, dm, "!sources")
	if err != nil {
		t.Fatal(err)
	}
	w.expect(alice, "!sources", from(bot), in(dm), replyTo(s), encrypted(), contains("Télétravail dans la fonction publique", "pertinence"))
}
