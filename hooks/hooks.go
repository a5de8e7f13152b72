// Package hooks tells another service about access decisions: a signed JSON
// POST per decision, delivered by the bot's outbox.
package hooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Decisions, as sent in the payload's "decision".
const (
	Approved     = "approved"
	Waitlisted   = "waitlisted"
	Rejected     = "rejected"
	Revoked      = "revoked"
	AutoApproved = "auto_approved"
	Denied       = "denied"
	Reversed     = "reversed"
	Promoted     = "promoted"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body.
const SignatureHeader = "X-Guichet-Signature"

// DeliveryHeader carries the delivery id, the same on every retry.
const DeliveryHeader = "X-Guichet-Delivery"

// Payload is the body of one delivery.
type Payload struct {
	DeliveryID string `json:"delivery_id"`
	RequestID  int64  `json:"request_id"`
	UserID     string `json:"user_id"`
	Decision   string `json:"decision"`
	Actor      string `json:"actor"`
	Reason     string `json:"reason"`
	At         string `json:"at"`
}

// NewPayload builds the payload of a decision taken at at.
func NewPayload(deliveryID string, requestID int64, user, decision, actor, reason string, at time.Time) Payload {
	return Payload{
		DeliveryID: deliveryID, RequestID: requestID, UserID: user, Decision: decision,
		Actor: actor, Reason: reason, At: at.UTC().Format(time.RFC3339),
	}
}

// Body is the exact bytes sent (and signed) for p.
func (p Payload) Body() ([]byte, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("failed to encode a decision hook: %w", err)
	}
	return body, nil
}

// NewDeliveryID returns a random delivery id.
func NewDeliveryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Sign returns the signature header's value for body under secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify tells whether signature is body's under secret (for receivers and tests).
func Verify(secret string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(signature))
}

// StatusError is a delivery the receiver answered with a non-2xx status.
type StatusError struct{ Code int }

func (e *StatusError) Error() string { return fmt.Sprintf("decision hook answered %d", e.Code) }

// Permanent tells whether the same delivery would be refused again: a 4xx
// other than 408 and 429.
func (e *StatusError) Permanent() bool {
	return e.Code >= 400 && e.Code < 500 && e.Code != http.StatusRequestTimeout && e.Code != http.StatusTooManyRequests
}

// Sender posts deliveries to one URL.
type Sender struct {
	url    string
	secret string
	client *http.Client
}

// DefaultTimeout bounds one delivery when New is given no client.
const DefaultTimeout = 10 * time.Second

// New returns a Sender to url signing with secret; client nil uses one with
// DefaultTimeout.
func New(url, secret string, client *http.Client) *Sender {
	if client == nil {
		client = &http.Client{Timeout: DefaultTimeout}
	}
	return &Sender{url: url, secret: secret, client: client}
}

// Send posts body, signed, as delivery deliveryID. A non-2xx answer is a
// *StatusError.
func (s *Sender) Send(ctx context.Context, deliveryID string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("failed to build a decision hook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, Sign(s.secret, body))
	req.Header.Set(DeliveryHeader, deliveryID)
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("failed to post a decision hook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &StatusError{Code: resp.StatusCode}
	}
	return nil
}
