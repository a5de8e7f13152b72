// Package conversation holds the rules of an agent's conversation with the
// assistant: which turns are remembered (idle reset, token budget, the turn
// replied to), which model and which document collections an agent uses,
// the search in those collections and the prompt built around its excerpts,
// and what is recorded of each exchange. It knows nothing of Matrix events
// beyond their ids, nor of SQL: it works through the Store and the Library it
// declares.
package conversation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/albert"
)

// Roles of a turn.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Turn is one message of a conversation.
type Turn struct {
	Role    string // RoleUser or RoleAssistant
	Content string
	// Question is the event id of the question the turn belongs to: its own
	// event for a question, the question it answers for an answer.
	Question id.EventID
	// Answer is, for an answer, the event it was first shown in (its
	// placeholder); "" when it was sent as its own message.
	Answer id.EventID
	At     time.Time
}

// Exchange is a question and its answer, recorded together.
type Exchange struct {
	Room       id.RoomID
	User       id.UserID
	Question   id.EventID
	Asked      string // the question's text, as the agent wrote it
	AskedAt    time.Time
	Answer     id.EventID // see Turn.Answer
	Answered   string     // the answer's text, without the sources list
	AnsweredAt time.Time
	// Sources are the excerpts the answer was given, numbered from 1.
	Sources []Source
}

// Prefs are an agent's choices.
type Prefs struct {
	// Model is the chosen model id; "" for the default.
	Model string
	// Collections are the chosen collection ids when CollectionsChosen;
	// otherwise the configured default applies. Chosen and empty: none.
	Collections       []int
	CollectionsChosen bool
}

// Store is what conversations need from persistence. Calls made with the
// context of a transaction (see the store package's InTx) run in it.
type Store interface {
	// StartConversation starts a new conversation in room at a time:
	// earlier turns are no longer context.
	StartConversation(ctx context.Context, room id.RoomID, at time.Time) error
	// RecentTurns returns at most limit latest turns of room's current
	// conversation (see StartConversation) at or after since, oldest first.
	RecentTurns(ctx context.Context, room id.RoomID, since time.Time, limit int) ([]Turn, error)
	// QuotedTurn returns the turn a message in room replies to: a question
	// (by its event), or an answer (by its placeholder, or by any of the
	// messages sent with it); nil if none.
	QuotedTurn(ctx context.Context, room id.RoomID, evt id.EventID) (*Turn, error)
	// Prefs returns user's choices (the zero Prefs if none).
	Prefs(ctx context.Context, user id.UserID) (Prefs, error)
	// SetModelPref records user's model ("" for the default).
	SetModelPref(ctx context.Context, user id.UserID, model string) error
	// SetCollectionsPref records user's collections; chosen false goes back
	// to the default.
	SetCollectionsPref(ctx context.Context, user id.UserID, ids []int, chosen bool) error
	// AddExchange records a question and its answer.
	AddExchange(ctx context.Context, ex Exchange) error
	// LastExchange returns the latest exchange in room that has an answer,
	// or nil.
	LastExchange(ctx context.Context, room id.RoomID) (*Exchange, error)
}

// Library is the document search: Albert API's /search, /collections and
// /documents (*albert.Client implements it). Errors are *albert.Error.
type Library interface {
	Search(ctx context.Context, req albert.SearchRequest) (albert.SearchResponse, error)
	Collections(ctx context.Context) ([]albert.Collection, error)
	Document(ctx context.Context, id int) (albert.Document, error)
}

// Retrieval configures the search in document collections.
type Retrieval struct {
	// Collections are the ids offered to agents, searched unless an agent
	// chooses otherwise; none: no retrieval.
	Collections []int
	// Method is albert.MethodSemantic, MethodHybrid or MethodLexical.
	Method string
	// Limit is the number of excerpts per question.
	Limit int
	// ScoreThreshold drops excerpts scored below it (semantic only).
	ScoreThreshold float64
	// Timeout bounds one search: past it, the question is answered without
	// sources.
	Timeout time.Duration
}

// Config configures a Service.
type Config struct {
	SystemPrompt string
	// Model is the default model id; Models the others agents may choose.
	// A choice recorded under another profile (an agent moved to a
	// partner) or no longer offered falls back to Model.
	Model  string
	Models []string
	// MaxContextTokens bounds a prompt (estimated tokens): the system prompt,
	// the question and its excerpts first, then the latest turns that fit.
	MaxContextTokens int
	// IdleReset starts a new conversation after this much silence.
	IdleReset time.Duration
	Retrieval Retrieval
}

// Service applies the rules of conversations.
type Service struct {
	store Store
	lib   Library
	cfg   Config
	now   func() time.Time
	names *names
}

// New returns a Service; lib may be nil when no collection is configured;
// now is the clock (time.Now in production).
func New(store Store, lib Library, cfg Config, now func() time.Time) *Service {
	if cfg.Retrieval.Limit <= 0 {
		cfg.Retrieval.Limit = 5
	}
	if cfg.Retrieval.Method == "" {
		cfg.Retrieval.Method = albert.MethodSemantic
	}
	if cfg.Retrieval.Timeout <= 0 {
		cfg.Retrieval.Timeout = 10 * time.Second
	}
	if lib == nil {
		cfg.Retrieval.Collections = nil
	}
	return &Service{store: store, lib: lib, cfg: cfg, now: now, names: newNames(lib, now)}
}

// Question is a question as guichet received it.
type Question struct {
	Room  id.RoomID
	User  id.UserID
	Event id.EventID
	// Text is the question without any reply fallback.
	Text string
	// ReplyTo is the message the question replies to, if any.
	ReplyTo id.EventID
}

// SearchCall is what a question's search cost, for the usage ledger.
type SearchCall struct {
	Collections []int
	Latency     time.Duration
	Usage       albert.Usage
	// Err is the search's failure (nil if it worked); the answer then comes
	// without sources.
	Err *albert.Error
}

// Prompt is what to send to the assistant for one question.
type Prompt struct {
	Question Question
	At       time.Time
	Model    string
	Messages []albert.Message
	// Reset is true when this question started a new conversation after
	// IdleReset of silence.
	Reset bool
	// Sources are the excerpts in the prompt, numbered from 1.
	Sources []Source
	// Search is the search made for the question; nil when none was.
	Search *SearchCall
}

// Prompt builds the prompt for q: it starts a new conversation after a long
// silence, searches the agent's collections and fits the system prompt, the
// turn replied to, the latest turns, the excerpts and the question into
// MaxContextTokens. A failed search is reported in Prompt.Search, not as an
// error: the question is answered without sources. Errors are the store's.
func (s *Service) Prompt(ctx context.Context, q Question) (*Prompt, error) {
	now := s.now()
	p := &Prompt{Question: q, At: now}
	turns, err := s.store.RecentTurns(ctx, q.Room, time.Time{}, maxTurns)
	if err != nil {
		return nil, fmt.Errorf("failed to read conversation: %w", err)
	}
	if n := len(turns); n > 0 && now.Sub(turns[n-1].At) > s.cfg.IdleReset && s.cfg.IdleReset > 0 {
		if err := s.store.StartConversation(ctx, q.Room, now); err != nil {
			return nil, err
		}
		turns, p.Reset = nil, true
	}
	prefs, err := s.store.Prefs(ctx, q.User)
	if err != nil {
		return nil, err
	}
	p.Model = s.model(prefs)
	var quoted *Turn
	if q.ReplyTo != "" {
		if quoted, err = s.store.QuotedTurn(ctx, q.Room, q.ReplyTo); err != nil {
			return nil, err
		}
	}
	if collections := s.inUse(prefs); len(collections) > 0 && !asksNothing(q.Text) {
		p.Sources, p.Search = s.search(ctx, collections, searchQuery(q.Text, turns, quoted))
	}
	p.Messages, p.Sources = s.build(q.Text, turns, quoted, p.Sources)
	return p, nil
}

// maxTurns bounds the turns read for one prompt.
const maxTurns = 200

// Exchange is the exchange to record once p's answer is known: text is the
// answer without its sources list, answer the event it was first shown in
// ("" when it is sent as its own message).
func (p *Prompt) Exchange(text string, answer id.EventID, at time.Time) Exchange {
	var sources []Source
	for _, src := range p.Sources {
		if cut := truncateWords(src.Content, RecordedExcerpt); cut != src.Content {
			src.Content = cut + "…"
		}
		sources = append(sources, src)
	}
	return Exchange{
		Room: p.Question.Room, User: p.Question.User, Question: p.Question.Event,
		Asked: p.Question.Text, AskedAt: p.At,
		Answer: answer, Answered: text, AnsweredAt: at, Sources: sources,
	}
}

// Record stores an exchange; call it in the transaction that queues the
// answer, so that both happen or neither.
func (s *Service) Record(ctx context.Context, ex Exchange) error {
	return s.store.AddExchange(ctx, ex)
}

// Reset starts a new conversation in room now.
func (s *Service) Reset(ctx context.Context, room id.RoomID) error {
	return s.store.StartConversation(ctx, room, s.now())
}

// Model returns the model user's questions go to.
func (s *Service) Model(ctx context.Context, user id.UserID) (string, error) {
	prefs, err := s.store.Prefs(ctx, user)
	return s.model(prefs), err
}

// model is the model of someone with prefs: their choice if this profile
// offers it, else the default.
func (s *Service) model(prefs Prefs) string {
	if prefs.Model != "" && slices.Contains(s.cfg.Models, prefs.Model) {
		return prefs.Model
	}
	return s.cfg.Model
}

// IdleReset is the silence after which a new conversation starts.
func (s *Service) IdleReset() time.Duration { return s.cfg.IdleReset }

// DefaultModel is the configured default model id.
func (s *Service) DefaultModel() string { return s.cfg.Model }

// SetModel records user's choice of model; the default model, or "", goes
// back to the default (and follows it if the configuration changes).
func (s *Service) SetModel(ctx context.Context, user id.UserID, model string) error {
	if model == s.cfg.Model {
		model = ""
	}
	return s.store.SetModelPref(ctx, user, model)
}

// Offered is one collection offered to agents.
type Offered struct {
	albert.Collection
	// Known is false when Albert does not list the collection (deleted, or
	// not visible to the key): only its id is known.
	Known bool
	InUse bool
}

// Offered lists the configured collections in configuration order, with
// their names, descriptions and document counts from Albert (cached), and
// marks those user's questions search. Without Albert's list (an error), the
// collections come with their ids only and the error is returned beside them.
func (s *Service) Offered(ctx context.Context, user id.UserID) ([]Offered, error) {
	prefs, err := s.store.Prefs(ctx, user)
	if err != nil {
		return nil, err
	}
	inUse := s.inUse(prefs)
	listed, lerr := s.names.collections(ctx)
	out := make([]Offered, 0, len(s.cfg.Retrieval.Collections))
	for _, cid := range s.cfg.Retrieval.Collections {
		o := Offered{Collection: albert.Collection{ID: cid}, InUse: slices.Contains(inUse, cid)}
		if c, ok := listed[cid]; ok {
			o.Collection, o.Known = c, true
		}
		out = append(out, o)
	}
	return out, lerr
}

// Choice words of ChooseCollections.
var (
	chooseAll  = []string{"tout", "toutes", "tous", "all", "défaut", "defaut"}
	chooseNone = []string{"aucune", "aucun", "rien", "none"}
)

// ErrNotOffered is returned by ChooseCollections for an id that is not
// offered, or a word that is not an id; wrapped in a *ChoiceError.
var ErrNotOffered = errors.New("collection not offered")

// ChoiceError names what ChooseCollections could not read.
type ChoiceError struct{ Arg string }

func (e *ChoiceError) Error() string { return fmt.Sprintf("%q is not an offered collection", e.Arg) }

// Unwrap makes errors.Is(err, ErrNotOffered) hold.
func (e *ChoiceError) Unwrap() error { return ErrNotOffered }

// ChooseCollections records user's choice among the offered collections
// and returns the ids now in use: "tout" (every offered collection, and the
// ones added later), "aucune" (no search), or ids of offered collections
// (separated by spaces or commas, with or without "#"). Nothing changes on a
// *ChoiceError.
func (s *Service) ChooseCollections(ctx context.Context, user id.UserID, args []string) ([]int, error) {
	var ids []int
	var all, none bool
	for _, arg := range args {
		for _, word := range strings.FieldsFunc(arg, func(r rune) bool { return r == ',' || r == ';' }) {
			w := strings.ToLower(strings.Trim(word, " .!#«»\"'<>`()[]"))
			switch {
			case w == "" || w == "et" || w == "n°" || w == "nº" || w == "no":
			case slices.Contains(chooseAll, w):
				all = true
			case slices.Contains(chooseNone, w):
				none = true
			default:
				n, err := strconv.Atoi(w)
				if err != nil || !slices.Contains(s.cfg.Retrieval.Collections, n) {
					return nil, &ChoiceError{Arg: word}
				}
				if !slices.Contains(ids, n) {
					ids = append(ids, n)
				}
			}
		}
	}
	switch {
	case all && (none || len(ids) > 0), none && len(ids) > 0:
		return nil, &ChoiceError{Arg: strings.Join(args, " ")}
	case all:
		return s.cfg.Retrieval.Collections, s.store.SetCollectionsPref(ctx, user, nil, false)
	case none:
		return nil, s.store.SetCollectionsPref(ctx, user, []int{}, true)
	case len(ids) == 0:
		return nil, &ChoiceError{Arg: ""}
	}
	return ids, s.store.SetCollectionsPref(ctx, user, ids, true)
}

// inUse are the collections a question of someone with prefs searches: their
// choice, restricted to what is still offered, or every offered collection.
func (s *Service) inUse(prefs Prefs) []int {
	if !prefs.CollectionsChosen {
		return s.cfg.Retrieval.Collections
	}
	if len(prefs.Collections) == 0 {
		return nil // "aucune"
	}
	var out []int
	for _, cid := range prefs.Collections {
		if slices.Contains(s.cfg.Retrieval.Collections, cid) {
			out = append(out, cid)
		}
	}
	if len(out) == 0 {
		// Chosen among collections no longer offered here (the operator
		// changed them, or the agent moved to a partner): the default,
		// not a silent "aucune".
		return s.cfg.Retrieval.Collections
	}
	return out
}

// RetrievalEnabled reports whether collections are configured.
func (s *Service) RetrievalEnabled() bool { return len(s.cfg.Retrieval.Collections) > 0 }

// LastSources returns the excerpts behind the last answer in room (nil when
// that answer had none), and whether there was an answer at all.
func (s *Service) LastSources(ctx context.Context, room id.RoomID) ([]Source, bool, error) {
	ex, err := s.store.LastExchange(ctx, room)
	if err != nil || ex == nil {
		return nil, false, err
	}
	return ex.Sources, true, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
