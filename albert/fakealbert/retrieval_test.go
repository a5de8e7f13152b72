package fakealbert_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"guichet/albert"
	"guichet/albert/fakealbert"
)

// do sends a raw request to the fake and returns the status and body.
func do(t *testing.T, srv *fakealbert.Server, method, path, body string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// searchAnswer is the 2026 answer of POST /v1/search, strictly typed.
type searchAnswer struct {
	Object string `json:"object"`
	Data   []struct {
		Method string  `json:"method"`
		Score  float64 `json:"score"`
		Chunk  struct {
			Object       string                     `json:"object"`
			ID           int                        `json:"id"`
			CollectionID int                        `json:"collection_id"`
			DocumentID   int                        `json:"document_id"`
			Content      string                     `json:"content"`
			Metadata     map[string]json.RawMessage `json:"metadata"`
			Created      int64                      `json:"created"`
		} `json:"chunk"`
	} `json:"data"`
	Usage map[string]json.RawMessage `json:"usage"`
}

func decodeSearch(t *testing.T, status int, body []byte) searchAnswer {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var a searchAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("bad answer %s: %v", body, err)
	}
	return a
}

func TestSearchShape(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	const query = "Quelle est la durée du congé de maternité d'une fonctionnaire ?"
	status, _, body := do(t, srv, http.MethodPost, "/search",
		`{"query":"`+query+`","collection_ids":[150281,139226],"limit":3}`, nil)
	a := decodeSearch(t, status, body)
	if a.Object != "list" || len(a.Data) != 3 {
		t.Fatalf("object %q with %d results, want list of 3: %s", a.Object, len(a.Data), body)
	}
	for i, d := range a.Data {
		c := d.Chunk
		if d.Method != "semantic" || d.Score <= 0 || d.Score > 1 || c.Object != "chunk" || c.ID < 1 || c.Content == "" || c.Created == 0 {
			t.Errorf("result %d = %+v", i, d)
		}
		if c.CollectionID != 150281 && c.CollectionID != 139226 {
			t.Errorf("result %d from collection %d", i, c.CollectionID)
		}
		if len(c.Metadata) != 1 || !strings.HasPrefix(string(c.Metadata["source_url"]), `"https://`) {
			t.Errorf("result %d metadata = %s, want only source_url (no document_name, as in 2026)", i, c.Metadata)
		}
		if i > 0 && d.Score > a.Data[i-1].Score {
			t.Errorf("result %d scores %v, more than result %d", i, d.Score, i-1)
		}
	}
	if top := a.Data[0].Chunk; top.DocumentID != 812001 || top.ID != 1 {
		t.Errorf("top hit = document %d chunk %d, want the civil servant's maternity leave (812001, 1)", top.DocumentID, top.ID)
	}
	u := a.Usage
	if string(u["prompt_tokens"]) != fmt.Sprint(albert.EstimateTokens(query)) || string(u["completion_tokens"]) != "0" ||
		string(u["requests"]) != "1" || len(u["cost"]) == 0 || !strings.Contains(string(u["carbon"]), `"kWh":`) ||
		!strings.Contains(string(u["carbon"]), `"kgCO2eq":`) {
		t.Errorf("usage = %s", body[strings.Index(string(body), `"usage"`):])
	}

	reqs := srv.SearchRequests()
	if len(reqs) != 1 || srv.SearchCalls() != 1 {
		t.Fatalf("recorded %d searches, %d calls", len(reqs), srv.SearchCalls())
	}
	r := reqs[0]
	if r.Query != query || !slices.Equal(r.CollectionIDs, []int{150281, 139226}) || r.Limit != 3 || r.Method != "" ||
		r.ScoreThreshold != 0 || r.Aliases || r.Header.Get("Content-Type") != "application/json" || r.At.IsZero() {
		t.Errorf("recorded = %+v", r)
	}
}

// The 2025 names are accepted; the 2024 k is ignored (10 results by default).
func TestSearchAliases(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	status, _, body := do(t, srv, http.MethodPost, "/search", `{"prompt":"télétravail agent","collections":[150281,150277,139226],"k":1}`, nil)
	a := decodeSearch(t, status, body)
	if len(a.Data) < 2 {
		t.Errorf("%d results: k was not ignored", len(a.Data))
	}
	r := srv.SearchRequests()[0]
	if !r.Aliases || r.Query != "télétravail agent" || !slices.Equal(r.CollectionIDs, []int{150281, 150277, 139226}) || r.Limit != 0 {
		t.Errorf("recorded = %+v", r)
	}
	// Without collections, every collection of the library is searched.
	status, _, body = do(t, srv, http.MethodPost, "/search", `{"query":"télétravail","limit":100}`, nil)
	seen := map[int]bool{}
	for _, d := range decodeSearch(t, status, body).Data {
		seen[d.Chunk.CollectionID] = true
	}
	if len(seen) != 3 {
		t.Errorf("collections hit without collection_ids: %v", seen)
	}
}

func TestSearchErrors(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		header     map[string]string
		wantStatus int
		wantBody   string
	}{
		{"missing query", `{"collection_ids":[150281]}`, nil,
			422, `{"detail":[{"input":null,"loc":["body","query"],"msg":"Field required","type":"missing"}]}`},
		{"blank query", `{"query":"  ","collection_ids":[150281]}`, nil,
			422, `{"detail":[{"loc":["body","query"],"msg":"Value error, Query cannot be empty","type":"value_error"}]}`},
		{"bad JSON", `{"query":`, nil, 422, ""},
		{"collections as UUIDs", `{"prompt":"congé","collections":["0b9c4e0e-8f1d-4c9e-9f3a-2d7c1e5b6a40"]}`, nil, 422, ""},
		{"unknown method", `{"query":"congé","collection_ids":[150281],"method":"fuzzy"}`, nil, 422, ""},
		{"limit over 100", `{"query":"congé","collection_ids":[150281],"limit":101}`, nil, 422, ""},
		{"limit 0", `{"query":"congé","collection_ids":[150281],"limit":0}`, nil, 422, ""},
		{"score threshold over 1", `{"query":"congé","collection_ids":[150281],"score_threshold":1.5}`, nil, 422, ""},
		{"score threshold with hybrid", `{"query":"congé","collection_ids":[150281],"method":"hybrid","score_threshold":0.5}`, nil,
			400, `{"detail":"Score threshold is only available for semantic search method"}`},
		{"score threshold with lexical", `{"query":"congé","collection_ids":[150281],"method":"lexical","score_threshold":0.1}`, nil,
			400, `{"detail":"Score threshold is only available for semantic search method"}`},
		{"unknown collection", `{"query":"congé","collection_ids":[150281,4242]}`, nil,
			404, `{"detail":"Collection not found."}`},
		{"missing key", `{"query":"congé","collection_ids":[150281]}`, map[string]string{"Authorization": "Bearer nope"},
			401, `{"detail":"Invalid authentication scheme."}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakealbert.Start()
			defer srv.Close()
			srv.SetAPIKey("k")
			h := tt.header
			if h == nil {
				h = map[string]string{"Authorization": "Bearer k"}
			}
			status, _, body := do(t, srv, http.MethodPost, "/search", tt.body, h)
			if status != tt.wantStatus || (tt.wantBody != "" && strings.TrimSpace(string(body)) != tt.wantBody) {
				t.Errorf("got %d %s, want %d %s", status, body, tt.wantStatus, tt.wantBody)
			}
			if status == 422 && !strings.HasPrefix(string(body), `{"detail":[{`) {
				t.Errorf("422 body %s is not a FastAPI list", body)
			}
			if srv.SearchCalls() != 1 || len(srv.SearchRequests()) != 1 {
				t.Errorf("SearchCalls = %d, SearchRequests = %d, want 1", srv.SearchCalls(), len(srv.SearchRequests()))
			}
		})
	}
}

func TestSearchDeterministic(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	const body = `{"query":"congé de maternité : durée, rémunération et protection","collection_ids":[150281,150277,139226],"limit":100}`
	_, _, first := do(t, srv, http.MethodPost, "/search", body, nil)
	_, _, second := do(t, srv, http.MethodPost, "/search", body, nil)
	if string(first) != string(second) {
		t.Errorf("two identical searches differ:\n%s\n%s", first, second)
	}
	a := decodeSearch(t, http.StatusOK, first)
	if len(a.Data) < 5 {
		t.Fatalf("%d results, want several", len(a.Data))
	}
	for i := 1; i < len(a.Data); i++ {
		p, c := a.Data[i-1], a.Data[i]
		if p.Score < c.Score || (p.Score == c.Score && p.Chunk.ID > c.Chunk.ID) {
			t.Errorf("results %d and %d out of order: %v/%d then %v/%d", i-1, i, p.Score, p.Chunk.ID, c.Score, c.Chunk.ID)
		}
	}
}

func TestSearchLimitAndThreshold(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	const q = `"query":"congé de maternité de la fonctionnaire","collection_ids":[150281,150277,139226]`
	s, _, b := do(t, srv, http.MethodPost, "/search", "{"+q+"}", nil)
	all := decodeSearch(t, s, b)
	if len(all.Data) != 10 {
		t.Errorf("default limit gave %d results, want 10", len(all.Data))
	}
	s, _, b = do(t, srv, http.MethodPost, "/search", "{"+q+`,"limit":2}`, nil)
	if two := decodeSearch(t, s, b); len(two.Data) != 2 || two.Data[0].Chunk.ID != all.Data[0].Chunk.ID || two.Data[0].Chunk.DocumentID != all.Data[0].Chunk.DocumentID {
		t.Errorf("limit 2 gave %d results", len(two.Data))
	}
	s, _, b = do(t, srv, http.MethodPost, "/search", "{"+q+`,"limit":100,"score_threshold":0.5}`, nil)
	high := decodeSearch(t, s, b)
	if len(high.Data) == 0 {
		t.Fatal("no result over 0.5")
	}
	for _, d := range high.Data {
		if d.Score < 0.5 {
			t.Errorf("score %v under the threshold", d.Score)
		}
	}
	s, _, b = do(t, srv, http.MethodPost, "/search", `{"query":"passeport biométrique","collection_ids":[139226]}`, nil)
	if none := decodeSearch(t, s, b); len(none.Data) != 0 || !strings.Contains(string(b), `"data":[]`) {
		t.Errorf("no overlap should give \"data\":[], got %s", b)
	}
}

func TestScore(t *testing.T) {
	tests := []struct {
		query, text string
		want        float64
	}{
		{"congé maternité", "Le congé de maternité", 1},
		{"CONGÉ", "congé annuel", 0.95},                                   // case folded: coverage 1, density 1/2
		{"conge", "congé annuel", 0},                                      // accents kept
		{"de la", "de la", 0},                                             // words under 3 letters ignored
		{"congé paternité", "congé annuel", 0.5},                          // 0.9×1/2 + 0.1×1/2
		{"télétravail d'un agent", "L'agent peut télétravailler", 0.4833}, // "agent" of {télétravail, agent}: 0.45 + 0.1×1/3, rounded
	}
	for _, tt := range tests {
		if got := fakealbert.Score(tt.query, tt.text); got != tt.want {
			t.Errorf("Score(%q, %q) = %v, want %v", tt.query, tt.text, got, tt.want)
		}
	}
}

type collectionsAnswer struct {
	Object string `json:"object"`
	Data   []struct {
		Object      string  `json:"object"`
		ID          int     `json:"id"`
		Name        string  `json:"name"`
		Owner       string  `json:"owner"`
		Description *string `json:"description"`
		Visibility  string  `json:"visibility"`
		Created     int64   `json:"created"`
		Updated     int64   `json:"updated"`
		Documents   int     `json:"documents"`
	} `json:"data"`
}

func listCollections(t *testing.T, srv *fakealbert.Server, query string) (int, collectionsAnswer) {
	t.Helper()
	status, _, body := do(t, srv, http.MethodGet, "/collections"+query, "", nil)
	var a collectionsAnswer
	if status == http.StatusOK {
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("bad answer %s: %v", body, err)
		}
	}
	return status, a
}

func TestCollectionsDefault(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	status, a := listCollections(t, srv, "")
	if status != 200 || a.Object != "list" || len(a.Data) != 3 {
		t.Fatalf("got %d %+v", status, a)
	}
	want := []struct {
		id   int
		name string
		docs int
	}{{139226, "mediatech-legifrance", 3}, {150277, "mediatech-fiches-travail-emploi", 3}, {150281, "mediatech-fiches-service-public", 4}}
	for i, c := range a.Data {
		if c.Object != "collection" || c.ID != want[i].id || c.Name != want[i].name || c.Documents != want[i].docs ||
			c.Visibility != "public" || c.Owner == "" || c.Description == nil || *c.Description == "" || c.Created == 0 || c.Updated == 0 {
			t.Errorf("collection %d = %+v, want %+v", i, c, want[i])
		}
	}
}

func TestCollectionsPaging(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	lib := make([]fakealbert.Collection, 230)
	for i := range lib {
		vis := "public"
		if i%2 == 1 {
			vis = "private"
		}
		// Given in reverse order: the fake serves them by id.
		lib[i] = fakealbert.Collection{ID: 230 - i, Name: fmt.Sprintf("collection-%d", 230-i), Visibility: vis}
	}
	srv.SetLibrary(lib)
	ids := func(a collectionsAnswer) []int {
		out := []int{}
		for _, c := range a.Data {
			out = append(out, c.ID)
		}
		return out
	}
	var all []int
	for _, offset := range []int{0, 100, 200} {
		status, a := listCollections(t, srv, fmt.Sprintf("?offset=%d&limit=100", offset))
		if status != 200 {
			t.Fatalf("offset %d: status %d", offset, status)
		}
		all = append(all, ids(a)...)
	}
	if len(all) != 230 || !slices.IsSorted(all) || all[0] != 1 || all[229] != 230 {
		t.Errorf("three pages gave %d ids, from %v", len(all), all[:min(3, len(all))])
	}
	if _, a := listCollections(t, srv, "?offset=300&limit=100"); len(a.Data) != 0 || a.Object != "list" {
		t.Errorf("past the end: %+v", a)
	}
	if _, a := listCollections(t, srv, ""); !slices.Equal(ids(a), []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) {
		t.Errorf("default page = %v, want the first 10", ids(a))
	}
	_, pub := listCollections(t, srv, "?visibility=public&limit=100&offset=100")
	for _, c := range pub.Data {
		if c.Visibility != "public" || c.Description != nil {
			t.Errorf("public filter gave %+v", c)
		}
	}
	if len(pub.Data) != 15 {
		t.Errorf("second page of 115 public collections has %d", len(pub.Data))
	}
	for _, q := range []string{"?limit=101", "?limit=0", "?offset=-1", "?limit=abc", "?visibility=shared"} {
		if status, _ := listCollections(t, srv, q); status != 422 {
			t.Errorf("%s: status %d, want 422", q, status)
		}
	}
}

func TestDocuments(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	srv.SetAPIKey("k")
	auth := map[string]string{"Authorization": "Bearer k"}
	status, _, body := do(t, srv, http.MethodGet, "/documents/812001", "", auth)
	var d map[string]any
	if err := json.Unmarshal(body, &d); status != 200 || err != nil {
		t.Fatalf("got %d %s", status, body)
	}
	want := map[string]any{"object": "document", "id": 812001.0, "name": "Congé de maternité d'une fonctionnaire",
		"collection_id": 150281.0, "created": 1760000000.0, "chunks": 3.0}
	if fmt.Sprint(d) != fmt.Sprint(want) {
		t.Errorf("document = %v, want %v", d, want)
	}
	for _, tt := range []struct {
		path   string
		header map[string]string
		status int
		body   string
	}{
		{"/documents/999", auth, 404, `{"detail":"Document not found."}`},
		{"/documents/abc", auth, 422, ""},
		{"/documents/812001", nil, 401, `{"detail":"Invalid authentication scheme."}`},
	} {
		status, _, body := do(t, srv, http.MethodGet, tt.path, "", tt.header)
		if status != tt.status || (tt.body != "" && strings.TrimSpace(string(body)) != tt.body) {
			t.Errorf("%s: got %d %s, want %d %s", tt.path, status, body, tt.status, tt.body)
		}
	}
	if n := srv.DocumentRequests(); n != 4 {
		t.Errorf("DocumentRequests = %d, want 4", n)
	}
	if status, _, _ := do(t, srv, http.MethodGet, "/collections", "", nil); status != 401 {
		t.Errorf("collections without key: %d, want 401", status)
	}
}

// Every document of the default library is reachable, has a URL and
// realistic chunks; its search hits carry that URL.
func TestDefaultLibrary(t *testing.T) {
	lib := fakealbert.DefaultLibrary()
	ids := map[int]bool{}
	for _, c := range lib {
		if len(c.Documents) < 2 || len(c.Documents) > 4 || c.Visibility != "public" || c.Description == "" {
			t.Errorf("collection %d %s: %d documents", c.ID, c.Name, len(c.Documents))
		}
		for _, d := range c.Documents {
			if ids[d.ID] || d.Name == "" || !strings.HasPrefix(d.URL, "https://") || len(d.Chunks) == 0 {
				t.Errorf("document %+v", d)
			}
			ids[d.ID] = true
		}
	}
	// The library is a copy each time.
	lib[0].Documents[0].Chunks[0] = "modifié"
	if fakealbert.DefaultLibrary()[0].Documents[0].Chunks[0] == "modifié" {
		t.Error("DefaultLibrary shares its slices")
	}
}

// SetLibrary copies: changing the caller's slices afterwards changes nothing served.
func TestSetLibraryCopies(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	lib := []fakealbert.Collection{{ID: 7, Name: "privée", Documents: []fakealbert.Document{
		{ID: 70, Name: "Note interne", URL: "https://intranet.example/note", Chunks: []string{"Procédure de remboursement des frais de mission."}},
	}}}
	srv.SetLibrary(lib)
	lib[0].Documents[0].Chunks[0] = "autre chose"
	s, _, b := do(t, srv, http.MethodPost, "/search", `{"query":"frais de mission","collection_ids":[7]}`, nil)
	a := decodeSearch(t, s, b)
	if len(a.Data) != 1 || a.Data[0].Chunk.Content != "Procédure de remboursement des frais de mission." ||
		string(a.Data[0].Chunk.Metadata["source_url"]) != `"https://intranet.example/note"` {
		t.Errorf("search = %s", b)
	}
	if _, c := listCollections(t, srv, ""); len(c.Data) != 1 || c.Data[0].Visibility != "private" {
		t.Errorf("collections = %+v", c)
	}
}

func TestFailSearchNext(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	const body = `{"query":"congé","collection_ids":[150281]}`
	srv.FailSearchNext(2, 503, "Model is too busy, please try again later.")
	for i := range 2 {
		status, h, b := do(t, srv, http.MethodPost, "/search", body, nil)
		if status != 503 || h.Get("Retry-After") != "1" || strings.TrimSpace(string(b)) != `{"detail":"Model is too busy, please try again later."}` {
			t.Errorf("search %d: %d %s (Retry-After %q)", i, status, b, h.Get("Retry-After"))
		}
	}
	if status, _, _ := do(t, srv, http.MethodPost, "/search", body, nil); status != 200 {
		t.Errorf("third search: %d", status)
	}
	// A malformed request does not use up a failure.
	srv.FailSearchNext(1, 403, fakealbert.DetailSearchDisabled)
	if status, _, _ := do(t, srv, http.MethodPost, "/search", `{}`, nil); status != 422 {
		t.Errorf("malformed: %d", status)
	}
	if status, _, b := do(t, srv, http.MethodPost, "/search", body, nil); status != 403 || !strings.Contains(string(b), "not enabled") {
		t.Errorf("disabled: %d %s", status, b)
	}
	if srv.SearchCalls() != 5 {
		t.Errorf("SearchCalls = %d, want 5", srv.SearchCalls())
	}
}

// Status 0 hangs until the client gives up; the search after it answers.
func TestFailSearchNextHangs(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	srv.FailSearchNext(1, 0, "")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/search", strings.NewReader(`{"query":"congé","collection_ids":[150281]}`))
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want the client to give up", resp.StatusCode)
	}
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) < 150*time.Millisecond {
		t.Errorf("error %v after %s", err, time.Since(start))
	}
	if status, _, _ := do(t, srv, http.MethodPost, "/search", `{"query":"congé","collection_ids":[150281]}`, nil); status != 200 {
		t.Errorf("next search: %d", status)
	}
}

func TestSearchLatency(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	srv.SetSearchLatency(150 * time.Millisecond)
	start := time.Now()
	status, _, _ := do(t, srv, http.MethodPost, "/search", `{"query":"congé","collection_ids":[150281]}`, nil)
	if status != 200 || time.Since(start) < 150*time.Millisecond {
		t.Errorf("status %d after %s, want 200 after 150ms", status, time.Since(start))
	}
	// Errors are not delayed.
	start = time.Now()
	if status, _, _ := do(t, srv, http.MethodPost, "/search", `{"query":"congé","collection_ids":[1]}`, nil); status != 404 || time.Since(start) > 100*time.Millisecond {
		t.Errorf("unknown collection: %d after %s", status, time.Since(start))
	}
}

func TestDefaultReplyWithExcerpts(t *testing.T) {
	const question = "Combien de semaines dure le congé de maternité ?"
	excerpt := func(n int) string {
		return fmt.Sprintf("[%d] « Congé de maternité d'une fonctionnaire » (mediatech-fiches-service-public)\nLa fonctionnaire enceinte a droit à un congé de maternité.\n\n", n)
	}
	prompt := func(excerpts string) string {
		return "Extraits numérotés de documents publics :\n\n" + excerpts +
			"Consigne : réponds en t'appuyant sur les extraits et cite leurs numéros.\n\nQuestion : " + question
	}
	tests := []struct {
		name     string
		msg      string
		quote    string
		citation string // "" = none
	}{
		{"plain message", "Bonjour Albert", "Bonjour Albert", ""},
		{"two excerpts and more", prompt(excerpt(1) + excerpt(2) + excerpt(3)), question, "D'après [1] et [2], "},
		{"one excerpt", prompt(excerpt(1)), question, "D'après [1], "},
		{"question without excerpts", "Question : " + question, question, ""},
		{"multi-line question", prompt(excerpt(4)+excerpt(7)) + "\nEt pour des jumeaux ?", question + "\nEt pour des jumeaux ?", "D'après [4] et [7], "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fakealbert.DefaultReply(fakealbert.Request{Messages: []albert.Message{
				{Role: "system", Content: "Tu es Albert."},
				{Role: "user", Content: tt.msg},
			}})
			if !strings.HasPrefix(got, "Voici ma réponse à « "+tt.quote+" ».\n\n") {
				t.Errorf("reply = %q, want it to quote %q", got, tt.quote)
			}
			if strings.Contains(got, "Extraits") || strings.Contains(got, "Consigne") {
				t.Errorf("reply quotes the excerpts: %q", got)
			}
			if tt.citation == "" {
				if strings.Contains(got, "D'après") {
					t.Errorf("reply = %q, want no citation", got)
				}
				if !strings.HasSuffix(got, "Bonne journée !") || !strings.Contains(got, "**Albert** (fake)") {
					t.Errorf("reply = %q lost its usual body", got)
				}
				return
			}
			if !strings.Contains(got, "\n\n"+tt.citation) || strings.Contains(got, "[3]") {
				t.Errorf("reply = %q, want %q", got, tt.citation)
			}
		})
	}
	// Unchanged without the retrieval form.
	plain := fakealbert.DefaultReply(fakealbert.Request{Messages: []albert.Message{{Role: "user", Content: "[1] pas un extrait"}}})
	if plain != "Voici ma réponse à « [1] pas un extrait ».\n\n**Albert** (fake) retient deux points :\n\n- un premier point, *important* ;\n- un second point, avec `du code`.\n\nBonne journée !" {
		t.Errorf("plain reply changed: %q", plain)
	}
}

// TestRetrievalKnobsConcurrent runs retrieval knobs and calls together, for
// the race detector.
func TestRetrievalKnobsConcurrent(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, path := range []string{"/search", "/collections", "/documents/812001"} {
				var resp *http.Response
				var err error
				if path == "/search" {
					resp, err = http.Post(srv.URL+path, "application/json", strings.NewReader(`{"query":"congé","limit":3}`))
				} else {
					resp, err = http.Get(srv.URL + path)
				}
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
		wg.Go(func() {
			srv.SetLibrary(fakealbert.DefaultLibrary())
			srv.SetSearchLatency(0)
			srv.FailSearchNext(0, 500, "")
			_ = srv.SearchRequests()
			_ = srv.DocumentRequests()
		})
	}
	wg.Wait()
	if srv.SearchCalls() != 8 || srv.DocumentRequests() != 8 {
		t.Errorf("SearchCalls = %d, DocumentRequests = %d, want 8", srv.SearchCalls(), srv.DocumentRequests())
	}
}
