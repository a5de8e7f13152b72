package fakealbert

import (
	"net/http"
	"slices"
	"time"

	"guichet/albert"
)

// Account: GET /v1/me/info in the 2026 shape of albert-api.md ("Account:
// /me/info and /me/usage"), and FailAlways, the persistent failure of chat
// calls of a key whose window or budget stays spent.

// Fixed parts of the served account, so that answers are stable.
const (
	// AccountID is the served "id".
	AccountID = 1
	// AccountEmail is the served "email".
	AccountEmail = "fakealbert@example.invalid"
	// AccountOrganization is the served "organization" (an id, as in 2026).
	AccountOrganization = 1
)

// Account is the account GET /v1/me/info serves. The rest of the answer is
// fixed: "id" AccountID, "email" AccountEmail, "organization"
// AccountOrganization, "permissions" [], "priority" 0, "created" and
// "updated" 1760000000.
type Account struct {
	// Budget is the euros left, served as "budget"; nil is served as null
	// (unlimited).
	Budget *float64
	// Expires is served as "expires" in unix seconds (fraction dropped);
	// the zero time is served as null (never expires).
	Expires time.Time
	// Name is served as "name" as is ("" stays "").
	Name string
	// Limits are served as "limits", [] when empty; a nil Value is served
	// as null (unlimited). They are not enforced: use FailNextWith or
	// FailAlways for the 429s.
	Limits []albert.AccountLimit
}

// DefaultAccount is the account served unless SetAccount is called:
// unlimited budget, never expires, name "fake", and the published
// production limits of one router (id 1): 50 requests a minute, 5,000 a
// day, input tokens unlimited.
func DefaultAccount() Account {
	return Account{
		Name: "fake",
		Limits: []albert.AccountLimit{
			{Router: 1, Type: albert.LimitRPM, Value: ptr(50)},
			{Router: 1, Type: albert.LimitRPD, Value: ptr(5000)},
			{Router: 1, Type: albert.LimitTPM},
			{Router: 1, Type: albert.LimitTPD},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// SetAccount sets the account served by GET /v1/me/info. It is copied:
// changing a in place afterwards changes nothing.
func (s *Server) SetAccount(a Account) {
	a = cloneAccount(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.account = a
}

// MeInfoCalls returns the number of GET /v1/me/info received, refused ones
// (bad key) included.
func (s *Server) MeInfoCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.meInfoCalls
}

// FailAlways makes every chat call with the right key answer f until
// StopFailing: a key stuck on PerMinuteLimit(50), PerDayLimit(1000) or
// InsufficientBudget(), for benchmarks. It comes after FailNext: while
// FailNext/FailNextWith has calls left they answer its failure (and use
// one up), and only then do calls answer f. Like FailNext it goes before
// the model checks (CloseModel, unknown model) and after the key and body
// checks (401, 422). A Failure with Status 0 is the same as StopFailing.
// Retrieval and GET /v1/me/info are not affected.
func (s *Server) FailAlways(f Failure) {
	f.Header = f.Header.Clone()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failAlways = f
}

// StopFailing undoes FailAlways; calls left to FailNext still fail.
func (s *Server) StopFailing() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failAlways = Failure{}
}

func cloneAccount(a Account) Account {
	if a.Budget != nil {
		a.Budget = ptr(*a.Budget)
	}
	a.Limits = slices.Clone(a.Limits)
	for i, l := range a.Limits {
		if l.Value != nil {
			a.Limits[i].Value = ptr(*l.Value)
		}
	}
	return a
}

// meInfo serves GET /v1/me/info with the key checked as on other routes.
func (s *Server) meInfo(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.meInfoCalls++
	a := s.account // never changed in place: SetAccount stores a copy
	s.mu.Unlock()
	if !s.authorized(r) {
		writeDetail(w, http.StatusUnauthorized, detailAuth)
		return
	}
	limits := make([]map[string]any, 0, len(a.Limits))
	for _, l := range a.Limits {
		var v any
		if l.Value != nil {
			v = *l.Value
		}
		limits = append(limits, map[string]any{"router": l.Router, "type": l.Type, "value": v})
	}
	var budget, expires any
	if a.Budget != nil {
		budget = *a.Budget
	}
	if !a.Expires.IsZero() {
		expires = a.Expires.Unix()
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "userInfo", "id": AccountID, "email": AccountEmail, "name": a.Name,
		"organization": AccountOrganization, "budget": budget, "permissions": []string{},
		"limits": limits, "expires": expires, "priority": 0,
		"created": chunkCreated, "updated": chunkCreated,
	})
}
