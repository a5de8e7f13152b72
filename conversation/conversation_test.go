package conversation_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"guichet/albert"
	"guichet/conversation"
	"guichet/internal/fakeclock"
	"guichet/internal/testdb"
	"guichet/store"
)

var t0 = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

const (
	agent = id.UserID("@jeanne.martin-finances.gouv.fr:agent.finances.tchap.gouv.fr")
	dm    = id.RoomID("!dm:agent.dinum.tchap.gouv.fr")
)

// library is Albert's document search as the conversation sees it: a fixed
// set of hits per collection, every call recorded, failures on demand.
type library struct {
	mu          sync.Mutex
	hits        map[int][]albert.SearchResult
	docs        map[int]string
	collections []albert.Collection
	fail        error
	searches    []albert.SearchRequest
	docCalls    int
	collCalls   int
}

func (l *library) Search(_ context.Context, req albert.SearchRequest) (albert.SearchResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.searches = append(l.searches, req)
	if l.fail != nil {
		return albert.SearchResponse{}, l.fail
	}
	var out []albert.SearchResult
	for _, c := range req.CollectionIDs {
		out = append(out, l.hits[c]...)
	}
	slices.SortStableFunc(out, func(a, b albert.SearchResult) int { return compare(b.Score, a.Score) })
	if req.Limit > 0 && len(out) > req.Limit {
		out = out[:req.Limit]
	}
	return albert.SearchResponse{Results: out}, nil
}

func compare(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (l *library) Collections(context.Context) ([]albert.Collection, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.collCalls++
	return l.collections, nil
}

func (l *library) Document(_ context.Context, docID int) (albert.Document, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.docCalls++
	name, ok := l.docs[docID]
	if !ok {
		return albert.Document{}, &albert.Error{Class: albert.ClassNotFound, Status: 404, Detail: "Document not found."}
	}
	return albert.Document{ID: docID, Name: name}, nil
}

func newLibrary() *library {
	return &library{
		hits: map[int][]albert.SearchResult{
			150281: {
				{Score: 0.9, ChunkID: 1, CollectionID: 150281, DocumentID: 11, Content: "Le congé de maternité dure seize semaines.", URL: "https://www.service-public.fr/F2265"},
				{Score: 0.5, ChunkID: 2, CollectionID: 150281, DocumentID: 12, Content: "Le télétravail est possible trois jours par semaine."},
			},
			139226: {
				{Score: 0.7, ChunkID: 3, CollectionID: 139226, DocumentID: 21, Content: "Article L1225-17 : la salariée a le droit de bénéficier d'un congé de maternité."},
			},
		},
		docs: map[int]string{11: "Congé de maternité d'une fonctionnaire", 12: "Télétravail dans la fonction publique", 21: "Code du travail - Article L1225-17"},
		collections: []albert.Collection{
			{ID: 150281, Name: "mediatech-fiches-service-public", Description: "Fiches pratiques de service-public.fr", Documents: 2},
			{ID: 139226, Name: "mediatech-legifrance", Description: "Légifrance", Documents: 1},
		},
	}
}

type env struct {
	t   *testing.T
	ctx context.Context
	st  *store.Store
	lib *library
	clk *fakeclock.Clock
	svc *conversation.Service
	n   int
}

var baseConfig = conversation.Config{
	SystemPrompt: "Tu es l'Assistant IA.", Model: "mistral-medium-2508", Models: []string{"openai/gpt-oss-120b"},
	MaxContextTokens: 6000, IdleReset: 30 * time.Minute,
}

func newEnv(t *testing.T, cfg conversation.Config) *env {
	t.Helper()
	db := testdb.Open(t)
	st := store.New(db, zerolog.Nop())
	ctx := context.Background()
	if err := st.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	clk := fakeclock.New(t0)
	lib := newLibrary()
	return &env{t: t, ctx: ctx, st: st, lib: lib, clk: clk, svc: conversation.New(st, lib, cfg, clk.Now)}
}

// ask builds the prompt of a question and records the answer, as the bot
// does; it returns the prompt.
func (e *env) ask(text string, replyTo id.EventID, answer string) *conversation.Prompt {
	e.t.Helper()
	e.n++
	q := conversation.Question{Room: dm, User: agent, Event: id.EventID(fmt.Sprintf("$q%d", e.n)), Text: text, ReplyTo: replyTo}
	p, err := e.svc.Prompt(e.ctx, q)
	if err != nil {
		e.t.Fatal(err)
	}
	if answer != "" {
		if err := e.svc.Record(e.ctx, p.Exchange(answer, "", e.clk.Now())); err != nil {
			e.t.Fatal(err)
		}
	}
	return p
}

func contents(msgs []albert.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Role+":"+m.Content)
	}
	return out
}

func TestIdleReset(t *testing.T) {
	tests := []struct {
		name      string
		idle      time.Duration // silence before the third question
		wantReset bool
		wantTurns int // turns sent before the question
	}{
		{"within the window", 29 * time.Minute, false, 4},
		{"exactly the window", 30 * time.Minute, false, 4},
		{"past the window", 31 * time.Minute, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, baseConfig)
			e.ask("Première question", "", "Première réponse")
			e.clk.Advance(time.Minute)
			e.ask("Deuxième question", "", "Deuxième réponse")
			e.clk.Advance(tt.idle)
			p := e.ask("Troisième question", "", "")
			if p.Reset != tt.wantReset {
				t.Errorf("Reset = %v, want %v", p.Reset, tt.wantReset)
			}
			// system prompt + turns + question
			if got := len(p.Messages) - 2; got != tt.wantTurns {
				t.Errorf("turns sent = %d, want %d: %q", got, tt.wantTurns, contents(p.Messages))
			}
			if tt.wantReset {
				// The reset holds: an immediate next question does not
				// bring the old turns back.
				p := e.ask("Quatrième question", "", "")
				if len(p.Messages) != 2 || p.Reset {
					t.Errorf("after a reset, messages = %q (reset %v)", contents(p.Messages), p.Reset)
				}
			}
		})
	}
}

func TestResetCommand(t *testing.T) {
	e := newEnv(t, baseConfig)
	e.ask("Première question", "", "Première réponse")
	e.clk.Advance(time.Second)
	if err := e.svc.Reset(e.ctx, dm); err != nil {
		t.Fatal(err)
	}
	p := e.ask("Nouvelle question", "", "")
	if want := []string{"system:Tu es l'Assistant IA.", "user:Nouvelle question"}; !slices.Equal(contents(p.Messages), want) || p.Reset {
		t.Errorf("messages after !reset = %q (reset %v), want %q", contents(p.Messages), p.Reset, want)
	}
}

func TestTokenBudget(t *testing.T) {
	long := strings.Repeat("mot ", 400) // about 400 tokens
	tests := []struct {
		name        string
		budget      int
		collections []int
		wantTurns   int // history turns kept
		wantSources int
	}{
		{"everything fits", 6000, nil, 6, 0},
		{"oldest turns dropped first", 600, nil, 3, 0},
		{"nothing but the question", 20, nil, 0, 0},
		{"excerpts first, then the history that fits", 1000, []int{150281, 139226}, 3, 3},
		{"excerpts that do not fit are left out, history kept", 280, []int{150281, 139226}, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig
			cfg.MaxContextTokens = tt.budget
			cfg.Retrieval = conversation.Retrieval{Collections: tt.collections}
			e := newEnv(t, cfg)
			for i := range 3 {
				e.ask(fmt.Sprintf("question %d %s", i, long), "", fmt.Sprintf("réponse %d", i))
				e.clk.Advance(time.Minute)
			}
			p := e.ask("Combien de semaines dure le congé de maternité ?", "", "")
			if got := len(p.Messages) - 2; got != tt.wantTurns {
				t.Errorf("history turns = %d, want %d", got, tt.wantTurns)
			}
			if len(p.Sources) != tt.wantSources {
				t.Errorf("sources = %d, want %d", len(p.Sources), tt.wantSources)
			}
			total := 0
			for _, m := range p.Messages {
				total += albert.EstimateTokens(m.Content)
			}
			if total > tt.budget && tt.budget > 100 {
				t.Errorf("prompt = %d tokens, over the budget %d", total, tt.budget)
			}
			last := p.Messages[len(p.Messages)-1]
			if !strings.HasSuffix(last.Content, "Combien de semaines dure le congé de maternité ?") || last.Role != "user" {
				t.Errorf("last message = %q, want the question last", last.Content)
			}
		})
	}
}

func TestExcerptsShareOfTheBudget(t *testing.T) {
	cfg := baseConfig
	cfg.MaxContextTokens = 400
	cfg.Retrieval = conversation.Retrieval{Collections: []int{150281}}
	e := newEnv(t, cfg)
	// A huge excerpt ranked first does not fit; the smaller one after it does.
	e.lib.hits[150281] = append([]albert.SearchResult{{Score: 0.99, ChunkID: 9, CollectionID: 150281, DocumentID: 11, Content: strings.Repeat("texte ", 2000)}}, e.lib.hits[150281]...)
	p := e.ask("Combien de semaines dure le congé de maternité ?", "", "")
	if len(p.Sources) != 2 || p.Sources[0].N != 1 || p.Sources[1].N != 2 || strings.Contains(p.Sources[0].Content, "texte texte") {
		t.Fatalf("sources = %+v, want the two that fit, numbered 1 and 2", p.Sources)
	}
	last := p.Messages[len(p.Messages)-1].Content
	if !strings.Contains(last, "[1] « Congé de maternité d'une fonctionnaire » (mediatech-fiches-service-public)") ||
		!strings.Contains(last, "[2] « Télétravail dans la fonction publique »") || strings.Contains(last, "texte texte") {
		t.Errorf("prompt = %q", last)
	}
}

func TestQuotedTurn(t *testing.T) {
	cfg := baseConfig
	cfg.MaxContextTokens = 300
	long := strings.Repeat("mot ", 100)
	tests := []struct {
		name    string
		replyTo id.EventID
		want    string // the message right after the system prompt
	}{
		{"an old question out of the window comes back first", "$q1", "user:question ancienne " + long},
		{"a question still in the window is not sent twice", "$q3", "assistant:réponse ancienne"},
		{"an unknown event adds nothing", "$nope", "assistant:réponse ancienne"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, cfg)
			e.ask("question ancienne "+long, "", "réponse ancienne")
			e.ask("question 2 "+long, "", "réponse 2")
			e.ask("question 3 "+long, "", "réponse 3")
			p := e.ask("Et alors ?", tt.replyTo, "")
			got := contents(p.Messages)
			if got[1] != tt.want {
				t.Errorf("messages = %q, want %q second", got, tt.want)
			}
			seen := map[string]int{}
			for _, m := range got {
				seen[m]++
				if seen[m] > 1 {
					t.Errorf("%q sent twice", m)
				}
			}
		})
	}
}

func TestModelChoice(t *testing.T) {
	e := newEnv(t, baseConfig)
	steps := []struct {
		set  string
		want string
	}{
		{"", "mistral-medium-2508"},
		{"openai/gpt-oss-120b", "openai/gpt-oss-120b"},
		{"mistral-medium-2508", "mistral-medium-2508"},
	}
	for _, s := range steps {
		if s.set != "" {
			if err := e.svc.SetModel(e.ctx, agent, s.set); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := e.svc.Model(e.ctx, agent); err != nil || got != s.want {
			t.Errorf("after %q: Model = %q, %v; want %q", s.set, got, err, s.want)
		}
		if p := e.ask("Bonjour", "", "Bonjour !"); p.Model != s.want {
			t.Errorf("after %q: the question goes to %q, want %q", s.set, p.Model, s.want)
		}
	}
	// A choice this profile does not offer (made under another profile,
	// or withdrawn from albert.models) falls back to its default.
	if err := e.svc.SetModel(e.ctx, agent, "openai/gpt-oss-120b"); err != nil {
		t.Fatal(err)
	}
	partner := baseConfig
	partner.Model, partner.Models = "ministral-3-8b-instruct-2512", nil
	if got, _ := conversation.New(e.st, e.lib, partner, e.clk.Now).Model(e.ctx, agent); got != partner.Model {
		t.Errorf("a choice the profile does not offer: %q, want its default %q", got, partner.Model)
	}
	if err := e.svc.SetModel(e.ctx, agent, "mistral-medium-2508"); err != nil {
		t.Fatal(err)
	}
	// Choosing the default stores nothing: a new default applies to them.
	cfg := baseConfig
	cfg.Model = "ministral-3-8b-instruct-2512"
	if got, _ := conversation.New(e.st, e.lib, cfg, e.clk.Now).Model(e.ctx, agent); got != cfg.Model {
		t.Errorf("after choosing the default then a new default: %q, want %q", got, cfg.Model)
	}
}

func TestCollectionChoice(t *testing.T) {
	cfg := baseConfig
	cfg.Retrieval = conversation.Retrieval{Collections: []int{150281, 139226, 42}}
	tests := []struct {
		name     string
		args     []string
		wantErr  bool
		inUse    []int // after the choice
		searched []int // by the next question (nil: no search); 42, unknown to Albert, is left out
	}{
		{"default: every offered collection", nil, false, []int{150281, 139226, 42}, []int{150281, 139226}},
		{"one id", []string{"139226"}, false, []int{139226}, []int{139226}},
		{"ids with # and commas", []string{"#150281,139226"}, false, []int{150281, 139226}, []int{150281, 139226}},
		{"aucune", []string{"aucune"}, false, nil, nil},
		{"tout", []string{"tout"}, false, []int{150281, 139226, 42}, []int{150281, 139226}},
		{"an id not offered", []string{"999"}, true, []int{150281, 139226, 42}, []int{150281, 139226}},
		{"a word", []string{"légifrance"}, true, []int{150281, 139226, 42}, []int{150281, 139226}},
		{"tout and an id", []string{"tout", "42"}, true, []int{150281, 139226, 42}, []int{150281, 139226}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, cfg)
			if tt.args != nil {
				_, err := e.svc.ChooseCollections(e.ctx, agent, tt.args)
				if (err != nil) != tt.wantErr || err != nil && !errors.Is(err, conversation.ErrNotOffered) {
					t.Fatalf("ChooseCollections(%q) = %v, want error %v", tt.args, err, tt.wantErr)
				}
			}
			offered, err := e.svc.Offered(e.ctx, agent)
			if err != nil {
				t.Fatal(err)
			}
			var inUse []int
			for _, o := range offered {
				if o.InUse {
					inUse = append(inUse, o.ID)
				}
			}
			if !slices.Equal(inUse, tt.inUse) {
				t.Errorf("in use = %v, want %v", inUse, tt.inUse)
			}
			if offered[0].Name != "mediatech-fiches-service-public" || !offered[0].Known || offered[2].Known || offered[2].ID != 42 {
				t.Errorf("offered = %+v, want names from Albert and 42 unknown", offered)
			}
			before := len(e.lib.searches)
			e.ask("Combien de semaines dure le congé de maternité ?", "", "")
			var searched []int
			if len(e.lib.searches) > before {
				searched = e.lib.searches[len(e.lib.searches)-1].CollectionIDs
			}
			if !slices.Equal(searched, tt.searched) {
				t.Errorf("searched %v, want %v", searched, tt.searched)
			}
		})
	}
}

func TestFollowUpQuery(t *testing.T) {
	cfg := baseConfig
	cfg.Retrieval = conversation.Retrieval{Collections: []int{150281}, Method: albert.MethodHybrid, Limit: 3}
	long := "Quelles sont les conditions exactes pour obtenir un congé de maternité lorsque l'on est fonctionnaire titulaire dans un ministère ?"
	tests := []struct {
		name    string
		before  []string
		replyTo id.EventID
		text    string
		want    string
	}{
		{"a first question alone", nil, "", "Combien dure le congé de maternité ?", "Combien dure le congé de maternité ?"},
		{"a short follow-up takes the previous question", []string{"Combien dure le congé de maternité ?"}, "", "et pour les contractuels ?",
			"Combien dure le congé de maternité ?\net pour les contractuels ?"},
		{"a long question stands alone", []string{"Combien dure le congé de maternité ?"}, "", long, long},
		{"a self-standing question stands alone", []string{"Combien dure le congé de maternité ?"}, "",
			"Quels sont mes droits au télétravail en tant que contractuel ?", "Quels sont mes droits au télétravail en tant que contractuel ?"},
		{"a question starting like a follow-up", []string{"Combien dure le congé de maternité ?"}, "",
			"Et pour une agente contractuelle recrutée depuis six mois ?", "Combien dure le congé de maternité ?\nEt pour une agente contractuelle recrutée depuis six mois ?"},
		{"a reply takes the question replied to", []string{"Combien dure le congé de maternité ?", "Et le télétravail ?"}, "$q1", "et pour les contractuels ?",
			"Combien dure le congé de maternité ?\net pour les contractuels ?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, cfg)
			for _, b := range tt.before {
				e.ask(b, "", "réponse")
			}
			e.ask(tt.text, tt.replyTo, "")
			last := e.lib.searches[len(e.lib.searches)-1]
			if last.Query != tt.want || last.Method != albert.MethodHybrid || last.Limit != 3 || last.ScoreThreshold != 0 {
				t.Errorf("search = %+v, want query %q, hybrid, limit 3", last, tt.want)
			}
		})
	}
}

// Small talk is not searched: "Merci beaucoup !" gets no excerpts.
func TestSmallTalkIsNotSearched(t *testing.T) {
	cfg := baseConfig
	cfg.Retrieval = conversation.Retrieval{Collections: []int{150281}}
	e := newEnv(t, cfg)
	e.ask("Combien de semaines dure le congé de maternité ?", "", "Seize semaines [1].")
	for _, text := range []string{"Merci beaucoup !", "Bonjour", "ok, d'accord", "Bonne journée"} {
		before := len(e.lib.searches)
		if p := e.ask(text, "", ""); p.Search != nil || len(p.Sources) != 0 || len(e.lib.searches) != before {
			t.Errorf("%q was searched: %+v", text, p.Search)
		}
	}
	if p := e.ask("Merci, et pour les contractuels ?", "", ""); p.Search == nil {
		t.Error("a thank-you with a question was not searched")
	}
}

// A choice of collections none of which this profile offers (the operator
// replaced them, or the agent moved to a partner) is the default, not a
// silent "aucune"; "aucune" stays "aucune".
func TestCollectionChoiceNoLongerOffered(t *testing.T) {
	cfg := baseConfig
	cfg.Retrieval = conversation.Retrieval{Collections: []int{150281, 139226}}
	e := newEnv(t, cfg)
	if _, err := e.svc.ChooseCollections(e.ctx, agent, []string{"150281"}); err != nil {
		t.Fatal(err)
	}
	moved := cfg
	moved.Retrieval = conversation.Retrieval{Collections: []int{139226, 150277}}
	svc := conversation.New(e.st, e.lib, moved, e.clk.Now)
	p, err := svc.Prompt(e.ctx, conversation.Question{Room: dm, User: agent, Event: "$x", Text: "Combien dure le congé de maternité ?"})
	// 150277 is not in Albert's list here: left out of the search.
	if err != nil || p.Search == nil || !slices.Equal(p.Search.Collections, []int{139226}) {
		t.Fatalf("search = %+v, %v; want the new profile's collections Albert knows", p.Search, err)
	}
	// None known: no search, reported as failed.
	gone := cfg
	gone.Retrieval = conversation.Retrieval{Collections: []int{999}}
	p, err = conversation.New(e.st, e.lib, gone, e.clk.Now).Prompt(e.ctx, conversation.Question{Room: dm, User: "@other:x", Event: "$y", Text: "Combien dure le congé de maternité ?"})
	if err != nil || p.Search == nil || p.Search.Err == nil || p.Search.Err.Class != albert.ClassNotFound {
		t.Errorf("with no known collection: %+v, %v", p.Search, err)
	}
	for _, arg := range []string{"<150281>", "`150281`", "(150281)", "n° 150281"} {
		if got, err := e.svc.ChooseCollections(e.ctx, agent, strings.Fields(arg)); err != nil || !slices.Equal(got, []int{150281}) {
			t.Errorf("ChooseCollections(%q) = %v, %v", arg, got, err)
		}
	}
}

func TestSearchOutcomes(t *testing.T) {
	cfg := baseConfig
	cfg.Retrieval = conversation.Retrieval{Collections: []int{150281, 139226}, Limit: 5, ScoreThreshold: 0.3}
	e := newEnv(t, cfg)

	p := e.ask("Combien de semaines dure le congé de maternité ?", "", "")
	if p.Search == nil || p.Search.Err != nil || !slices.Equal(p.Search.Collections, []int{150281, 139226}) {
		t.Fatalf("search = %+v", p.Search)
	}
	if req := e.lib.searches[0]; req.ScoreThreshold != 0.3 || req.Method != albert.MethodSemantic {
		t.Errorf("request = %+v, want semantic with threshold 0.3", req)
	}
	wantDocs := []string{"Congé de maternité d'une fonctionnaire", "Code du travail - Article L1225-17", "Télétravail dans la fonction publique"}
	var docs []string
	for i, s := range p.Sources {
		docs = append(docs, s.Document)
		if s.N != i+1 {
			t.Errorf("source %d numbered %d", i, s.N)
		}
	}
	if !slices.Equal(docs, wantDocs) || p.Sources[0].Collection != "mediatech-fiches-service-public" || p.Sources[0].URL != "https://www.service-public.fr/F2265" {
		t.Errorf("sources = %+v, want documents %q named from Albert", p.Sources, wantDocs)
	}
	// Names are cached: the same documents again cost no lookup.
	calls := e.lib.docCalls
	e.ask("Et le congé de maternité pour un second enfant ?", "", "")
	if e.lib.docCalls != calls {
		t.Errorf("document lookups = %d after a second question, want %d (cached)", e.lib.docCalls, calls)
	}

	// No hits: a normal prompt.
	e.lib.hits = nil
	p = e.ask("Quelle heure est-il ?", "", "")
	if len(p.Sources) != 0 || strings.Contains(p.Messages[len(p.Messages)-1].Content, "Extraits") || p.Search == nil || p.Search.Err != nil {
		t.Errorf("without hits: sources %+v, prompt %q", p.Sources, p.Messages[len(p.Messages)-1].Content)
	}

	// A failing search: no sources, the failure reported, no error.
	e.lib.fail = &albert.Error{Class: albert.ClassUpstream, Status: 500, Detail: "Internal Server Error"}
	p = e.ask("Combien de semaines dure le congé de maternité ?", "", "")
	if len(p.Sources) != 0 || p.Search == nil || p.Search.Err == nil || p.Search.Err.Class != albert.ClassUpstream {
		t.Errorf("failing search: sources %+v, call %+v", p.Sources, p.Search)
	}
	if p.Messages[len(p.Messages)-1].Content != "Combien de semaines dure le congé de maternité ?" {
		t.Errorf("failing search: prompt %q, want the bare question", p.Messages[len(p.Messages)-1].Content)
	}
}

func TestSourcesRecorded(t *testing.T) {
	cfg := baseConfig
	cfg.Retrieval = conversation.Retrieval{Collections: []int{150281}}
	e := newEnv(t, cfg)
	if _, ok, err := e.svc.LastSources(e.ctx, dm); ok || err != nil {
		t.Fatalf("LastSources before any answer = %v, %v", ok, err)
	}
	e.lib.hits[150281][0].Content = strings.Repeat("congé ", 100) // 600 characters
	e.lib.hits[150281][1].Content = strings.Repeat("é", 1000)
	e.ask("Combien de semaines dure le congé de maternité ?", "", "Seize semaines [1].")
	got, ok, err := e.svc.LastSources(e.ctx, dm)
	if err != nil || !ok || len(got) != 2 || got[0].Document == "" {
		t.Fatalf("LastSources = %+v, %v, %v", got, ok, err)
	}
	// Cut at a word, marked; a text without spaces is cut where it must.
	if c := got[0].Content; !strings.HasSuffix(c, "congé…") || len([]rune(c)) > conversation.RecordedExcerpt+1 {
		t.Errorf("recorded excerpt = %q (%d characters)", c, len([]rune(c)))
	}
	if c := got[1].Content; len([]rune(c)) != conversation.RecordedExcerpt+1 || !strings.HasSuffix(c, "é…") {
		t.Errorf("recorded excerpt without spaces = %d characters", len([]rune(c)))
	}
	// The stored answer is the text the model wrote; the next prompt
	// carries it without the excerpts.
	p := e.ask("Merci", "", "")
	for _, m := range p.Messages[:len(p.Messages)-1] {
		if strings.Contains(m.Content, "Extraits") {
			t.Errorf("an earlier prompt's excerpts are in the history: %q", m.Content)
		}
	}
	if _, ok, _ := e.svc.LastSources(e.ctx, dm); !ok {
		t.Error("LastSources lost the last answer")
	}
}

func TestCited(t *testing.T) {
	sources := []conversation.Source{{N: 1}, {N: 2}, {N: 3}}
	tests := []struct {
		answer string
		want   []int
	}{
		{"Selon [2], oui.", []int{2}},
		{"Voir [3] et [1], puis [1].", []int{1, 3}},
		{"Aucune citation.", nil},
		{"Une citation inconnue [9].", nil},
	}
	for _, tt := range tests {
		var got []int
		for _, s := range conversation.Cited(tt.answer, sources) {
			got = append(got, s.N)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Cited(%q) = %v, want %v", tt.answer, got, tt.want)
		}
	}
	if conversation.Cited("[1]", nil) != nil {
		t.Error("Cited without sources is not nil")
	}
}
