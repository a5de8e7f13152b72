package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"

	"guichet/approvals"
	"guichet/internal/fakeclock"
	"guichet/internal/testdb"
	"guichet/store"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

const (
	alice = id.UserID("@alice-dinum.gouv.fr:agent.dinum.tchap.gouv.fr")
	bob   = id.UserID("@bob-interieur.gouv.fr:agent.interieur.tchap.gouv.fr")
	mod1  = id.UserID("@mod1:agent.dinum.tchap.gouv.fr")
	mod2  = id.UserID("@mod2:agent.dinum.tchap.gouv.fr")
	room  = id.RoomID("!support:agent.dinum.tchap.gouv.fr")
)

// open returns an upgraded store on a fresh SQLite file and its database.
func open(t *testing.T) (*store.Store, *dbutil.Database) {
	t.Helper()
	return openPath(t, filepath.Join(t.TempDir(), "guichet.db"))
}

func openPath(t *testing.T, path string) (*store.Store, *dbutil.Database) {
	t.Helper()
	db := testdb.OpenPath(t, path)
	st := store.New(db, zerolog.Nop())
	if err := st.Upgrade(context.Background()); err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	return st, db
}

func newRequest(user id.UserID, status approvals.Status, at time.Time) *approvals.Request {
	return &approvals.Request{
		UserID: user, Status: status, RoomID: room, EventID: id.EventID("$" + string(user[1:6])),
		CreatedAt: at, UpdatedAt: at, LastSeenAt: at,
	}
}

func mustCreate(t *testing.T, st *store.Store, r *approvals.Request) *approvals.Request {
	t.Helper()
	if err := st.CreateRequest(context.Background(), r); err != nil {
		t.Fatalf("CreateRequest: %v", err)
	}
	return r
}

func TestOpenAndUpgrade(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "guichet.db")
	st, db := openPath(t, path)

	if err := st.Upgrade(ctx); err != nil {
		t.Fatalf("second Upgrade: %v", err)
	}
	if err := store.New(db, zerolog.Nop()).Upgrade(ctx); err != nil {
		t.Fatalf("Upgrade through a second Store: %v", err)
	}
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	var version int
	if err := db.QueryRow(ctx, "SELECT version FROM "+store.VersionTable).Scan(&version); err != nil {
		t.Fatalf("reading %s: %v", store.VersionTable, err)
	}
	if version < 1 {
		t.Errorf("version = %d, want >= 1", version)
	}

	req := mustCreate(t, st, newRequest(alice, approvals.StatusPending, t0))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	reopened, _ := openPath(t, path)
	got, err := reopened.RequestByID(ctx, req.ID)
	if err != nil {
		t.Fatalf("RequestByID after reopening: %v", err)
	}
	if got.UserID != alice {
		t.Errorf("UserID = %s, want %s", got.UserID, alice)
	}
}

func TestOpenURIForms(t *testing.T) {
	testdb.SQLiteOnly(t)
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
	}{
		{"plain path", filepath.Join(dir, "a.db")},
		{"file URI", "file:" + filepath.Join(dir, "b.db")},
		{"file URI with a parameter", "file:" + filepath.Join(dir, "c.db") + "?_busy_timeout=1000"},
		{"explicit txlock kept", "file:" + filepath.Join(dir, "d.db") + "?_txlock=deferred"},
		// A plain path is a name: '#', '?' and '%' are not URI syntax.
		{"plain path with URI characters", filepath.Join(dir, "e#1?x=%41.db")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := openPath(t, tt.path)
			if err := st.Ping(context.Background()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if strings.HasPrefix(tt.path, "file:") {
				return
			}
			if _, err := os.Stat(tt.path); err != nil {
				t.Errorf("the database is not at %q: %v", tt.path, err)
			}
		})
	}
}

func TestRequestCreateAndLatest(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)

	if _, err := st.LatestRequest(ctx, alice); !errors.Is(err, approvals.ErrNotFound) {
		t.Fatalf("LatestRequest of nobody: err = %v, want ErrNotFound", err)
	}
	if _, err := st.RequestByID(ctx, 404); !errors.Is(err, approvals.ErrNotFound) {
		t.Fatalf("RequestByID(404): err = %v, want ErrNotFound", err)
	}

	first := newRequest(alice, approvals.StatusRejected, t0)
	first.Reason, first.DecidedBy, first.DecidedAt = "compte personnel", mod1, t0.Add(time.Minute)
	mustCreate(t, st, first)
	second := newRequest(alice, approvals.StatusPending, t0.Add(time.Hour))
	second.Renewal, second.Partner = true, "culture"
	mustCreate(t, st, second)
	other := mustCreate(t, st, newRequest(bob, approvals.StatusPending, t0.Add(2*time.Hour)))

	if first.ID <= 0 || second.ID <= first.ID || other.ID <= second.ID {
		t.Fatalf("ids = %d, %d, %d; want positive and increasing", first.ID, second.ID, other.ID)
	}

	latest, err := st.LatestRequest(ctx, alice)
	if err != nil {
		t.Fatalf("LatestRequest: %v", err)
	}
	assertRequest(t, latest, second)

	byID, err := st.RequestByID(ctx, first.ID)
	if err != nil {
		t.Fatalf("RequestByID: %v", err)
	}
	assertRequest(t, byID, first)

	byEvent, err := st.RequestByEvent(ctx, other.EventID)
	if err != nil || byEvent.ID != other.ID {
		t.Errorf("RequestByEvent = %+v, %v; want #%d", byEvent, err, other.ID)
	}
	if _, err := st.RequestByEvent(ctx, "$unknown"); !errors.Is(err, approvals.ErrNotFound) {
		t.Errorf("RequestByEvent(unknown): err = %v, want ErrNotFound", err)
	}
}

func assertRequest(t *testing.T, got, want *approvals.Request) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || got.Status != want.Status || got.Renewal != want.Renewal ||
		got.RoomID != want.RoomID || got.EventID != want.EventID || got.Reason != want.Reason || got.DecidedBy != want.DecidedBy ||
		got.Partner != want.Partner {
		t.Errorf("request = %+v\nwant %+v", got, want)
	}
	for _, tm := range []struct {
		name      string
		got, want time.Time
	}{
		{"DecidedAt", got.DecidedAt, want.DecidedAt},
		{"CreatedAt", got.CreatedAt, want.CreatedAt},
		{"UpdatedAt", got.UpdatedAt, want.UpdatedAt},
		{"LastSeenAt", got.LastSeenAt, want.LastSeenAt},
	} {
		if !tm.got.Equal(tm.want) {
			t.Errorf("%s = %s, want %s", tm.name, tm.got, tm.want)
		}
	}
}

func TestOneOpenRequestPerUser(t *testing.T) {
	tests := []struct {
		name     string
		existing []approvals.Status // alice's earlier requests, in order
		next     approvals.Status
		wantErr  bool
	}{
		{"first request", nil, approvals.StatusPending, false},
		{"second while pending", []approvals.Status{approvals.StatusPending}, approvals.StatusPending, true},
		{"pending while approved", []approvals.Status{approvals.StatusApproved}, approvals.StatusPending, true},
		{"approved while active", []approvals.Status{approvals.StatusActive}, approvals.StatusApproved, true},
		{"pending while waitlisted", []approvals.Status{approvals.StatusWaitlisted}, approvals.StatusPending, true},
		{"after rejection", []approvals.Status{approvals.StatusRejected}, approvals.StatusPending, false},
		{"after revocation", []approvals.Status{approvals.StatusRevoked}, approvals.StatusPending, false},
		{"many closed ones", []approvals.Status{approvals.StatusRejected, approvals.StatusRevoked, approvals.StatusRejected}, approvals.StatusApproved, false},
		{"closed after closed", []approvals.Status{approvals.StatusRejected}, approvals.StatusRejected, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st, _ := open(t)
			for _, s := range tt.existing {
				mustCreate(t, st, newRequest(alice, s, t0))
			}
			// Someone else's open request never stands in the way.
			mustCreate(t, st, newRequest(bob, approvals.StatusPending, t0))
			err := st.CreateRequest(ctx, newRequest(alice, tt.next, t0.Add(time.Hour)))
			if (err != nil) != tt.wantErr {
				t.Fatalf("CreateRequest: err = %v, wantErr %v", err, tt.wantErr)
			}
			if latest, _ := st.LatestRequest(ctx, alice); tt.wantErr && latest.Status != tt.existing[len(tt.existing)-1] {
				t.Errorf("a refused insert changed the latest request: %+v", latest)
			}
		})
	}
}

func TestRequestStatusCheck(t *testing.T) {
	st, _ := open(t)
	if err := st.CreateRequest(context.Background(), newRequest(alice, "granted", t0)); err == nil {
		t.Error("CreateRequest with an unknown status succeeded, want the CHECK to refuse it")
	}
}

func TestTransition(t *testing.T) {
	decided := t0.Add(time.Minute)
	later := t0.Add(time.Hour)
	tests := []struct {
		name    string
		start   approvals.Status
		from    []approvals.Status
		to      approvals.Status
		actor   id.UserID
		reason  string
		wantErr error
		want    func(r *approvals.Request) // the expected row, from the start
	}{
		{
			name: "approve pending", start: approvals.StatusPending,
			from: []approvals.Status{approvals.StatusPending}, to: approvals.StatusApproved, actor: mod2, reason: "ok",
			want: func(r *approvals.Request) {
				r.Status, r.DecidedBy, r.Reason, r.DecidedAt, r.UpdatedAt = approvals.StatusApproved, mod2, "ok", later, later
			},
		},
		{
			name: "one of several from statuses", start: approvals.StatusWaitlisted,
			from: []approvals.Status{approvals.StatusApproved, approvals.StatusActive, approvals.StatusWaitlisted}, to: approvals.StatusRevoked, actor: mod2, reason: "départ",
			want: func(r *approvals.Request) {
				r.Status, r.DecidedBy, r.Reason, r.DecidedAt, r.UpdatedAt = approvals.StatusRevoked, mod2, "départ", later, later
			},
		},
		{
			name: "empty actor keeps the decision", start: approvals.StatusApproved,
			from: []approvals.Status{approvals.StatusApproved}, to: approvals.StatusActive, actor: "", reason: "ignored",
			want: func(r *approvals.Request) { r.Status, r.UpdatedAt = approvals.StatusActive, later },
		},
		{
			name: "wrong status", start: approvals.StatusRejected,
			from: []approvals.Status{approvals.StatusPending}, to: approvals.StatusApproved, actor: mod2,
			wantErr: approvals.ErrConflict,
		},
		{
			name: "already in the target status", start: approvals.StatusApproved,
			from: []approvals.Status{approvals.StatusPending}, to: approvals.StatusApproved, actor: mod2,
			wantErr: approvals.ErrConflict,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st, _ := open(t)
			req := newRequest(alice, tt.start, t0)
			if tt.start != approvals.StatusPending {
				req.DecidedBy, req.Reason, req.DecidedAt = mod1, "first decision", decided
			}
			mustCreate(t, st, req)
			want := *req
			err := st.Transition(ctx, req.ID, tt.from, tt.to, tt.actor, tt.reason, later)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Transition: err = %v, want %v", err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("Transition: %v", err)
				}
				tt.want(&want)
			}
			got, err := st.RequestByID(ctx, req.ID)
			if err != nil {
				t.Fatal(err)
			}
			assertRequest(t, got, &want)
		})
	}

	t.Run("unknown request", func(t *testing.T) {
		st, _ := open(t)
		err := st.Transition(context.Background(), 99, []approvals.Status{approvals.StatusPending}, approvals.StatusApproved, mod1, "", later)
		if !errors.Is(err, approvals.ErrConflict) {
			t.Errorf("err = %v, want ErrConflict", err)
		}
	})
}

func TestTouchRequest(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	req := mustCreate(t, st, newRequest(alice, approvals.StatusPending, t0))
	seen := t0.Add(3 * time.Hour)
	if err := st.TouchRequest(ctx, req.ID, seen); err != nil {
		t.Fatalf("TouchRequest: %v", err)
	}
	got, _ := st.RequestByID(ctx, req.ID)
	want := *req
	want.LastSeenAt = seen
	assertRequest(t, got, &want)
}

func TestRequestQueries(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	users := make([]id.UserID, 7)
	for i := range users {
		users[i] = id.UserID(fmt.Sprintf("@agent%d:agent.dinum.tchap.gouv.fr", i))
	}
	mk := func(u id.UserID, s approvals.Status, decidedAt time.Time) *approvals.Request {
		r := newRequest(u, s, t0)
		r.DecidedAt = decidedAt
		return mustCreate(t, st, r)
	}
	p1 := mk(users[0], approvals.StatusPending, time.Time{})
	mk(users[1], approvals.StatusApproved, t0)
	mk(users[2], approvals.StatusActive, t0)
	w2 := mk(users[3], approvals.StatusWaitlisted, t0.Add(2*time.Minute))
	w1 := mk(users[4], approvals.StatusWaitlisted, t0.Add(time.Minute))
	mk(users[5], approvals.StatusRejected, t0)
	p2 := mk(users[6], approvals.StatusPending, time.Time{})

	pending, err := st.PendingRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0].ID != p1.ID || pending[1].ID != p2.ID {
		t.Errorf("PendingRequests = %v, want #%d, #%d", pending, p1.ID, p2.ID)
	}
	if n, err := st.CountGranted(ctx, ""); err != nil || n != 2 {
		t.Errorf("CountGranted = %d, %v; want 2", n, err)
	}
	if next, err := st.OldestWaitlisted(ctx, ""); err != nil || next.ID != w1.ID {
		t.Errorf("OldestWaitlisted = %+v, %v; want #%d (waitlisted first, before #%d)", next, err, w1.ID, w2.ID)
	}
	counts, err := st.CountByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[approvals.Status]int{
		approvals.StatusPending: 2, approvals.StatusApproved: 1, approvals.StatusActive: 1,
		approvals.StatusWaitlisted: 2, approvals.StatusRejected: 1,
	}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("CountByStatus = %v, want %v", counts, want)
	}

	empty, _ := open(t)
	if _, err := empty.OldestWaitlisted(ctx, ""); !errors.Is(err, approvals.ErrNotFound) {
		t.Errorf("OldestWaitlisted on empty: err = %v, want ErrNotFound", err)
	}
	if reqs, err := empty.PendingRequests(ctx); err != nil || len(reqs) != 0 {
		t.Errorf("PendingRequests on empty = %v, %v", reqs, err)
	}
}

func TestConsentAndSettings(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)

	if _, ok, err := st.ConsentedAt(ctx, alice, "v1"); err != nil || ok {
		t.Fatalf("ConsentedAt before consent = %v, %v", ok, err)
	}
	if err := st.RecordConsent(ctx, alice, "v1", t0); err != nil {
		t.Fatal(err)
	}
	// Accepting again keeps the first date.
	if err := st.RecordConsent(ctx, alice, "v1", t0.Add(time.Hour)); err != nil {
		t.Fatalf("second RecordConsent: %v", err)
	}
	at, ok, err := st.ConsentedAt(ctx, alice, "v1")
	if err != nil || !ok || !at.Equal(t0) {
		t.Errorf("ConsentedAt(v1) = %s, %v, %v; want %s", at, ok, err, t0)
	}
	if _, ok, _ := st.ConsentedAt(ctx, alice, "v2"); ok {
		t.Error("consent to v1 counts for v2")
	}
	if _, ok, _ := st.ConsentedAt(ctx, bob, "v1"); ok {
		t.Error("alice's consent counts for bob")
	}

	if _, ok, err := st.Setting(ctx, approvals.SettingCapacity); err != nil || ok {
		t.Fatalf("Setting before set = %v, %v", ok, err)
	}
	for _, v := range []string{"10", "25"} {
		if err := st.SetSetting(ctx, approvals.SettingCapacity, v, t0); err != nil {
			t.Fatal(err)
		}
	}
	if v, ok, err := st.Setting(ctx, approvals.SettingCapacity); err != nil || !ok || v != "25" {
		t.Errorf("Setting = %q, %v, %v; want 25", v, ok, err)
	}
}

func TestAudit(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	entries := []approvals.AuditEntry{
		{At: t0, Actor: alice, Target: alice, RequestID: 1, Action: approvals.ActionRequest},
		{At: t0.Add(time.Minute), Actor: mod1, Target: bob, Action: approvals.ActionPreApprove, Reason: "équipe"},
		{At: t0.Add(2 * time.Minute), Actor: mod1, Target: alice, RequestID: 1, Action: approvals.ActionReject, Reason: "compte personnel"},
	}
	for _, e := range entries {
		if err := st.AddAudit(ctx, e); err != nil {
			t.Fatalf("AddAudit: %v", err)
		}
	}
	tests := []struct {
		target id.UserID
		want   []approvals.AuditEntry
	}{
		{alice, []approvals.AuditEntry{entries[0], entries[2]}},
		{bob, entries[1:2]},
		{mod1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.target.String(), func(t *testing.T) {
			got, err := st.Audit(ctx, tt.target)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Audit = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if !g.At.Equal(w.At) || g.Actor != w.Actor || g.Target != w.Target || g.RequestID != w.RequestID || g.Action != w.Action || g.Reason != w.Reason {
					t.Errorf("row %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestInbox(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	items := []store.InboxItem{
		{EventID: "$late", RoomID: room, Sender: alice, EventJSON: []byte(`{"n":2}`), ReceivedAt: t0.Add(2 * time.Second)},
		{EventID: "$early", RoomID: room, Sender: bob, EventJSON: []byte(`{"n":1}`), ReceivedAt: t0.Add(time.Second)},
		{EventID: "$third", RoomID: "!dm:x", Sender: alice, EventJSON: []byte(`{"n":3}`), ReceivedAt: t0.Add(3 * time.Second)},
	}
	for _, it := range items {
		added, err := st.AddInbox(ctx, it)
		if err != nil || !added {
			t.Fatalf("AddInbox(%s) = %v, %v; want true", it.EventID, added, err)
		}
	}
	replay := items[0]
	replay.EventJSON = []byte(`{"replayed":true}`)
	if added, err := st.AddInbox(ctx, replay); err != nil || added {
		t.Fatalf("AddInbox of a replayed event = %v, %v; want false", added, err)
	}

	unfinished := func() []string {
		t.Helper()
		got, err := st.UnfinishedInbox(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(got))
		for i, it := range got {
			ids[i] = it.EventID.String()
			if it.EventID == "$late" && string(it.EventJSON) != `{"n":2}` {
				t.Errorf("replay overwrote the recorded event: %s", it.EventJSON)
			}
			if it.EventID == "$early" && (it.Sender != bob || it.RoomID != room || !it.ReceivedAt.Equal(t0.Add(time.Second))) {
				t.Errorf("item = %+v", it)
			}
		}
		return ids
	}
	if got, want := unfinished(), []string{"$early", "$late", "$third"}; !slices.Equal(got, want) {
		t.Errorf("UnfinishedInbox = %v, want %v (by reception)", got, want)
	}

	if rec, done, err := st.InboxDone(ctx, "$late"); err != nil || !rec || done {
		t.Errorf("InboxDone before MarkDone = %v, %v, %v; want recorded, not done", rec, done, err)
	}
	if err := st.MarkDone(ctx, "$late", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, want := unfinished(), []string{"$early", "$third"}; !slices.Equal(got, want) {
		t.Errorf("UnfinishedInbox after MarkDone = %v, want %v", got, want)
	}
	if rec, done, err := st.InboxDone(ctx, "$late"); err != nil || !rec || !done {
		t.Errorf("InboxDone after MarkDone = %v, %v, %v; want recorded and done", rec, done, err)
	}
	if rec, done, err := st.InboxDone(ctx, "$never"); err != nil || rec || done {
		t.Errorf("InboxDone of an unknown event = %v, %v, %v", rec, done, err)
	}
	// A done event replayed stays done.
	if added, _ := st.AddInbox(ctx, items[0]); added {
		t.Error("AddInbox re-recorded a finished event")
	}
	if got := unfinished(); slices.Contains(got, "$late") {
		t.Error("replay made a finished event unfinished again")
	}
}

func TestOutbox(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	msgs := []store.Outgoing{
		{Key: "b", RoomID: room, ReplyTo: "$req", MsgType: "m.notice", Markdown: "second", Mentions: []id.UserID{alice, bob}, CreatedAt: t0.Add(time.Second)},
		{Key: "c", DMUser: alice, MsgType: "m.text", Markdown: "third", CreatedAt: t0.Add(2 * time.Second)},
		{Key: "a", RoomID: room, MsgType: "m.notice", Markdown: "first", CreatedAt: t0.Add(time.Second)},
		{Key: "0", RoomID: room, MsgType: "m.notice", Markdown: "zeroth", CreatedAt: t0},
	}
	for _, m := range msgs {
		if err := st.Enqueue(ctx, m); err != nil {
			t.Fatalf("Enqueue(%s): %v", m.Key, err)
		}
	}
	dup := msgs[0]
	dup.Markdown = "changed"
	if err := st.Enqueue(ctx, dup); err != nil {
		t.Fatalf("Enqueue of a known key: %v", err)
	}

	keys := func(limit int) []string {
		t.Helper()
		got, err := st.Unsent(ctx, limit)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(got))
		for i, m := range got {
			out[i] = m.Key
		}
		return out
	}
	// Queued order, whatever the timestamps: a reply and the notices queued
	// with it in one transaction share a millisecond and must keep their order.
	if got, want := keys(10), []string{"b", "c", "a", "0"}; !slices.Equal(got, want) {
		t.Fatalf("Unsent = %v, want %v (the order they were queued in)", got, want)
	}
	if got, want := keys(2), []string{"b", "c"}; !slices.Equal(got, want) {
		t.Errorf("Unsent(2) = %v, want %v", got, want)
	}

	all, _ := st.Unsent(ctx, 10)
	b := all[0]
	if b.Markdown != "second" || b.RoomID != room || b.ReplyTo != "$req" || b.MsgType != "m.notice" ||
		!slices.Equal(b.Mentions, []id.UserID{alice, bob}) || !b.CreatedAt.Equal(t0.Add(time.Second)) || b.Attempts != 0 {
		t.Errorf("message b = %+v (a second Enqueue must not change it)", b)
	}
	if c := all[1]; c.DMUser != alice || c.RoomID != "" || len(c.Mentions) != 0 {
		t.Errorf("message c = %+v", c)
	}

	for range 2 {
		if err := st.MarkFailed(ctx, "a", "M_LIMIT_EXCEEDED"); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.MarkSent(ctx, "b", "$sent-b", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(10), []string{"c", "a", "0"}; !slices.Equal(got, want) {
		t.Errorf("Unsent after MarkSent(b) = %v, want %v", got, want)
	}
	all, _ = st.Unsent(ctx, 10)
	if all[1].Key != "a" || all[1].Attempts != 2 {
		t.Errorf("after two failures: %+v, want attempts 2", all[1])
	}

	if evt, sent, err := st.SentEvent(ctx, "b"); err != nil || !sent || evt != "$sent-b" {
		t.Errorf("SentEvent(b) = %s, %v, %v", evt, sent, err)
	}
	if _, sent, err := st.SentEvent(ctx, "a"); err != nil || sent {
		t.Errorf("SentEvent(a) = %v, %v; want not sent", sent, err)
	}
	if _, sent, err := st.SentEvent(ctx, "nope"); err != nil || sent {
		t.Errorf("SentEvent(unknown) = %v, %v", sent, err)
	}
	if key, ok, err := st.OutgoingKeyForEvent(ctx, "$sent-b"); err != nil || !ok || key != "b" {
		t.Errorf("OutgoingKeyForEvent = %q, %v, %v; want b", key, ok, err)
	}
	if _, ok, err := st.OutgoingKeyForEvent(ctx, "$other"); err != nil || ok {
		t.Errorf("OutgoingKeyForEvent(unknown) = %v, %v", ok, err)
	}

	// Enqueueing a delivered key again does not send it twice.
	if err := st.Enqueue(ctx, msgs[0]); err != nil {
		t.Fatal(err)
	}
	if got := keys(10); slices.Contains(got, "b") {
		t.Errorf("Unsent = %v: a delivered message was queued again", got)
	}
}

func TestOutboxEditsAndGivingUp(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	edit := store.Outgoing{Key: "edit", RoomID: room, Replaces: "$original", MsgType: "m.text", Markdown: "corrigé", CreatedAt: t0}
	if err := st.Enqueue(ctx, edit); err != nil {
		t.Fatal(err)
	}
	if err := st.Enqueue(ctx, store.Outgoing{Key: "stuck", RoomID: room, MsgType: "m.notice", Markdown: "x", CreatedAt: t0.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Unsent(ctx, 10)
	if err != nil || len(got) != 2 || got[0].Replaces != "$original" || got[1].Replaces != "" {
		t.Fatalf("Unsent = %+v, %v; want the edit with its Replaces", got, err)
	}
	for i := 1; i <= store.MaxAttempts; i++ {
		if err := st.MarkFailed(ctx, "stuck", "M_FORBIDDEN"); err != nil {
			t.Fatal(err)
		}
		got, _ := st.Unsent(ctx, 10)
		stillQueued := len(got) == 2
		if want := i < store.MaxAttempts; stillQueued != want {
			t.Fatalf("after %d failures: queued %v, want %v", i, stillQueued, want)
		}
	}
	if _, sent, _ := st.SentEvent(ctx, "stuck"); sent {
		t.Error("a message given up counts as sent")
	}
}

func TestDMRoom(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	if r, err := st.DMRoom(ctx, alice); err != nil || r != "" {
		t.Fatalf("DMRoom before any = %q, %v", r, err)
	}
	if err := st.SetDMRoom(ctx, alice, "!dm1:x", t0); err != nil {
		t.Fatal(err)
	}
	if err := st.SetDMRoom(ctx, bob, "!dm2:x", t0); err != nil {
		t.Fatal(err)
	}
	if err := st.SetDMRoom(ctx, alice, "!dm3:x", t0.Add(time.Hour)); err != nil {
		t.Fatalf("replacing a DM room: %v", err)
	}
	for user, want := range map[id.UserID]id.RoomID{alice: "!dm3:x", bob: "!dm2:x"} {
		if got, err := st.DMRoom(ctx, user); err != nil || got != want {
			t.Errorf("DMRoom(%s) = %q, %v; want %q", user, got, err, want)
		}
	}
}

var errAbort = errors.New("abort")

// writeEverything writes one row of every kind inside ctx.
func writeEverything(ctx context.Context, st *store.Store) error {
	if err := st.CreateRequest(ctx, newRequest(alice, approvals.StatusPending, t0)); err != nil {
		return err
	}
	if err := st.AddAudit(ctx, approvals.AuditEntry{At: t0, Actor: alice, Target: alice, Action: approvals.ActionRequest}); err != nil {
		return err
	}
	if _, err := st.AddInbox(ctx, store.InboxItem{EventID: "$in", RoomID: room, Sender: alice, EventJSON: []byte("{}"), ReceivedAt: t0}); err != nil {
		return err
	}
	if err := st.Enqueue(ctx, store.Outgoing{Key: "k", RoomID: room, MsgType: "m.notice", Markdown: "x", CreatedAt: t0}); err != nil {
		return err
	}
	if err := st.SetDMRoom(ctx, alice, "!dm:x", t0); err != nil {
		return err
	}
	if err := st.RecordConsent(ctx, alice, "v1", t0); err != nil {
		return err
	}
	return st.SetSetting(ctx, "k", "v", t0)
}

// countEverything counts the rows writeEverything writes.
func countEverything(t *testing.T, st *store.Store) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	if _, err := st.LatestRequest(ctx, alice); err == nil {
		n++
	}
	if audit, _ := st.Audit(ctx, alice); len(audit) > 0 {
		n++
	}
	if rec, _, _ := st.InboxDone(ctx, "$in"); rec {
		n++
	}
	if out, _ := st.Unsent(ctx, 10); len(out) > 0 {
		n++
	}
	if r, _ := st.DMRoom(ctx, alice); r != "" {
		n++
	}
	if _, ok, _ := st.ConsentedAt(ctx, alice, "v1"); ok {
		n++
	}
	if _, ok, _ := st.Setting(ctx, "k"); ok {
		n++
	}
	return n
}

func TestInTx(t *testing.T) {
	tests := []struct {
		name     string
		run      func(ctx context.Context, st *store.Store) error
		wantErr  error
		wantRows int
	}{
		{
			name: "commit",
			run: func(ctx context.Context, st *store.Store) error {
				return st.InTx(ctx, func(ctx context.Context) error { return writeEverything(ctx, st) })
			},
			wantRows: 7,
		},
		{
			name: "error rolls back everything",
			run: func(ctx context.Context, st *store.Store) error {
				return st.InTx(ctx, func(ctx context.Context) error {
					if err := writeEverything(ctx, st); err != nil {
						return err
					}
					return errAbort
				})
			},
			wantErr: errAbort,
		},
		{
			name: "failing statement rolls back the earlier ones",
			run: func(ctx context.Context, st *store.Store) error {
				return st.InTx(ctx, func(ctx context.Context) error {
					if err := writeEverything(ctx, st); err != nil {
						return err
					}
					// The second open request breaks the unique index.
					return st.CreateRequest(ctx, newRequest(alice, approvals.StatusPending, t0))
				})
			},
			wantErr: nil, // any error; checked below
		},
		{
			name: "inner error rolls back the outer transaction",
			run: func(ctx context.Context, st *store.Store) error {
				return st.InTx(ctx, func(ctx context.Context) error {
					if err := writeEverything(ctx, st); err != nil {
						return err
					}
					return st.InTx(ctx, func(ctx context.Context) error { return errAbort })
				})
			},
			wantErr: errAbort,
		},
		{
			name: "transition conflict rolls back",
			run: func(ctx context.Context, st *store.Store) error {
				return st.InTx(ctx, func(ctx context.Context) error {
					if err := writeEverything(ctx, st); err != nil {
						return err
					}
					return st.Transition(ctx, 1, []approvals.Status{approvals.StatusApproved}, approvals.StatusActive, "", "", t0)
				})
			},
			wantErr: approvals.ErrConflict,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := open(t)
			err := tt.run(context.Background(), st)
			switch {
			case tt.wantRows > 0 && err != nil:
				t.Fatalf("InTx: %v", err)
			case tt.wantRows == 0 && err == nil:
				t.Fatal("InTx succeeded, want an error")
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("InTx: err = %v, want %v", err, tt.wantErr)
			}
			if got := countEverything(t, st); got != tt.wantRows {
				t.Errorf("%d kinds of rows survived, want %d", got, tt.wantRows)
			}
			// The store stays usable after a rollback.
			if err := writeEverything(context.Background(), st); tt.wantRows == 0 && err != nil {
				t.Errorf("writing after rollback: %v", err)
			}
		})
	}
}

func TestConcurrentApprove(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	clk := fakeclock.New(t0)
	svc := approvals.New(st, approvals.Rules{}, clk.Now)

	const rounds = 10
	for i := range rounds {
		user := id.UserID(fmt.Sprintf("@agent%d:agent.interieur.tchap.gouv.fr", i))
		req, res, err := svc.Announce(ctx, user, room, id.EventID(fmt.Sprintf("$ask%d", i)))
		if err != nil || res != approvals.Created {
			t.Fatalf("Announce = %v, %v", res, err)
		}

		type outcome struct {
			mod id.UserID
			req *approvals.Request
			err error
		}
		results := make(chan outcome, 2)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, mod := range []id.UserID{mod1, mod2} {
			wg.Go(func() {
				<-start
				r, err := svc.Approve(ctx, mod, approvals.User(user), "")
				results <- outcome{mod, r, err}
			})
		}
		close(start)
		wg.Wait()
		close(results)

		var winners, losers []outcome
		for o := range results {
			if o.err == nil {
				winners = append(winners, o)
			} else {
				losers = append(losers, o)
			}
		}
		if len(winners) != 1 || len(losers) != 1 {
			t.Fatalf("round %d: %d successes and %d failures, want one each: %+v %+v", i, len(winners), len(losers), winners, losers)
		}
		win, lose := winners[0], losers[0]
		if win.req.ID != req.ID || win.req.Status != approvals.StatusApproved || win.req.DecidedBy != win.mod {
			t.Errorf("round %d: winner got %+v", i, win.req)
		}
		var decided *approvals.DecidedError
		if !errors.As(lose.err, &decided) {
			t.Fatalf("round %d: loser err = %v (%T), want *DecidedError", i, lose.err, lose.err)
		}
		if !errors.Is(lose.err, approvals.ErrAlreadyDecided) {
			t.Errorf("round %d: errors.Is(loser, ErrAlreadyDecided) = false", i)
		}
		if decided.Request.ID != req.ID || decided.Request.DecidedBy != win.mod || decided.Request.Status != approvals.StatusApproved {
			t.Errorf("round %d: loser told %+v, want #%d approved by %s", i, decided.Request, req.ID, win.mod)
		}

		audit, err := st.Audit(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if len(audit) != 2 || audit[1].Action != approvals.ActionApprove || audit[1].Actor != win.mod {
			t.Errorf("round %d: audit = %+v, want request then one approve by %s", i, audit, win.mod)
		}
	}
}

func TestPruneKeepsRecentRowsAndAcknowledgements(t *testing.T) {
	ctx := context.Background()
	st, _ := open(t)
	old, recent := t0, t0.Add(20*24*time.Hour)
	for _, it := range []struct {
		evt id.EventID
		at  time.Time
	}{{"$old", old}, {"$recent", recent}, {"$open", old}} {
		if _, err := st.AddInbox(ctx, store.InboxItem{EventID: it.evt, RoomID: room, Sender: alice, EventJSON: []byte("{}"), ReceivedAt: it.at}); err != nil {
			t.Fatal(err)
		}
		if it.evt != "$open" {
			if err := st.MarkDone(ctx, it.evt, it.at); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, key := range []string{"ack:$old", "reply:$old", "reply:$recent"} {
		at := old
		if key == "reply:$recent" {
			at = recent
		}
		if err := st.Enqueue(ctx, store.Outgoing{Key: key, RoomID: room, MsgType: "m.notice", Markdown: "x", CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
		if err := st.MarkSent(ctx, key, id.EventID("$sent-"+key), at); err != nil {
			t.Fatal(err)
		}
	}
	n, err := st.Prune(ctx, recent.Add(-14*24*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want 2 rows (old inbox, old reply)", n, err)
	}
	if rec, _, _ := st.InboxDone(ctx, "$old"); rec {
		t.Error("old finished inbox row kept")
	}
	for _, evt := range []id.EventID{"$recent", "$open"} {
		if rec, _, _ := st.InboxDone(ctx, evt); !rec {
			t.Errorf("inbox row %s pruned", evt)
		}
	}
	if key, ok, _ := st.OutgoingKeyForEvent(ctx, "$sent-ack:$old"); !ok || key != "ack:$old" {
		t.Error("an acknowledgement was pruned: reactions to it would no longer decide")
	}
}
