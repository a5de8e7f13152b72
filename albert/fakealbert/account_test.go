package fakealbert_test

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"guichet/albert"
	"guichet/albert/fakealbert"
)

// meInfo fetches GET /v1/me/info raw and decodes it key by key.
func meInfo(t *testing.T, srv *fakealbert.Server, header map[string]string) (int, map[string]json.RawMessage) {
	t.Helper()
	status, _, body := do(t, srv, http.MethodGet, "/me/info", "", header)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("status %d, body %s: %v", status, body, err)
	}
	return status, m
}

// TestMeInfoShape checks the default answer against the 2026 shape of
// albert-api.md, key by key, independently of the albert client.
func TestMeInfoShape(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	status, m := meInfo(t, srv, nil)
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	want := map[string]string{
		"object": `"userInfo"`, "id": `1`, "email": `"fakealbert@example.invalid"`, "name": `"fake"`,
		"organization": `1`, "budget": `null`, "permissions": `[]`, "expires": `null`, "priority": `0`,
		"created": `1760000000`, "updated": `1760000000`,
		"limits": `[{"router":1,"type":"rpm","value":50},{"router":1,"type":"rpd","value":5000},` +
			`{"router":1,"type":"tpm","value":null},{"router":1,"type":"tpd","value":null}]`,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("key %q missing", k)
			continue
		}
		if k == "limits" {
			// Compare without key order.
			var g, w []map[string]any
			_ = json.Unmarshal(got, &g)
			_ = json.Unmarshal([]byte(v), &w)
			gb, _ := json.Marshal(g)
			wb, _ := json.Marshal(w)
			if string(gb) != string(wb) {
				t.Errorf("limits = %s, want %s", gb, wb)
			}
			continue
		}
		if string(got) != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}
	if len(m) != len(want) {
		t.Errorf("%d keys, want %d: %v", len(m), len(want), slices.Sorted(maps.Keys(m)))
	}
	if srv.MeInfoCalls() != 1 || srv.Calls() != 0 {
		t.Errorf("MeInfoCalls = %d, Calls = %d", srv.MeInfoCalls(), srv.Calls())
	}
}

// SetAccount serves budget, expiry (unix seconds), name and limits as set,
// and keeps its own copy.
func TestSetAccount(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	budget, rpm := 0.42, 10
	a := fakealbert.Account{
		Budget:  &budget,
		Expires: time.Date(2026, 12, 31, 23, 0, 0, 500, time.UTC),
		Name:    "",
		Limits:  []albert.AccountLimit{{Router: 3, Type: albert.LimitRPM, Value: &rpm}, {Router: 3, Type: albert.LimitTPD}},
	}
	srv.SetAccount(a)
	budget, rpm, a.Limits[1].Type = 99, 99, "changed"

	status, m := meInfo(t, srv, nil)
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if string(m["budget"]) != "0.42" || string(m["expires"]) != "1798758000" || string(m["name"]) != `""` {
		t.Errorf("budget %s, expires %s, name %s", m["budget"], m["expires"], m["name"])
	}
	if got := string(m["limits"]); got != `[{"router":3,"type":"rpm","value":10},{"router":3,"type":"tpd","value":null}]` {
		t.Errorf("limits = %s", got)
	}

	// No limits at all is [], not null.
	srv.SetAccount(fakealbert.Account{Name: "vide"})
	if _, m := meInfo(t, srv, nil); string(m["limits"]) != "[]" || string(m["budget"]) != "null" || string(m["expires"]) != "null" {
		t.Errorf("empty account: limits %s, budget %s, expires %s", m["limits"], m["budget"], m["expires"])
	}
}

// The key is checked as on the other routes; refused calls are counted.
func TestMeInfoKey(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	srv.SetAPIKey("k")
	status, m := meInfo(t, srv, nil)
	if status != http.StatusUnauthorized || string(m["detail"]) != `"Invalid authentication scheme."` {
		t.Errorf("without key: %d %v", status, m)
	}
	if status, _ := meInfo(t, srv, map[string]string{"Authorization": "Bearer wrong"}); status != http.StatusUnauthorized {
		t.Errorf("wrong key: %d", status)
	}
	if status, m := meInfo(t, srv, map[string]string{"Authorization": "Bearer k"}); status != http.StatusOK || string(m["object"]) != `"userInfo"` {
		t.Errorf("right key: %d %v", status, m)
	}
	if n := srv.MeInfoCalls(); n != 3 {
		t.Errorf("MeInfoCalls = %d, want 3", n)
	}
}

// chatStatus sends one non-streamed chat call and returns its status and
// detail.
func chatStatus(t *testing.T, srv *fakealbert.Server, header map[string]string) (int, string) {
	t.Helper()
	resp := post(t, srv, strings.Replace(chatBody, `"stream":true`, `"stream":false`, 1), header)
	body, _ := io.ReadAll(resp.Body)
	var d struct {
		Detail string `json:"detail"`
	}
	_ = json.Unmarshal(body, &d)
	return resp.StatusCode, d.Detail
}

// FailAlways fails every chat call until StopFailing, after what FailNext
// has left; the key and body checks come first; other routes answer.
func TestFailAlways(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	srv.FailAlways(fakealbert.PerMinuteLimit(50).With("Retry-After", "7"))
	for i := range 3 {
		if status, detail := chatStatus(t, srv, nil); status != 429 || detail != "50 requests per minute exceeded (remaining: 0)." {
			t.Errorf("call %d: %d %q", i, status, detail)
		}
	}
	resp := post(t, srv, chatBody, nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("streamed call: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	// FailNext first, then FailAlways again.
	srv.FailNext(2, 503, "Model is too busy.")
	for i, want := range []int{503, 503, 429} {
		if status, _ := chatStatus(t, srv, nil); status != want {
			t.Errorf("with FailNext, call %d: %d, want %d", i, status, want)
		}
	}

	// A model closed to the key still gets FailAlways's answer; a missing
	// field gets its 422.
	srv.CloseModel("mistral-medium-2508")
	if status, _ := chatStatus(t, srv, nil); status != 429 {
		t.Errorf("closed model: %d, want 429", status)
	}
	srv.OpenModel("mistral-medium-2508")
	if resp := post(t, srv, `{"model":"mistral-medium-2508"}`, nil); resp.StatusCode != 422 {
		t.Errorf("missing messages: %d, want 422", resp.StatusCode)
	}

	// Other routes are not affected.
	if status, _ := meInfo(t, srv, nil); status != 200 {
		t.Errorf("me/info: %d", status)
	}
	if status, _, _ := do(t, srv, http.MethodGet, "/models", "", nil); status != 200 {
		t.Errorf("models: %d", status)
	}

	// Another failure replaces the first.
	srv.FailAlways(fakealbert.InsufficientBudget())
	if status, detail := chatStatus(t, srv, nil); status != 400 || detail != "Insufficient budget." {
		t.Errorf("budget: %d %q", status, detail)
	}

	srv.StopFailing()
	if status, _ := chatStatus(t, srv, nil); status != 200 {
		t.Errorf("after StopFailing: %d", status)
	}
	if n := srv.Calls(); n != 11 {
		t.Errorf("Calls = %d, want 11", n)
	}
}

// A bad key gets its 401, not the persistent failure; StopFailing leaves
// FailNext's calls; Status 0 means off.
func TestFailAlwaysEdges(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	srv.SetAPIKey("k")
	srv.FailAlways(fakealbert.PerDayLimit(1000))
	if status, _ := chatStatus(t, srv, nil); status != 401 {
		t.Errorf("bad key: %d, want 401", status)
	}
	ok := map[string]string{"Authorization": "Bearer k"}
	if status, _ := chatStatus(t, srv, ok); status != 429 {
		t.Errorf("right key: %d, want 429", status)
	}
	srv.FailNextWith(1, fakealbert.Overloaded())
	srv.StopFailing()
	for i, want := range []int{503, 200} {
		if status, _ := chatStatus(t, srv, ok); status != want {
			t.Errorf("after StopFailing, call %d: %d, want %d", i, status, want)
		}
	}
	srv.FailAlways(fakealbert.Failure{})
	if status, _ := chatStatus(t, srv, ok); status != 200 {
		t.Errorf("Status 0: %d, want 200", status)
	}
}

// FailAlways keeps its own copy of the failure's headers.
func TestFailAlwaysCopiesHeader(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	f := fakealbert.Overloaded()
	srv.FailAlways(f)
	f.Header.Set("Retry-After", "99")
	resp := post(t, srv, chatBody, nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "10" {
		t.Errorf("got %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestAccountKnobsConcurrent runs the account knobs and calls together,
// for the race detector.
func TestAccountKnobsConcurrent(t *testing.T) {
	srv := fakealbert.Start()
	defer srv.Close()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for _, get := range []bool{true, false} {
				var resp *http.Response
				var err error
				if get {
					resp, err = http.Get(srv.URL + "/me/info")
				} else {
					resp, err = http.Post(srv.URL+"/chat/completions", "application/json", strings.NewReader(chatBody))
				}
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
		wg.Go(func() {
			b := float64(i)
			srv.SetAccount(fakealbert.Account{Budget: &b, Name: "x", Limits: fakealbert.DefaultAccount().Limits})
			srv.FailAlways(fakealbert.PerMinuteLimit(50))
			srv.StopFailing()
			_ = srv.MeInfoCalls()
		})
	}
	wg.Wait()
	if srv.MeInfoCalls() != 8 || srv.Calls() != 8 {
		t.Errorf("MeInfoCalls = %d, Calls = %d, want 8", srv.MeInfoCalls(), srv.Calls())
	}
}
