package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// A homeserver that does not answer guichet's check of its saved session
// (a 502 while it restarts) does not make guichet log in again: that would
// make a new device, unknown to every agent's client.
func TestBusyHomeserverAtStartKeepsTheDevice(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	device := w.app.Bot.DeviceID()
	w.stopGuichet()

	target, err := url.Parse(w.tb.HS.URL)
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/account/whoami") && refused.Add(1) <= 3 {
			http.Error(rw, `{"errcode":"M_UNKNOWN","error":"bad gateway"}`, http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	w.cfg.Matrix.Homeserver = srv.URL
	w.startGuichet()
	if got := w.app.Bot.DeviceID(); got != device {
		t.Errorf("device %s after a busy homeserver at start, want %s", got, device)
	}
	if refused.Load() < 4 {
		t.Errorf("whoami asked %d times, want the 3 refusals and a success", refused.Load())
	}
	alice, dm := activeAgent(t, w)
	ask(t, w, alice, dm, "Toujours là ?")
}
