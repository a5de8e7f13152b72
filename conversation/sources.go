package conversation

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"guichet/albert"
)

// Source is one excerpt given to the assistant with a question.
type Source struct {
	// N is the excerpt's number in the prompt, from 1: the answer cites it
	// as [N].
	N            int     `json:"n"`
	DocumentID   int     `json:"document_id"`
	Document     string  `json:"document,omitempty"` // the document's name ("" if unknown)
	CollectionID int     `json:"collection_id"`
	Collection   string  `json:"collection,omitempty"` // the collection's name ("" if unknown)
	URL          string  `json:"url,omitempty"`        // from the excerpt's metadata
	Score        float64 `json:"score"`
	// Content is the excerpt's text. Recorded exchanges keep at most its
	// first RecordedExcerpt characters, cut at a word and marked with "…".
	Content string `json:"content"`
}

// RecordedExcerpt is how much of an excerpt's text is recorded with an
// exchange (what !sources shows), in characters.
const RecordedExcerpt = 300

// DocumentName is the document's name, or "document n° ID" when unknown.
func (s Source) DocumentName() string {
	if s.Document != "" {
		return s.Document
	}
	return "document n° " + strconv.Itoa(s.DocumentID)
}

var citation = regexp.MustCompile(`\[(\d{1,3})\]`)

// Cited returns the sources that answer cites as [N], in the order of their
// numbers; nil when it cites none (a thank-you given excerpts does not end
// with a list of documents; !sources still shows what it was given).
func Cited(answer string, sources []Source) []Source {
	if len(sources) == 0 {
		return nil
	}
	seen := map[int]bool{}
	for _, m := range citation.FindAllStringSubmatch(answer, -1) {
		n, _ := strconv.Atoi(m[1])
		seen[n] = true
	}
	var out []Source
	for _, src := range sources {
		if seen[src.N] {
			out = append(out, src)
		}
	}
	return out
}

// Names of documents and collections change rarely; documents are looked up
// one by one (GET /documents/{id}), so their names are kept.
const (
	collectionsTTL  = 10 * time.Minute
	maxDocumentName = 20000 // names kept; past it, the cache starts again
)

// listTimeout bounds GET /collections, whoever waits for it.
const listTimeout = 3 * time.Second

// names caches what Albert says of collections and documents.
type names struct {
	lib Library
	now func() time.Time

	mu          sync.Mutex
	docs        map[int]string
	colls       map[int]albert.Collection
	collsAt     time.Time
	collsFailAt time.Time
}

func newNames(lib Library, now func() time.Time) *names {
	return &names{lib: lib, now: now, docs: map[int]string{}}
}

// collections returns Albert's collections by id, refreshed every
// collectionsTTL; on failure the last list (maybe none) and the error. A
// failure is not retried for a minute, so that a broken /collections does
// not cost every question a call.
func (n *names) collections(ctx context.Context) (map[int]albert.Collection, error) {
	n.mu.Lock()
	fresh := n.colls != nil && n.now().Sub(n.collsAt) < collectionsTTL
	failedRecently := !n.collsFailAt.IsZero() && n.now().Sub(n.collsFailAt) < time.Minute
	colls := n.colls
	n.mu.Unlock()
	if fresh || failedRecently {
		return colls, nil // a failure is not retried for a minute: the last list, maybe none
	}
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	list, err := n.lib.Collections(ctx)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		n.collsFailAt = n.now()
		return n.colls, err
	}
	n.colls = make(map[int]albert.Collection, len(list))
	for _, c := range list {
		n.colls[c.ID] = c
	}
	n.collsAt, n.collsFailAt = n.now(), time.Time{}
	return n.colls, nil
}

// fill names the documents and collections of sources, asking Albert for
// the documents it does not know yet (concurrently). A name that cannot be
// read stays "": the excerpt is still used.
func (n *names) fill(ctx context.Context, sources []Source) {
	colls, _ := n.collections(ctx)
	n.mu.Lock()
	var missing []int
	for i := range sources {
		if sources[i].Document == "" {
			if name, ok := n.docs[sources[i].DocumentID]; ok {
				sources[i].Document = name
			} else if !slices.Contains(missing, sources[i].DocumentID) {
				missing = append(missing, sources[i].DocumentID)
			}
		}
		if c, ok := colls[sources[i].CollectionID]; ok {
			sources[i].Collection = c.Name
		}
	}
	n.mu.Unlock()
	if len(missing) == 0 {
		return
	}
	got := make([]string, len(missing))
	var wg sync.WaitGroup
	for i, docID := range missing {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if doc, err := n.lib.Document(ctx, docID); err == nil {
				got[i] = doc.Name
			}
		}()
	}
	wg.Wait()
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.docs)+len(missing) > maxDocumentName {
		n.docs = map[int]string{}
	}
	for i, docID := range missing {
		if got[i] != "" {
			n.docs[docID] = got[i]
		}
	}
	for i := range sources {
		if sources[i].Document == "" {
			sources[i].Document = n.docs[sources[i].DocumentID]
		}
	}
}
