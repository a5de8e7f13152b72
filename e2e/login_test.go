package e2e

import (
	"testing"

	"guichet/internal/testbed"
)

// With matrix.access_token and matrix.device_id instead of a password,
// guichet uses that device, keeps it across restarts and answers.
func TestAccessTokenLogin(t *testing.T) {
	w := newWorld(t)
	acct, err := w.tb.HS.Login(w.ctx(), "assistant-ia", testbed.Password, "GUICHETTOKEN")
	if err != nil {
		t.Fatal(err)
	}
	w.cfg.Matrix.Password = ""
	w.cfg.Matrix.AccessToken, w.cfg.Matrix.DeviceID = acct.AccessToken, acct.DeviceID.String()
	w.startGuichet()
	if got := w.app.Bot.DeviceID(); got != acct.DeviceID {
		t.Errorf("guichet uses device %s, want %s", got, acct.DeviceID)
	}
	alice, dm := activeAgent(t, w)
	w.stopGuichet()
	w.startGuichet()
	mustContain(t, ask(t, w, alice, dm, "Toujours là ?"), "Voici ma réponse")
}
