package albert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Retrieval: POST /search, GET /collections and GET /documents/{id}
// (albert-api.md, "Retrieval (document collections)"). The request is sent
// with the 2026 field names only; answers are read in the 2026 shape and in
// the older ones (see SearchResult).

// Search methods of POST /search.
const (
	MethodSemantic = "semantic"
	MethodHybrid   = "hybrid"
	MethodLexical  = "lexical"
)

// retrievalTimeout bounds each retrieval request (one search, one page of
// collections, one document): small JSON answers, bounded by the client's
// idle timeout as well.
const retrievalTimeout = 30 * time.Second

// maxRetrievalBody bounds what is read of a retrieval answer: 100 chunks of
// a few kilobytes each fit many times over.
const maxRetrievalBody = 8 << 20

// collectionsPage is the page size of GET /collections, the server's maximum.
const collectionsPage = 100

// maxCollectionPages stops paging a server that ignores offset
// (100 pages: 10,000 collections).
const maxCollectionPages = 100

// SearchRequest is one POST /v1/search.
type SearchRequest struct {
	// Query is the text to search for; it must not be blank.
	Query string
	// CollectionIDs are the collections to search (e.g. 150281,
	// mediatech-fiches-service-public); sent as [] when empty.
	CollectionIDs []int
	// Method is MethodSemantic, MethodHybrid or MethodLexical; "" means
	// semantic, sent explicitly (the server's default may differ).
	Method string
	// Limit is the number of results wanted, 1-100; 0 lets Albert choose
	// (10). Out of range fails with ClassInvalid before any request.
	Limit int
	// ScoreThreshold drops results scoring under it, 0-1; 0 means none and
	// is not sent. Semantic only: with another method Albert answers 400
	// "Score threshold is only available for semantic search method"
	// (ClassInvalid). Out of range fails with ClassInvalid before any request.
	ScoreThreshold float64
}

// SearchResult is one hit.
type SearchResult struct {
	// Score is the relevance Albert computed (0-1 for semantic search;
	// other methods have their own scale), higher is better.
	Score float64
	// Method is the method that found the chunk as Albert reported it, or
	// the method asked for when the answer (before 2026) did not say.
	Method string
	// ChunkID is the chunk's id. The engine numbers chunks within their
	// document, so a chunk is identified by (DocumentID, ChunkID).
	ChunkID int
	// CollectionID and DocumentID locate the chunk: the chunk's
	// collection_id/document_id (2026), else its collection/document, else
	// the same keys of its metadata (2025). Ids sent as strings of digits
	// are read; anything else (the 2024 UUIDs) reads as 0.
	CollectionID int
	DocumentID   int
	// Content is the chunk's text.
	Content string
	// Metadata is what the uploader passed (and, before 2026, what the
	// engine added: document_name, document_part, ...); may be nil.
	Metadata map[string]any
	// DocumentName is metadata "document_name" when present (before 2026);
	// "" otherwise: use Document(DocumentID).Name, and cache it.
	DocumentName string
	// URL is the first non-empty string among metadata "url",
	// "source_url", "link", "href"; "" when none.
	URL string
}

// SearchResponse is the answer of POST /v1/search.
type SearchResponse struct {
	// Results are the hits, best first, as Albert ordered them.
	Results []SearchResult
	// Usage is as Albert reported it (zero when absent; never estimated):
	// search bills the query's tokens, with cost and carbon.
	Usage Usage
}

// Search runs POST /v1/search with the 2026 body ("query",
// "collection_ids", "method", "limit", "score_threshold"; the last two
// omitted when 0). Every error is an *Error: a blank query or an out of range
// Limit or ScoreThreshold is ClassInvalid with Status 0, sent nowhere;
// 400 "Score threshold is only available for semantic search method" and 422
// are ClassInvalid; 403 "Search build-in tool is not enabled…" is ClassAuth,
// told apart from a bad key by IsSearchDisabled; 404 "Collection not found."
// is ClassNotFound; other statuses as for chat calls (fromStatus). The call
// is bounded by 30 s (or the client's idle timeout when shorter).
func (c *Client) Search(ctx context.Context, req SearchRequest) (SearchResponse, error) {
	if strings.TrimSpace(req.Query) == "" {
		return SearchResponse{}, &Error{Class: ClassInvalid, Detail: "empty search query"}
	}
	if req.Limit < 0 || req.Limit > 100 {
		return SearchResponse{}, &Error{Class: ClassInvalid, Detail: fmt.Sprintf("search limit %d out of 1-100", req.Limit)}
	}
	if req.ScoreThreshold < 0 || req.ScoreThreshold > 1 {
		return SearchResponse{}, &Error{Class: ClassInvalid, Detail: fmt.Sprintf("score threshold %g out of 0-1", req.ScoreThreshold)}
	}
	method := req.Method
	if method == "" {
		method = MethodSemantic
	}
	ids := req.CollectionIDs
	if ids == nil {
		ids = []int{}
	}
	body, err := json.Marshal(searchBody{
		Query: req.Query, CollectionIDs: ids, Method: method,
		Limit: req.Limit, ScoreThreshold: req.ScoreThreshold,
	})
	if err != nil {
		return SearchResponse{}, &Error{Class: ClassInvalid, Detail: "unencodable search request", Err: err}
	}
	raw, status, err := c.retrievalCall(ctx, http.MethodPost, "/search", body)
	if err != nil {
		return SearchResponse{}, err
	}
	var list searchListJSON
	if err := json.Unmarshal(raw, &list); err != nil {
		return SearchResponse{}, &Error{Class: ClassUpstream, Status: status,
			Detail: "unreadable search results", Err: fmt.Errorf("failed to decode search results: %w", err)}
	}
	out := SearchResponse{Results: make([]SearchResult, 0, len(list.Data))}
	for _, d := range list.Data {
		out.Results = append(out.Results, d.result(method))
	}
	if list.Usage != nil {
		u := list.Usage
		out.Usage = Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens,
			Cost: float64(u.Cost), Requests: int(u.Requests)}
		if u.Carbon != nil {
			out.Usage.KWh, out.Usage.KgCO2eq = float64(u.Carbon.KWh), float64(u.Carbon.KgCO2eq)
		}
	}
	return out, nil
}

// IsSearchDisabled reports whether err is Albert's 403 "Search build-in
// tool is not enabled…": the instance has no retrieval, the key is fine, so
// answer without excerpts rather than alert operators. Such an error has
// ClassAuth, like a bad key, since errors.go classifies by status.
func IsSearchDisabled(err error) bool {
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusForbidden {
		return false
	}
	d := strings.ToLower(e.Detail)
	return strings.Contains(d, "search") && strings.Contains(d, "not enabled")
}

// Collection is one entry of GET /v1/collections.
type Collection struct {
	// ID is what SearchRequest.CollectionIDs takes.
	ID int
	// Name is e.g. "mediatech-fiches-service-public".
	Name string
	// Description is the owner's free text, "" when null.
	Description string
	// Visibility is "private" or "public" (the 2024 "type" field when
	// "visibility" is absent).
	Visibility string
	// Documents is the document count, 0 when not reported.
	Documents int
}

// Collections lists every collection the key can see (pages of 100 through
// offset/limit, until a short page; at most 10,000, and a page that brings
// no new id ends the listing, in case the server ignores offset). Every
// error is an *Error, classified as for Search; each page is bounded by
// 30 s (or the client's idle timeout when shorter).
func (c *Client) Collections(ctx context.Context) ([]Collection, error) {
	var out []Collection
	seen := map[int]bool{}
	for page := range maxCollectionPages {
		q := url.Values{}
		q.Set("offset", strconv.Itoa(page*collectionsPage))
		q.Set("limit", strconv.Itoa(collectionsPage))
		raw, status, err := c.retrievalCall(ctx, http.MethodGet, "/collections?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		var list struct {
			Data []collectionJSON `json:"data"`
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, &Error{Class: ClassUpstream, Status: status,
				Detail: "unreadable collection list", Err: fmt.Errorf("failed to decode collections: %w", err)}
		}
		fresh := 0
		for _, d := range list.Data {
			col := d.collection()
			if seen[col.ID] {
				continue
			}
			seen[col.ID] = true
			fresh++
			out = append(out, col)
		}
		if len(list.Data) < collectionsPage || fresh == 0 {
			break
		}
	}
	if out == nil {
		out = []Collection{}
	}
	return out, nil
}

// Document is the answer of GET /v1/documents/{id}.
type Document struct {
	// ID is the document id, as in SearchResult.DocumentID.
	ID int
	// Name is the uploaded file's name or the title given at upload.
	Name string
	// CollectionID is the collection holding the document.
	CollectionID int
	// Chunks is the chunk count, 0 when not reported (null when the vector
	// store could not count).
	Chunks int
}

// Document fetches one document, to name a search result since 2026
// (chunks no longer carry document_name). Names do not change: cache them.
// Every error is an *Error: an id ≤ 0 is ClassInvalid with Status 0, sent
// nowhere; 404 "Document not found." is ClassNotFound; others as for
// Search. The call is bounded by 30 s (or the client's idle timeout).
func (c *Client) Document(ctx context.Context, id int) (Document, error) {
	if id <= 0 {
		return Document{}, &Error{Class: ClassInvalid, Detail: fmt.Sprintf("bad document id %d", id)}
	}
	raw, status, err := c.retrievalCall(ctx, http.MethodGet, "/documents/"+strconv.Itoa(id), nil)
	if err != nil {
		return Document{}, err
	}
	var d struct {
		ID           flexInt  `json:"id"`
		Name         string   `json:"name"`
		CollectionID *flexInt `json:"collection_id"`
		Collection   *flexInt `json:"collection"`
		Chunks       flexInt  `json:"chunks"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return Document{}, &Error{Class: ClassUpstream, Status: status,
			Detail: "unreadable document", Err: fmt.Errorf("failed to decode document: %w", err)}
	}
	return Document{ID: int(d.ID), Name: d.Name, CollectionID: firstID(d.CollectionID, d.Collection), Chunks: int(d.Chunks)}, nil
}

// retrievalCall sends one retrieval request with the key and returns the
// body of a 2xx answer and its status; any failure is an *Error.
func (c *Client) retrievalCall(ctx context.Context, method, path string, body []byte) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, min(retrievalTimeout, c.idle))
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, rd)
	if err != nil {
		return nil, 0, &Error{Class: ClassInvalid, Detail: "bad base URL", Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, Classify(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxRetrievalBody))
	if err != nil {
		return nil, resp.StatusCode, Classify(err)
	}
	if resp.StatusCode >= 400 {
		return nil, resp.StatusCode, fromStatus(resp.StatusCode, detailFromBody(raw), resp.Header, nil)
	}
	return raw, resp.StatusCode, nil
}

// searchBody is the 2026 request body; the 2025 aliases (prompt,
// collections) and the 2024 k are never sent.
type searchBody struct {
	Query          string  `json:"query"`
	CollectionIDs  []int   `json:"collection_ids"`
	Method         string  `json:"method"`
	Limit          int     `json:"limit,omitempty"`
	ScoreThreshold float64 `json:"score_threshold,omitempty"`
}

// searchListJSON is the answer of POST /search in every known shape.
type searchListJSON struct {
	Data  []searchJSON `json:"data"`
	Usage *usageJSON   `json:"usage"`
}

type searchJSON struct {
	Method string  `json:"method"`
	Score  float64 `json:"score"`
	Chunk  struct {
		ID           flexInt        `json:"id"`
		CollectionID *flexInt       `json:"collection_id"`
		Collection   *flexInt       `json:"collection"`
		DocumentID   *flexInt       `json:"document_id"`
		Document     *flexInt       `json:"document"`
		Content      string         `json:"content"`
		Metadata     map[string]any `json:"metadata"`
	} `json:"chunk"`
}

func (d searchJSON) result(asked string) SearchResult {
	ch := d.Chunk
	r := SearchResult{
		Score: d.Score, Method: d.Method, ChunkID: int(ch.ID),
		CollectionID: firstID(ch.CollectionID, ch.Collection),
		DocumentID:   firstID(ch.DocumentID, ch.Document),
		Content:      ch.Content, Metadata: ch.Metadata,
	}
	if r.Method == "" {
		r.Method = asked
	}
	if r.CollectionID == 0 {
		r.CollectionID = metaID(ch.Metadata, "collection_id")
	}
	if r.DocumentID == 0 {
		r.DocumentID = metaID(ch.Metadata, "document_id")
	}
	r.DocumentName, _ = ch.Metadata["document_name"].(string)
	for _, k := range []string{"url", "source_url", "link", "href"} {
		if s, ok := ch.Metadata[k].(string); ok && strings.TrimSpace(s) != "" {
			r.URL = strings.TrimSpace(s)
			break
		}
	}
	return r
}

type collectionJSON struct {
	ID          flexInt `json:"id"`
	Name        string  `json:"name"`
	Description *string `json:"description"`
	Visibility  string  `json:"visibility"`
	Type        string  `json:"type"`
	Documents   flexInt `json:"documents"`
}

func (d collectionJSON) collection() Collection {
	c := Collection{ID: int(d.ID), Name: d.Name, Visibility: d.Visibility, Documents: int(d.Documents)}
	if d.Description != nil {
		c.Description = *d.Description
	}
	if c.Visibility == "" && (d.Type == "public" || d.Type == "private") {
		c.Visibility = d.Type
	}
	return c
}

// flexInt is an id or a count sent as a JSON number or as a string of
// digits ("12"); null, a fraction or any other string (a 2024 UUID) reads
// as 0 rather than failing the whole answer.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	*f = 0
	var n json.Number
	if json.Unmarshal(b, &n) == nil {
		if i, err := n.Int64(); err == nil {
			*f = flexInt(i)
		} else if x, err := n.Float64(); err == nil && x == float64(int64(x)) {
			*f = flexInt(int64(x))
		}
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		if i, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			*f = flexInt(i)
		}
	}
	return nil
}

// firstID returns the first present id among the candidates, 0 if none.
func firstID(ids ...*flexInt) int {
	for _, id := range ids {
		if id != nil && *id != 0 {
			return int(*id)
		}
	}
	return 0
}

// metaID reads an id from chunk metadata (the 2025 engine put
// collection_id and document_id there): a number or a string of digits.
func metaID(meta map[string]any, key string) int {
	switch v := meta[key].(type) {
	case float64:
		if v == float64(int64(v)) {
			return int(v)
		}
	case string:
		if i, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			return i
		}
	}
	return 0
}
