package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"guichet/approvals"
)

// Caps and waitlists are per partner: the queries behind them only see the
// requests of the partner they are given ("" : the default profile).
func TestRequestQueriesPerPartner(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	n := 0
	mk := func(partner string, s approvals.Status, decidedAt time.Time) *approvals.Request {
		n++
		r := newRequest(id.UserID(fmt.Sprintf("@agent%d:agent.dinum.tchap.gouv.fr", n)), s, t0)
		r.Partner, r.DecidedAt = partner, decidedAt
		return mustCreate(t, st, r)
	}
	mk("", approvals.StatusApproved, t0)
	mk("", approvals.StatusActive, t0)
	defaultWait := mk("", approvals.StatusWaitlisted, t0.Add(3*time.Minute))
	mk("culture", approvals.StatusActive, t0)
	// Waitlisted second, with the lower number: the line is in decision order.
	mk("culture", approvals.StatusWaitlisted, t0.Add(2*time.Minute))
	cultureWait1 := mk("culture", approvals.StatusWaitlisted, t0.Add(time.Minute))
	mk("culture", approvals.StatusPending, time.Time{})
	mk("armees", approvals.StatusRevoked, t0)

	tests := []struct {
		partner     string
		wantGranted int
		wantNext    *approvals.Request // nil: ErrNotFound
	}{
		{partner: "", wantGranted: 2, wantNext: defaultWait},
		{partner: "culture", wantGranted: 1, wantNext: cultureWait1},
		{partner: "armees", wantGranted: 0},
		{partner: "inconnu", wantGranted: 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("partner %q", tt.partner), func(t *testing.T) {
			if got, err := st.CountGranted(ctx, tt.partner); err != nil || got != tt.wantGranted {
				t.Errorf("CountGranted = %d, %v; want %d", got, err, tt.wantGranted)
			}
			next, err := st.OldestWaitlisted(ctx, tt.partner)
			if tt.wantNext == nil {
				if !errors.Is(err, approvals.ErrNotFound) {
					t.Errorf("OldestWaitlisted = %+v, %v; want ErrNotFound", next, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("OldestWaitlisted: %v", err)
			}
			assertRequest(t, next, tt.wantNext)
		})
	}

	counts, err := st.CountByPartner(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[approvals.Status]int{
		"":        {approvals.StatusApproved: 1, approvals.StatusActive: 1, approvals.StatusWaitlisted: 1},
		"culture": {approvals.StatusActive: 1, approvals.StatusWaitlisted: 2, approvals.StatusPending: 1},
		"armees":  {approvals.StatusRevoked: 1},
	}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("CountByPartner = %v, want %v", counts, want)
	}

	empty, _ := open(t)
	if counts, err := empty.CountByPartner(ctx); err != nil || len(counts) != 0 {
		t.Errorf("CountByPartner on empty = %v, %v", counts, err)
	}
}

// SetRequestPartner moves all of a person's requests, and only theirs; it
// says how many changed and takes no decision.
func TestSetRequestPartner(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	first := newRequest(alice, approvals.StatusRejected, t0)
	first.Reason, first.DecidedBy, first.DecidedAt = "compte personnel", mod1, t0.Add(time.Minute)
	mustCreate(t, st, first)
	second := newRequest(alice, approvals.StatusPending, t0.Add(time.Hour))
	second.Renewal, second.Partner = true, "culture"
	mustCreate(t, st, second)
	other := newRequest(bob, approvals.StatusApproved, t0)
	other.Partner = "armees"
	mustCreate(t, st, other)

	users, err := st.RequestUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []id.UserID{alice, bob}; !slices.Equal(users, want) {
		t.Errorf("RequestUsers = %v, want %v", users, want)
	}

	steps := []struct {
		user        id.UserID
		partner     string
		wantChanged int64
	}{
		{alice, "culture", 1}, // the first request only: the second names culture already
		{alice, "culture", 0},
		{alice, "", 2},
		{"@nobody:agent.dinum.tchap.gouv.fr", "culture", 0},
	}
	for i, s := range steps {
		n, err := st.SetRequestPartner(ctx, s.user, s.partner)
		if err != nil || n != s.wantChanged {
			t.Errorf("step %d: SetRequestPartner(%s, %q) = %d, %v; want %d", i, s.user, s.partner, n, err, s.wantChanged)
		}
	}
	first.Partner, second.Partner = "", ""
	for _, want := range []*approvals.Request{first, second, other} {
		got, err := st.RequestByID(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		assertRequest(t, got, want)
	}

	empty, _ := open(t)
	if users, err := empty.RequestUsers(ctx); err != nil || len(users) != 0 {
		t.Errorf("RequestUsers on empty = %v, %v", users, err)
	}
}
