package hooks

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestPayloadBody(t *testing.T) {
	at := time.Date(2026, 11, 30, 14, 0, 5, 0, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		name string
		p    Payload
		want string
	}{
		{"approved", NewPayload("d1", 7, "@a:x", Approved, "@mod:x", "ok", at),
			`{"delivery_id":"d1","request_id":7,"user_id":"@a:x","decision":"approved","actor":"@mod:x","reason":"ok","at":"2026-11-30T13:00:05Z"}`},
		{"auto, no actor", NewPayload("d2", 8, "@b:x", AutoApproved, "", "", at),
			`{"delivery_id":"d2","request_id":8,"user_id":"@b:x","decision":"auto_approved","actor":"","reason":"","at":"2026-11-30T13:00:05Z"}`},
		{"escaping", NewPayload("d3", 9, "@c:x", Rejected, "@mod:x", `dit "non" <b>`, at),
			`{"delivery_id":"d3","request_id":9,"user_id":"@c:x","decision":"rejected","actor":"@mod:x","reason":"dit \"non\" \u003cb\u003e","at":"2026-11-30T13:00:05Z"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := tc.p.Body()
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != tc.want {
				t.Errorf("body\n got %s\nwant %s", body, tc.want)
			}
		})
	}
}

func TestSign(t *testing.T) {
	for _, tc := range []struct{ secret, body, want string }{
		// echo -n '{"a":1}' | openssl dgst -sha256 -hmac s3cret
		{"s3cret", `{"a":1}`, "sha256=5910e62016ef5034272c926c27071992a465c2335cecf41851bda071577f4f6d"},
	} {
		got := Sign(tc.secret, []byte(tc.body))
		if got != tc.want {
			t.Errorf("Sign = %s, want %s", got, tc.want)
		}
		if !Verify(tc.secret, []byte(tc.body), got) {
			t.Errorf("Verify refuses its own signature")
		}
	}
	if Verify("other", []byte(`{"a":1}`), Sign("s3cret", []byte(`{"a":1}`))) {
		t.Error("a signature under another secret is accepted")
	}
	if Verify("s3cret", []byte(`{"a":2}`), Sign("s3cret", []byte(`{"a":1}`))) {
		t.Error("a signature of another body is accepted")
	}
}

func TestStatusPermanent(t *testing.T) {
	for code, want := range map[int]bool{400: true, 401: true, 403: true, 404: true, 410: true, 408: false, 429: false, 500: false, 502: false, 503: false} {
		if got := (&StatusError{Code: code}).Permanent(); got != want {
			t.Errorf("%d: permanent %v, want %v", code, got, want)
		}
	}
}

func TestSend(t *testing.T) {
	var gotBody []byte
	var gotSig, gotID string
	status := http.StatusNoContent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotBody, _ = io.ReadAll(r.Body)
		gotSig, gotID = r.Header.Get(SignatureHeader), r.Header.Get(DeliveryHeader)
		w.WriteHeader(status)
	}))
	defer srv.Close()
	s := New(srv.URL, "k", srv.Client())
	body := []byte(`{"x":1}`)
	if err := s.Send(context.Background(), "id1", body); err != nil {
		t.Fatal(err)
	}
	if string(gotBody) != string(body) || gotID != "id1" || !Verify("k", gotBody, gotSig) {
		t.Errorf("got body %s id %q sig %q", gotBody, gotID, gotSig)
	}
	status = http.StatusGone
	var se *StatusError
	if err := s.Send(context.Background(), "id1", body); !errors.As(err, &se) || !se.Permanent() {
		t.Errorf("410: %v, want a permanent StatusError", err)
	}
	status = http.StatusServiceUnavailable
	if err := s.Send(context.Background(), "id1", body); !errors.As(err, &se) || se.Permanent() {
		t.Errorf("503: %v, want a temporary StatusError", err)
	}
}
