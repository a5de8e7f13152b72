package albert_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"guichet/albert"
	"guichet/albert/fakealbert"
)

// replay serves status and body to every request, recording the requests
// (with their bodies) for inspection.
type replay struct {
	mu     sync.Mutex
	reqs   []*http.Request
	bodies []string
}

func replayServer(t *testing.T, status int, body string, header map[string]string) (string, *replay) {
	t.Helper()
	rp := &replay{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rp.mu.Lock()
		rp.reqs = append(rp.reqs, r)
		rp.bodies = append(rp.bodies, string(b))
		rp.mu.Unlock()
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/v1", rp
}

func TestSearchAgainstFake(t *testing.T) {
	srv := startFake(t)
	srv.SetAPIKey("k")
	const query = "Combien de semaines dure le congé de maternité d'une fonctionnaire ?"
	got, err := newClient(srv.URL, "k").Search(context.Background(), albert.SearchRequest{
		Query: query, CollectionIDs: []int{150281, 139226}, Limit: 4,
	})
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if len(got.Results) != 4 {
		t.Fatalf("%d results, want 4", len(got.Results))
	}
	top := got.Results[0]
	if top.DocumentID != 812001 || top.CollectionID != 150281 || top.ChunkID < 1 || top.Method != albert.MethodSemantic ||
		top.Score <= 0 || top.Score > 1 || !strings.Contains(top.Content, "maternité") ||
		top.URL != "https://www.service-public.fr/particuliers/vosdroits/F519" || top.DocumentName != "" ||
		len(top.Metadata) != 1 {
		t.Errorf("top result = %+v", top)
	}
	for i := 1; i < len(got.Results); i++ {
		if got.Results[i].Score > got.Results[i-1].Score {
			t.Errorf("results out of order at %d", i)
		}
	}
	u := got.Usage
	if u.PromptTokens != albert.EstimateTokens(query) || u.CompletionTokens != 0 || u.Estimated || u.Cost <= 0 ||
		u.Requests != 1 || u.KWh <= 0 || u.KgCO2eq <= 0 {
		t.Errorf("usage = %+v", u)
	}

	reqs := srv.SearchRequests()
	if len(reqs) != 1 {
		t.Fatalf("%d searches recorded", len(reqs))
	}
	r := reqs[0]
	if r.Aliases || r.Query != query || !slices.Equal(r.CollectionIDs, []int{150281, 139226}) || r.Method != "semantic" ||
		r.Limit != 4 || r.ScoreThreshold != 0 || r.Header.Get("Authorization") != "Bearer k" {
		t.Errorf("recorded = %+v", r)
	}

	// The document's name, since 2026 chunks lack it.
	doc, err := newClient(srv.URL, "k").Document(context.Background(), top.DocumentID)
	want := albert.Document{ID: 812001, Name: "Congé de maternité d'une fonctionnaire", CollectionID: 150281, Chunks: 3}
	if err != nil || doc != want {
		t.Errorf("Document = %+v, %v; want %+v", doc, err, want)
	}
	if srv.DocumentRequests() != 1 {
		t.Errorf("DocumentRequests = %d", srv.DocumentRequests())
	}
}

// The body carries the 2026 names only, score_threshold and limit only when set.
func TestSearchRequestBody(t *testing.T) {
	tests := []struct {
		name string
		req  albert.SearchRequest
		want string
	}{
		{"defaults", albert.SearchRequest{Query: "congé"},
			`{"query":"congé","collection_ids":[],"method":"semantic"}`},
		{"everything", albert.SearchRequest{Query: "congé", CollectionIDs: []int{150281, 150277}, Method: albert.MethodSemantic, Limit: 5, ScoreThreshold: 0.35},
			`{"query":"congé","collection_ids":[150281,150277],"method":"semantic","limit":5,"score_threshold":0.35}`},
		{"hybrid", albert.SearchRequest{Query: "congé", CollectionIDs: []int{139226}, Method: albert.MethodHybrid, Limit: 100},
			`{"query":"congé","collection_ids":[139226],"method":"hybrid","limit":100}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, rp := replayServer(t, 200, `{"object":"list","data":[]}`, nil)
			got, err := newClient(url, "secret").Search(context.Background(), tt.req)
			if err != nil || got.Results == nil || len(got.Results) != 0 || got.Usage != (albert.Usage{}) {
				t.Fatalf("Search = %+v, %v", got, err)
			}
			r := rp.reqs[0]
			if r.Method != http.MethodPost || r.URL.Path != "/v1/search" || r.Header.Get("Authorization") != "Bearer secret" ||
				r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("request %s %s with %v", r.Method, r.URL.Path, r.Header)
			}
			if rp.bodies[0] != tt.want {
				t.Errorf("body = %s, want %s", rp.bodies[0], tt.want)
			}
		})
	}
}

// TestSearchReplay decodes recorded-style answers of each engine version.
func TestSearchReplay(t *testing.T) {
	tests := []struct {
		name      string
		method    string // asked for
		body      string
		want      []albert.SearchResult // Metadata compared through fmt
		wantUsage albert.Usage
	}{
		{
			name: "2026",
			body: `{"object":"list","data":[
				{"method":"semantic","score":0.8312,"chunk":{"object":"chunk","id":2,"collection_id":150281,"document_id":4207311,
					"content":"À partir du troisième enfant, le congé de maternité dure 26 semaines.",
					"metadata":{"source_url":"https://www.service-public.fr/particuliers/vosdroits/F519","theme":"Travail"},"created":1760000000}},
				{"method":"semantic","score":0.61,"chunk":{"object":"chunk","id":1,"collection_id":139226,"document_id":998,
					"content":"Code du travail, article L1225-17.","metadata":{},"created":1760000001}}
			],"usage":{"prompt_tokens":14,"completion_tokens":0,"total_tokens":14,"cost":0.00007,"carbon":{"kWh":0.0000012,"kgCO2eq":0.00000007},"requests":1}}`,
			want: []albert.SearchResult{
				{Score: 0.8312, Method: "semantic", ChunkID: 2, CollectionID: 150281, DocumentID: 4207311,
					Content:  "À partir du troisième enfant, le congé de maternité dure 26 semaines.",
					Metadata: map[string]any{"source_url": "https://www.service-public.fr/particuliers/vosdroits/F519", "theme": "Travail"},
					URL:      "https://www.service-public.fr/particuliers/vosdroits/F519"},
				{Score: 0.61, Method: "semantic", ChunkID: 1, CollectionID: 139226, DocumentID: 998,
					Content: "Code du travail, article L1225-17.", Metadata: map[string]any{}},
			},
			wantUsage: albert.Usage{PromptTokens: 14, Cost: 0.00007, Requests: 1, KWh: 0.0000012, KgCO2eq: 0.00000007},
		},
		{
			name:   "2025: document_name and ids in metadata, carbon ranges",
			method: albert.MethodHybrid,
			body: `{"object":"list","data":[{"method":"hybrid","score":0.0328,"chunk":{"object":"chunk","id":3,
				"content":"Le télétravail ne peut excéder trois jours par semaine.",
				"metadata":{"collection_id":784,"collection_name":"fiches","document_id":5512,"document_name":"Télétravail dans la fonction publique",
					"document_part":"3/7","document_created_at":1741000000,"url":"https://www.service-public.fr/particuliers/vosdroits/F13851"}}}],
				"usage":{"prompt_tokens":9,"completion_tokens":0,"total_tokens":9,"cost":0.0,"carbon":{"kWh":{"min":0.000001,"max":0.000002},"kgCO2eq":{"min":0.0,"max":0.0000001}},"requests":1}}`,
			want: []albert.SearchResult{{Score: 0.0328, Method: "hybrid", ChunkID: 3, CollectionID: 784, DocumentID: 5512,
				Content: "Le télétravail ne peut excéder trois jours par semaine.",
				Metadata: map[string]any{"collection_id": 784.0, "collection_name": "fiches", "document_id": 5512.0,
					"document_name": "Télétravail dans la fonction publique", "document_part": "3/7", "document_created_at": 1741000000.0,
					"url": "https://www.service-public.fr/particuliers/vosdroits/F13851"},
				DocumentName: "Télétravail dans la fonction publique", URL: "https://www.service-public.fr/particuliers/vosdroits/F13851"}},
			wantUsage: albert.Usage{PromptTokens: 9, Requests: 1, KWh: 0.000002, KgCO2eq: 0.0000001},
		},
		{
			name:   "ids as strings, collection/document keys, no method, no usage",
			method: albert.MethodLexical,
			body: `{"object":"list","data":[{"score":12.5,"chunk":{"object":"chunk","id":"7","collection":"150277","document":"31",
				"content":"La rupture conventionnelle.","metadata":{"link":"","href":"https://travail-emploi.gouv.fr/rupture","document_name":"Rupture"}}}]}`,
			want: []albert.SearchResult{{Score: 12.5, Method: "lexical", ChunkID: 7, CollectionID: 150277, DocumentID: 31,
				Content: "La rupture conventionnelle.", Metadata: map[string]any{"link": "", "href": "https://travail-emploi.gouv.fr/rupture", "document_name": "Rupture"},
				DocumentName: "Rupture", URL: "https://travail-emploi.gouv.fr/rupture"}},
		},
		{
			name: "2024: UUIDs read as 0, null metadata",
			body: `{"object":"list","data":[{"score":0.7,"chunk":{"object":"chunk","id":"5b1f7c2e-1d1c-4f0e-9a55-3f0c3c1e2b11","metadata":null,"content":"Ancien format."}}]}`,
			want: []albert.SearchResult{{Score: 0.7, Method: "semantic", Content: "Ancien format."}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, _ := replayServer(t, 200, tt.body, nil)
			got, err := newClient(url, "").Search(context.Background(), albert.SearchRequest{Query: "q", CollectionIDs: []int{1}, Method: tt.method})
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			if fmt.Sprintf("%+v", got.Results) != fmt.Sprintf("%+v", tt.want) {
				t.Errorf("results =\n%+v\nwant\n%+v", got.Results, tt.want)
			}
			if got.Usage != tt.wantUsage {
				t.Errorf("usage = %+v, want %+v", got.Usage, tt.wantUsage)
			}
		})
	}
}

func TestRetrievalErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		header     map[string]string
		wantClass  albert.Class
		wantDetail string
		disabled   bool
		retryAfter time.Duration
	}{
		{name: "score threshold with another method", status: 400, body: `{"detail":"Score threshold is only available for semantic search method"}`,
			wantClass: albert.ClassInvalid, wantDetail: "Score threshold is only available for semantic search method"},
		{name: "budget", status: 400, body: `{"detail":"Insufficient budget."}`, wantClass: albert.ClassBudget, wantDetail: "Insufficient budget."},
		{name: "search disabled", status: 403, body: `{"detail":"Search build-in tool is not enabled on this instance."}`,
			wantClass: albert.ClassAuth, wantDetail: "Search build-in tool is not enabled on this instance.", disabled: true},
		{name: "bad key", status: 403, body: `{"detail":"Invalid API key."}`, wantClass: albert.ClassAuth, wantDetail: "Invalid API key."},
		{name: "unknown collection", status: 404, body: `{"detail":"Collection not found."}`, wantClass: albert.ClassNotFound, wantDetail: "Collection not found."},
		{name: "422 list", status: 422, body: `{"detail":[{"type":"missing","loc":["body","query"],"msg":"Field required","input":{"collection_ids":[1]}}]}`,
			wantClass: albert.ClassInvalid, wantDetail: "body.query: Field required"},
		{name: "500", status: 500, body: `Internal Server Error`, wantClass: albert.ClassUpstream, wantDetail: "Internal Server Error"},
		{name: "503 with Retry-After", status: 503, body: `{"detail":"Model is too busy, please try again later."}`, header: map[string]string{"Retry-After": "10"},
			wantClass: albert.ClassBusy, wantDetail: "Model is too busy, please try again later.", retryAfter: 10 * time.Second},
		{name: "unreadable 200", status: 200, body: `<html>maintenance</html>`, wantClass: albert.ClassUpstream, wantDetail: ""},
	}
	calls := []struct {
		name string
		call func(*albert.Client) error
	}{
		{"Search", func(c *albert.Client) error {
			_, err := c.Search(context.Background(), albert.SearchRequest{Query: "congé", CollectionIDs: []int{150281}})
			return err
		}},
		{"Collections", func(c *albert.Client) error { _, err := c.Collections(context.Background()); return err }},
		{"Document", func(c *albert.Client) error { _, err := c.Document(context.Background(), 812001); return err }},
	}
	for _, tt := range tests {
		for _, call := range calls {
			t.Run(tt.name+"/"+call.name, func(t *testing.T) {
				url, _ := replayServer(t, tt.status, tt.body, tt.header)
				ae := asError(t, call.call(newClient(url, "k")))
				if ae.Class != tt.wantClass || ae.Status != tt.status || (tt.wantDetail != "" && ae.Detail != tt.wantDetail) ||
					ae.RetryAfter != tt.retryAfter {
					t.Errorf("error = %+v, want %s %d %q", ae, tt.wantClass, tt.status, tt.wantDetail)
				}
				if albert.IsSearchDisabled(ae) != tt.disabled {
					t.Errorf("IsSearchDisabled = %v, want %v", !tt.disabled, tt.disabled)
				}
			})
		}
	}
}

// The fake's own errors, as the client classifies them.
func TestSearchErrorsAgainstFake(t *testing.T) {
	srv := startFake(t)
	c := newClient(srv.URL, "")
	ctx := context.Background()
	_, err := c.Search(ctx, albert.SearchRequest{Query: "congé", CollectionIDs: []int{150281}, Method: albert.MethodHybrid, ScoreThreshold: 0.5})
	if ae := asError(t, err); ae.Class != albert.ClassInvalid || ae.Status != 400 || ae.Detail != fakealbert.DetailScoreThreshold {
		t.Errorf("threshold with hybrid: %+v", ae)
	}
	_, err = c.Search(ctx, albert.SearchRequest{Query: "congé", CollectionIDs: []int{4242}})
	if ae := asError(t, err); ae.Class != albert.ClassNotFound || ae.Detail != "Collection not found." {
		t.Errorf("unknown collection: %+v", ae)
	}
	srv.FailSearchNext(1, 403, fakealbert.DetailSearchDisabled)
	_, err = c.Search(ctx, albert.SearchRequest{Query: "congé", CollectionIDs: []int{150281}})
	if ae := asError(t, err); ae.Class != albert.ClassAuth || !albert.IsSearchDisabled(err) {
		t.Errorf("search disabled: %+v", ae)
	}
	_, err = c.Document(ctx, 999)
	if ae := asError(t, err); ae.Class != albert.ClassNotFound || ae.Detail != "Document not found." {
		t.Errorf("unknown document: %+v", ae)
	}
	srv.SetAPIKey("k")
	_, err = newClient(srv.URL, "wrong").Collections(ctx)
	if ae := asError(t, err); ae.Class != albert.ClassAuth || albert.IsSearchDisabled(err) {
		t.Errorf("bad key: %+v", ae)
	}
	if n := srv.SearchCalls(); n != 3 {
		t.Errorf("SearchCalls = %d, want 3", n)
	}
}

// Arguments that cannot be right fail before any request.
func TestRetrievalLocalValidation(t *testing.T) {
	srv := startFake(t)
	c := newClient(srv.URL, "")
	for _, req := range []albert.SearchRequest{
		{Query: "  ", CollectionIDs: []int{150281}},
		{Query: "congé", Limit: 101},
		{Query: "congé", Limit: -1},
		{Query: "congé", ScoreThreshold: 1.5},
		{Query: "congé", ScoreThreshold: -0.1},
	} {
		_, err := c.Search(context.Background(), req)
		if ae := asError(t, err); ae.Class != albert.ClassInvalid || ae.Status != 0 || ae.Detail == "" {
			t.Errorf("Search(%+v) error = %+v", req, ae)
		}
	}
	for _, id := range []int{0, -3} {
		_, err := c.Document(context.Background(), id)
		if ae := asError(t, err); ae.Class != albert.ClassInvalid || ae.Status != 0 {
			t.Errorf("Document(%d) error = %+v", id, ae)
		}
	}
	if srv.SearchCalls() != 0 || srv.DocumentRequests() != 0 {
		t.Errorf("SearchCalls = %d, DocumentRequests = %d, want none", srv.SearchCalls(), srv.DocumentRequests())
	}
}

// A search that hangs ends at the client's bound (its idle timeout here) as
// ClassTimeout; a canceled caller gets ClassCanceled.
func TestSearchTimeout(t *testing.T) {
	srv := startFake(t)
	srv.FailSearchNext(2, 0, "")
	c := albert.New(albert.Config{BaseURL: srv.URL, Model: testModel, StreamIdleTimeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := c.Search(context.Background(), albert.SearchRequest{Query: "congé", CollectionIDs: []int{150281}})
	if ae := asError(t, err); ae.Class != albert.ClassTimeout || !ae.Retryable() {
		t.Errorf("hang: %+v", ae)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %s, want about 200ms", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = c.Search(ctx, albert.SearchRequest{Query: "congé", CollectionIDs: []int{150281}})
	if ae := asError(t, err); ae.Class != albert.ClassCanceled {
		t.Errorf("canceled: %+v", ae)
	}
	if _, err := c.Search(context.Background(), albert.SearchRequest{Query: "congé", CollectionIDs: []int{150281}}); err != nil {
		t.Errorf("third search: %v", err)
	}
}

func TestCollectionsAgainstFake(t *testing.T) {
	srv := startFake(t)
	got, err := newClient(srv.URL, "").Collections(context.Background())
	if err != nil {
		t.Fatalf("Collections: %v", err)
	}
	want := []albert.Collection{
		{ID: 139226, Name: "mediatech-legifrance", Visibility: "public", Documents: 3},
		{ID: 150277, Name: "mediatech-fiches-travail-emploi", Visibility: "public", Documents: 3},
		{ID: 150281, Name: "mediatech-fiches-service-public", Visibility: "public", Documents: 4},
	}
	if len(got) != len(want) {
		t.Fatalf("Collections = %+v", got)
	}
	for i := range want {
		if got[i].Description == "" {
			t.Errorf("collection %d has no description", got[i].ID)
		}
		got[i].Description = ""
		if got[i] != want[i] {
			t.Errorf("collection %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	lib := make([]fakealbert.Collection, 230)
	for i := range lib {
		lib[i] = fakealbert.Collection{ID: 1000 + i, Name: fmt.Sprintf("partenaire-%d", i), Visibility: "private",
			Documents: make([]fakealbert.Document, i%3)}
	}
	srv.SetLibrary(lib)
	got, err = newClient(srv.URL, "").Collections(context.Background())
	if err != nil || len(got) != 230 {
		t.Fatalf("Collections = %d, %v; want 230", len(got), err)
	}
	for i, c := range got {
		if c.ID != 1000+i || c.Documents != i%3 || c.Visibility != "private" || c.Description != "" {
			t.Errorf("collection %d = %+v", i, c)
		}
	}
}

// collectionsServer serves n collections by offset/limit (or ignoring
// offset), in the given JSON shape, and records the queries it got.
func collectionsServer(t *testing.T, n int, ignoreOffset bool, item func(id int) string) (string, *[]string) {
	t.Helper()
	var mu sync.Mutex
	var queries []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		if r.URL.Path != "/v1/collections" || r.Header.Get("Authorization") != "Bearer k" {
			http.Error(w, `{"detail":"Not Found"}`, 404)
			return
		}
		offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		if limit > 100 {
			http.Error(w, `{"detail":[{"type":"less_than_equal","loc":["query","limit"],"msg":"Input should be less than or equal to 100"}]}`, 422)
			return
		}
		if ignoreOffset {
			offset = 0
		}
		var items []string
		for id := offset + 1; id <= min(n, offset+limit); id++ {
			items = append(items, item(id))
		}
		fmt.Fprintf(w, `{"object":"list","data":[%s]}`, strings.Join(items, ","))
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/v1", &queries
}

func TestCollectionsPaging(t *testing.T) {
	item2026 := func(id int) string {
		return fmt.Sprintf(`{"object":"collection","id":%d,"name":"c%d","owner":"Albert","description":null,"visibility":"public","created":1760000000,"updated":1760000000,"documents":%d}`, id, id, id%5)
	}
	tests := []struct {
		name         string
		n            int
		ignoreOffset bool
		wantN        int
		wantQueries  []string
	}{
		{"230 collections in 3 pages", 230, false, 230, []string{"limit=100&offset=0", "limit=100&offset=100", "limit=100&offset=200"}},
		{"exactly 200: an empty third page", 200, false, 200, []string{"limit=100&offset=0", "limit=100&offset=100", "limit=100&offset=200"}},
		{"none", 0, false, 0, []string{"limit=100&offset=0"}},
		{"server ignoring offset", 150, true, 100, []string{"limit=100&offset=0", "limit=100&offset=100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, queries := collectionsServer(t, tt.n, tt.ignoreOffset, item2026)
			got, err := newClient(url, "k").Collections(context.Background())
			if err != nil || got == nil || len(got) != tt.wantN {
				t.Fatalf("Collections = %d, %v; want %d", len(got), err, tt.wantN)
			}
			for i, c := range got {
				if c.ID != i+1 || c.Name != fmt.Sprintf("c%d", i+1) || c.Documents != (i+1)%5 || c.Visibility != "public" {
					t.Errorf("collection %d = %+v", i, c)
				}
			}
			if !slices.Equal(*queries, tt.wantQueries) {
				t.Errorf("queries = %q, want %q", *queries, tt.wantQueries)
			}
		})
	}
}

// Older collection shapes: string ids, "type" instead of "visibility",
// documents missing.
func TestCollectionsOlderShapes(t *testing.T) {
	url, _ := replayServer(t, 200, `{"object":"list","data":[
		{"object":"collection","id":"784","name":"fiches","type":"private","description":"Fiches internes","created_at":1741000000,"documents":"12"},
		{"object":"collection","id":"9a3e4c1e-0d0b-4e0c-9f0e-2b6d4b8b1c55","name":"internet","type":"public","model":"BAAI/bge-m3"}
	]}`, nil)
	got, err := newClient(url, "").Collections(context.Background())
	want := []albert.Collection{
		{ID: 784, Name: "fiches", Description: "Fiches internes", Visibility: "private", Documents: 12},
		{ID: 0, Name: "internet", Visibility: "public"},
	}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Collections = %+v, %v; want %+v", got, err, want)
	}
}

func TestDocumentReplay(t *testing.T) {
	tests := []struct {
		name string
		body string
		want albert.Document
	}{
		{"2026", `{"object":"document","id":4207311,"name":"Congé de maternité d'une fonctionnaire","collection_id":150281,"created":1760000000,"chunks":12}`,
			albert.Document{ID: 4207311, Name: "Congé de maternité d'une fonctionnaire", CollectionID: 150281, Chunks: 12}},
		{"string ids, collection key, chunks null", `{"object":"document","id":"31","name":"Rupture.pdf","collection":"150277","created_at":1741000000,"chunks":null}`,
			albert.Document{ID: 31, Name: "Rupture.pdf", CollectionID: 150277}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, rp := replayServer(t, 200, tt.body, nil)
			got, err := newClient(url, "k").Document(context.Background(), 31)
			if err != nil || got != tt.want {
				t.Errorf("Document = %+v, %v; want %+v", got, err, tt.want)
			}
			if r := rp.reqs[0]; r.Method != http.MethodGet || r.URL.Path != "/v1/documents/31" || r.Header.Get("Authorization") != "Bearer k" {
				t.Errorf("request %s %s", r.Method, r.URL)
			}
		})
	}
}
