package bot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/store"
)

func httpErr(code int, resp *mautrix.RespError) error {
	return mautrix.HTTPError{Response: &http.Response{StatusCode: code}, RespError: resp, Message: "request failed"}
}

func respErr(base mautrix.RespError) *mautrix.RespError {
	e := base
	return &e
}

// Issue 10, 1(c): what the homeserver will refuse again is not retried as
// if it were temporary.
func TestOutboxPermanentErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"403 M_FORBIDDEN (not in the room)", httpErr(403, respErr(mautrix.MForbidden)), true},
		{"404 M_NOT_FOUND (unknown room)", httpErr(404, respErr(mautrix.MNotFound)), true},
		{"413 M_TOO_LARGE", httpErr(413, respErr(mautrix.MTooLarge)), true},
		{"413 without a Matrix error", httpErr(413, nil), true},
		{"400 M_BAD_JSON", httpErr(400, respErr(mautrix.MBadJSON)), true},
		{"wrapped 403", fmt.Errorf("failed to send to !r:x: %w", httpErr(403, respErr(mautrix.MForbidden))), true},
		{"dead room", fmt.Errorf("failed: %w", errRoomGone), true},
		{"invite to an unreachable homeserver", &inviteError{remote: true, err: httpErr(500, respErr(mautrix.MUnknown))}, true},
		{"invite refused", &inviteError{err: httpErr(403, respErr(mautrix.MForbidden))}, true},
		{"429 M_LIMIT_EXCEEDED", httpErr(429, respErr(mautrix.MLimitExceeded)), false},
		{"500 M_UNKNOWN", httpErr(500, respErr(mautrix.MUnknown)), false},
		{"502 without a body", httpErr(502, nil), false},
		{"401 M_UNKNOWN_TOKEN (our session)", httpErr(401, respErr(mautrix.MUnknownToken)), false},
		{"network error", mautrix.HTTPError{WrappedError: &url.Error{Op: "Post", URL: "http://hs", Err: errors.New("connection refused")}}, false},
		{"invite to our own homeserver failing with 500", &inviteError{err: httpErr(500, respErr(mautrix.MUnknown))}, false},
		{"invite cut by a timeout", &inviteError{remote: true, err: context.DeadlineExceeded}, false},
		{"cancelled", context.Canceled, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := permanent(tt.err); got != tt.want {
				t.Errorf("permanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func outboxBot(t *testing.T, now *time.Time) (*Bot, *store.Store) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "guichet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	st := store.New(db, zerolog.Nop())
	if err := st.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := New(Config{}, Deps{DB: db, Store: st, Log: zerolog.Nop(), Now: func() time.Time { return *now }})
	b.supportRoom = "!support:example.org"
	return b, st
}

// Issue 10, 1(d): giving up is never silent. A welcome or a decision that
// cannot be delivered is reported to the moderators in the support room,
// naming the agent literally; an answer, to the agent; a report itself is
// not reported again; a temporary failure reports nothing yet.
func TestOutboxGivingUpIsNeverSilent(t *testing.T) {
	const agent = id.UserID("@a_b_-dinum.gouv.fr:agent.dinum.tchap.gouv.fr")
	forbidden := httpErr(403, respErr(mautrix.MForbidden))
	tests := []struct {
		name      string
		msg       store.Outgoing
		cause     error
		wantRoom  id.RoomID // where the report goes ("" with wantDM)
		wantDM    id.UserID
		wantParts []string
	}{
		{"welcome to an unreachable agent", store.Outgoing{Key: "welcome:7", Kind: store.KindWelcome, RequestID: 7, DMUser: agent, Recipient: agent},
			&inviteError{remote: true, err: httpErr(500, nil)}, "!support:example.org", "",
			[]string{"bienvenue", `@a\_b\_-dinum.gouv.fr:agent.dinum.tchap.gouv.fr`, "n° 7", "injoignable"}},
		{"revocation to an agent who left", store.Outgoing{Key: "revoked:3", DMUser: agent}, errRoomGone, "!support:example.org", "",
			[]string{"retrait d'accès", `@a\_b\_-dinum.gouv.fr`, "n° 3", "quitté"}},
		{"rejection refused by the homeserver", store.Outgoing{Key: "rejected:4", DMUser: agent}, forbidden, "!support:example.org", "",
			[]string{"refus", "n° 4", "refusé"}},
		{"answer too large", store.Outgoing{Key: "reply:$q", RoomID: "!dm:example.org", ReplyTo: "$q", Recipient: agent},
			httpErr(413, respErr(mautrix.MTooLarge)), "", agent, []string{"réponse"}},
		{"answer in the DM the agent left (her DM already forgotten)", store.Outgoing{Key: "reply:$q2", RoomID: "!left:example.org", ReplyTo: "$q2"},
			&deadRoomError{room: "!left:example.org", reader: agent}, "", agent, []string{"réponse"}},
		{"a report that cannot be delivered", store.Outgoing{Key: "undelivered:reply:$q", Kind: store.KindUndelivered, DMUser: agent}, forbidden, "", "", nil},
		{"a command's answer", store.Outgoing{Key: "cmd:$c", RoomID: "!support:example.org"}, forbidden, "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
			b, st := outboxBot(t, &now)
			tt.msg.MsgType, tt.msg.Markdown, tt.msg.CreatedAt = "m.notice", "x", now
			if err := st.Enqueue(ctx, tt.msg); err != nil {
				t.Fatal(err)
			}
			queued, _ := st.Due(ctx, now, 10)
			gaveUp, ok := b.failed(ctx, queued[0], tt.cause)
			if !gaveUp || !ok {
				t.Fatalf("failed = %v, %v; want given up", gaveUp, ok)
			}
			reports, err := st.Due(ctx, now, 10)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantRoom == "" && tt.wantDM == "" {
				if len(reports) != 0 {
					t.Fatalf("reported %+v, want nothing", reports)
				}
				return
			}
			if len(reports) != 1 {
				t.Fatalf("reports = %+v, want one", reports)
			}
			r := reports[0]
			if r.RoomID != tt.wantRoom || r.DMUser != tt.wantDM || r.Kind != store.KindUndelivered || r.MsgType != "m.notice" {
				t.Errorf("report to room %q / DM %q, kind %q, type %s; want room %q / DM %q", r.RoomID, r.DMUser, r.Kind, r.MsgType, tt.wantRoom, tt.wantDM)
			}
			for _, p := range tt.wantParts {
				if !strings.Contains(r.Markdown, p) {
					t.Errorf("report %q lacks %q", r.Markdown, p)
				}
			}
			if counts, _ := st.CountGivenUp(ctx, now); counts[store.KindOfKey(tt.msg.Key)] != 1 {
				t.Errorf("CountGivenUp = %v", counts)
			}
		})
	}
}

// An answer split into several messages that cannot be delivered is
// reported once.
func TestOutboxUndeliveredAnswerReportedOnce(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	b, st := outboxBot(t, &now)
	const agent = id.UserID("@agent:example.org")
	for _, key := range []string{"reply:$q", "reply:$q:2", "reply:$q:3"} {
		msg := store.Outgoing{Key: key, Kind: store.KindReply, Regarding: "$q", RoomID: "!dm:example.org", MsgType: "m.text", Markdown: "x", CreatedAt: now}
		if err := st.Enqueue(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	parts, _ := st.Due(ctx, now, 10)
	for _, m := range parts {
		if gaveUp, _ := b.failed(ctx, m, &deadRoomError{room: m.RoomID, reader: agent}); !gaveUp {
			t.Fatalf("%s not given up", m.Key)
		}
	}
	reports, _ := st.Due(ctx, now, 10)
	if len(reports) != 1 || reports[0].DMUser != agent {
		t.Errorf("reports = %+v, want one to the agent", reports)
	}
}

// A temporary failure is retried later, on the message's own schedule, and
// tells nobody yet; the twentieth gives up and tells the moderators.
func TestOutboxTemporaryFailuresThenGivingUp(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	b, st := outboxBot(t, &now)
	const agent = id.UserID("@agent:example.org")
	if err := st.Enqueue(ctx, store.Outgoing{Key: "welcome:1", DMUser: agent, MsgType: "m.text", Markdown: "x", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	busy := httpErr(502, nil)
	for i := 1; i <= store.MaxAttempts; i++ {
		due, err := st.Due(ctx, now, 10)
		if err != nil || len(due) != 1 || due[0].Key != "welcome:1" {
			t.Fatalf("attempt %d: due %+v, %v", i, due, err)
		}
		gaveUp, _ := b.failed(ctx, due[0], busy)
		if gaveUp != (i == store.MaxAttempts) {
			t.Fatalf("attempt %d: given up %v", i, gaveUp)
		}
		if i < store.MaxAttempts {
			if due, _ := st.Due(ctx, now, 10); len(due) != 0 {
				t.Fatalf("attempt %d: %+v due again at once", i, due)
			}
			now = now.Add(store.RetryDelay(i))
		}
	}
	reports, _ := st.Due(ctx, now, 10)
	if len(reports) != 1 || reports[0].RoomID != b.supportRoom || !strings.Contains(reports[0].Markdown, "plusieurs essais") {
		t.Fatalf("reports = %+v, want one to the support room", reports)
	}
}

// fakeHomeserver records the requests guichet makes and answers {} to each.
type fakeHomeserver struct {
	mu   sync.Mutex
	seen []string
}

func (f *fakeHomeserver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seen = append(f.seen, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}"))
}

func (f *fakeHomeserver) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

// Issue 10, 1(a): guichet knows, from its state store, whether the person a
// message is for (and guichet itself) can still read a room, before
// sending: a DM the agent or guichet left is dead and forgotten, a room an
// earlier attempt opened is reused, and one the agent refused is not
// offered again.
func TestOutboxDestination(t *testing.T) {
	const (
		me    = id.UserID("@guichet:example.org")
		agent = id.UserID("@agent:example.org")
	)
	join, invite, leave := event.MembershipJoin, event.MembershipInvite, event.MembershipLeave
	type members map[id.UserID]event.Membership
	tests := []struct {
		name       string
		rooms      map[id.RoomID]members
		dm         id.RoomID // agent's recorded DM
		msg        store.Outgoing
		want       id.RoomID
		wantErr    error
		wantDM     id.RoomID // agent's recorded DM afterwards
		wantLeaves []id.RoomID
	}{
		{name: "her DM, both in it",
			rooms: map[id.RoomID]members{"!dm": {me: join, agent: join}}, dm: "!dm",
			msg: store.Outgoing{Key: "reply:$q", RoomID: "!dm"}, want: "!dm", wantDM: "!dm"},
		{name: "her DM, she is invited",
			rooms: map[id.RoomID]members{"!dm": {me: join, agent: invite}}, dm: "!dm",
			msg: store.Outgoing{Key: "welcome:1", DMUser: agent}, want: "!dm", wantDM: "!dm"},
		{name: "an answer in the DM she left",
			rooms: map[id.RoomID]members{"!dm": {me: join, agent: leave}}, dm: "!dm",
			msg: store.Outgoing{Key: "reply:$q", RoomID: "!dm"}, wantErr: errRoomGone, wantDM: "", wantLeaves: []id.RoomID{"!dm"}},
		{name: "a notice in the room guichet left",
			rooms: map[id.RoomID]members{"!group": {me: leave, agent: join}}, dm: "!group",
			msg: store.Outgoing{Key: "revoked:3", RoomID: "!group", Recipient: agent}, wantErr: errRoomGone, wantDM: ""},
		{name: "a welcome after she left: the room an earlier attempt opened",
			rooms: map[id.RoomID]members{"!dm": {me: join, agent: leave}, "!new": {me: join, agent: invite}}, dm: "!dm",
			msg:  store.Outgoing{Key: "welcome:1", DMUser: agent, DMCreated: "!new"},
			want: "!new", wantDM: "!new", wantLeaves: []id.RoomID{"!dm"}},
		{name: "the room opened for it, which she refused",
			rooms: map[id.RoomID]members{"!new": {me: join, agent: leave}},
			msg:   store.Outgoing{Key: "welcome:1", DMUser: agent, DMCreated: "!new"}, wantErr: errRoomGone, wantDM: ""},
		{name: "a decision after guichet left her DM, reusing the room an earlier attempt opened",
			rooms: map[id.RoomID]members{"!group": {me: leave, agent: join}, "!new": {me: join, agent: join}}, dm: "!group",
			msg:  store.Outgoing{Key: "rejected:2", DMUser: agent, DMCreated: "!new"},
			want: "!new", wantDM: "!new"},
		{name: "the support room is not checked",
			rooms: map[id.RoomID]members{}, msg: store.Outgoing{Key: "ack:$a", RoomID: "!support:example.org"}, want: "!support:example.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
			b, st := outboxBot(t, &now)
			hs := &fakeHomeserver{}
			srv := httptest.NewServer(hs)
			t.Cleanup(srv.Close)
			cli, err := mautrix.NewClient(srv.URL, me, "token")
			if err != nil {
				t.Fatal(err)
			}
			cli.StateStore = mautrix.NewMemoryStateStore()
			b.client = cli
			for room, ms := range tt.rooms {
				for user, m := range ms {
					if err := cli.StateStore.SetMembership(ctx, room, user, m); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tt.dm != "" {
				if err := st.SetDMRoom(ctx, agent, tt.dm, now); err != nil {
					t.Fatal(err)
				}
			}
			m := tt.msg
			got, err := b.destination(ctx, &m)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Errorf("destination = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
			if dm, _ := st.DMRoom(ctx, agent); dm != tt.wantDM {
				t.Errorf("agent's DM afterwards = %q, want %q", dm, tt.wantDM)
			}
			var leaves []id.RoomID
			for _, r := range hs.requests() {
				if strings.HasSuffix(r, "/leave") {
					leaves = append(leaves, id.RoomID(strings.TrimSuffix(strings.TrimPrefix(r, "POST /_matrix/client/v3/rooms/"), "/leave")))
				} else {
					t.Errorf("unexpected request %s", r)
				}
			}
			if !slices.Equal(leaves, tt.wantLeaves) {
				t.Errorf("left %v, want %v", leaves, tt.wantLeaves)
			}
		})
	}
}
