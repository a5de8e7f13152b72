package approvals_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"maunium.net/go/mautrix/id"

	"guichet/approvals"
)

// Agents of two partner institutions and of none (the default profile).
const (
	intA = id.UserID("@jean.dupont-interieur.gouv.fr:agent.interieur.tchap.gouv.fr")
	intB = id.UserID("@claire.petit-interieur.gouv.fr:agent.interieur.tchap.gouv.fr")
	intC = id.UserID("@luc.moreau-interieur.gouv.fr:agent.interieur.tchap.gouv.fr")
	culA = id.UserID("@anne.martin-culture.gouv.fr:agent.culture.tchap.gouv.fr")
	culB = id.UserID("@louis.bernard-culture.gouv.fr:agent.culture.tchap.gouv.fr")
	finA = id.UserID("@paul.durand-finances.gouv.fr:agent.finances.tchap.gouv.fr")
	finB = id.UserID("@lea.roux-finances.gouv.fr:agent.finances.tchap.gouv.fr")
	finC = id.UserID("@hugo.blanc-finances.gouv.fr:agent.finances.tchap.gouv.fr")
	// both matches interieur (by name) and culture (by server).
	both = id.UserID("@paul.vidal-interieur.gouv.fr:agent.culture.tchap.gouv.fr")
)

var (
	interieur = approvals.PartnerRules{ID: "interieur", Match: []string{"@*-interieur.gouv.fr:*"}, AutoApprove: true, MaxActive: 1}
	culture   = approvals.PartnerRules{ID: "culture", Match: []string{"@*-culture.gouv.fr:*", "@*:agent.culture.tchap.gouv.fr"}, MaxActive: 1}
)

// partnerRules has one place in the default profile and one per partner.
var partnerRules = approvals.Rules{
	AutoApprove: defaultRules.AutoApprove,
	Deny:        defaultRules.Deny,
	MaxActive:   1,
	Partners:    []approvals.PartnerRules{interieur, culture},
}

// withCaps returns partnerRules with other caps: the default profile's,
// interieur's and culture's.
func withCaps(def, in, cu int) approvals.Rules {
	r := partnerRules
	i, c := interieur, culture
	i.MaxActive, c.MaxActive = in, cu
	r.MaxActive, r.Partners = def, []approvals.PartnerRules{i, c}
	return r
}

// approve is a moderator's approval of u (a pre-approval if u never asked).
func (e *env) approve(u id.UserID) *approvals.Request {
	e.t.Helper()
	e.tick()
	req, err := e.svc.Approve(e.ctx, mod1, approvals.User(u), "")
	if err != nil {
		e.t.Fatalf("Approve(%s): %v", u, err)
	}
	return req
}

// setRules replaces the service by one with rules on the same database, as
// a restart with a new configuration does.
func (e *env) setRules(rules approvals.Rules) {
	e.svc = approvals.New(e.st, rules, e.clk.Now)
}

func users(reqs []*approvals.Request) []id.UserID {
	var out []id.UserID
	for _, r := range reqs {
		out = append(out, r.UserID)
	}
	return out
}

var (
	// interieurFull gives interieur's only place to someone else.
	interieurFull step = func(e *env, _ id.UserID) {
		if req := e.approve("@placeholder-interieur.gouv.fr:agent.interieur.tchap.gouv.fr"); req.Status != approvals.StatusApproved || req.Partner != "interieur" {
			e.t.Fatalf("setup: %+v, want approved at interieur", req)
		}
	}
	// defaultFull gives the default profile's only place to someone else.
	defaultFull step = func(e *env, _ id.UserID) {
		if req := e.approve("@placeholder:agent.finances.tchap.gouv.fr"); req.Status != approvals.StatusApproved || req.Partner != "" {
			e.t.Fatalf("setup: %+v, want approved in the default profile", req)
		}
	}
	overloaded step = func(e *env, _ id.UserID) {
		e.tick()
		_, err := e.svc.SetOverload(e.ctx, mod1, true)
		must(err, e)
	}
)

func TestPartnerOf(t *testing.T) {
	reversed := partnerRules
	reversed.Partners = []approvals.PartnerRules{culture, interieur}
	tests := []struct {
		name  string
		rules approvals.Rules
		user  id.UserID
		want  string
	}{
		{name: "by name", rules: partnerRules, user: intA, want: "interieur"},
		{name: "by the first glob", rules: partnerRules, user: "@x-culture.gouv.fr:agent.dinum.tchap.gouv.fr", want: "culture"},
		{name: "by a later glob", rules: partnerRules, user: "@x:agent.culture.tchap.gouv.fr", want: "culture"},
		{name: "two partners match: the first in file order", rules: partnerRules, user: both, want: "interieur"},
		{name: "two partners match, other order", rules: reversed, user: both, want: "culture"},
		{name: "no partner matches", rules: partnerRules, user: finA, want: ""},
		{name: "the glob matches the whole user id", rules: partnerRules, user: "@x:agent.culture.tchap.gouv.fr.example.org", want: ""},
		{name: "a deny glob does not matter", rules: partnerRules, user: "@x-interieur.gouv.fr:agent.externe.tchap.gouv.fr", want: "interieur"},
		{name: "no partners", rules: defaultRules, user: intA, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.rules)
			if got := e.svc.PartnerOf(tt.user); got != tt.want {
				t.Errorf("PartnerOf(%s) = %q, want %q", tt.user, got, tt.want)
			}
		})
	}
}

func TestAnnounceWithPartners(t *testing.T) {
	tests := []struct {
		name        string
		user        id.UserID
		setup       []step
		wantResult  approvals.AnnounceResult
		wantStatus  approvals.Status
		wantPartner string
		wantRenewal bool
		wantReason  string
		wantActions []string
	}{
		{
			name: "partner auto-approve", user: intA,
			wantResult: approvals.AutoApproved, wantStatus: approvals.StatusApproved, wantPartner: "interieur",
			wantReason: "partner.auto_approve", wantActions: []string{"auto_approve"},
		},
		{
			name: "partner without auto-approve: pending", user: culA,
			wantResult: approvals.Created, wantStatus: approvals.StatusPending, wantPartner: "culture",
			wantActions: []string{"request"},
		},
		{
			name: "no partner: the default profile", user: finA,
			wantResult: approvals.Created, wantStatus: approvals.StatusPending, wantPartner: "",
			wantActions: []string{"request"},
		},
		{
			// access.auto_approve keeps working for everyone; the request
			// still belongs to the partner.
			name: "global auto-approve for a partner agent", user: "@x-culture.gouv.fr:agent.dinum.tchap.gouv.fr",
			wantResult: approvals.AutoApproved, wantStatus: approvals.StatusApproved, wantPartner: "culture",
			wantReason: "access.auto_approve", wantActions: []string{"auto_approve"},
		},
		{
			name: "deny wins over partner auto-approve", user: "@x-interieur.gouv.fr:agent.externe.tchap.gouv.fr",
			wantResult: approvals.Denied, wantStatus: approvals.StatusRejected, wantPartner: "interieur",
			wantReason: "access.deny", wantActions: []string{"deny"},
		},
		{
			name: "revoked by a moderator: pending again", user: intA, setup: []step{announced, revoked},
			wantResult: approvals.Created, wantStatus: approvals.StatusPending, wantPartner: "interieur", wantRenewal: true,
			wantActions: []string{"auto_approve", "revoke", "request"},
		},
		{
			name: "rejected by a moderator: pending again", user: intA, setup: []step{interieurFull, announced, rejected},
			wantResult: approvals.Created, wantStatus: approvals.StatusPending, wantPartner: "interieur", wantRenewal: true,
			wantActions: []string{"auto_approve", "reject", "request"},
		},
		{
			name: "partner full: waitlisted", user: intA, setup: []step{interieurFull},
			wantResult: approvals.AutoApproved, wantStatus: approvals.StatusWaitlisted, wantPartner: "interieur",
			wantReason: "partner.auto_approve", wantActions: []string{"auto_approve"},
		},
		{
			name: "default profile full: a partner agent still gets in", user: intA, setup: []step{defaultFull},
			wantResult: approvals.AutoApproved, wantStatus: approvals.StatusApproved, wantPartner: "interieur",
			wantReason: "partner.auto_approve", wantActions: []string{"auto_approve"},
		},
		{
			name: "partner full: an agent of no partner still gets in", user: dinum, setup: []step{interieurFull},
			wantResult: approvals.AutoApproved, wantStatus: approvals.StatusApproved, wantPartner: "",
			wantReason: "access.auto_approve", wantActions: []string{"auto_approve"},
		},
		{
			name: "overload: waitlisted", user: intA, setup: []step{overloaded},
			wantResult: approvals.AutoApproved, wantStatus: approvals.StatusWaitlisted, wantPartner: "interieur",
			wantReason: "partner.auto_approve", wantActions: []string{"auto_approve"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, partnerRules)
			for _, s := range tt.setup {
				s(e, tt.user)
			}
			req, res := e.announce(tt.user)
			if res != tt.wantResult {
				t.Errorf("result = %d, want %d", res, tt.wantResult)
			}
			if req.Status != tt.wantStatus || req.Partner != tt.wantPartner || req.Renewal != tt.wantRenewal || req.Reason != tt.wantReason {
				t.Errorf("request = %+v\nwant status %s, partner %q, renewal %v, reason %q", req, tt.wantStatus, tt.wantPartner, tt.wantRenewal, tt.wantReason)
			}
			if stored := e.latest(tt.user); stored.ID != req.ID || stored.Status != req.Status || stored.Partner != tt.wantPartner {
				t.Errorf("stored %+v, returned %+v", stored, req)
			}
			if got := e.actions(tt.user); !slices.Equal(got, tt.wantActions) {
				t.Errorf("audit = %v, want %v", got, tt.wantActions)
			}
			last := e.audit(tt.user)[len(tt.wantActions)-1]
			if last.Actor != tt.user || last.RequestID != req.ID || last.Reason != tt.wantReason {
				t.Errorf("audit row = %+v", last)
			}
		})
	}
}

// Approve and Reverse decide within the request's profile: a pre-approval
// computes it, an existing request keeps the one it has.
func TestApproveAndReverseWithPartners(t *testing.T) {
	approve := func(e *env, u id.UserID) (*approvals.Request, error) {
		return e.svc.Approve(e.ctx, mod2, approvals.User(u), "")
	}
	reverse := func(e *env, u id.UserID) (*approvals.Request, error) {
		return e.svc.Reverse(e.ctx, mod2, approvals.User(u), "")
	}
	// announcedBefore announces under rules without partners: the request
	// belongs to the default profile whatever the current rules say.
	announcedBefore := func(e *env, u id.UserID) {
		svc := e.svc
		e.setRules(approvals.Rules{})
		e.announce(u)
		e.svc = svc
	}
	tests := []struct {
		name        string
		user        id.UserID
		setup       []step
		do          func(e *env, u id.UserID) (*approvals.Request, error)
		wantStatus  approvals.Status
		wantPartner string
		wantAction  string
	}{
		{
			name: "pre-approval records the partner", user: culA, do: approve,
			wantStatus: approvals.StatusApproved, wantPartner: "culture", wantAction: "pre_approve",
		},
		{
			name: "pre-approval, partner full", user: intA, setup: []step{interieurFull}, do: approve,
			wantStatus: approvals.StatusWaitlisted, wantPartner: "interieur", wantAction: "waitlist",
		},
		{
			name: "pre-approval, default profile full", user: intA, setup: []step{defaultFull}, do: approve,
			wantStatus: approvals.StatusApproved, wantPartner: "interieur", wantAction: "pre_approve",
		},
		{
			name: "pending, default profile full", user: culA, setup: []step{defaultFull, announced}, do: approve,
			wantStatus: approvals.StatusApproved, wantPartner: "culture", wantAction: "approve",
		},
		{
			name: "pending, partner full", user: both, setup: []step{interieurFull, announced, rejected, announced}, do: approve,
			wantStatus: approvals.StatusWaitlisted, wantPartner: "interieur", wantAction: "waitlist",
		},
		{
			// The request's partner counts, not the current rules': that
			// is what AssignPartners is for.
			name: "pending in the default profile, partner full", user: intA, setup: []step{interieurFull, announcedBefore}, do: approve,
			wantStatus: approvals.StatusApproved, wantPartner: "", wantAction: "approve",
		},
		{
			name: "reverse, partner full", user: culA, setup: []step{announced, rejected, func(e *env, _ id.UserID) { e.approve(culB) }}, do: reverse,
			wantStatus: approvals.StatusWaitlisted, wantPartner: "culture", wantAction: "reverse",
		},
		{
			name: "reverse, default profile full", user: culA, setup: []step{announced, rejected, defaultFull}, do: reverse,
			wantStatus: approvals.StatusApproved, wantPartner: "culture", wantAction: "reverse",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, partnerRules)
			for _, s := range tt.setup {
				s(e, tt.user)
			}
			e.tick()
			req, err := tt.do(e, tt.user)
			if err != nil {
				t.Fatal(err)
			}
			if req.Status != tt.wantStatus || req.Partner != tt.wantPartner {
				t.Errorf("returned %+v, want %s at %q", req, tt.wantStatus, tt.wantPartner)
			}
			if stored := e.latest(tt.user); stored.ID != req.ID || stored.Status != tt.wantStatus || stored.Partner != tt.wantPartner {
				t.Errorf("stored %+v, want %s at %q", stored, tt.wantStatus, tt.wantPartner)
			}
			rows := e.audit(tt.user)
			if last := rows[len(rows)-1]; last.Action != tt.wantAction || last.Actor != mod2 || last.RequestID != req.ID {
				t.Errorf("audit row = %+v, want %s by %s", last, tt.wantAction, mod2)
			}
		})
	}
}

// Each profile has its own cap and its own waitlist: filling one never
// waitlists an agent of another.
func TestPartnerCapsAreIndependent(t *testing.T) {
	e := newEnv(t, withCaps(1, 1, 2))
	steps := []struct {
		user        id.UserID
		wantStatus  approvals.Status
		wantPartner string
	}{
		{finA, approvals.StatusApproved, ""},
		{finB, approvals.StatusWaitlisted, ""},
		{intA, approvals.StatusApproved, "interieur"}, // the default profile is full
		{intB, approvals.StatusWaitlisted, "interieur"},
		{finC, approvals.StatusWaitlisted, ""},
		{culA, approvals.StatusApproved, "culture"}, // both others are full
		{culB, approvals.StatusApproved, "culture"},
		{both, approvals.StatusWaitlisted, "interieur"},
	}
	for _, s := range steps {
		if req := e.approve(s.user); req.Status != s.wantStatus || req.Partner != s.wantPartner {
			t.Errorf("Approve(%s) = %s at %q, want %s at %q", s.user, req.Status, req.Partner, s.wantStatus, s.wantPartner)
		}
	}
	caps := []struct {
		partner             string
		wantLimit, wantUsed int
	}{
		{"", 1, 1},
		{"interieur", 1, 1},
		{"culture", 2, 2},
	}
	for _, c := range caps {
		if limit, used, err := e.svc.CapacityOf(e.ctx, c.partner); err != nil || limit != c.wantLimit || used != c.wantUsed {
			t.Errorf("CapacityOf(%q) = %d, %d, %v; want %d, %d", c.partner, limit, used, err, c.wantLimit, c.wantUsed)
		}
	}
	if limit, used, err := e.svc.Capacity(e.ctx); err != nil || limit != 1 || used != 1 {
		t.Errorf("Capacity = %d, %d, %v; want the default profile's 1, 1", limit, used, err)
	}
	if _, _, err := e.svc.CapacityOf(e.ctx, "armees"); !errors.Is(err, approvals.ErrUnknownPartner) {
		t.Errorf("CapacityOf(armees): err = %v, want ErrUnknownPartner", err)
	}
}

// Revoking frees a place in the revoked request's profile: the first in its
// line takes it, even when someone of another profile waits longer.
func TestPartnerPromotionAfterRevoke(t *testing.T) {
	tests := []struct {
		name         string
		revoke       id.UserID
		wantPromoted []id.UserID
		wantWaiting  []id.UserID
	}{
		{name: "a partner agent", revoke: intA, wantPromoted: []id.UserID{intB}, wantWaiting: []id.UserID{finB, intC}},
		{name: "a default agent", revoke: finA, wantPromoted: []id.UserID{finB}, wantWaiting: []id.UserID{intB, intC}},
		{name: "a waitlisted partner agent", revoke: intB, wantWaiting: []id.UserID{finB, intC}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, partnerRules)
			// finB waits longest; intB is first in interieur's line.
			for _, u := range []id.UserID{finA, intA, finB, intB, intC} {
				e.approve(u)
			}
			e.tick()
			_, promoted, err := e.svc.Revoke(e.ctx, mod2, approvals.User(tt.revoke), "départ")
			if err != nil {
				t.Fatal(err)
			}
			if got := users(promoted); !slices.Equal(got, tt.wantPromoted) {
				t.Errorf("promoted = %v, want %v", got, tt.wantPromoted)
			}
			for _, u := range tt.wantWaiting {
				if st := e.latest(u).Status; st != approvals.StatusWaitlisted {
					t.Errorf("%s is %s, want still waitlisted", u, st)
				}
			}
		})
	}
}

func TestSetCapacityOf(t *testing.T) {
	tests := []struct {
		name         string
		partner      string
		limit        int
		wantErr      error // nil: no error; errAny: any
		wantPromoted []id.UserID
		wantKey      string
		wantReason   string
	}{
		{
			name: "a partner's waitlist only", partner: "interieur", limit: 2,
			wantPromoted: []id.UserID{intB}, wantKey: "access.max_active_users:interieur", wantReason: "interieur=2",
		},
		{
			name: "no cap: the partner's whole line", partner: "interieur", limit: 0,
			wantPromoted: []id.UserID{intB, intC}, wantKey: "access.max_active_users:interieur", wantReason: "interieur=0",
		},
		{
			name: "a partner with nobody waiting", partner: "culture", limit: 3,
			wantKey: "access.max_active_users:culture", wantReason: "culture=3",
		},
		{
			name: "the default profile's waitlist only", partner: "", limit: 2,
			wantPromoted: []id.UserID{finB}, wantKey: approvals.SettingCapacity, wantReason: "2",
		},
		{name: "unknown partner", partner: "armees", limit: 2, wantErr: approvals.ErrUnknownPartner},
		{name: "negative", partner: "interieur", limit: -1, wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, partnerRules)
			for _, u := range []id.UserID{finA, finB, intA, intB, intC} {
				e.approve(u)
			}
			now := e.tick()
			promoted, err := e.svc.SetCapacityOf(e.ctx, mod2, tt.partner, tt.limit)
			if tt.wantErr != nil {
				if err == nil || tt.wantErr != errAny && !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if got := e.actions(mod2); len(got) != 0 {
					t.Errorf("a refused change was audited: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := users(promoted); !slices.Equal(got, tt.wantPromoted) {
				t.Errorf("promoted = %v, want %v", got, tt.wantPromoted)
			}
			var waiting []id.UserID
			for _, u := range []id.UserID{finB, intB, intC} {
				if e.latest(u).Status == approvals.StatusWaitlisted {
					waiting = append(waiting, u)
				}
			}
			if want := len(tt.wantPromoted) + len(waiting); want != 3 {
				t.Errorf("still waitlisted %v, promoted %v: someone of another profile moved", waiting, users(promoted))
			}
			if value, ok, err := e.st.Setting(e.ctx, tt.wantKey); err != nil || !ok || value != strconv.Itoa(tt.limit) {
				t.Errorf("setting %s = %q, %v, %v; want %d", tt.wantKey, value, ok, err, tt.limit)
			}
			if limit, _, err := e.svc.CapacityOf(e.ctx, tt.partner); err != nil || limit != tt.limit {
				t.Errorf("CapacityOf(%q) = %d, %v; want %d", tt.partner, limit, err, tt.limit)
			}
			rows := e.audit(mod2)
			if len(rows) != 1 || rows[0].Action != approvals.ActionCapacity || rows[0].Actor != mod2 || rows[0].Reason != tt.wantReason || !rows[0].At.Equal(now) {
				t.Errorf("audit = %+v, want one capacity row %q", rows, tt.wantReason)
			}
		})
	}
}

var errAny = errors.New("any error")

// Switching overload mode off fills every profile: the default one first,
// then the partners in the rules' order, each up to its own cap.
func TestOverloadOffFillsEveryProfile(t *testing.T) {
	e := newEnv(t, withCaps(1, 2, 1))
	overloaded(e, "")
	// Waitlisted in this order, all by overload mode.
	for _, u := range []id.UserID{culA, culB, intA, finA, intB, finB, intC} {
		if req := e.approve(u); req.Status != approvals.StatusWaitlisted {
			t.Fatalf("Approve(%s) during overload = %s, want waitlisted", u, req.Status)
		}
	}
	e.tick()
	promoted, err := e.svc.SetOverload(e.ctx, mod1, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := users(promoted), []id.UserID{finA, intA, intB, culA}; !slices.Equal(got, want) {
		t.Errorf("promoted = %v, want %v", got, want)
	}
	for _, u := range []id.UserID{culB, finB, intC} {
		if st := e.latest(u).Status; st != approvals.StatusWaitlisted {
			t.Errorf("%s is %s, want still waitlisted (no room in its profile)", u, st)
		}
	}
	for _, u := range []id.UserID{finA, intA, culA} {
		if got := e.actions(u); !slices.Equal(got, []string{"waitlist", "promote"}) {
			t.Errorf("%s audit = %v", u, got)
		}
	}
}

// AssignPartners follows the rules: a new configuration moves every request
// of an agent to their new profile, without a decision or an audit row.
func TestAssignPartners(t *testing.T) {
	noPartners := approvals.Rules{AutoApprove: defaultRules.AutoApprove, MaxActive: 3}
	cultureOnly := noPartners
	cultureOnly.Partners = []approvals.PartnerRules{culture}
	reversed := partnerRules
	reversed.Partners = []approvals.PartnerRules{culture, interieur}

	e := newEnv(t, noPartners)
	e.approve(finA)
	e.approve(intA)
	e.announce(culA)
	e.tick()
	if _, err := e.svc.Reject(e.ctx, mod1, approvals.User(culA), ""); err != nil {
		t.Fatal(err)
	}
	e.announce(culA) // a second request of culA
	e.approve(culA)
	e.announce(both)
	everyone := []id.UserID{finA, intA, culA, both}
	statuses := map[id.UserID]approvals.Status{}
	audits := map[id.UserID]int{}
	for _, u := range everyone {
		statuses[u], audits[u] = e.latest(u).Status, len(e.audit(u))
	}

	steps := []struct {
		name         string
		rules        approvals.Rules
		wantChanged  int
		wantPartners map[id.UserID]string // of every request of the person
	}{
		{
			name: "as recorded", rules: noPartners, wantChanged: 0,
			wantPartners: map[id.UserID]string{finA: "", intA: "", culA: "", both: ""},
		},
		{
			name: "partners configured", rules: partnerRules, wantChanged: 4,
			wantPartners: map[id.UserID]string{finA: "", intA: "interieur", culA: "culture", both: "interieur"},
		},
		{
			name: "again: nothing to do", rules: partnerRules, wantChanged: 0,
			wantPartners: map[id.UserID]string{finA: "", intA: "interieur", culA: "culture", both: "interieur"},
		},
		{
			name: "partners reordered", rules: reversed, wantChanged: 1,
			wantPartners: map[id.UserID]string{finA: "", intA: "interieur", culA: "culture", both: "culture"},
		},
		{
			name: "a partner removed", rules: cultureOnly, wantChanged: 1,
			wantPartners: map[id.UserID]string{finA: "", intA: "", culA: "culture", both: "culture"},
		},
		{
			name: "all removed", rules: noPartners, wantChanged: 3,
			wantPartners: map[id.UserID]string{finA: "", intA: "", culA: "", both: ""},
		},
	}
	for _, s := range steps {
		e.setRules(s.rules)
		changed, err := e.svc.AssignPartners(e.ctx)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if changed != s.wantChanged {
			t.Errorf("%s: changed %d requests, want %d", s.name, changed, s.wantChanged)
		}
		for _, u := range everyone {
			latest := e.latest(u)
			for n := int64(1); n <= latest.ID; n++ {
				req, err := e.st.RequestByID(e.ctx, n)
				if err != nil {
					t.Fatal(err)
				}
				if req.UserID == u && req.Partner != s.wantPartners[u] {
					t.Errorf("%s: #%d of %s at %q, want %q", s.name, n, u, req.Partner, s.wantPartners[u])
				}
			}
			if latest.Status != statuses[u] || len(e.audit(u)) != audits[u] {
				t.Errorf("%s: %s is %s with %d audit rows, want %s with %d", s.name, u, latest.Status, len(e.audit(u)), statuses[u], audits[u])
			}
		}
	}
}

// After AssignPartners, Promote lets in the waitlisted agents that fit in
// their new profile.
func TestPromoteAfterAssignPartners(t *testing.T) {
	e := newEnv(t, approvals.Rules{MaxActive: 2})
	for _, u := range []id.UserID{finA, intA, intB, culA, finB} {
		e.approve(u)
	}
	// finA and intA hold the two places; intB, culA and finB wait.
	e.setRules(withCaps(2, 2, 0))
	if changed, err := e.svc.AssignPartners(e.ctx); err != nil || changed != 3 {
		t.Fatalf("AssignPartners = %d, %v; want 3", changed, err)
	}
	e.tick()
	promoted, err := e.svc.Promote(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := users(promoted), []id.UserID{finB, intB, culA}; !slices.Equal(got, want) {
		t.Errorf("promoted = %v, want %v", got, want)
	}
	if promoted, err := e.svc.Promote(e.ctx); err != nil || len(promoted) != 0 {
		t.Errorf("Promote again = %v, %v; want nobody", users(promoted), err)
	}
}

// Concurrent approvals never exceed a cap: a place is counted and taken in
// one locked transaction (on PostgreSQL too, whose transactions do not
// exclude each other as SQLite's immediate ones do).
func TestConcurrentAutoApprovalsKeepTheCap(t *testing.T) {
	e := newEnv(t, approvals.Rules{AutoApprove: []string{"@*:agent.dinum.tchap.gouv.fr"}, MaxActive: 1})
	for round := range 20 {
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				user := id.UserID(fmt.Sprintf("@r%d-a%d-dinum.gouv.fr:agent.dinum.tchap.gouv.fr", round, i))
				if _, _, err := e.svc.Announce(e.ctx, user, support, id.EventID(fmt.Sprintf("$r%d-%d", round, i))); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if _, used, err := e.svc.Capacity(e.ctx); err != nil || used > 1 {
			t.Fatalf("round %d: %d agents hold access with max_active_users 1 (%v)", round, used, err)
		}
	}
}
