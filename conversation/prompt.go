package conversation

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"guichet/albert"
)

// A follow-up ("et pour les contractuels ?") means nothing alone: it is
// searched together with the previous question. A question is a follow-up
// when it has at most shortFollowUp words, or at most followUpWords and
// starts like one ("et", "mais", "pour"…). A longer or self-standing
// question is searched alone: "Quels sont mes droits au télétravail en tant
// que contractuel ?" asked after a question on maternity leave is about
// telework only.
const (
	shortFollowUp = 5
	followUpWords = 12
)

// followUpStarts are the words a follow-up question starts with.
var followUpStarts = []string{"et", "mais", "pour", "aussi", "alors", "sinon", "donc", "même", "idem", "dans", "si", "qu", "quid", "ensuite", "puis"}

// smallTalk are words that ask nothing: a message made only of them
// ("Merci beaucoup !", "Bonjour") is not searched.
var smallTalk = []string{"merci", "beaucoup", "bonjour", "bonsoir", "salut", "ok", "okay", "d", "accord", "parfait",
	"super", "top", "génial", "cool", "bien", "très", "oui", "non", "bonne", "journée", "soirée", "au", "revoir", "à", "plus", "tard", "hello", "coucou"}

// asksNothing reports whether question is small talk only.
func asksNothing(question string) bool {
	words := strings.FieldsFunc(strings.ToLower(question), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for _, w := range words {
		if !slices.Contains(smallTalk, w) {
			return false
		}
	}
	return true
}

// maxQueryRunes bounds a search query.
const maxQueryRunes = 1000

// searchQuery is what to search for question: the question, preceded by the
// agent's previous question (or the one replied to) when the question is a
// short follow-up.
func searchQuery(question string, turns []Turn, quoted *Turn) string {
	q := strings.TrimSpace(question)
	words := strings.FieldsFunc(strings.ToLower(q), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	followUp := len(words) <= shortFollowUp || len(words) <= followUpWords && slices.Contains(followUpStarts, words[0])
	if !followUp {
		return truncateRunes(q, maxQueryRunes)
	}
	var previous string
	switch {
	case quoted != nil && quoted.Role == RoleUser:
		previous = quoted.Content
	case quoted != nil:
		// A reply to an answer: the question that answer was for, if in
		// the window, else the answer's beginning.
		previous = truncateRunes(quoted.Content, 300)
		for _, t := range turns {
			if t.Role == RoleUser && t.Question == quoted.Question {
				previous = t.Content
			}
		}
	default:
		for i := len(turns) - 1; i >= 0; i-- {
			if turns[i].Role == RoleUser {
				previous = turns[i].Content
				break
			}
		}
	}
	if previous == "" {
		return truncateRunes(q, maxQueryRunes)
	}
	// The question itself must survive the cut: the previous one is cut
	// first.
	room := maxQueryRunes - len([]rune(q)) - 1
	if room <= 0 {
		return truncateRunes(q, maxQueryRunes)
	}
	return truncateRunes(strings.TrimSpace(previous), room) + "\n" + q
}

// truncateWords cuts s to at most n characters at a word boundary (inside
// a word only when the first n hold no space).
func truncateWords(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	cut := n
	for cut > n/2 && !unicode.IsSpace(r[cut]) {
		cut--
	}
	if cut == n/2 {
		cut = n
	}
	return strings.TrimRightFunc(string(r[:cut]), unicode.IsSpace)
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// search finds the excerpts for query in collections, names their documents
// and collections, and reports the call. A failure gives no excerpts.
func (s *Service) search(ctx context.Context, collections []int, query string) ([]Source, *SearchCall) {
	// A collection Albert no longer lists would make the whole search fail
	// (404): it is left out, as long as Albert's list is known.
	if known, err := s.names.collections(ctx); err == nil && known != nil {
		collections = slices.DeleteFunc(slices.Clone(collections), func(cid int) bool { _, ok := known[cid]; return !ok })
	}
	call := &SearchCall{Collections: collections}
	if len(collections) == 0 {
		call.Err = &albert.Error{Class: albert.ClassNotFound, Detail: "none of the collections is known to Albert"}
		return nil, call
	}
	sctx, cancel := context.WithTimeout(ctx, s.cfg.Retrieval.Timeout)
	defer cancel()
	start := s.now()
	req := albert.SearchRequest{Query: query, CollectionIDs: collections, Method: s.cfg.Retrieval.Method, Limit: s.cfg.Retrieval.Limit}
	if req.Method == albert.MethodSemantic {
		req.ScoreThreshold = s.cfg.Retrieval.ScoreThreshold
	}
	resp, err := s.lib.Search(sctx, req)
	call.Latency, call.Usage = s.now().Sub(start), resp.Usage
	if err != nil {
		call.Err = albert.Classify(err)
		return nil, call
	}
	hits := resp.Results
	if len(hits) > s.cfg.Retrieval.Limit {
		hits = hits[:s.cfg.Retrieval.Limit]
	}
	sources := make([]Source, 0, len(hits))
	for _, h := range hits {
		if strings.TrimSpace(h.Content) == "" {
			continue
		}
		sources = append(sources, Source{
			DocumentID: h.DocumentID, Document: h.DocumentName, CollectionID: h.CollectionID,
			URL: h.URL, Score: h.Score, Content: strings.TrimSpace(h.Content),
		})
	}
	s.names.fill(sctx, sources)
	return sources, call
}

// build fits the prompt into MaxContextTokens: the system prompt and the
// question always; then the excerpts, best first, within excerptShare of
// what is left; then the latest turns (the turn replied to first, if it fell
// out of the window). It returns the messages and the excerpts kept,
// numbered from 1.
func (s *Service) build(question string, turns []Turn, quoted *Turn, sources []Source) ([]albert.Message, []Source) {
	budget := s.cfg.MaxContextTokens - albert.EstimateTokens(s.cfg.SystemPrompt) - albert.EstimateTokens(question)
	last := question
	var kept []Source
	if len(sources) > 0 {
		excerptBudget := budget * excerptShare / 100
		kept = make([]Source, 0, len(sources))
		for _, src := range sources {
			src.N = len(kept) + 1
			candidate := append(slices.Clip(kept), src)
			if albert.EstimateTokens(groundedPrompt(question, candidate))-albert.EstimateTokens(question) > excerptBudget {
				continue // a smaller one further down may still fit
			}
			kept = candidate
		}
		if len(kept) > 0 {
			last = groundedPrompt(question, kept)
			budget -= albert.EstimateTokens(last) - albert.EstimateTokens(question)
		} else {
			kept = nil
		}
	}
	window := fit(turns, budget)
	// The turn replied to comes first when it fell out of the window: the
	// window then makes room for it, older turns first.
	sameTurn := func(t Turn) bool { return t.Role == quoted.Role && t.Question == quoted.Question }
	if quoted != nil && (slices.ContainsFunc(window, sameTurn) || albert.EstimateTokens(quoted.Content) > budget) {
		quoted = nil
	}
	if quoted != nil {
		window = fit(turns, budget-albert.EstimateTokens(quoted.Content))
		window = slices.DeleteFunc(slices.Clone(window), sameTurn)
	}
	msgs := make([]albert.Message, 0, len(window)+3)
	msgs = append(msgs, albert.Message{Role: "system", Content: s.cfg.SystemPrompt})
	if quoted != nil {
		msgs = append(msgs, albert.Message{Role: quoted.Role, Content: quoted.Content})
	}
	for _, t := range window {
		msgs = append(msgs, albert.Message{Role: t.Role, Content: t.Content})
	}
	return append(msgs, albert.Message{Role: RoleUser, Content: last}), kept
}

// fit returns the latest turns whose estimated tokens fit in budget.
func fit(turns []Turn, budget int) []Turn {
	first := len(turns)
	for first > 0 && budget-albert.EstimateTokens(turns[first-1].Content) >= 0 {
		first--
		budget -= albert.EstimateTokens(turns[first].Content)
	}
	return turns[first:]
}

// excerptShare is the share (in %) of the prompt's budget, after the system
// prompt and the question, that excerpts may take: the rest keeps the
// conversation.
const excerptShare = 70

// groundedPrompt is the last user message of a question with excerpts: the
// excerpts, numbered, the instruction to answer from them and cite them as
// [1], and the question. Its shape is a contract with the fake Albert
// (albert/fakealbert), which cites what it finds in it.
func groundedPrompt(question string, sources []Source) string {
	var b strings.Builder
	b.WriteString("Extraits numérotés de documents publics :\n\n")
	for _, src := range sources {
		fmt.Fprintf(&b, "[%d] « %s »", src.N, src.DocumentName())
		if src.Collection != "" {
			fmt.Fprintf(&b, " (%s)", src.Collection)
		}
		b.WriteString("\n")
		b.WriteString(src.Content)
		b.WriteString("\n\n")
	}
	b.WriteString("Consigne : réponds à la question en t'appuyant sur ces extraits, et cite chaque extrait " +
		"que tu utilises par son numéro entre crochets, par exemple [1] ou [2]. Si les extraits ne " +
		"permettent pas de répondre, dis-le, puis réponds avec tes connaissances générales en le signalant.\n\n")
	b.WriteString("Question : ")
	b.WriteString(question)
	return b.String()
}
