package approvals_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/approvals"
)

// A request number designates that request only: a decision on a number
// whose request is no longer pending (or no longer the person's latest)
// changes nothing and says what stands in the way. This is the ✅ after ❌
// on one acknowledgement, and `!approve #3` on a rejected #3.
func TestDecisionsByNumberNameOneRequest(t *testing.T) {
	type op func(e *env, ref approvals.Ref) (*approvals.Request, error)
	approve := func(e *env, ref approvals.Ref) (*approvals.Request, error) {
		return e.svc.Approve(e.ctx, mod2, ref, "")
	}
	reject := func(e *env, ref approvals.Ref) (*approvals.Request, error) {
		return e.svc.Reject(e.ctx, mod2, ref, "")
	}
	revoke := func(e *env, ref approvals.Ref) (*approvals.Request, error) {
		req, _, err := e.svc.Revoke(e.ctx, mod2, ref, "")
		return req, err
	}
	renewed := func(e *env, u id.UserID) { e.announce(u) }
	tests := []struct {
		name        string
		setup       []step
		do          op
		number      int64
		wantErr     error
		wantStatus  approvals.Status // of request number, after
		wantLatest  int64            // the person's latest request after
		wantActions []string
	}{
		{
			name: "approve n1 pending", setup: []step{announced}, do: approve, number: 1,
			wantStatus: approvals.StatusApproved, wantLatest: 1, wantActions: []string{"request", "approve"},
		},
		{
			name: "approve n1 rejected: no new request", setup: []step{announced, rejected}, do: approve, number: 1,
			wantErr: approvals.ErrAlreadyDecided, wantStatus: approvals.StatusRejected, wantLatest: 1,
			wantActions: []string{"request", "reject"},
		},
		{
			name: "approve n1 revoked", setup: []step{announced, approved, revoked}, do: approve, number: 1,
			wantErr: approvals.ErrAlreadyDecided, wantStatus: approvals.StatusRevoked, wantLatest: 1,
			wantActions: []string{"request", "approve", "revoke"},
		},
		{
			name: "approve n1 already approved", setup: []step{announced, approved}, do: approve, number: 1,
			wantErr: approvals.ErrAlreadyDecided, wantStatus: approvals.StatusApproved, wantLatest: 1,
			wantActions: []string{"request", "approve"},
		},
		{
			name: "approve unknown n7", do: approve, number: 7,
			wantErr: approvals.ErrNotFound,
		},
		{
			name: "reject n1 approved", setup: []step{announced, approved}, do: reject, number: 1,
			wantErr: approvals.ErrAlreadyDecided, wantStatus: approvals.StatusApproved, wantLatest: 1,
			wantActions: []string{"request", "approve"},
		},
		{
			name: "reject n1 when n2 is pending leaves n2 alone", setup: []step{announced, rejected, renewed}, do: reject, number: 1,
			wantErr: approvals.ErrAlreadyDecided, wantStatus: approvals.StatusRejected, wantLatest: 2,
			wantActions: []string{"request", "reject", "request"},
		},
		{
			name: "approve n1 when n2 is pending leaves n2 alone", setup: []step{announced, rejected, renewed}, do: approve, number: 1,
			wantErr: approvals.ErrAlreadyDecided, wantStatus: approvals.StatusRejected, wantLatest: 2,
			wantActions: []string{"request", "reject", "request"},
		},
		{
			name: "revoke n1 after renewal n2 was approved", setup: []step{announced, rejected, renewed, approved}, do: revoke, number: 1,
			wantErr: approvals.ErrAlreadyDecided, wantStatus: approvals.StatusRejected, wantLatest: 2,
			wantActions: []string{"request", "reject", "request", "approve"},
		},
		{
			name: "revoke n1 active", setup: []step{announced, approved, accepted}, do: revoke, number: 1,
			wantStatus: approvals.StatusRevoked, wantLatest: 1, wantActions: []string{"request", "approve", "consent", "revoke"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, defaultRules)
			for _, s := range tt.setup {
				s(e, agent)
			}
			e.tick()
			_, err := tt.do(e, approvals.Number(tt.number))
			if tt.wantErr == nil && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == approvals.ErrNotFound {
				return
			}
			var decided *approvals.DecidedError
			if tt.wantErr == approvals.ErrAlreadyDecided && (!errors.As(err, &decided) || decided.Request.ID != tt.number) {
				t.Errorf("err = %v, want the state of #%d", err, tt.number)
			}
			got, err := e.st.RequestByID(e.ctx, tt.number)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.wantStatus {
				t.Errorf("#%d is %s, want %s", tt.number, got.Status, tt.wantStatus)
			}
			if latest := e.latest(agent); latest.ID != tt.wantLatest {
				t.Errorf("latest request #%d, want #%d", latest.ID, tt.wantLatest)
			}
			if got := e.actions(agent); !slices.Equal(got, tt.wantActions) {
				t.Errorf("audit = %v, want %v", got, tt.wantActions)
			}
		})
	}
}

// Reverse is the one way back from a rejection or a revocation, audited as
// such, and only on the person's latest request.
func TestReverse(t *testing.T) {
	renewed := func(e *env, u id.UserID) { e.announce(u) }
	tests := []struct {
		name        string
		user        id.UserID
		setup       []step
		ref         func(u id.UserID) approvals.Ref
		full        bool
		wantErr     error
		wantStatus  approvals.Status
		wantActions []string
	}{
		{
			name: "rejected by number", user: agent, setup: []step{announced, rejected}, ref: func(id.UserID) approvals.Ref { return approvals.Number(1) },
			wantStatus: approvals.StatusApproved, wantActions: []string{"request", "reject", "reverse"},
		},
		{
			name: "revoked by user", user: agent, setup: []step{announced, approved, revoked}, ref: approvals.User,
			wantStatus: approvals.StatusApproved, wantActions: []string{"request", "approve", "revoke", "reverse"},
		},
		{
			name: "denied by the rule", user: externe, setup: []step{announced}, ref: approvals.User,
			wantStatus: approvals.StatusApproved, wantActions: []string{"deny", "reverse"},
		},
		{
			name: "waitlisted when full", user: agent, setup: []step{announced, rejected}, ref: approvals.User, full: true,
			wantStatus: approvals.StatusWaitlisted, wantActions: []string{"request", "reject", "reverse"},
		},
		{
			name: "pending: nothing to reverse", user: agent, setup: []step{announced}, ref: approvals.User,
			wantErr: approvals.ErrAlreadyDecided, wantStatus: approvals.StatusPending, wantActions: []string{"request"},
		},
		{
			name: "an older request", user: agent, setup: []step{announced, rejected, renewed}, ref: func(id.UserID) approvals.Ref { return approvals.Number(1) },
			wantErr: approvals.ErrNotLatest, wantStatus: approvals.StatusPending, wantActions: []string{"request", "reject", "request"},
		},
		{
			name: "never asked", user: agent, ref: approvals.User, wantErr: approvals.ErrNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, defaultRules)
			for _, s := range tt.setup {
				s(e, tt.user)
			}
			if tt.full {
				if _, err := e.svc.SetOverload(e.ctx, mod1, true); err != nil {
					t.Fatal(err)
				}
			}
			now := e.tick()
			req, err := e.svc.Reverse(e.ctx, mod2, tt.ref(tt.user), "erreur de ma part")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if req.Status != tt.wantStatus || req.DecidedBy != mod2 || !req.DecidedAt.Equal(now) {
				t.Errorf("returned %+v", req)
			}
			if tt.wantErr == approvals.ErrNotFound {
				return
			}
			if got := e.latest(tt.user).Status; got != tt.wantStatus {
				t.Errorf("latest is %s, want %s", got, tt.wantStatus)
			}
			if got := e.actions(tt.user); !slices.Equal(got, tt.wantActions) {
				t.Errorf("audit = %v, want %v", got, tt.wantActions)
			}
			if tt.wantErr == nil {
				last := e.audit(tt.user)[len(tt.wantActions)-1]
				if last.Actor != mod2 || last.Reason != "erreur de ma part" || last.RequestID != req.ID {
					t.Errorf("audit row %+v", last)
				}
			}
		})
	}
}

// Refusals are all audited, and answered at most once per RefusalQuiet per
// person.
func TestRefusalsAreBoundedPerPerson(t *testing.T) {
	const intrus, autre = id.UserID("@intrus:agent.interieur.tchap.gouv.fr"), id.UserID("@autre:agent.interieur.tchap.gouv.fr")
	steps := []struct {
		after    time.Duration
		who      id.UserID
		wantTell bool
	}{
		{0, intrus, true},
		{time.Second, intrus, false},
		{time.Second, autre, true}, // someone else is answered
		{4 * time.Minute, intrus, false},
		{6 * time.Minute, intrus, true}, // 10 min after the last answer, not the last attempt
		{time.Minute, intrus, false},
	}
	e := newEnv(t, defaultRules)
	for i, s := range steps {
		e.clk.Advance(s.after)
		tell, err := e.svc.Refused(e.ctx, s.who, "!stats")
		if err != nil {
			t.Fatal(err)
		}
		if tell != s.wantTell {
			t.Errorf("step %d (%s): tell = %v, want %v", i, s.who, tell, s.wantTell)
		}
	}
	want := []string{approvals.ActionRefused, approvals.ActionRefusedQuiet, approvals.ActionRefusedQuiet, approvals.ActionRefused, approvals.ActionRefusedQuiet}
	if got := e.actions(intrus); !slices.Equal(got, want) {
		t.Errorf("audit of intrus = %v, want %v", got, want)
	}
	// Decryption failures have their own bound.
	if tell, err := e.svc.Undecryptable(e.ctx, intrus, "$x"); err != nil || !tell {
		t.Errorf("Undecryptable = %v, %v; want told", tell, err)
	}
	if tell, err := e.svc.Undecryptable(e.ctx, intrus, "$y"); err != nil || tell {
		t.Errorf("second Undecryptable = %v, %v; want quiet", tell, err)
	}
}

func TestQuotaChangeIsAudited(t *testing.T) {
	e := newEnv(t, defaultRules)
	now := e.tick()
	if err := e.svc.QuotaChanged(e.ctx, mod1, agent, "10/min"); err != nil {
		t.Fatal(err)
	}
	rows := e.audit(agent)
	if len(rows) != 1 || rows[0].Action != approvals.ActionQuota || rows[0].Actor != mod1 || rows[0].Reason != "10/min" || !rows[0].At.Equal(now) {
		t.Errorf("audit = %+v", rows)
	}
}
