package albert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Account: GET /me/info (albert-api.md, "Account: /me/info and /me/usage").
// The answer is read in its 2026 shape ("object": "userInfo", "expires",
// "limits" keyed by router) and in the one before late 2025 ("expires_at",
// "created_at", no limits).

// Limit types of AccountLimit.Type.
const (
	// LimitRPM is requests per minute.
	LimitRPM = "rpm"
	// LimitRPD is requests per day.
	LimitRPD = "rpd"
	// LimitTPM is input tokens per minute.
	LimitTPM = "tpm"
	// LimitTPD is input tokens per day.
	LimitTPD = "tpd"
)

// Account is GET /v1/me/info: what the key's account may spend and until
// when.
type Account struct {
	// ID is the account's id as a string whatever its JSON type (an integer
	// since 2025: "42"); "" when null or absent.
	ID string
	// Name is the account's name, "" when null.
	Name string
	// Email is the account's email address.
	Email string
	// Organization is the organization's id as a string whatever its JSON
	// type (an integer in 2026); "" when null or absent.
	Organization string
	// Budget is what the account has left to spend, in euros (the unit of
	// the costs Albert reports); nil means unlimited (JSON null or absent).
	// It can reach 0 or below: calls then fail with ClassBudget.
	Budget *float64
	// Expires is when the account, and so the key, stops working; the zero
	// time means never. It is read from "expires" (2026), else
	// "expires_at" (before late 2025), whichever is not null: unix seconds
	// (integer or fraction, 0 meaning never; returned in UTC) or a date
	// string (RFC 3339; without a zone it is taken as UTC).
	Expires time.Time
	// Limits are the account's rate limits per model router; empty when the
	// answer has none (before 2026). Router ids are not those of /models:
	// GET /models does not expose them.
	Limits []AccountLimit
	// Priority is the account's scheduling priority (higher is served
	// first for non-streaming calls); 0 when absent.
	Priority int
}

// AccountLimit is one rate limit of an account on one model router.
type AccountLimit struct {
	// Router is the router id the limit applies to.
	Router int
	// Type is LimitRPM, LimitRPD, LimitTPM or LimitTPD ("rpm", "rpd",
	// "tpm", "tpd"), as sent.
	Type string
	// Value is the number of requests or input tokens allowed per window;
	// nil means unlimited. 0 closes the router's models to the key (403
	// "Insufficient permissions to access the model.", ClassModelClosed).
	Value *int
}

// MeInfo fetches the key's account with GET /v1/me/info: budget left,
// expiry, rate limits. Every error is an *Error, classified as for the other
// calls (fromStatus): 401 and 403 "Invalid API key." are ClassAuth, 404 (an
// instance without the route) ClassNotFound, 5xx ClassUpstream, a
// transport failure ClassNetwork or ClassTimeout. A 2xx answer that is not
// JSON, or whose budget, expiry or limit value is neither null nor a number
// (or a date, for the expiry), is ClassUpstream: reading it as "unlimited"
// or "never" would hide a spent budget. The call is bounded by 30 s (or the
// client's idle timeout when shorter).
func (c *Client) MeInfo(ctx context.Context) (Account, error) {
	// retrievalCall is a plain authorized JSON call: 30 s bound, body
	// limit, errors through fromStatus.
	raw, status, err := c.retrievalCall(ctx, http.MethodGet, "/me/info", nil)
	if err != nil {
		return Account{}, err
	}
	var d accountJSON
	if err := json.Unmarshal(raw, &d); err != nil {
		return Account{}, &Error{Class: ClassUpstream, Status: status,
			Detail: "unreadable account", Err: fmt.Errorf("failed to decode /me/info: %w", err)}
	}
	acc, err := d.account()
	if err != nil {
		return Account{}, &Error{Class: ClassUpstream, Status: status,
			Detail: "unreadable account", Err: fmt.Errorf("failed to decode /me/info: %w", err)}
	}
	return acc, nil
}

// accountJSON is the answer of GET /me/info in every known shape. Fields
// whose null has a meaning are kept raw and read by account.
type accountJSON struct {
	ID           json.RawMessage `json:"id"`
	Email        string          `json:"email"`
	Name         string          `json:"name"`
	Organization json.RawMessage `json:"organization"`
	Budget       json.RawMessage `json:"budget"`
	Expires      json.RawMessage `json:"expires"`
	ExpiresAt    json.RawMessage `json:"expires_at"`
	Limits       []struct {
		Router flexInt         `json:"router"`
		Type   string          `json:"type"`
		Value  json.RawMessage `json:"value"`
	} `json:"limits"`
	Priority flexInt `json:"priority"`
}

func (d accountJSON) account() (Account, error) {
	a := Account{
		ID: idString(d.ID), Email: d.Email, Name: d.Name,
		Organization: idString(d.Organization), Priority: int(d.Priority),
	}
	var err error
	if a.Budget, err = nullableFloat(d.Budget); err != nil {
		return Account{}, fmt.Errorf("budget: %w", err)
	}
	exp := d.Expires
	if isNull(exp) {
		exp = d.ExpiresAt
	}
	if a.Expires, err = unixOrDate(exp); err != nil {
		return Account{}, fmt.Errorf("expiry: %w", err)
	}
	for _, l := range d.Limits {
		v, err := nullableFloat(l.Value)
		if err != nil {
			return Account{}, fmt.Errorf("limit %s of router %d: %w", l.Type, l.Router, err)
		}
		lim := AccountLimit{Router: int(l.Router), Type: l.Type}
		if v != nil {
			if *v != math.Trunc(*v) || math.Abs(*v) > math.MaxInt32 {
				return Account{}, fmt.Errorf("limit %s of router %d: %g is not a count", l.Type, l.Router, *v)
			}
			n := int(*v)
			lim.Value = &n
		}
		a.Limits = append(a.Limits, lim)
	}
	return a, nil
}

// isNull reports whether a raw value is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// idString reads an id of any JSON type as a string: a number as written
// ("42"), a string as is, null or absent as ""; anything else (an object)
// as its raw JSON.
func idString(raw json.RawMessage) string {
	if isNull(raw) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(bytes.TrimSpace(raw))
}

// nullableFloat reads a number that null (or absence) makes unlimited: nil
// for null, the number for a JSON number or a string holding one ("12.5");
// anything else is an error.
func nullableFloat(raw json.RawMessage) (*float64, error) {
	if isNull(raw) {
		return nil, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err == nil {
		return &f, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return &f, nil
		}
	}
	return nil, fmt.Errorf("not a number: %s", truncate(string(raw)))
}

// dateLayouts are the date strings an expiry may come as: RFC 3339 (with
// or without fraction), Python's isoformat without zone (read as UTC), and
// a bare date.
var dateLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02"}

// unixOrDate reads an expiry: the zero time for null, absence or 0; unix
// seconds as a JSON number (integer or fraction) or a string of digits; or
// a date string in one of dateLayouts. Anything else is an error.
func unixOrDate(raw json.RawMessage) (time.Time, error) {
	if isNull(raw) {
		return time.Time{}, nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return unixSeconds(string(n))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, fmt.Errorf("neither seconds nor a date: %s", truncate(string(raw)))
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := unixSeconds(s); err == nil {
		return t, nil
	}
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("neither seconds nor a date: %q", truncate(s))
}

// unixSeconds reads a number of seconds since 1970 (integer or fraction)
// as a UTC time, 0 reading as the zero time.
func unixSeconds(s string) (time.Time, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		if i == 0 {
			return time.Time{}, nil
		}
		return time.Unix(i, 0).UTC(), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e12 {
		return time.Time{}, fmt.Errorf("not unix seconds: %q", s)
	}
	if f == 0 {
		return time.Time{}, nil
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
}
