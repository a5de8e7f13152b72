// Package approvals holds the access lifecycle of the Assistant IA: who asked,
// who decided, and what each agent may do now. It knows nothing of Matrix or
// SQL: it works on typed user ids through the Store it declares, and every
// decision is one guarded transition plus one audit row.
package approvals

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"time"

	"maunium.net/go/mautrix/id"
)

// Status is where an agent stands.
type Status string

// The lifecycle (see DESIGN.md): unknown -> pending -> approved -> active,
// with rejected, revoked and waitlisted on the side.
const (
	StatusUnknown    Status = ""
	StatusPending    Status = "pending"
	StatusWaitlisted Status = "waitlisted"
	StatusApproved   Status = "approved"
	StatusActive     Status = "active"
	StatusRejected   Status = "rejected"
	StatusRevoked    Status = "revoked"
)

// Open reports whether a request in this status is still alive: a closed one
// (rejected, revoked) lets the person ask again.
func (s Status) Open() bool {
	return s != StatusUnknown && s != StatusRejected && s != StatusRevoked
}

// Granted reports whether the status gives access to the assistant (consent
// may still be missing).
func (s Status) Granted() bool { return s == StatusApproved || s == StatusActive }

// Request is one access request; its ID is the number people see.
type Request struct {
	ID         int64
	UserID     id.UserID
	Status     Status
	Renewal    bool
	RoomID     id.RoomID
	EventID    id.EventID
	Reason     string
	DecidedBy  id.UserID
	DecidedAt  time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
	LastSeenAt time.Time
	// Partner is the profile whose cap and waitlist the request belongs to:
	// a PartnerRules.ID, or "" for the default profile. It is computed by
	// PartnerOf when the request is created and recomputed by
	// AssignPartners when the rules change.
	Partner string
}

// Audit actions.
const (
	ActionRequest     = "request"
	ActionAutoApprove = "auto_approve"
	ActionDeny        = "deny"
	ActionApprove     = "approve"
	ActionPreApprove  = "pre_approve"
	ActionReject      = "reject"
	ActionConsent     = "consent"
	ActionRefused     = "refused_command"
	ActionWaitlist    = "waitlist"
	ActionPromote     = "promote"
	ActionRevoke      = "revoke"
	ActionCapacity    = "capacity"
	ActionOverload    = "overload"
	// ActionReverse undoes a rejection or a revocation: access is granted
	// again by an explicit moderator command.
	ActionReverse = "reverse"
	// ActionQuota records a moderator's change of an agent's limits.
	ActionQuota = "quota"
	// ActionRefusedQuiet is a refused attempt that was not answered: the
	// person had been told within RefusalQuiet.
	ActionRefusedQuiet = "refused_command_quiet"
	// ActionUndecryptable records a support-room message guichet could not
	// decrypt and asked to be sent again; ActionUndecryptableQuiet one it
	// did not ask about (asked within RefusalQuiet).
	ActionUndecryptable      = "undecryptable"
	ActionUndecryptableQuiet = "undecryptable_quiet"
)

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	At        time.Time
	Actor     id.UserID
	Target    id.UserID
	RequestID int64
	Action    string
	Reason    string
}

// Sentinel errors, checked with errors.Is.
var (
	ErrNotFound       = errors.New("no such request")
	ErrAlreadyDecided = errors.New("request already decided")
	ErrNotGranted     = errors.New("access not granted")
	// ErrNotLatest is returned when a request number names a request that
	// a newer one of the same person has replaced.
	ErrNotLatest = errors.New("not the person's latest request")
	// ErrConflict is returned by Store.Transition when the request was no
	// longer in the expected status: someone else decided first.
	ErrConflict = errors.New("request changed concurrently")
	// ErrUnknownPartner is returned by CapacityOf and SetCapacityOf for a
	// partner id that is not in Rules.Partners.
	ErrUnknownPartner = errors.New("unknown partner")
)

// DecidedError tells who took the decision that stands in the way.
type DecidedError struct {
	Request *Request
}

func (e *DecidedError) Error() string {
	return fmt.Sprintf("request #%d is already %s", e.Request.ID, e.Request.Status)
}

// Unwrap makes errors.Is(err, ErrAlreadyDecided) hold.
func (e *DecidedError) Unwrap() error { return ErrAlreadyDecided }

// Store is what the lifecycle needs from persistence. Calls made with the
// context of Store.InTx run in that transaction.
type Store interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	// LockAccess serialises, until the transaction of ctx ends, the
	// transactions that count and change who holds access (caps and
	// waitlists are counted, then changed): SQLite's transactions already
	// exclude each other; PostgreSQL's do not.
	LockAccess(ctx context.Context) error
	// LatestRequest returns the person's most recent request or ErrNotFound.
	LatestRequest(ctx context.Context, user id.UserID) (*Request, error)
	// LatestRequestAndConsent is LatestRequest and whether the person
	// accepted the policy version, in one read (it is asked at every
	// question).
	LatestRequestAndConsent(ctx context.Context, user id.UserID, version string) (*Request, bool, error)
	// RequestByID returns one request by its number or ErrNotFound.
	RequestByID(ctx context.Context, reqID int64) (*Request, error)
	// CreateRequest inserts req and sets its ID.
	CreateRequest(ctx context.Context, req *Request) error
	// Transition moves a request from one of the from statuses to to, or
	// returns ErrConflict if it was not in one of them. An empty actor keeps
	// the recorded decision (used when consent makes access active).
	Transition(ctx context.Context, reqID int64, from []Status, to Status, actor id.UserID, reason string, at time.Time) error
	// TouchRequest records that the person spoke again.
	TouchRequest(ctx context.Context, reqID int64, at time.Time) error
	AddAudit(ctx context.Context, entry AuditEntry) error
	// LastAudit returns when user last did action about themselves (a
	// refused attempt, say); ok is false if never.
	LastAudit(ctx context.Context, user id.UserID, action string) (at time.Time, ok bool, err error)
	RecordConsent(ctx context.Context, user id.UserID, version string, at time.Time) error
	ConsentedAt(ctx context.Context, user id.UserID, version string) (time.Time, bool, error)
	// CountGranted counts the requests of partner ("" : the default
	// profile) that hold a place (approved or active).
	CountGranted(ctx context.Context, partner string) (int, error)
	// OldestWaitlisted returns the first in line among the requests of
	// partner, or ErrNotFound.
	OldestWaitlisted(ctx context.Context, partner string) (*Request, error)
	// RequestUsers lists every person who has at least one request.
	RequestUsers(ctx context.Context) ([]id.UserID, error)
	// SetRequestPartner records partner on all of user's requests and
	// returns how many requests changed.
	SetRequestPartner(ctx context.Context, user id.UserID, partner string) (int64, error)
	// Setting reads a persisted setting; ok is false when it was never set.
	Setting(ctx context.Context, key string) (value string, ok bool, err error)
	SetSetting(ctx context.Context, key, value string, at time.Time) error
}

// Setting keys owned by this package. SettingCapacity is the cap of the
// default profile; a partner's cap is SettingCapacity+":"+its id (see
// CapacityKey).
const (
	SettingCapacity = "access.max_active_users"
	SettingOverload = "overload"
)

// CapacityKey returns the setting key of partner's cap ("" : the default
// profile, SettingCapacity).
func CapacityKey(partner string) string {
	if partner == "" {
		return SettingCapacity
	}
	return SettingCapacity + ":" + partner
}

// Rules are the automatic decisions, as user-id globs (path.Match syntax),
// and the default cap on agents holding access.
type Rules struct {
	AutoApprove []string
	Deny        []string
	// MaxActive caps approved and active agents of the default profile
	// (those matching no partner); 0 means no cap. A moderator's !capacity
	// overrides it.
	MaxActive int
	// Partners are the partner profiles (config partners:), in file order:
	// an agent belongs to the first whose globs match their user id.
	Partners []PartnerRules
}

// PartnerRules is one partner institution's profile (config partners:).
type PartnerRules struct {
	// ID names the partner in settings, requests and commands; never "".
	ID string
	// Match are user-id globs (path.Match syntax, like Rules.AutoApprove).
	Match []string
	// AutoApprove approves the partner's agents as soon as they ask (never
	// over a moderator's rejection or revocation; Rules.Deny still wins).
	AutoApprove bool
	// MaxActive caps the partner's approved and active agents, apart from
	// the default profile's cap; 0 means no cap. A moderator's capacity
	// setting (CapacityKey) overrides it.
	MaxActive int
}

func matchAny(globs []string, user id.UserID) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, string(user)); ok {
			return true
		}
	}
	return false
}

// PartnerOf returns the id of the first partner in Rules.Partners whose globs
// match user, or "" (the default profile) when none does.
func (s *Service) PartnerOf(user id.UserID) string {
	if p, ok := s.partnerOf(user); ok {
		return p.ID
	}
	return ""
}

func (s *Service) partnerOf(user id.UserID) (PartnerRules, bool) {
	for _, p := range s.rules.Partners {
		if matchAny(p.Match, user) {
			return p, true
		}
	}
	return PartnerRules{}, false
}

// profile returns the rules of partner: the default profile for "", ok
// false for an id that is not in Rules.Partners.
func (s *Service) profile(partner string) (PartnerRules, bool) {
	if partner == "" {
		return PartnerRules{MaxActive: s.rules.MaxActive}, true
	}
	for _, p := range s.rules.Partners {
		if p.ID == partner {
			return p, true
		}
	}
	return PartnerRules{}, false
}

// Service applies the lifecycle.
type Service struct {
	store Store
	rules Rules
	now   func() time.Time
}

// inTx runs fn in one transaction holding the access lock (see
// Store.LockAccess): two decisions never count the same free place.
func (s *Service) inTx(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.LockAccess(ctx); err != nil {
			return err
		}
		return fn(ctx)
	})
}

// New returns a Service; now is the clock (time.Now in production).
func New(store Store, rules Rules, now func() time.Time) *Service {
	return &Service{store: store, rules: rules, now: now}
}

// AnnounceResult says what an agent's message in the support room did.
type AnnounceResult int

// The outcomes of Announce.
const (
	// Known: the person already has an open request (or access); nothing new.
	Known AnnounceResult = iota
	// Created: a new pending request.
	Created
	// AutoApproved: a new request approved at once by access.auto_approve
	// or by its partner's auto_approve (waitlisted when the partner's cap
	// is reached or overload mode is on: the status says so).
	AutoApproved
	// Denied: a new request rejected at once by access.deny.
	Denied
)

// Announce handles a message from user in the support room: it opens a request
// unless one is already open. A new request belongs to PartnerOf(user). It is
// rejected at once when user matches Rules.Deny; approved at once when user
// matches Rules.AutoApprove (reason "access.auto_approve") or belongs to a
// partner with AutoApprove (reason "partner.auto_approve"), unless a moderator
// rejected or revoked their previous request, and waitlisted instead when
// their profile's cap is reached or overload mode is on.
func (s *Service) Announce(ctx context.Context, user id.UserID, roomID id.RoomID, eventID id.EventID) (*Request, AnnounceResult, error) {
	var req *Request
	result := Known
	err := s.inTx(ctx, func(ctx context.Context) error {
		now := s.now()
		latest, err := s.store.LatestRequest(ctx, user)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		denied := matchAny(s.rules.Deny, user)
		if latest != nil && (latest.Status.Open() || denied && latest.Reason == "access.deny") {
			// Still waiting, or still not eligible: nothing new to record
			// or to answer (a denied person could otherwise flood the room).
			req = latest
			result = Known
			return s.store.TouchRequest(ctx, latest.ID, now)
		}
		partner, _ := s.partnerOf(user)
		req = &Request{
			UserID: user, Status: StatusPending, Renewal: latest != nil, Partner: partner.ID,
			RoomID: roomID, EventID: eventID,
			CreatedAt: now, UpdatedAt: now, LastSeenAt: now,
		}
		action := ActionRequest
		result = Created
		// A rule never overrides a moderator: someone they rejected or
		// revoked asks again through a pending request.
		byRule := latest == nil || latest.DecidedBy == ""
		switch {
		case denied:
			req.Status, req.Reason, action, result = StatusRejected, "access.deny", ActionDeny, Denied
		case byRule && matchAny(s.rules.AutoApprove, user):
			req.Status, req.Reason, action, result = StatusApproved, "access.auto_approve", ActionAutoApprove, AutoApproved
		case byRule && partner.AutoApprove:
			req.Status, req.Reason, action, result = StatusApproved, "partner.auto_approve", ActionAutoApprove, AutoApproved
		}
		if req.Status == StatusApproved {
			if full, err := s.full(ctx, req.Partner); err != nil {
				return err
			} else if full {
				req.Status = StatusWaitlisted
			}
		}
		if req.Status != StatusPending {
			req.DecidedAt = now
		}
		if err := s.store.CreateRequest(ctx, req); err != nil {
			return err
		}
		return s.store.AddAudit(ctx, AuditEntry{At: now, Actor: user, Target: user, RequestID: req.ID, Action: action, Reason: req.Reason})
	})
	if err != nil {
		return nil, Known, fmt.Errorf("failed to record request of %s: %w", user, err)
	}
	return req, result, nil
}

// Ref designates what a moderator's decision is about: a person (their
// latest request), or one request by its number. A number designates that
// request only: a decision never falls through to another request of the
// same person.
type Ref struct {
	User    id.UserID
	Request int64
}

// User designates a person's latest request.
func User(user id.UserID) Ref { return Ref{User: user} }

// Number designates request n.
func Number(n int64) Ref { return Ref{Request: n} }

func (r Ref) String() string {
	if r.Request != 0 {
		return "#" + strconv.FormatInt(r.Request, 10)
	}
	return r.User.String()
}

// pick loads the request ref designates, or ErrNotFound.
func (s *Service) pick(ctx context.Context, ref Ref) (*Request, error) {
	if ref.Request != 0 {
		return s.store.RequestByID(ctx, ref.Request)
	}
	return s.store.LatestRequest(ctx, ref.User)
}

// Approve grants access. A pending request is approved; a person named by
// their user id who never asked is pre-approved with a new request (of
// PartnerOf(user)). When the cap of the request's profile is reached or
// overload mode is on, the request goes to the waitlist instead (its status
// says so). Anything else is left as it is and returned
// as a *DecidedError: a granted or waitlisted request, and a rejected or
// revoked one (undoing that decision is Reverse, audited as such).
func (s *Service) Approve(ctx context.Context, actor id.UserID, ref Ref, note string) (*Request, error) {
	var req *Request
	err := s.inTx(ctx, func(ctx context.Context) error {
		now := s.now()
		latest, err := s.pick(ctx, ref)
		if errors.Is(err, ErrNotFound) && ref.Request == 0 {
			latest = nil
		} else if err != nil {
			return err
		}
		if latest != nil && latest.Status != StatusPending {
			return &DecidedError{Request: latest}
		}
		partner := s.PartnerOf(ref.User)
		if latest != nil {
			partner = latest.Partner
		}
		full, err := s.full(ctx, partner)
		if err != nil {
			return err
		}
		status, action := StatusApproved, ActionApprove
		if full {
			status, action = StatusWaitlisted, ActionWaitlist
		}
		if latest == nil {
			req = &Request{
				UserID: ref.User, Status: status, Partner: partner,
				Reason: note, DecidedBy: actor, DecidedAt: now,
				CreatedAt: now, UpdatedAt: now, LastSeenAt: now,
			}
			if err := s.store.CreateRequest(ctx, req); err != nil {
				return err
			}
			if !full {
				action = ActionPreApprove
			}
			return s.store.AddAudit(ctx, AuditEntry{At: now, Actor: actor, Target: ref.User, RequestID: req.ID, Action: action, Reason: note})
		}
		req, err = s.decide(ctx, latest, []Status{StatusPending}, status, actor, action, note)
		return err
	})
	if err != nil {
		return nil, s.explain(ctx, ref, err)
	}
	return req, nil
}

// decide moves req from one of from to to with its audit row.
func (s *Service) decide(ctx context.Context, req *Request, from []Status, to Status, actor id.UserID, action, reason string) (*Request, error) {
	now := s.now()
	if err := s.store.Transition(ctx, req.ID, from, to, actor, reason, now); err != nil {
		return nil, err
	}
	req.Status, req.DecidedBy, req.DecidedAt, req.Reason = to, actor, now, reason
	return req, s.store.AddAudit(ctx, AuditEntry{At: now, Actor: actor, Target: req.UserID, RequestID: req.ID, Action: action, Reason: reason})
}

// Reverse undoes the rejection or revocation of a person's latest request:
// access is granted again (or waitlisted when the cap of the request's
// profile is reached or overload mode is on), audited as a reversal.
// It returns a *DecidedError when the request is not rejected or revoked,
// and ErrNotLatest when a newer request of the same person replaced it.
func (s *Service) Reverse(ctx context.Context, actor id.UserID, ref Ref, note string) (*Request, error) {
	var req *Request
	err := s.inTx(ctx, func(ctx context.Context) error {
		picked, err := s.pick(ctx, ref)
		if err != nil {
			return err
		}
		if picked.Status != StatusRejected && picked.Status != StatusRevoked {
			return &DecidedError{Request: picked}
		}
		if latest, err := s.store.LatestRequest(ctx, picked.UserID); err != nil {
			return err
		} else if latest.ID != picked.ID {
			return fmt.Errorf("%w: request #%d was followed by #%d", ErrNotLatest, picked.ID, latest.ID)
		}
		full, err := s.full(ctx, picked.Partner)
		if err != nil {
			return err
		}
		to := StatusApproved
		if full {
			to = StatusWaitlisted
		}
		req, err = s.decide(ctx, picked, []Status{picked.Status}, to, actor, ActionReverse, note)
		return err
	})
	if err != nil {
		return nil, s.explain(ctx, ref, err)
	}
	return req, nil
}

// Capacity returns the cap of the default profile (0: none) and how many of
// its agents hold access now; see CapacityOf.
func (s *Service) Capacity(ctx context.Context) (limit, used int, err error) {
	return s.CapacityOf(ctx, "")
}

// CapacityOf returns partner's cap ("" : the default profile) and how many of
// its agents hold access (approved or active) now. The cap is the
// moderators' setting CapacityKey(partner) when there is one, the rules'
// MaxActive otherwise; 0 means none. It returns ErrUnknownPartner for an id
// that is not in Rules.Partners.
func (s *Service) CapacityOf(ctx context.Context, partner string) (limit, used int, err error) {
	if _, ok := s.profile(partner); !ok {
		return 0, 0, fmt.Errorf("%w: %q", ErrUnknownPartner, partner)
	}
	return s.capacity(ctx, partner)
}

func (s *Service) capacity(ctx context.Context, partner string) (limit, used int, err error) {
	limit, err = s.limit(ctx, partner)
	if err != nil {
		return 0, 0, err
	}
	used, err = s.store.CountGranted(ctx, partner)
	return limit, used, err
}

// limit is partner's cap. A partner no longer in the rules (its requests
// not yet moved by AssignPartners) keeps its setting and has no cap
// without one: a decision about its agents must not fail.
func (s *Service) limit(ctx context.Context, partner string) (int, error) {
	p, _ := s.profile(partner)
	value, ok, err := s.store.Setting(ctx, CapacityKey(partner))
	if err != nil || !ok {
		return p.MaxActive, err
	}
	n, err := strconv.Atoi(value)
	if err != nil {
		return p.MaxActive, nil
	}
	return n, nil
}

// Overloaded reports whether overload mode is on.
func (s *Service) Overloaded(ctx context.Context) (bool, error) {
	value, _, err := s.store.Setting(ctx, SettingOverload)
	return value == "on", err
}

// full reports whether a new approval in partner's profile must wait.
func (s *Service) full(ctx context.Context, partner string) (bool, error) {
	if over, err := s.Overloaded(ctx); err != nil || over {
		return over, err
	}
	limit, used, err := s.capacity(ctx, partner)
	if err != nil {
		return false, err
	}
	return limit > 0 && used >= limit, nil
}

// fill approves partner's waitlisted agents, oldest first, while there is
// room in its profile.
func (s *Service) fill(ctx context.Context, partner string) ([]*Request, error) {
	var promoted []*Request
	for {
		full, err := s.full(ctx, partner)
		if err != nil || full {
			return promoted, err
		}
		next, err := s.store.OldestWaitlisted(ctx, partner)
		if errors.Is(err, ErrNotFound) {
			return promoted, nil
		} else if err != nil {
			return promoted, err
		}
		now := s.now()
		if err := s.store.Transition(ctx, next.ID, []Status{StatusWaitlisted}, StatusApproved, "", "", now); err != nil {
			return promoted, err
		}
		next.Status = StatusApproved
		if err := s.store.AddAudit(ctx, AuditEntry{At: now, Actor: next.DecidedBy, Target: next.UserID, RequestID: next.ID, Action: ActionPromote, Reason: "capacity"}); err != nil {
			return promoted, err
		}
		promoted = append(promoted, next)
	}
}

// fillAll fills every profile: the default one first, then the partners in
// the rules' order.
func (s *Service) fillAll(ctx context.Context) ([]*Request, error) {
	promoted, err := s.fill(ctx, "")
	for _, p := range s.rules.Partners {
		if err != nil {
			break
		}
		var more []*Request
		more, err = s.fill(ctx, p.ID)
		promoted = append(promoted, more...)
	}
	return promoted, err
}

// Promote approves the waitlisted agents that fit now in every profile (the
// default one first, then the partners in the rules' order) and returns
// them: after AssignPartners moved agents between profiles, or a new
// configuration raised a cap. Each promotion is audited as ActionPromote.
func (s *Service) Promote(ctx context.Context) ([]*Request, error) {
	var promoted []*Request
	err := s.inTx(ctx, func(ctx context.Context) error {
		var err error
		promoted, err = s.fillAll(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("failed to promote waitlisted agents: %w", err)
	}
	return promoted, nil
}

// SetCapacity sets the default profile's cap (0: none) and approves its
// waitlisted agents that now fit; it returns them. See SetCapacityOf.
func (s *Service) SetCapacity(ctx context.Context, actor id.UserID, limit int) ([]*Request, error) {
	return s.SetCapacityOf(ctx, actor, "", limit)
}

// SetCapacityOf sets partner's cap ("" : the default profile; 0: none) as
// the setting CapacityKey(partner), audits it (ActionCapacity, reason "<n>"
// for the default profile, "<id>=<n>" for a partner) and approves that
// profile's waitlisted agents that now fit; it returns them. It returns
// ErrUnknownPartner for an id that is not in Rules.Partners.
func (s *Service) SetCapacityOf(ctx context.Context, actor id.UserID, partner string, limit int) ([]*Request, error) {
	if limit < 0 {
		return nil, fmt.Errorf("capacity must not be negative")
	}
	if _, ok := s.profile(partner); !ok {
		return nil, fmt.Errorf("failed to set capacity: %w: %q", ErrUnknownPartner, partner)
	}
	value := strconv.Itoa(limit)
	reason := value
	if partner != "" {
		reason = partner + "=" + value
	}
	promoted, err := s.setAndFill(ctx, actor, CapacityKey(partner), value, ActionCapacity, reason, func(ctx context.Context) ([]*Request, error) {
		return s.fill(ctx, partner)
	})
	if err != nil {
		return nil, fmt.Errorf("failed to set capacity: %w", err)
	}
	return promoted, nil
}

// SetOverload switches overload mode; switching it off approves waitlisted
// agents that fit in every profile (the default one first, then the partners
// in the rules' order), and returns them.
func (s *Service) SetOverload(ctx context.Context, actor id.UserID, on bool) ([]*Request, error) {
	value := "off"
	if on {
		value = "on"
	}
	promoted, err := s.setAndFill(ctx, actor, SettingOverload, value, ActionOverload, value, s.fillAll)
	if err != nil {
		return nil, fmt.Errorf("failed to switch overload mode: %w", err)
	}
	return promoted, nil
}

// setAndFill changes a setting that decides who fits, audits it, and
// approves the waitlisted agents that fit now (fill), in one transaction.
func (s *Service) setAndFill(ctx context.Context, actor id.UserID, key, value, action, reason string, fill func(context.Context) ([]*Request, error)) ([]*Request, error) {
	var promoted []*Request
	err := s.inTx(ctx, func(ctx context.Context) error {
		now := s.now()
		if err := s.store.SetSetting(ctx, key, value, now); err != nil {
			return err
		}
		if err := s.store.AddAudit(ctx, AuditEntry{At: now, Actor: actor, Target: actor, Action: action, Reason: reason}); err != nil {
			return err
		}
		var err error
		promoted, err = fill(ctx)
		return err
	})
	return promoted, err
}

// AssignPartners recomputes the partner of every request from the current
// rules (PartnerOf of its person), in one transaction, and returns how many
// requests changed. Run it when the rules may have changed (at start-up): a
// new partners: configuration moves agents between profiles. It changes no
// status (holders over a cap keep their access; see Promote for waitlisted
// agents that now fit) and writes no audit row: it follows the
// configuration, it is no decision.
func (s *Service) AssignPartners(ctx context.Context) (changed int, err error) {
	err = s.inTx(ctx, func(ctx context.Context) error {
		changed = 0
		users, err := s.store.RequestUsers(ctx)
		if err != nil {
			return err
		}
		for _, user := range users {
			n, err := s.store.SetRequestPartner(ctx, user, s.PartnerOf(user))
			if err != nil {
				return err
			}
			changed += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("failed to assign partners: %w", err)
	}
	return changed, nil
}

// Revoke ends the access that ref designates, with a reason, and approves
// the first waitlisted agents of the same profile (the request's partner)
// that now fit; it returns the revoked request and them. A request that holds no access is returned as a *DecidedError.
func (s *Service) Revoke(ctx context.Context, actor id.UserID, ref Ref, reason string) (*Request, []*Request, error) {
	var req *Request
	var promoted []*Request
	err := s.inTx(ctx, func(ctx context.Context) error {
		latest, err := s.pick(ctx, ref)
		if err != nil {
			return err
		}
		if !latest.Status.Granted() && latest.Status != StatusWaitlisted {
			return &DecidedError{Request: latest}
		}
		from := []Status{StatusApproved, StatusActive, StatusWaitlisted}
		if req, err = s.decide(ctx, latest, from, StatusRevoked, actor, ActionRevoke, reason); err != nil {
			return err
		}
		promoted, err = s.fill(ctx, req.Partner)
		return err
	})
	if err != nil {
		return nil, nil, s.explain(ctx, ref, err)
	}
	return req, promoted, nil
}

// Reject refuses the pending or waitlisted request ref designates, with a
// reason. Any other request is returned as a *DecidedError.
func (s *Service) Reject(ctx context.Context, actor id.UserID, ref Ref, reason string) (*Request, error) {
	var req *Request
	err := s.inTx(ctx, func(ctx context.Context) error {
		latest, err := s.pick(ctx, ref)
		if err != nil {
			return err
		}
		if latest.Status != StatusPending && latest.Status != StatusWaitlisted {
			return &DecidedError{Request: latest}
		}
		req, err = s.decide(ctx, latest, []Status{StatusPending, StatusWaitlisted}, StatusRejected, actor, ActionReject, reason)
		return err
	})
	if err != nil {
		return nil, s.explain(ctx, ref, err)
	}
	return req, nil
}

// explain turns a lost race into the decision that won it.
func (s *Service) explain(ctx context.Context, ref Ref, err error) error {
	if !errors.Is(err, ErrConflict) {
		return err
	}
	latest, lerr := s.pick(ctx, ref)
	if lerr != nil {
		return err
	}
	return &DecidedError{Request: latest}
}

// Accept records that user accepted the policy version and makes their access
// active. It returns ErrNotGranted unless access was approved.
func (s *Service) Accept(ctx context.Context, user id.UserID, version string) (*Request, error) {
	var req *Request
	err := s.inTx(ctx, func(ctx context.Context) error {
		now := s.now()
		latest, err := s.store.LatestRequest(ctx, user)
		if errors.Is(err, ErrNotFound) {
			return ErrNotGranted
		} else if err != nil {
			return err
		}
		if !latest.Status.Granted() {
			return ErrNotGranted
		}
		if _, ok, err := s.store.ConsentedAt(ctx, user, version); err != nil {
			return err
		} else if ok && latest.Status == StatusActive {
			req = latest
			return nil
		}
		if err := s.store.RecordConsent(ctx, user, version, now); err != nil {
			return err
		}
		if latest.Status == StatusApproved {
			if err := s.store.Transition(ctx, latest.ID, []Status{StatusApproved}, StatusActive, "", "", now); err != nil {
				return err
			}
			latest.Status = StatusActive
		}
		req = latest
		return s.store.AddAudit(ctx, AuditEntry{At: now, Actor: user, Target: user, RequestID: latest.ID, Action: ActionConsent, Reason: version})
	})
	if err != nil {
		return nil, fmt.Errorf("failed to record consent of %s: %w", user, err)
	}
	return req, nil
}

// Standing is where an agent stands for the assistant.
type Standing struct {
	Request *Request // nil when the person never asked
	// Consented is true when the current policy version was accepted.
	Consented bool
}

// Status returns user's standing under the current policy version.
func (s *Service) Status(ctx context.Context, user id.UserID, policyVersion string) (Standing, error) {
	latest, ok, err := s.store.LatestRequestAndConsent(ctx, user, policyVersion)
	if errors.Is(err, ErrNotFound) {
		return Standing{}, nil
	} else if err != nil {
		return Standing{}, fmt.Errorf("failed to read status of %s: %w", user, err)
	}
	return Standing{Request: latest, Consented: ok}, nil
}

// RefusalQuiet is how long guichet stays silent after telling someone that
// they may not do something: further attempts within it are audited but not
// answered, so that nobody can make guichet flood the shared room.
const RefusalQuiet = 10 * time.Minute

// Refused audits a command or reaction that someone without the right
// tried, and reports whether they should be told (they were not told within
// RefusalQuiet).
func (s *Service) Refused(ctx context.Context, actor id.UserID, what string) (tell bool, err error) {
	return s.bounded(ctx, actor, ActionRefused, ActionRefusedQuiet, what)
}

// Undecryptable audits a support-room message of actor that could not be
// decrypted and reports whether they should be asked to send it again (not
// within RefusalQuiet of the last time).
func (s *Service) Undecryptable(ctx context.Context, actor id.UserID, eventID id.EventID) (tell bool, err error) {
	return s.bounded(ctx, actor, ActionUndecryptable, ActionUndecryptableQuiet, eventID.String())
}

// bounded audits one attempt, as told when actor was last told at least
// RefusalQuiet ago (or never), as quiet otherwise.
func (s *Service) bounded(ctx context.Context, actor id.UserID, told, quiet, what string) (bool, error) {
	now := s.now()
	last, seen, err := s.store.LastAudit(ctx, actor, told)
	if err != nil {
		return false, fmt.Errorf("failed to read the last %s of %s: %w", told, actor, err)
	}
	tell := !seen || now.Sub(last) >= RefusalQuiet
	action := told
	if !tell {
		action = quiet
	}
	if err := s.store.AddAudit(ctx, AuditEntry{At: now, Actor: actor, Target: actor, Action: action, Reason: what}); err != nil {
		return false, err
	}
	return tell, nil
}

// QuotaChanged audits a moderator's change of target's limits; spec is what
// the moderator typed.
func (s *Service) QuotaChanged(ctx context.Context, actor, target id.UserID, spec string) error {
	return s.store.AddAudit(ctx, AuditEntry{At: s.now(), Actor: actor, Target: target, Action: ActionQuota, Reason: spec})
}
