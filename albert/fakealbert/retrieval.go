package fakealbert

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"guichet/albert"
)

// Retrieval: POST /v1/search, GET /v1/collections and GET /v1/documents/{id}
// over an in-memory library, in the 2026 shapes of albert-api.md
// ("Retrieval (document collections)"). Scores come from word overlap, not
// embeddings, so that results are deterministic.

// Texts of the real gateway's retrieval errors.
const (
	// DetailScoreThreshold is the 400 of a score_threshold sent with a
	// method other than semantic.
	DetailScoreThreshold = "Score threshold is only available for semantic search method"
	// DetailCollectionNotFound is the 404 of an unknown collection id.
	DetailCollectionNotFound = "Collection not found."
	// DetailDocumentNotFound is the 404 of an unknown document id.
	DetailDocumentNotFound = "Document not found."
	// DetailSearchDisabled is the 403 of an instance without retrieval
	// (pass it to FailSearchNext); the real text goes on after "enabled".
	DetailSearchDisabled = "Search build-in tool is not enabled."
)

// chunkCreated is the "created" timestamp of every served chunk, document
// and collection (seconds), so that answers are byte-for-byte stable.
const chunkCreated = 1760000000

// Collection is a collection of the fake's library.
type Collection struct {
	// ID is the collection id searched through collection_ids.
	ID int
	// Name is e.g. "mediatech-fiches-service-public".
	Name string
	// Description is served as is ("" is served as null).
	Description string
	// Visibility is "public" or "private"; "" is served as "private".
	Visibility string
	// Documents are the collection's documents.
	Documents []Document
}

// Document is a document of the fake's library.
type Document struct {
	// ID is the document id, unique across the library.
	ID int
	// Name is what GET /v1/documents/{id} answers as "name".
	Name string
	// URL is served as chunk metadata "source_url".
	URL string
	// Chunks are the texts of the document's chunks; chunk i (from 0) has
	// id i+1, as the engine numbers chunks within their document.
	Chunks []string
}

// SearchRequest is a recorded POST /v1/search, as received.
type SearchRequest struct {
	// Query is "query", or "prompt" when only the 2025 name was used.
	Query string
	// CollectionIDs is "collection_ids", or "collections" when only the
	// 2025 name was used.
	CollectionIDs []int
	// Method is "method" as sent ("" when absent).
	Method string
	// Limit is "limit" as sent (0 when absent).
	Limit int
	// ScoreThreshold is "score_threshold" as sent (0 when absent).
	ScoreThreshold float64
	// Aliases is true when the 2025 names ("prompt", "collections") were used.
	Aliases bool
	// Header holds the request headers.
	Header http.Header
	// At is when the request arrived.
	At time.Time
}

// DefaultLibrary is the library served unless SetLibrary is called: three
// of the public collections of the 2026 catalogue (ids and names as in
// albert-api.md), each with a few French documents on maternity leave,
// remote work and contract agents' leave (and passports), every document
// with a service-public.fr, travail-emploi.gouv.fr or legifrance.gouv.fr URL
// (of the sites' shape; the page ids are illustrative). Collection ids:
// 150281 (documents 812001-812004), 150277 (813001-813003) and 139226
// (814001-814003).
func DefaultLibrary() []Collection {
	return []Collection{
		{
			ID: 150281, Name: "mediatech-fiches-service-public", Visibility: "public",
			Description: "Fiches pratiques de service-public.fr : droits et démarches des particuliers et des agents publics",
			Documents: []Document{
				{ID: 812001, Name: "Congé de maternité d'une fonctionnaire", URL: "https://www.service-public.fr/particuliers/vosdroits/F519", Chunks: []string{
					"La fonctionnaire enceinte a droit à un congé de maternité. Sa durée varie selon le nombre d'enfants attendus et le nombre d'enfants déjà à charge. Pour un premier ou un deuxième enfant, le congé de maternité dure 16 semaines : 6 semaines avant la date présumée de l'accouchement (congé prénatal) et 10 semaines après (congé postnatal).",
					"À partir du troisième enfant, le congé de maternité de la fonctionnaire dure 26 semaines : 8 semaines de congé prénatal et 18 semaines de congé postnatal. Pour des jumeaux, il dure 34 semaines ; pour des triplés ou plus, 46 semaines.",
					"Pendant le congé de maternité, la fonctionnaire conserve l'intégralité de son traitement indiciaire, de l'indemnité de résidence et du supplément familial de traitement. Le congé est pris en compte pour l'avancement et pour la retraite.",
				}},
				{ID: 812002, Name: "Télétravail dans la fonction publique", URL: "https://www.service-public.fr/particuliers/vosdroits/F13851", Chunks: []string{
					"Le télétravail est ouvert aux fonctionnaires et aux agents contractuels des trois fonctions publiques. L'agent en fait la demande écrite à son chef de service, qui lui répond par écrit dans un délai d'un mois. Le refus doit être motivé et précédé d'un entretien.",
					"La quotité de télétravail ne peut pas dépasser 3 jours par semaine pour un agent à temps plein, et le temps de présence sur le lieu de travail ne peut pas être inférieur à 2 jours par semaine. Ces seuils peuvent s'apprécier sur une base mensuelle.",
					"L'agent en télétravail perçoit une allocation forfaitaire de télétravail de 2,88 € par journée de télétravail, dans la limite de 253,44 € par an. Elle est versée trimestriellement.",
				}},
				{ID: 812003, Name: "Agent contractuel de la fonction publique : congés", URL: "https://www.service-public.fr/particuliers/vosdroits/F12383", Chunks: []string{
					"L'agent contractuel de la fonction publique a droit, comme le fonctionnaire, à un congé annuel d'une durée égale à 5 fois ses obligations hebdomadaires de service, soit 25 jours ouvrés pour un agent travaillant 5 jours par semaine.",
					"En cas de maladie, l'agent contractuel a droit à un congé de maladie rémunéré dont la durée dépend de son ancienneté : après 4 mois de services, 1 mois à plein traitement puis 1 mois à demi-traitement ; après 2 ans, 2 mois et 2 mois ; après 3 ans, 3 mois et 3 mois.",
					"L'agente contractuelle a droit à un congé de maternité de même durée que la fonctionnaire. Après 6 mois de services, elle perçoit son plein traitement pendant ce congé ; sinon, elle perçoit les indemnités journalières de la Sécurité sociale.",
				}},
				{ID: 812004, Name: "Passeport", URL: "https://www.service-public.fr/particuliers/vosdroits/F14929", Chunks: []string{
					"Pour obtenir ou renouveler un passeport, il faut faire une prédemande en ligne sur le site de l'ANTS puis prendre rendez-vous dans une mairie équipée d'un dispositif de recueil. La demande peut être faite dans n'importe quelle mairie équipée, quel que soit le lieu de domicile.",
					"Le passeport d'un majeur coûte 86 € en timbre fiscal et il est valable 10 ans. Le timbre fiscal peut être acheté en ligne, dans un bureau de tabac ou au centre des finances publiques.",
				}},
			},
		},
		{
			ID: 150277, Name: "mediatech-fiches-travail-emploi", Visibility: "public",
			Description: "Fiches pratiques du droit du travail publiées par le ministère du Travail (travail-emploi.gouv.fr)",
			Documents: []Document{
				{ID: 813001, Name: "Le congé de maternité", URL: "https://travail-emploi.gouv.fr/le-conge-de-maternite", Chunks: []string{
					"Toute salariée enceinte bénéficie d'un congé de maternité, quelle que soit son ancienneté dans l'entreprise. Pour une naissance simple portant à un ou deux le nombre d'enfants à charge, le congé de maternité dure 16 semaines.",
					"Pendant le congé de maternité, le contrat de travail est suspendu. La salariée perçoit les indemnités journalières de la Sécurité sociale si elle remplit les conditions d'ouverture de droits ; une convention collective peut prévoir le maintien du salaire.",
					"La salariée est protégée contre le licenciement pendant sa grossesse, pendant toute la durée du congé de maternité et pendant les 10 semaines qui suivent son retour.",
				}},
				{ID: 813002, Name: "Le télétravail", URL: "https://travail-emploi.gouv.fr/le-teletravail", Chunks: []string{
					"Le télétravail est mis en place par un accord collectif ou, à défaut, par une charte élaborée par l'employeur après avis du comité social et économique. En l'absence d'accord ou de charte, le salarié et l'employeur peuvent convenir du télétravail par tout moyen.",
					"Le salarié en télétravail a les mêmes droits que le salarié qui exécute son travail dans les locaux de l'entreprise : accès à la formation, respect de la vie privée, droit à la déconnexion.",
				}},
				{ID: 813003, Name: "La rupture conventionnelle du contrat de travail à durée indéterminée", URL: "https://travail-emploi.gouv.fr/la-rupture-conventionnelle-du-contrat-de-travail-duree-indeterminee", Chunks: []string{
					"La rupture conventionnelle permet à l'employeur et au salarié en contrat à durée indéterminée de convenir ensemble des conditions de la rupture du contrat de travail. Elle ne peut pas être imposée par l'une ou l'autre des parties.",
					"Après la signature de la convention, chaque partie dispose d'un délai de rétractation de 15 jours calendaires. La convention est ensuite adressée pour homologation à la DREETS, qui dispose de 15 jours ouvrables pour se prononcer.",
					"Le salarié perçoit une indemnité spécifique de rupture conventionnelle dont le montant ne peut pas être inférieur à celui de l'indemnité légale de licenciement.",
				}},
			},
		},
		{
			ID: 139226, Name: "mediatech-legifrance", Visibility: "public",
			Description: "Codes et textes consolidés publiés sur Legifrance",
			Documents: []Document{
				{ID: 814001, Name: "Code du travail - Article L1225-17", URL: "https://www.legifrance.gouv.fr/codes/article_lc/LEGIARTI000031087806", Chunks: []string{
					"Code du travail, article L1225-17 : La salariée a le droit de bénéficier d'un congé de maternité pendant une période qui commence six semaines avant la date présumée de l'accouchement et se termine dix semaines après la date de celui-ci.",
					"À la demande de la salariée et sous réserve d'un avis favorable du professionnel de santé qui suit la grossesse, la période de suspension du contrat de travail qui commence avant la date présumée de l'accouchement peut être réduite d'une durée maximale de trois semaines.",
				}},
				{ID: 814002, Name: "Code du travail - Article L1222-9", URL: "https://www.legifrance.gouv.fr/codes/article_lc/LEGIARTI000036762196", Chunks: []string{
					"Code du travail, article L1222-9 : le télétravail désigne toute forme d'organisation du travail dans laquelle un travail qui aurait également pu être exécuté dans les locaux de l'employeur est effectué par un salarié hors de ces locaux de façon volontaire en utilisant les technologies de l'information et de la communication.",
				}},
				{ID: 814003, Name: "Code général de la fonction publique - Article L430-1", URL: "https://www.legifrance.gouv.fr/codes/article_lc/LEGIARTI000044424461", Chunks: []string{
					"Code général de la fonction publique, article L430-1 : l'agent public peut exercer ses fonctions dans le cadre du télétravail, à sa demande et avec l'accord de son employeur, dans les conditions fixées par décret en Conseil d'État.",
				}},
			},
		},
	}
}

// cloneLibrary copies lib deeply, so that callers and handlers never share
// slices.
func cloneLibrary(lib []Collection) []Collection {
	out := make([]Collection, len(lib))
	for i, c := range lib {
		c.Documents = slices.Clone(c.Documents)
		for j := range c.Documents {
			c.Documents[j].Chunks = slices.Clone(c.Documents[j].Chunks)
		}
		out[i] = c
	}
	return out
}

// SetLibrary sets the collections served by the retrieval routes (a deep
// copy; nil serves an empty library). Document ids should be unique.
func (s *Server) SetLibrary(lib []Collection) {
	lib = cloneLibrary(lib)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.library = lib
}

// SetSearchLatency sets the delay before a successful search answers; the
// search gives up early when the client does.
func (s *Server) SetSearchLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.searchLatency = d
}

// FailSearchNext makes the next n valid searches (authorized, well-formed)
// answer status with {"detail": detail}; a 503 carries "Retry-After: 1".
// Status 0 makes them hang without answering until the client gives up
// (its request context ends).
func (s *Server) FailSearchNext(n int, status int, detail string) {
	f := Failure{Status: status, Detail: detail}
	if status == http.StatusServiceUnavailable {
		f = f.With("Retry-After", "1")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.searchFailN, s.searchFail = n, f
}

// SearchRequests returns a copy of the recorded searches, oldest first,
// rejected ones included.
func (s *Server) SearchRequests() []SearchRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.searchRequests)
}

// SearchCalls returns the number of POST /v1/search received, failed ones
// included.
func (s *Server) SearchCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.searchCalls
}

// DocumentRequests returns the number of GET /v1/documents/{id} received,
// failed ones included.
func (s *Server) DocumentRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.documentRequests
}

// searchBodyJSON is a search body in the 2026 names and the 2025 aliases;
// unknown fields (the 2024 "k") are ignored, as the engine does.
type searchBodyJSON struct {
	Query          *string  `json:"query"`
	Prompt         *string  `json:"prompt"`
	CollectionIDs  []int    `json:"collection_ids"`
	Collections    []int    `json:"collections"`
	Method         *string  `json:"method"`
	Limit          *int     `json:"limit"`
	ScoreThreshold *float64 `json:"score_threshold"`
}

// fieldError is FastAPI's 422 item for a rejected field.
func fieldError(typ string, loc []any, msg string) []map[string]any {
	return []map[string]any{{"type": typ, "loc": loc, "msg": msg}}
}

func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	var body searchBodyJSON
	decodeErr := json.NewDecoder(r.Body).Decode(&body)
	req := SearchRequest{Header: r.Header.Clone(), At: time.Now(),
		Aliases: body.Prompt != nil || body.Collections != nil}
	switch {
	case body.Query != nil:
		req.Query = *body.Query
	case body.Prompt != nil:
		req.Query = *body.Prompt
	}
	req.CollectionIDs = body.CollectionIDs
	if req.CollectionIDs == nil {
		req.CollectionIDs = body.Collections
	}
	req.CollectionIDs = slices.Clone(req.CollectionIDs)
	if body.Method != nil {
		req.Method = *body.Method
	}
	if body.Limit != nil {
		req.Limit = *body.Limit
	}
	if body.ScoreThreshold != nil {
		req.ScoreThreshold = *body.ScoreThreshold
	}

	s.mu.Lock()
	s.searchCalls++
	s.searchRequests = append(s.searchRequests, req)
	authorized := s.apiKey == "" || r.Header.Get("Authorization") == "Bearer "+s.apiKey
	s.mu.Unlock()

	method := req.Method
	if method == "" {
		method = albert.MethodSemantic
	}
	limit := 10
	if body.Limit != nil {
		limit = *body.Limit
	}
	var typeErr *json.UnmarshalTypeError
	switch {
	case !authorized:
		writeDetail(w, http.StatusUnauthorized, detailAuth)
		return
	case errors.As(decodeErr, &typeErr):
		writeDetail(w, http.StatusUnprocessableEntity, fieldError("int_parsing", []any{"body", typeErr.Field},
			"Input should be a valid "+typeErr.Type.String()))
		return
	case decodeErr != nil:
		writeDetail(w, http.StatusUnprocessableEntity, fieldError("json_invalid", []any{"body", 0}, "JSON decode error"))
		return
	case body.Query == nil && body.Prompt == nil:
		writeDetail(w, http.StatusUnprocessableEntity, missingField("query"))
		return
	case strings.TrimSpace(req.Query) == "":
		writeDetail(w, http.StatusUnprocessableEntity, fieldError("value_error", []any{"body", "query"}, "Value error, Query cannot be empty"))
		return
	case method != albert.MethodSemantic && method != albert.MethodHybrid && method != albert.MethodLexical:
		writeDetail(w, http.StatusUnprocessableEntity, fieldError("enum", []any{"body", "method"}, "Input should be 'hybrid', 'semantic' or 'lexical'"))
		return
	case limit < 1 || limit > 100:
		writeDetail(w, http.StatusUnprocessableEntity, fieldError("less_than_equal", []any{"body", "limit"}, "Input should be between 1 and 100"))
		return
	case req.ScoreThreshold < 0 || req.ScoreThreshold > 1:
		writeDetail(w, http.StatusUnprocessableEntity, fieldError("less_than_equal", []any{"body", "score_threshold"}, "Input should be between 0 and 1"))
		return
	}

	s.mu.Lock()
	var fail *Failure
	if s.searchFailN > 0 {
		s.searchFailN--
		f := s.searchFail
		fail = &f
	}
	lib, latency := s.library, s.searchLatency
	s.mu.Unlock()

	if fail != nil {
		if fail.Status == 0 {
			<-r.Context().Done()
			return
		}
		for k, vs := range fail.Header {
			w.Header()[k] = vs
		}
		writeDetail(w, fail.Status, fail.Detail)
		return
	}
	if req.ScoreThreshold > 0 && method != albert.MethodSemantic {
		writeDetail(w, http.StatusBadRequest, DetailScoreThreshold)
		return
	}
	cols := lib
	if len(req.CollectionIDs) > 0 {
		cols = nil
		for _, id := range req.CollectionIDs {
			i := slices.IndexFunc(lib, func(c Collection) bool { return c.ID == id })
			if i < 0 {
				writeDetail(w, http.StatusNotFound, DetailCollectionNotFound)
				return
			}
			if !slices.ContainsFunc(cols, func(c Collection) bool { return c.ID == id }) {
				cols = append(cols, lib[i])
			}
		}
	}
	if !sleep(r.Context(), latency) {
		return
	}

	hits := rank(req.Query, cols, req.ScoreThreshold)
	if len(hits) > limit {
		hits = hits[:limit]
	}
	data := make([]map[string]any, 0, len(hits))
	for _, h := range hits {
		data = append(data, map[string]any{
			"method": method, "score": h.score,
			"chunk": map[string]any{
				"object": "chunk", "id": h.chunkID, "collection_id": h.collectionID, "document_id": h.documentID,
				"content": h.content, "metadata": map[string]any{"source_url": h.url}, "created": chunkCreated,
			},
		})
	}
	prompt := albert.EstimateTokens(req.Query)
	cost, kwh, co2 := UsageFigures(prompt, 0)
	one := 1
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list", "data": data,
		"usage": usageJSON{PromptTokens: prompt, TotalTokens: prompt, Cost: &cost, Requests: &one,
			Carbon: map[string]float64{"kWh": kwh, "kgCO2eq": co2}},
	})
}

// hit is a scored chunk.
type hit struct {
	score        float64
	chunkID      int
	collectionID int
	documentID   int
	content      string
	url          string
}

// rank scores every chunk of cols against query (see Score), drops zero
// scores and those under threshold, and sorts by score (highest first),
// then chunk id, then document id.
func rank(query string, cols []Collection, threshold float64) []hit {
	q := wordSet(query)
	var hits []hit
	for _, c := range cols {
		for _, d := range c.Documents {
			for i, text := range d.Chunks {
				sc := score(q, text)
				if sc == 0 || sc < threshold {
					continue
				}
				hits = append(hits, hit{score: sc, chunkID: i + 1, collectionID: c.ID, documentID: d.ID, content: text, url: d.URL})
			}
		}
	}
	slices.SortStableFunc(hits, func(a, b hit) int {
		switch {
		case a.score != b.score:
			if a.score > b.score {
				return -1
			}
			return 1
		case a.chunkID != b.chunkID:
			return a.chunkID - b.chunkID
		}
		return a.documentID - b.documentID
	})
	return hits
}

// Score is the fake's relevance of text to query, in 0..1, rounded to 4
// decimals: words are runs of letters and digits of at least 3 characters,
// lower-cased, accents kept ("congé" ≠ "conge"); with Q the distinct query
// words, coverage the share of Q found in text and density the share of
// text's words that are in Q, the score is 0.9×coverage + 0.1×density
// (0 when nothing matches).
func Score(query, text string) float64 {
	return score(wordSet(query), text)
}

func score(q map[string]bool, text string) float64 {
	if len(q) == 0 {
		return 0
	}
	ws := words(text)
	found := map[string]bool{}
	hits := 0
	for _, w := range ws {
		if q[w] {
			found[w] = true
			hits++
		}
	}
	if hits == 0 {
		return 0
	}
	coverage := float64(len(found)) / float64(len(q))
	density := float64(hits) / float64(len(ws))
	return math.Round((0.9*coverage+0.1*density)*1e4) / 1e4
}

// words splits s into lower-cased runs of letters and digits of at least 3
// characters.
func words(s string) []string {
	fields := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	out := fields[:0]
	for _, f := range fields {
		if len([]rune(f)) >= 3 {
			out = append(out, f)
		}
	}
	return out
}

func wordSet(s string) map[string]bool {
	set := map[string]bool{}
	for _, w := range words(s) {
		set[w] = true
	}
	return set
}

// queryInt reads an integer query parameter; ok is false when it is
// present and not an integer in [lo, hi].
func queryInt(r *http.Request, name string, def, lo, hi int) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

func (s *Server) listCollections(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		writeDetail(w, http.StatusUnauthorized, detailAuth)
		return
	}
	offset, okOffset := queryInt(r, "offset", 0, 0, math.MaxInt32)
	limit, okLimit := queryInt(r, "limit", 10, 1, 100)
	visibility := r.URL.Query().Get("visibility")
	switch {
	case !okOffset:
		writeDetail(w, http.StatusUnprocessableEntity, fieldError("greater_than_equal", []any{"query", "offset"}, "Input should be a valid integer greater than or equal to 0"))
		return
	case !okLimit:
		writeDetail(w, http.StatusUnprocessableEntity, fieldError("less_than_equal", []any{"query", "limit"}, "Input should be an integer between 1 and 100"))
		return
	case visibility != "" && visibility != "public" && visibility != "private":
		writeDetail(w, http.StatusUnprocessableEntity, fieldError("enum", []any{"query", "visibility"}, "Input should be 'private' or 'public'"))
		return
	}
	s.mu.Lock()
	lib := s.library
	s.mu.Unlock()

	cols := make([]Collection, 0, len(lib))
	for _, c := range lib {
		if visibility == "" || visibilityOf(c) == visibility {
			cols = append(cols, c)
		}
	}
	slices.SortStableFunc(cols, func(a, b Collection) int { return a.ID - b.ID })
	cols = cols[min(offset, len(cols)):min(offset+limit, len(cols))]
	data := make([]map[string]any, 0, len(cols))
	for _, c := range cols {
		var desc any
		if c.Description != "" {
			desc = c.Description
		}
		owner := "Albert API"
		if visibilityOf(c) == "private" {
			owner = "fakealbert"
		}
		data = append(data, map[string]any{
			"object": "collection", "id": c.ID, "name": c.Name, "owner": owner, "description": desc,
			"visibility": visibilityOf(c), "created": chunkCreated, "updated": chunkCreated, "documents": len(c.Documents),
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func visibilityOf(c Collection) string {
	if c.Visibility == "" {
		return "private"
	}
	return c.Visibility
}

func (s *Server) getDocument(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.documentRequests++
	lib := s.library
	s.mu.Unlock()
	if !s.authorized(r) {
		writeDetail(w, http.StatusUnauthorized, detailAuth)
		return
	}
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		writeDetail(w, http.StatusUnprocessableEntity, fieldError("int_parsing", []any{"path", "document_id"},
			"Input should be a valid integer, unable to parse string as an integer"))
		return
	}
	for _, c := range lib {
		for _, d := range c.Documents {
			if d.ID == id {
				writeJSON(w, http.StatusOK, map[string]any{
					"object": "document", "id": d.ID, "name": d.Name, "collection_id": c.ID,
					"created": chunkCreated, "chunks": len(d.Chunks),
				})
				return
			}
		}
	}
	writeDetail(w, http.StatusNotFound, DetailDocumentNotFound)
}

// retrievalPrompt reads guichet's retrieval prompt: ok when a line starts
// with "Question : ", question is what follows it (with the lines after it),
// and cited holds the distinct "[N]" that start lines, in order.
func retrievalPrompt(msg string) (question string, cited []string, ok bool) {
	lines := strings.Split(msg, "\n")
	at := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "Question : ") {
			at = i
		}
	}
	if at < 0 {
		return "", nil, false
	}
	question = strings.Join(append([]string{strings.TrimPrefix(lines[at], "Question : ")}, lines[at+1:]...), "\n")
	for _, l := range lines[:at] {
		rest, found := strings.CutPrefix(l, "[")
		if !found {
			continue
		}
		n, _, found := strings.Cut(rest, "] ")
		if !found || n == "" || strings.Trim(n, "0123456789") != "" {
			continue
		}
		if c := "[" + n + "]"; !slices.Contains(cited, c) {
			cited = append(cited, c)
		}
	}
	return question, cited, true
}
