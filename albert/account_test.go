package albert_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"guichet/albert"
	"guichet/albert/fakealbert"
)

func intp(v int) *int           { return &v }
func floatp(v float64) *float64 { return &v }

func lim(router int, typ string, value *int) albert.AccountLimit {
	return albert.AccountLimit{Router: router, Type: typ, Value: value}
}

// accountString prints an Account with its pointers dereferenced, for
// comparisons and failure messages.
func accountString(a albert.Account) string {
	budget := "unlimited"
	if a.Budget != nil {
		budget = fmt.Sprint(*a.Budget)
	}
	exp := "never"
	if !a.Expires.IsZero() {
		exp = a.Expires.UTC().Format(time.RFC3339Nano)
	}
	limits := ""
	for _, l := range a.Limits {
		v := "unlimited"
		if l.Value != nil {
			v = fmt.Sprint(*l.Value)
		}
		limits += fmt.Sprintf(" %d/%s=%s", l.Router, l.Type, v)
	}
	return fmt.Sprintf("id=%q name=%q email=%q org=%q budget=%s expires=%s priority=%d limits=[%s]",
		a.ID, a.Name, a.Email, a.Organization, budget, exp, a.Priority, limits)
}

func TestMeInfoAgainstFake(t *testing.T) {
	srv := startFake(t)
	srv.SetAPIKey("k")
	c := newClient(srv.URL, "k")
	got, err := c.MeInfo(context.Background())
	if err != nil {
		t.Fatalf("MeInfo: %v", err)
	}
	want := albert.Account{ID: "1", Name: "fake", Email: fakealbert.AccountEmail, Organization: "1",
		Limits: []albert.AccountLimit{
			{Router: 1, Type: albert.LimitRPM, Value: intp(50)}, {Router: 1, Type: albert.LimitRPD, Value: intp(5000)},
			{Router: 1, Type: albert.LimitTPM}, {Router: 1, Type: albert.LimitTPD},
		}}
	if accountString(got) != accountString(want) || got.Budget != nil || !got.Expires.IsZero() {
		t.Errorf("default account =\n%s\nwant\n%s", accountString(got), accountString(want))
	}

	expires := time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)
	srv.SetAccount(fakealbert.Account{Budget: floatp(12.5), Expires: expires, Name: "DINUM",
		Limits: []albert.AccountLimit{{Router: 7, Type: albert.LimitTPD, Value: intp(0)}}})
	got, err = c.MeInfo(context.Background())
	if err != nil {
		t.Fatalf("MeInfo: %v", err)
	}
	if got.Budget == nil || *got.Budget != 12.5 || !got.Expires.Equal(expires) || got.Name != "DINUM" ||
		len(got.Limits) != 1 || got.Limits[0].Value == nil || *got.Limits[0].Value != 0 {
		t.Errorf("set account = %s", accountString(got))
	}

	_, err = newClient(srv.URL, "wrong").MeInfo(context.Background())
	if ae := asError(t, err); ae.Class != albert.ClassAuth || ae.Status != 401 || ae.Detail == "" {
		t.Errorf("bad key: %+v", ae)
	}
	if n := srv.MeInfoCalls(); n != 3 {
		t.Errorf("MeInfoCalls = %d, want 3", n)
	}
}

// TestMeInfoReplay reads answers in the 2026 shape and in the shape before
// late 2025, with the variants a client may meet.
func TestMeInfoReplay(t *testing.T) {
	tests := []struct {
		name string
		body string
		want albert.Account
	}{
		{
			name: "2026, budget and expiry set",
			body: `{"object":"userInfo","id":4821,"email":"guichet@numerique.gouv.fr","name":"Guichet DINUM","organization":12,
				"budget":37.85,"permissions":["create_public_collection"],
				"limits":[{"router":3,"type":"rpm","value":50},{"router":3,"type":"rpd","value":5000},{"router":3,"type":"tpm","value":null},
					{"router":9,"type":"tpd","value":0}],
				"expires":1798758000,"priority":2,"created":1760000000,"updated":1764000000}`,
			want: albert.Account{ID: "4821", Email: "guichet@numerique.gouv.fr", Name: "Guichet DINUM", Organization: "12",
				Budget: floatp(37.85), Expires: time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC), Priority: 2,
				Limits: []albert.AccountLimit{lim(3, "rpm", intp(50)), lim(3, "rpd", intp(5000)), lim(3, "tpm", nil), lim(9, "tpd", intp(0))}},
		},
		{
			name: "2026, unlimited and never expires",
			body: `{"object":"userInfo","id":1,"email":"admin@example.gouv.fr","name":null,"organization":null,"budget":null,
				"permissions":["admin"],"limits":[],"expires":null,"priority":0,"created":1760000000,"updated":1760000000}`,
			want: albert.Account{ID: "1", Email: "admin@example.gouv.fr"},
		},
		{
			name: "before late 2025: expires_at, created_at, no limits, id as string",
			body: `{"object":"user","id":"17","email":"agent@interieur.gouv.fr","name":"agent","role":2,"organization":null,
				"budget":0.0,"expires_at":1767139200,"created_at":1740000000,"updated_at":1745000000}`,
			want: albert.Account{ID: "17", Email: "agent@interieur.gouv.fr", Name: "agent", Budget: floatp(0),
				Expires: time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)},
		},
		{
			name: "expiry as an RFC 3339 string with offset, fractional budget as a string",
			body: `{"id":5,"email":"a@b.fr","budget":"3.5","expires":"2026-06-30T00:00:00+02:00"}`,
			want: albert.Account{ID: "5", Email: "a@b.fr", Budget: floatp(3.5), Expires: time.Date(2026, 6, 29, 22, 0, 0, 0, time.UTC)},
		},
		{
			name: "expires_at as Python isoformat without zone (UTC)",
			body: `{"id":"u-9","email":"a@b.fr","expires_at":"2025-11-30T12:30:00.250000"}`,
			want: albert.Account{ID: "u-9", Email: "a@b.fr", Expires: time.Date(2025, 11, 30, 12, 30, 0, 250e6, time.UTC)},
		},
		{
			name: "expiry as float seconds, organization as string",
			body: `{"id":6,"email":"a@b.fr","organization":"dinum","expires":1798758000.5}`,
			want: albert.Account{ID: "6", Email: "a@b.fr", Organization: "dinum", Expires: time.Date(2026, 12, 31, 23, 0, 0, 5e8, time.UTC)},
		},
		{
			name: "expires null, expires_at set: the one that is not null",
			body: `{"id":7,"email":"a@b.fr","expires":null,"expires_at":1767139200}`,
			want: albert.Account{ID: "7", Email: "a@b.fr", Expires: time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)},
		},
		{
			name: "expiry 0 and digits as strings",
			body: `{"id":8,"email":"a@b.fr","expires":0,"limits":[{"router":"4","type":"rpm","value":"10"}],"priority":"1"}`,
			want: albert.Account{ID: "8", Email: "a@b.fr", Priority: 1, Limits: []albert.AccountLimit{lim(4, "rpm", intp(10))}},
		},
		{
			name: "expiry as a string of digits",
			body: `{"id":9,"email":"a@b.fr","expires":"1767139200"}`,
			want: albert.Account{ID: "9", Email: "a@b.fr", Expires: time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)},
		},
		{
			name: "missing fields",
			body: `{}`,
			want: albert.Account{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, rp := replayServer(t, 200, tt.body, nil)
			got, err := newClient(url, "secret").MeInfo(context.Background())
			if err != nil {
				t.Fatalf("MeInfo: %v", err)
			}
			if accountString(got) != accountString(tt.want) {
				t.Errorf("account =\n%s\nwant\n%s", accountString(got), accountString(tt.want))
			}
			if (got.Budget == nil) != (tt.want.Budget == nil) || got.Expires.IsZero() != tt.want.Expires.IsZero() {
				t.Errorf("budget %v, expires %v; want %v, %v", got.Budget, got.Expires, tt.want.Budget, tt.want.Expires)
			}
			r := rp.reqs[0]
			if r.Method != http.MethodGet || r.URL.Path != "/v1/me/info" || r.Header.Get("Authorization") != "Bearer secret" {
				t.Errorf("request %s %s, Authorization %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
			}
		})
	}
}

// An answer whose budget, expiry or limit cannot be read fails rather than
// reading as unlimited or never.
func TestMeInfoUnreadable(t *testing.T) {
	for _, body := range []string{
		`<html>maintenance</html>`,
		`{"id":1,"budget":"lots"}`,
		`{"id":1,"budget":{"left":3}}`,
		`{"id":1,"expires":"soon"}`,
		`{"id":1,"expires":true}`,
		`{"id":1,"expires":null,"expires_at":"2025-13-45"}`,
		`{"id":1,"limits":[{"router":1,"type":"rpm","value":"many"}]}`,
		`{"id":1,"limits":[{"router":1,"type":"rpm","value":2.5}]}`,
		`{"id":1,"name":42}`,
	} {
		t.Run(body, func(t *testing.T) {
			url, _ := replayServer(t, 200, body, nil)
			_, err := newClient(url, "k").MeInfo(context.Background())
			if ae := asError(t, err); ae.Class != albert.ClassUpstream || ae.Status != 200 || ae.Detail != "unreadable account" {
				t.Errorf("error = %+v", ae)
			}
		})
	}
}

func TestMeInfoErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		header     map[string]string
		wantClass  albert.Class
		wantDetail string
		retryAfter time.Duration
	}{
		{"401", 401, `{"detail":"Invalid authentication scheme."}`, nil, albert.ClassAuth, "Invalid authentication scheme.", 0},
		{"403 bad key (2026)", 403, `{"detail":"Invalid API key."}`, nil, albert.ClassAuth, "Invalid API key.", 0},
		{"404 route unknown to the instance", 404, `{"detail":"Not Found"}`, nil, albert.ClassNotFound, "Not Found", 0},
		{"429 per minute", 429, `{"detail":"50 requests per minute exceeded (remaining: 0)."}`, nil,
			albert.ClassRateLimited, "50 requests per minute exceeded (remaining: 0).", 0},
		{"500", 500, `Internal Server Error`, nil, albert.ClassUpstream, "Internal Server Error", 0},
		{"503 with Retry-After", 503, `{"detail":"Model is too busy, please try again later."}`, map[string]string{"Retry-After": "10"},
			albert.ClassBusy, "Model is too busy, please try again later.", 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, _ := replayServer(t, tt.status, tt.body, tt.header)
			got, err := newClient(url, "k").MeInfo(context.Background())
			ae := asError(t, err)
			if ae.Class != tt.wantClass || ae.Status != tt.status || ae.Detail != tt.wantDetail || ae.RetryAfter != tt.retryAfter {
				t.Errorf("error = %+v, want %s %d %q", ae, tt.wantClass, tt.status, tt.wantDetail)
			}
			if got.ID != "" || got.Budget != nil || got.Limits != nil {
				t.Errorf("account with error = %s", accountString(got))
			}
		})
	}
}

// A server that does not answer ends at the client's bound (its idle
// timeout here) as ClassTimeout; a canceled caller gets ClassCanceled.
func TestMeInfoTimeout(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(ts.Close)
	c := albert.New(albert.Config{BaseURL: ts.URL + "/v1", StreamIdleTimeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := c.MeInfo(context.Background())
	if ae := asError(t, err); ae.Class != albert.ClassTimeout {
		t.Errorf("hang: %+v", ae)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %s, want about 200ms", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = c.MeInfo(ctx)
	if ae := asError(t, err); ae.Class != albert.ClassCanceled {
		t.Errorf("canceled: %+v", ae)
	}
}
