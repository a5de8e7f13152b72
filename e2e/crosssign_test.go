package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"

	"guichet/internal/jsagent"
	"guichet/internal/testbed"
	"guichet/internal/testdb"
)

// guichet cross-signs its own device at its first start with a password, so
// Tchap's web client shows its messages as coming from a device verified by
// its owner; restarts keep the same keys, the recovery key is written once,
// with mode 0600, and never logged.
func TestCrossSignedDevice(t *testing.T) {
	w := newWorld(t)
	keyFile := filepath.Join(w.dir, "recovery-key.txt")
	w.cfg.Matrix.RecoveryKeyFile = keyFile
	w.startGuichet()
	bot, device := w.tb.Bot.UserID, w.app.Bot.DeviceID()
	bob := w.person("bob")

	master := requireCrossSigned(t, w.ctx(), bob.Client, bot, device)

	info, err := os.Stat(keyFile)
	if err != nil {
		t.Fatalf("the recovery key was not written: %v", err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("recovery key file mode = %o, want 600", mode)
	}
	recoveryKey, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(bytes.TrimSpace(recoveryKey)) < 40 {
		t.Fatalf("recovery key file holds %q, not a recovery key", recoveryKey)
	}

	t.Run("matrix-js-sdk", func(t *testing.T) {
		dir, err := jsagent.Dir()
		if err != nil {
			t.Fatal(err)
		}
		if err := jsagent.Available(dir); err != nil {
			if os.Getenv("GUICHET_E2E") == "1" {
				t.Fatal(err)
			}
			t.Skip(err)
		}
		ctx := w.ctx()
		const localpart = "alice.martin-interieur.gouv.fr"
		if _, err := w.tb.HS.Register(ctx, localpart, testbed.Password, false); err != nil {
			t.Fatal(err)
		}
		acct, err := w.tb.HS.Login(ctx, localpart, testbed.Password, "ALICEWEB")
		if err != nil {
			t.Fatal(err)
		}
		alice, err := jsagent.Start(ctx, jsagent.Options{Dir: dir, BaseURL: w.tb.HS.URL, UserID: acct.UserID,
			AccessToken: acct.AccessToken, DeviceID: acct.DeviceID, Log: testLogWriter{t}})
		if err != nil {
			t.Fatal(err)
		}
		defer alice.Close()

		// As in Tchap: alice asks, is approved and reads guichet's
		// encrypted welcome; her client now tracks guichet's devices.
		if err := alice.Join(ctx, w.tb.SupportRoom.String()); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SendText(ctx, w.tb.SupportRoom, "Bonjour, je souhaite accéder à l'Assistant IA"); err != nil {
			t.Fatal(err)
		}
		w.send(w.tb.Moderator, w.tb.SupportRoom, "!approve "+acct.UserID.String())
		w.as(t).expect(alice, "the encrypted welcome", from(bot), notInRoom(w.tb.SupportRoom), contains("!accepter"), encrypted())

		st, err := waitDeviceKnown(ctx, alice, bot, device)
		if err != nil {
			t.Fatal(err)
		}
		if !st.SignedByOwner {
			t.Errorf("matrix-js-sdk sees guichet's device as %+v, want it signed by its owner", st)
		}
	})

	// A restart keeps the keys and leaves the recovery key file alone.
	w.stopGuichet()
	w.startGuichet()
	if got := requireCrossSigned(t, w.ctx(), bob.Client, bot, w.app.Bot.DeviceID()); got != master {
		t.Errorf("master key after a restart = %s, want %s", got, master)
	}
	again, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if content, _ := os.ReadFile(keyFile); !bytes.Equal(content, recoveryKey) || !again.ModTime().Equal(info.ModTime()) {
		t.Error("the recovery key file was rewritten by a restart")
	}

	// Written once: moved to a safe place, it is not written again.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	w.stopGuichet()
	w.startGuichet()
	if got := requireCrossSigned(t, w.ctx(), bob.Client, bot, w.app.Bot.DeviceID()); got != master {
		t.Errorf("master key after a second restart = %s, want %s", got, master)
	}
	if _, err := os.Stat(keyFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the recovery key file was written again (stat: %v)", err)
	}

	key := string(bytes.TrimSpace(recoveryKey))
	log := w.log.String()
	if strings.Contains(log, key) || strings.Contains(log, strings.ReplaceAll(key, " ", "")) {
		t.Error("the recovery key appears in guichet's log")
	}
	if !strings.Contains(log, "Created cross-signing keys") {
		t.Error("guichet did not log that it created its cross-signing keys")
	}
}

// waitDeviceKnown asks a until its crypto store holds device: the key query
// that follows the welcome may still be under way.
func waitDeviceKnown(ctx context.Context, a *jsagent.Agent, user id.UserID, device id.DeviceID) (jsagent.DeviceStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := a.DeviceStatus(ctx, user, device)
		if err != nil || st.Known {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("matrix-js-sdk never knew device %s of %s: %w", device, user, ctx.Err())
		case <-tick.C:
		}
	}
}

// keysQuery is /keys/query kept raw, so signatures are checked on the exact
// JSON the homeserver serves.
type keysQuery struct {
	DeviceKeys      map[id.UserID]map[id.DeviceID]json.RawMessage `json:"device_keys"`
	MasterKeys      map[id.UserID]json.RawMessage                 `json:"master_keys"`
	SelfSigningKeys map[id.UserID]json.RawMessage                 `json:"self_signing_keys"`
}

// requireCrossSigned fetches user's keys as cli and checks that device is
// signed by the user's self-signing key, itself signed by the master key,
// which it returns.
func requireCrossSigned(t *testing.T, ctx context.Context, cli *mautrix.Client, user id.UserID, device id.DeviceID) id.Ed25519 {
	t.Helper()
	var resp keysQuery
	req := map[string]any{"device_keys": map[id.UserID][]id.DeviceID{user: {}}}
	if _, err := cli.MakeRequest(ctx, "POST", cli.BuildClientURL("v3", "keys", "query"), req, &resp); err != nil {
		t.Fatalf("failed to query %s's keys: %v", user, err)
	}
	rawMaster, ok := resp.MasterKeys[user]
	if !ok {
		t.Fatalf("%s has no master key", user)
	}
	rawSelf, ok := resp.SelfSigningKeys[user]
	if !ok {
		t.Fatalf("%s has no self-signing key", user)
	}
	rawDevice, ok := resp.DeviceKeys[user][device]
	if !ok {
		t.Fatalf("%s has no device %s", user, device)
	}
	var masterKeys, selfKeys mautrix.CrossSigningKeys
	if err := json.Unmarshal(rawMaster, &masterKeys); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(rawSelf, &selfKeys); err != nil {
		t.Fatal(err)
	}
	master, self := masterKeys.FirstKey(), selfKeys.FirstKey()
	if ok, err := signatures.VerifySignatureJSON(rawSelf, user, master.String(), master); !ok || err != nil {
		t.Fatalf("the self-signing key is not signed by the master key (%v)", err)
	}
	if ok, err := signatures.VerifySignatureJSON(rawDevice, user, self.String(), self); !ok || err != nil {
		t.Fatalf("device %s is not signed by the self-signing key (%v)", device, err)
	}
	return master
}

// A database lost (restored without its keys) while the homeserver keeps
// guichet's cross-signing keys: the new device stays unverified, and the
// operator is told to put the recovery key back; once it is back, guichet
// signs its device with the same master key.
func TestCrossSigningRecoveredWithRecoveryKey(t *testing.T) {
	w := newWorld(t)
	keyFile := filepath.Join(w.dir, "recovery-key.txt")
	w.cfg.Matrix.RecoveryKeyFile = keyFile
	w.startGuichet()
	bob := w.person("bob")
	bot := w.tb.Bot.UserID
	master := requireCrossSigned(t, w.ctx(), bob.Client, bot, w.app.Bot.DeviceID())
	w.stopGuichet()

	safe := filepath.Join(w.dir, "safe-place.txt")
	if err := os.Rename(keyFile, safe); err != nil {
		t.Fatal(err)
	}
	// The database is lost: a new one, empty.
	if testdb.Postgres() {
		w.cfg.Database.Type, w.cfg.Database.URI = testdb.New(t, "")
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(w.cfg.Database.URI + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) && !testdb.Postgres() {
			t.Fatal(err)
		}
	}
	w.startGuichet()
	if !strings.Contains(w.log.String(), "Put the recovery key written at first start in matrix.recovery_key_file") {
		t.Error("guichet did not tell the operator to put the recovery key back")
	}
	if _, err := os.Stat(keyFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("guichet wrote a recovery key file although the homeserver has its keys (stat: %v)", err)
	}
	w.stopGuichet()

	if err := os.Rename(safe, keyFile); err != nil {
		t.Fatal(err)
	}
	w.startGuichet()
	if got := requireCrossSigned(t, w.ctx(), bob.Client, bot, w.app.Bot.DeviceID()); got != master {
		t.Errorf("master key after the recovery = %s, want %s", got, master)
	}
}

// With an access token only, guichet cannot upload cross-signing keys (that
// needs the password): it says how to, once, and runs.
func TestCrossSigningAccessTokenOnly(t *testing.T) {
	w := newWorld(t)
	acct, err := w.tb.HS.Login(w.ctx(), "assistant-ia", testbed.Password, "GUICHETTOKEN")
	if err != nil {
		t.Fatal(err)
	}
	w.cfg.Matrix.Password = ""
	w.cfg.Matrix.AccessToken, w.cfg.Matrix.DeviceID = acct.AccessToken, acct.DeviceID.String()
	w.startGuichet()
	const hint = "Uploading cross-signing keys needs the account password"
	if n := strings.Count(w.log.String(), hint); n != 1 {
		t.Errorf("the how-to was logged %d times, want once", n)
	}
	if strings.Contains(w.log.String(), acct.AccessToken) {
		t.Error("the access token appears in guichet's log")
	}
}
