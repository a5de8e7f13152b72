package approvals_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"guichet/approvals"
	"guichet/internal/fakeclock"
	"guichet/internal/testdb"
	"guichet/store"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

const (
	agent   = id.UserID("@jean.dupont-interieur.gouv.fr:agent.interieur.tchap.gouv.fr")
	dinum   = id.UserID("@marie.curie-dinum.gouv.fr:agent.dinum.tchap.gouv.fr")
	externe = id.UserID("@john.doe-gmail.com:agent.externe.tchap.gouv.fr")
	mod1    = id.UserID("@mod1-dinum.gouv.fr:agent.dinum.tchap.gouv.fr")
	mod2    = id.UserID("@mod2-dinum.gouv.fr:agent.dinum.tchap.gouv.fr")
	support = id.RoomID("!support:agent.dinum.tchap.gouv.fr")
)

var defaultRules = approvals.Rules{
	AutoApprove: []string{"@*:agent.dinum.tchap.gouv.fr"},
	Deny:        []string{"@*:agent.externe.tchap.gouv.fr"},
}

type env struct {
	t   *testing.T
	ctx context.Context
	st  *store.Store
	svc *approvals.Service
	clk *fakeclock.Clock
	evt int
}

func newEnv(t *testing.T, rules approvals.Rules) *env {
	t.Helper()
	db := testdb.Open(t)
	st := store.New(db, zerolog.Nop())
	ctx := context.Background()
	if err := st.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	clk := fakeclock.New(t0)
	return &env{t: t, ctx: ctx, st: st, svc: approvals.New(st, rules, clk.Now), clk: clk}
}

func (e *env) tick() time.Time { return e.clk.Advance(time.Minute) }

func (e *env) announce(user id.UserID) (*approvals.Request, approvals.AnnounceResult) {
	e.t.Helper()
	e.tick()
	e.evt++
	req, res, err := e.svc.Announce(e.ctx, user, support, id.EventID(fmt.Sprintf("$msg%d", e.evt)))
	if err != nil {
		e.t.Fatalf("Announce(%s): %v", user, err)
	}
	return req, res
}

func (e *env) latest(user id.UserID) *approvals.Request {
	e.t.Helper()
	req, err := e.st.LatestRequest(e.ctx, user)
	if errors.Is(err, approvals.ErrNotFound) {
		return nil
	} else if err != nil {
		e.t.Fatal(err)
	}
	return req
}

func (e *env) audit(user id.UserID) []approvals.AuditEntry {
	e.t.Helper()
	rows, err := e.st.Audit(e.ctx, user)
	if err != nil {
		e.t.Fatal(err)
	}
	return rows
}

func (e *env) actions(user id.UserID) []string {
	e.t.Helper()
	var out []string
	for _, row := range e.audit(user) {
		out = append(out, row.Action)
	}
	return out
}

// step brings user to some state; it fails the test if it cannot.
type step func(e *env, user id.UserID)

func must(err error, e *env) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("setup: %v", err)
	}
}

var (
	announced step = func(e *env, u id.UserID) { e.announce(u) }
	approved  step = func(e *env, u id.UserID) {
		e.tick()
		_, err := e.svc.Approve(e.ctx, mod1, approvals.User(u), "note de mod1")
		must(err, e)
	}
	rejected step = func(e *env, u id.UserID) {
		e.tick()
		_, err := e.svc.Reject(e.ctx, mod1, approvals.User(u), "compte personnel")
		must(err, e)
	}
	accepted step = func(e *env, u id.UserID) {
		e.tick()
		_, err := e.svc.Accept(e.ctx, u, "v1")
		must(err, e)
	}
	revoked step = func(e *env, u id.UserID) {
		e.tick()
		_, _, err := e.svc.Revoke(e.ctx, mod1, approvals.User(u), "départ")
		must(err, e)
	}
	// waitlisted fills the only place with someone else first.
	waitlisted step = func(e *env, u id.UserID) {
		e.tick()
		_, err := e.svc.SetCapacity(e.ctx, mod1, 1)
		must(err, e)
		_, err = e.svc.Approve(e.ctx, mod1, approvals.User("@placeholder:agent.interieur.tchap.gouv.fr"), "")
		must(err, e)
		req, err := e.svc.Approve(e.ctx, mod1, approvals.User(u), "")
		must(err, e)
		if req.Status != approvals.StatusWaitlisted {
			e.t.Fatalf("setup: status %s, want waitlisted", req.Status)
		}
	}
)

func TestAnnounce(t *testing.T) {
	tests := []struct {
		name        string
		rules       *approvals.Rules // nil: defaultRules
		user        id.UserID
		setup       []step
		wantResult  approvals.AnnounceResult
		wantStatus  approvals.Status
		wantNew     bool // a new request, with a number never seen
		wantRenewal bool
		wantReason  string
		wantActions []string
	}{
		{
			name: "first message opens a pending request", user: agent,
			wantResult: approvals.Created, wantStatus: approvals.StatusPending, wantNew: true,
			wantActions: []string{"request"},
		},
		{
			name: "again while pending", user: agent, setup: []step{announced},
			wantResult: approvals.Known, wantStatus: approvals.StatusPending,
			wantActions: []string{"request"},
		},
		{
			name: "again while approved", user: agent, setup: []step{announced, approved},
			wantResult: approvals.Known, wantStatus: approvals.StatusApproved, wantReason: "note de mod1",
			wantActions: []string{"request", "approve"},
		},
		{
			name: "again while active", user: agent, setup: []step{announced, approved, accepted},
			wantResult: approvals.Known, wantStatus: approvals.StatusActive, wantReason: "note de mod1",
			wantActions: []string{"request", "approve", "consent"},
		},
		{
			name: "again while waitlisted", user: agent, setup: []step{announced, waitlisted},
			wantResult: approvals.Known, wantStatus: approvals.StatusWaitlisted,
			wantActions: []string{"request", "waitlist"},
		},
		{
			name: "after rejection: a renewal", user: agent, setup: []step{announced, rejected},
			wantResult: approvals.Created, wantStatus: approvals.StatusPending, wantNew: true, wantRenewal: true,
			wantActions: []string{"request", "reject", "request"},
		},
		{
			name: "after revocation: a renewal", user: agent, setup: []step{announced, approved, revoked},
			wantResult: approvals.Created, wantStatus: approvals.StatusPending, wantNew: true, wantRenewal: true,
			wantActions: []string{"request", "approve", "revoke", "request"},
		},
		{
			name: "auto-approved", user: dinum,
			wantResult: approvals.AutoApproved, wantStatus: approvals.StatusApproved, wantNew: true,
			wantReason: "access.auto_approve", wantActions: []string{"auto_approve"},
		},
		{
			// A rule never overrides a moderator's revocation or rejection.
			name: "revoked by a moderator: pending again, not auto-approved", user: dinum, setup: []step{announced, revoked},
			wantResult: approvals.Created, wantStatus: approvals.StatusPending, wantNew: true, wantRenewal: true,
			wantActions: []string{"auto_approve", "revoke", "request"},
		},
		{
			name: "denied", user: externe,
			wantResult: approvals.Denied, wantStatus: approvals.StatusRejected, wantNew: true,
			wantReason: "access.deny", wantActions: []string{"deny"},
		},
		{
			name:       "deny wins over auto-approve",
			rules:      &approvals.Rules{AutoApprove: []string{"@*:agent.dinum.tchap.gouv.fr"}, Deny: []string{"@*-gmail.com:*"}},
			user:       "@paul-gmail.com:agent.dinum.tchap.gouv.fr",
			wantResult: approvals.Denied, wantStatus: approvals.StatusRejected, wantNew: true,
			wantReason: "access.deny", wantActions: []string{"deny"},
		},
		{
			name: "auto-approve glob matches the whole server name", user: "@eve:agent.dinum.tchap.gouv.fr.example.org",
			wantResult: approvals.Created, wantStatus: approvals.StatusPending, wantNew: true,
			wantActions: []string{"request"},
		},
		{
			name: "auto-approve glob does not match a sibling server", user: "@eve:agent.dinum2.tchap.gouv.fr",
			wantResult: approvals.Created, wantStatus: approvals.StatusPending, wantNew: true,
			wantActions: []string{"request"},
		},
		{
			name: "no rules", rules: &approvals.Rules{}, user: dinum,
			wantResult: approvals.Created, wantStatus: approvals.StatusPending, wantNew: true,
			wantActions: []string{"request"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := defaultRules
			if tt.rules != nil {
				rules = *tt.rules
			}
			e := newEnv(t, rules)
			for _, s := range tt.setup {
				s(e, tt.user)
			}
			before := e.latest(tt.user)

			req, res := e.announce(tt.user)
			now := e.clk.Now()
			if res != tt.wantResult {
				t.Errorf("result = %d, want %d", res, tt.wantResult)
			}
			if req.Status != tt.wantStatus || req.UserID != tt.user || req.Renewal != tt.wantRenewal || req.Reason != tt.wantReason {
				t.Errorf("request = %+v\nwant status %s, renewal %v, reason %q", req, tt.wantStatus, tt.wantRenewal, tt.wantReason)
			}
			stored := e.latest(tt.user)
			if stored.ID != req.ID || stored.Status != req.Status {
				t.Errorf("stored %+v, returned %+v", stored, req)
			}
			if !stored.LastSeenAt.Equal(now) {
				t.Errorf("LastSeenAt = %s, want %s", stored.LastSeenAt, now)
			}
			if tt.wantNew {
				if before != nil && req.ID <= before.ID {
					t.Errorf("new request #%d, previous #%d: want a new number", req.ID, before.ID)
				}
				if !stored.CreatedAt.Equal(now) || stored.RoomID != support || stored.EventID != id.EventID(fmt.Sprintf("$msg%d", e.evt)) {
					t.Errorf("new request %+v: want created now from the support message", stored)
				}
				if tt.wantStatus != approvals.StatusPending && !stored.DecidedAt.Equal(now) {
					t.Errorf("DecidedAt = %s, want %s for an automatic decision", stored.DecidedAt, now)
				}
				if tt.wantStatus == approvals.StatusPending && (!stored.DecidedAt.IsZero() || stored.DecidedBy != "") {
					t.Errorf("pending request carries a decision: %+v", stored)
				}
			} else if before == nil || req.ID != before.ID || !stored.CreatedAt.Equal(before.CreatedAt) {
				t.Errorf("request %+v, want the existing one %+v", req, before)
			}
			if got := e.actions(tt.user); !slices.Equal(got, tt.wantActions) {
				t.Errorf("audit = %v, want %v", got, tt.wantActions)
			}
			if tt.wantNew {
				last := e.audit(tt.user)[len(tt.wantActions)-1]
				if last.Actor != tt.user || last.Target != tt.user || last.RequestID != req.ID || !last.At.Equal(now) || last.Reason != tt.wantReason {
					t.Errorf("audit row = %+v", last)
				}
			}
		})
	}
}

func TestApprove(t *testing.T) {
	tests := []struct {
		name         string
		user         id.UserID
		setup        []step
		wantErr      error
		wantDecider  id.UserID // in the DecidedError
		wantStatus   approvals.Status
		wantNew      bool // pre-approval: a new request
		wantRenewal  bool
		wantActions  []string
		wantNoChange bool
	}{
		{
			name: "pending", user: agent, setup: []step{announced},
			wantStatus: approvals.StatusApproved, wantActions: []string{"request", "approve"},
		},
		{
			name: "unknown person is pre-approved", user: agent,
			wantStatus: approvals.StatusApproved, wantNew: true, wantActions: []string{"pre_approve"},
		},
		{
			// Undoing a decision is Reverse, never a side effect of approve.
			name: "rejected person is not silently approved", user: agent, setup: []step{announced, rejected},
			wantErr: approvals.ErrAlreadyDecided, wantDecider: mod1, wantStatus: approvals.StatusRejected,
			wantActions: []string{"request", "reject"},
		},
		{
			name: "revoked person is not silently approved", user: agent, setup: []step{announced, approved, revoked},
			wantErr: approvals.ErrAlreadyDecided, wantDecider: mod1, wantStatus: approvals.StatusRevoked,
			wantActions: []string{"request", "approve", "revoke"},
		},
		{
			name: "denied person is not silently approved", user: externe, setup: []step{announced},
			wantErr: approvals.ErrAlreadyDecided, wantDecider: "", wantStatus: approvals.StatusRejected,
			wantActions: []string{"deny"},
		},
		{
			name: "already approved", user: agent, setup: []step{announced, approved},
			wantErr: approvals.ErrAlreadyDecided, wantDecider: mod1, wantStatus: approvals.StatusApproved,
			wantActions: []string{"request", "approve"},
		},
		{
			name: "already active", user: agent, setup: []step{announced, approved, accepted},
			wantErr: approvals.ErrAlreadyDecided, wantDecider: mod1, wantStatus: approvals.StatusActive,
			wantActions: []string{"request", "approve", "consent"},
		},
		{
			name: "already auto-approved", user: dinum, setup: []step{announced},
			wantErr: approvals.ErrAlreadyDecided, wantDecider: "", wantStatus: approvals.StatusApproved,
			wantActions: []string{"auto_approve"},
		},
		{
			name: "waitlisted", user: agent, setup: []step{announced, waitlisted},
			wantErr: approvals.ErrAlreadyDecided, wantDecider: mod1, wantStatus: approvals.StatusWaitlisted,
			wantActions: []string{"request", "waitlist"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, defaultRules)
			for _, s := range tt.setup {
				s(e, tt.user)
			}
			before := e.latest(tt.user)
			now := e.tick()
			req, err := e.svc.Approve(e.ctx, mod2, approvals.User(tt.user), "équipe projet")
			after := e.latest(tt.user)

			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Approve: err = %v, want %v", err, tt.wantErr)
				}
				var decided *approvals.DecidedError
				if !errors.As(err, &decided) {
					t.Fatalf("Approve: err %T, want *DecidedError", err)
				}
				if decided.Request.DecidedBy != tt.wantDecider || decided.Request.Status != tt.wantStatus || decided.Request.ID != before.ID {
					t.Errorf("DecidedError.Request = %+v, want #%d %s by %q", decided.Request, before.ID, tt.wantStatus, tt.wantDecider)
				}
				if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("#%d", before.ID)) || !strings.Contains(msg, string(tt.wantStatus)) {
					t.Errorf("message %q names neither the request nor its status", msg)
				}
				if after.Status != before.Status || after.DecidedBy != before.DecidedBy || !after.UpdatedAt.Equal(before.UpdatedAt) {
					t.Errorf("a refused approval changed the request: %+v -> %+v", before, after)
				}
			} else {
				if err != nil {
					t.Fatalf("Approve: %v", err)
				}
				if req.Status != tt.wantStatus || req.DecidedBy != mod2 || req.Reason != "équipe projet" || !req.DecidedAt.Equal(now) || req.Renewal != tt.wantRenewal {
					t.Errorf("returned %+v", req)
				}
				if after.ID != req.ID || after.Status != tt.wantStatus || after.DecidedBy != mod2 || after.Reason != "équipe projet" || !after.DecidedAt.Equal(now) {
					t.Errorf("stored %+v", after)
				}
				if isNew := before == nil || after.ID != before.ID; isNew != tt.wantNew {
					t.Errorf("new request = %v, want %v (before %+v, after %+v)", isNew, tt.wantNew, before, after)
				}
				last := e.audit(tt.user)[len(tt.wantActions)-1]
				if last.Actor != mod2 || last.Target != tt.user || last.RequestID != req.ID || last.Reason != "équipe projet" || !last.At.Equal(now) {
					t.Errorf("audit row = %+v", last)
				}
			}
			if got := e.actions(tt.user); !slices.Equal(got, tt.wantActions) {
				t.Errorf("audit = %v, want %v", got, tt.wantActions)
			}
		})
	}
}

func TestReject(t *testing.T) {
	tests := []struct {
		name        string
		user        id.UserID
		setup       []step
		wantErr     error
		wantDecider id.UserID
		wantStatus  approvals.Status
		wantActions []string
	}{
		{
			name: "pending", user: agent, setup: []step{announced},
			wantStatus: approvals.StatusRejected, wantActions: []string{"request", "reject"},
		},
		{
			name: "waitlisted", user: agent, setup: []step{announced, waitlisted},
			wantStatus: approvals.StatusRejected, wantActions: []string{"request", "waitlist", "reject"},
		},
		{
			name: "already rejected", user: agent, setup: []step{announced, rejected},
			wantErr: approvals.ErrAlreadyDecided, wantDecider: mod1, wantStatus: approvals.StatusRejected,
			wantActions: []string{"request", "reject"},
		},
		{
			name: "already approved", user: agent, setup: []step{announced, approved},
			wantErr: approvals.ErrAlreadyDecided, wantDecider: mod1, wantStatus: approvals.StatusApproved,
			wantActions: []string{"request", "approve"},
		},
		{
			name: "revoked", user: agent, setup: []step{announced, approved, revoked},
			wantErr: approvals.ErrAlreadyDecided, wantDecider: mod1, wantStatus: approvals.StatusRevoked,
			wantActions: []string{"request", "approve", "revoke"},
		},
		{
			name: "denied by rule", user: externe, setup: []step{announced},
			wantErr: approvals.ErrAlreadyDecided, wantDecider: "", wantStatus: approvals.StatusRejected,
			wantActions: []string{"deny"},
		},
		{
			name: "unknown", user: agent,
			wantErr: approvals.ErrNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, defaultRules)
			for _, s := range tt.setup {
				s(e, tt.user)
			}
			before := e.latest(tt.user)
			now := e.tick()
			req, err := e.svc.Reject(e.ctx, mod2, approvals.User(tt.user), "hors périmètre")
			after := e.latest(tt.user)

			switch {
			case errors.Is(tt.wantErr, approvals.ErrNotFound):
				if !errors.Is(err, approvals.ErrNotFound) {
					t.Fatalf("Reject: err = %v, want ErrNotFound", err)
				}
				var decided *approvals.DecidedError
				if errors.As(err, &decided) || after != nil {
					t.Errorf("err %v, request %+v: want no request at all", err, after)
				}
			case tt.wantErr != nil:
				var decided *approvals.DecidedError
				if !errors.Is(err, tt.wantErr) || !errors.As(err, &decided) {
					t.Fatalf("Reject: err = %v, want a *DecidedError", err)
				}
				if decided.Request.DecidedBy != tt.wantDecider || decided.Request.Status != tt.wantStatus || decided.Request.ID != before.ID {
					t.Errorf("DecidedError.Request = %+v, want #%d %s by %q", decided.Request, before.ID, tt.wantStatus, tt.wantDecider)
				}
				if after.Status != before.Status || after.Reason != before.Reason || after.DecidedBy != before.DecidedBy {
					t.Errorf("a refused rejection changed the request: %+v -> %+v", before, after)
				}
			default:
				if err != nil {
					t.Fatalf("Reject: %v", err)
				}
				if req.ID != before.ID || req.Status != approvals.StatusRejected || req.DecidedBy != mod2 || req.Reason != "hors périmètre" || !req.DecidedAt.Equal(now) {
					t.Errorf("returned %+v", req)
				}
				if after.ID != before.ID || after.Status != approvals.StatusRejected || after.DecidedBy != mod2 || after.Reason != "hors périmètre" || !after.DecidedAt.Equal(now) {
					t.Errorf("stored %+v", after)
				}
				last := e.audit(tt.user)[len(tt.wantActions)-1]
				if last.Actor != mod2 || last.RequestID != req.ID || last.Reason != "hors périmètre" {
					t.Errorf("audit row = %+v", last)
				}
			}
			if got := e.actions(tt.user); !slices.Equal(got, tt.wantActions) {
				t.Errorf("audit = %v, want %v", got, tt.wantActions)
			}
		})
	}
}

func TestAccept(t *testing.T) {
	tests := []struct {
		name        string
		user        id.UserID
		setup       []step
		version     string
		wantErr     error
		wantActions []string
		wantConsent bool // a consent row for version
	}{
		{name: "unknown", user: agent, version: "v1", wantErr: approvals.ErrNotGranted},
		{name: "pending", user: agent, setup: []step{announced}, version: "v1", wantErr: approvals.ErrNotGranted, wantActions: []string{"request"}},
		{name: "waitlisted", user: agent, setup: []step{announced, waitlisted}, version: "v1", wantErr: approvals.ErrNotGranted, wantActions: []string{"request", "waitlist"}},
		{name: "rejected", user: agent, setup: []step{announced, rejected}, version: "v1", wantErr: approvals.ErrNotGranted, wantActions: []string{"request", "reject"}},
		{name: "revoked", user: agent, setup: []step{announced, approved, revoked}, version: "v1", wantErr: approvals.ErrNotGranted, wantActions: []string{"request", "approve", "revoke"}},
		{name: "denied", user: externe, setup: []step{announced}, version: "v1", wantErr: approvals.ErrNotGranted, wantActions: []string{"deny"}},
		{
			name: "approved becomes active", user: agent, setup: []step{announced, approved}, version: "v1",
			wantActions: []string{"request", "approve", "consent"}, wantConsent: true,
		},
		{
			name: "auto-approved becomes active", user: dinum, setup: []step{announced}, version: "v1",
			wantActions: []string{"auto_approve", "consent"}, wantConsent: true,
		},
		{
			name: "active, same version: nothing new", user: agent, setup: []step{announced, approved, accepted}, version: "v1",
			wantActions: []string{"request", "approve", "consent"}, wantConsent: true,
		},
		{
			name: "active, new policy version", user: agent, setup: []step{announced, approved, accepted}, version: "v2",
			wantActions: []string{"request", "approve", "consent", "consent"}, wantConsent: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, defaultRules)
			for _, s := range tt.setup {
				s(e, tt.user)
			}
			before := e.latest(tt.user)
			now := e.tick()
			req, err := e.svc.Accept(e.ctx, tt.user, tt.version)
			after := e.latest(tt.user)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Accept: err = %v, want %v", err, tt.wantErr)
				}
				if before != nil && after.Status != before.Status {
					t.Errorf("status %s -> %s", before.Status, after.Status)
				}
			} else {
				if err != nil {
					t.Fatalf("Accept: %v", err)
				}
				if req.Status != approvals.StatusActive || after.Status != approvals.StatusActive || req.ID != before.ID {
					t.Errorf("returned %+v, stored %+v: want #%d active", req, after, before.ID)
				}
				// Consent does not change who decided, why, or when.
				if after.DecidedBy != before.DecidedBy || after.Reason != before.Reason || !after.DecidedAt.Equal(before.DecidedAt) {
					t.Errorf("decision changed: %+v -> %+v", before, after)
				}
			}
			at, ok, cerr := e.st.ConsentedAt(e.ctx, tt.user, tt.version)
			if cerr != nil {
				t.Fatal(cerr)
			}
			if ok != tt.wantConsent {
				t.Errorf("consent to %s recorded = %v, want %v", tt.version, ok, tt.wantConsent)
			}
			fresh := len(tt.wantActions) > 0 && tt.wantActions[len(tt.wantActions)-1] == "consent" && tt.wantErr == nil &&
				!(before.Status == approvals.StatusActive && tt.version == "v1")
			if fresh {
				if !at.Equal(now) {
					t.Errorf("consented at %s, want %s", at, now)
				}
				last := e.audit(tt.user)[len(tt.wantActions)-1]
				if last.Actor != tt.user || last.Reason != tt.version || last.RequestID != before.ID || !last.At.Equal(now) {
					t.Errorf("audit row = %+v", last)
				}
			}
			if got := e.actions(tt.user); !slices.Equal(got, tt.wantActions) {
				t.Errorf("audit = %v, want %v", got, tt.wantActions)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name          string
		setup         []step
		version       string
		wantRequest   bool
		wantStatus    approvals.Status
		wantConsented bool
	}{
		{name: "never asked", version: "v1"},
		{name: "pending", setup: []step{announced}, version: "v1", wantRequest: true, wantStatus: approvals.StatusPending},
		{name: "approved, not yet accepted", setup: []step{announced, approved}, version: "v1", wantRequest: true, wantStatus: approvals.StatusApproved},
		{name: "active under the current policy", setup: []step{announced, approved, accepted}, version: "v1", wantRequest: true, wantStatus: approvals.StatusActive, wantConsented: true},
		{name: "active, policy changed", setup: []step{announced, approved, accepted}, version: "v2", wantRequest: true, wantStatus: approvals.StatusActive},
		{name: "revoked keeps the old consent", setup: []step{announced, approved, accepted, revoked}, version: "v1", wantRequest: true, wantStatus: approvals.StatusRevoked, wantConsented: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, defaultRules)
			for _, s := range tt.setup {
				s(e, agent)
			}
			auditBefore := len(e.audit(agent))
			got, err := e.svc.Status(e.ctx, agent, tt.version)
			if err != nil {
				t.Fatalf("Status: %v", err)
			}
			if (got.Request != nil) != tt.wantRequest {
				t.Fatalf("Request = %+v, want present %v", got.Request, tt.wantRequest)
			}
			if got.Request != nil && got.Request.Status != tt.wantStatus {
				t.Errorf("Status = %s, want %s", got.Request.Status, tt.wantStatus)
			}
			if got.Consented != tt.wantConsented {
				t.Errorf("Consented = %v, want %v", got.Consented, tt.wantConsented)
			}
			if n := len(e.audit(agent)); n != auditBefore {
				t.Errorf("Status wrote %d audit rows", n-auditBefore)
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	tests := []struct {
		name        string
		setup       []step
		wantErr     error
		wantActions []string
	}{
		{name: "approved", setup: []step{announced, approved}, wantActions: []string{"request", "approve", "revoke"}},
		{name: "active", setup: []step{announced, approved, accepted}, wantActions: []string{"request", "approve", "consent", "revoke"}},
		{name: "waitlisted", setup: []step{announced, waitlisted}, wantActions: []string{"request", "waitlist", "revoke"}},
		{name: "pending", setup: []step{announced}, wantErr: approvals.ErrAlreadyDecided, wantActions: []string{"request"}},
		{name: "already revoked", setup: []step{announced, approved, revoked}, wantErr: approvals.ErrAlreadyDecided, wantActions: []string{"request", "approve", "revoke"}},
		{name: "unknown", wantErr: approvals.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, defaultRules)
			for _, s := range tt.setup {
				s(e, agent)
			}
			now := e.tick()
			req, _, err := e.svc.Revoke(e.ctx, mod2, approvals.User(agent), "mutation")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Revoke: err = %v, want %v", err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("Revoke: %v", err)
				}
				after := e.latest(agent)
				if req.Status != approvals.StatusRevoked || after.Status != approvals.StatusRevoked || after.DecidedBy != mod2 || after.Reason != "mutation" || !after.DecidedAt.Equal(now) {
					t.Errorf("returned %+v, stored %+v", req, after)
				}
			}
			if got := e.actions(agent); !slices.Equal(got, tt.wantActions) {
				t.Errorf("audit = %v, want %v", got, tt.wantActions)
			}
		})
	}
}

func TestCapacity(t *testing.T) {
	e := newEnv(t, approvals.Rules{AutoApprove: defaultRules.AutoApprove, MaxActive: 1})
	a := id.UserID("@a:agent.interieur.tchap.gouv.fr")
	b := id.UserID("@b:agent.interieur.tchap.gouv.fr")
	d := id.UserID("@d:agent.interieur.tchap.gouv.fr")

	limit, used, err := e.svc.Capacity(e.ctx)
	if err != nil || limit != 1 || used != 0 {
		t.Fatalf("Capacity = %d, %d, %v; want 1, 0 from the rules", limit, used, err)
	}
	approve := func(u id.UserID) *approvals.Request {
		t.Helper()
		e.tick()
		req, err := e.svc.Approve(e.ctx, mod1, approvals.User(u), "")
		if err != nil {
			t.Fatalf("Approve(%s): %v", u, err)
		}
		return req
	}
	if req := approve(a); req.Status != approvals.StatusApproved {
		t.Fatalf("a: %s, want approved", req.Status)
	}
	if req := approve(b); req.Status != approvals.StatusWaitlisted || req.DecidedBy != mod1 {
		t.Fatalf("b: %+v, want waitlisted by mod1", req)
	}
	if got := e.actions(b); !slices.Equal(got, []string{"waitlist"}) {
		t.Errorf("b audit = %v", got)
	}
	req, res := e.announce(dinum)
	if res != approvals.AutoApproved || req.Status != approvals.StatusWaitlisted {
		t.Errorf("auto-approval when full = %d, %s; want AutoApproved, waitlisted", res, req.Status)
	}

	// Revoking a frees one place: b, first in line, takes it.
	e.tick()
	_, promoted, err := e.svc.Revoke(e.ctx, mod2, approvals.User(a), "départ")
	if err != nil {
		t.Fatal(err)
	}
	if len(promoted) != 1 || promoted[0].UserID != b || promoted[0].Status != approvals.StatusApproved {
		t.Fatalf("promoted = %+v, want b", promoted)
	}
	if got := e.latest(b); got.Status != approvals.StatusApproved || got.DecidedBy != mod1 {
		t.Errorf("b stored %+v, want approved, decided by mod1", got)
	}
	if got := e.actions(b); !slices.Equal(got, []string{"waitlist", "promote"}) {
		t.Errorf("b audit = %v", got)
	}

	// A moderator's capacity overrides the rules.
	e.tick()
	promoted, err = e.svc.SetCapacity(e.ctx, mod1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(promoted) != 1 || promoted[0].UserID != dinum {
		t.Fatalf("promoted = %+v, want %s", promoted, dinum)
	}
	if limit, used, _ := e.svc.Capacity(e.ctx); limit != 2 || used != 2 {
		t.Errorf("Capacity = %d, %d; want 2, 2", limit, used)
	}

	// Overload mode sends everyone to the waitlist whatever the capacity.
	if _, err := e.svc.SetCapacity(e.ctx, mod1, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SetOverload(e.ctx, mod1, true); err != nil {
		t.Fatal(err)
	}
	if over, _ := e.svc.Overloaded(e.ctx); !over {
		t.Error("Overloaded = false after SetOverload(true)")
	}
	if req := approve(d); req.Status != approvals.StatusWaitlisted {
		t.Errorf("d during overload: %s, want waitlisted", req.Status)
	}
	promoted, err = e.svc.SetOverload(e.ctx, mod1, false)
	if err != nil || len(promoted) != 1 || promoted[0].UserID != d {
		t.Errorf("SetOverload(false) = %+v, %v; want d promoted", promoted, err)
	}
	if _, err := e.svc.SetCapacity(e.ctx, mod1, -1); err == nil {
		t.Error("SetCapacity(-1) succeeded")
	}
	if got := e.actions(mod1); !slices.Equal(got, []string{"capacity", "capacity", "overload", "overload"}) {
		t.Errorf("moderator audit = %v", got)
	}
}

// TestEveryTransitionWritesOneAuditRow walks one agent through the whole
// lifecycle and counts audit rows after every call: a transition writes
// exactly one, anything refused or idempotent writes none.
func TestEveryTransitionWritesOneAuditRow(t *testing.T) {
	e := newEnv(t, defaultRules)
	ctx := e.ctx
	announce := func() error {
		_, _, err := e.svc.Announce(ctx, agent, support, "$m")
		return err
	}
	approve := func(mod id.UserID) func() error {
		return func() error { _, err := e.svc.Approve(ctx, mod, approvals.User(agent), ""); return err }
	}
	reject := func(mod id.UserID) func() error {
		return func() error { _, err := e.svc.Reject(ctx, mod, approvals.User(agent), "non"); return err }
	}
	accept := func(v string) func() error {
		return func() error { _, err := e.svc.Accept(ctx, agent, v); return err }
	}
	revoke := func() error { _, _, err := e.svc.Revoke(ctx, mod1, approvals.User(agent), "fin"); return err }
	reverse := func() error { _, err := e.svc.Reverse(ctx, mod2, approvals.User(agent), "erreur"); return err }

	steps := []struct {
		name       string
		do         func() error
		wantErr    error
		wantAction string // "" when no row is expected
		wantStatus approvals.Status
	}{
		{"announce", announce, nil, "request", approvals.StatusPending},
		{"announce again", announce, nil, "", approvals.StatusPending},
		{"accept too early", accept("v1"), approvals.ErrNotGranted, "", approvals.StatusPending},
		{"approve", approve(mod1), nil, "approve", approvals.StatusApproved},
		{"approve twice", approve(mod2), approvals.ErrAlreadyDecided, "", approvals.StatusApproved},
		{"reject approved", reject(mod2), approvals.ErrAlreadyDecided, "", approvals.StatusApproved},
		{"accept", accept("v1"), nil, "consent", approvals.StatusActive},
		{"accept again", accept("v1"), nil, "", approvals.StatusActive},
		{"accept new policy", accept("v2"), nil, "consent", approvals.StatusActive},
		{"announce while active", announce, nil, "", approvals.StatusActive},
		{"revoke", revoke, nil, "revoke", approvals.StatusRevoked},
		{"revoke twice", revoke, approvals.ErrAlreadyDecided, "", approvals.StatusRevoked},
		{"announce renewal", announce, nil, "request", approvals.StatusPending},
		{"reject", reject(mod2), nil, "reject", approvals.StatusRejected},
		{"reject twice", reject(mod1), approvals.ErrAlreadyDecided, "", approvals.StatusRejected},
		{"approve rejected", approve(mod1), approvals.ErrAlreadyDecided, "", approvals.StatusRejected},
		{"reverse", reverse, nil, "reverse", approvals.StatusApproved},
		{"reverse approved", reverse, approvals.ErrAlreadyDecided, "", approvals.StatusApproved},
	}
	count := 0
	for _, s := range steps {
		e.tick()
		err := s.do()
		if s.wantErr == nil && err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if s.wantErr != nil && !errors.Is(err, s.wantErr) {
			t.Fatalf("%s: err = %v, want %v", s.name, err, s.wantErr)
		}
		rows := e.audit(agent)
		want := count
		if s.wantAction != "" {
			want++
		}
		if len(rows) != want {
			t.Fatalf("%s: %d audit rows, want %d: %v", s.name, len(rows), want, e.actions(agent))
		}
		if s.wantAction != "" {
			last := rows[len(rows)-1]
			latest := e.latest(agent)
			if last.Action != s.wantAction || last.RequestID != latest.ID || last.Target != agent || !last.At.Equal(e.clk.Now()) {
				t.Errorf("%s: audit row %+v, want %s on #%d", s.name, last, s.wantAction, latest.ID)
			}
		}
		if got := e.latest(agent).Status; got != s.wantStatus {
			t.Errorf("%s: status %s, want %s", s.name, got, s.wantStatus)
		}
		count = len(rows)
	}

}

func TestStatusHelpers(t *testing.T) {
	tests := []struct {
		status        approvals.Status
		open, granted bool
	}{
		{approvals.StatusUnknown, false, false},
		{approvals.StatusPending, true, false},
		{approvals.StatusWaitlisted, true, false},
		{approvals.StatusApproved, true, true},
		{approvals.StatusActive, true, true},
		{approvals.StatusRejected, false, false},
		{approvals.StatusRevoked, false, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.status), func(t *testing.T) {
			if got := tt.status.Open(); got != tt.open {
				t.Errorf("Open() = %v, want %v", got, tt.open)
			}
			if got := tt.status.Granted(); got != tt.granted {
				t.Errorf("Granted() = %v, want %v", got, tt.granted)
			}
		})
	}
}
