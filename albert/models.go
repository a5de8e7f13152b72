package albert

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Model types as reported by GET /models.
const (
	// TypeTextGeneration is the type of chat models.
	TypeTextGeneration = "text-generation"
	// TypeEmbeddings is the type of embedding models.
	TypeEmbeddings = "text-embeddings-inference"
)

// Model is one entry of GET /models.
type Model struct {
	// ID is the name to send as "model"; it is stable, unlike aliases.
	ID string
	// Type is "text-generation" for chat models (see TypeTextGeneration).
	Type string
	// Aliases are other accepted names; they get renamed without notice.
	Aliases []string
	// MaxContextLength is the context window in tokens, 0 when unknown.
	MaxContextLength int
}

// modelsTimeout bounds GET /models, a small JSON answer.
const modelsTimeout = 30 * time.Second

// Models lists the models the key can see. It parses the JSON itself since
// go-openai's model type lacks type and aliases. Every error is an *Error.
func (c *Client) Models(ctx context.Context) ([]Model, error) {
	ctx, cancel := context.WithTimeout(ctx, min(modelsTimeout, c.idle))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/models", nil)
	if err != nil {
		return nil, &Error{Class: ClassInvalid, Detail: "bad base URL", Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, Classify(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, Classify(err)
	}
	if resp.StatusCode >= 400 {
		return nil, fromStatus(resp.StatusCode, detailFromBody(body), resp.Header, nil)
	}
	var list struct {
		Data []struct {
			ID               string   `json:"id"`
			Type             string   `json:"type"`
			Aliases          []string `json:"aliases"`
			MaxContextLength *int     `json:"max_context_length"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, &Error{Class: ClassUpstream, Status: resp.StatusCode,
			Detail: "unreadable model list", Err: fmt.Errorf("failed to decode models: %w", err)}
	}
	models := make([]Model, 0, len(list.Data))
	for _, d := range list.Data {
		m := Model{ID: d.ID, Type: d.Type, Aliases: d.Aliases}
		if d.MaxContextLength != nil {
			m.MaxContextLength = *d.MaxContextLength
		}
		models = append(models, m)
	}
	return models, nil
}
