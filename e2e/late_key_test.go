package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/internal/mxclient"
)

// lateKey is a question alice encrypts with a Megolm session whose key she
// shares with guichet only when told to.
type lateKey struct {
	sess  *session.MegolmOutboundSession
	key   []byte // the session's key before its first message
	alice *mxclient.Person
	room  id.RoomID
}

// sendWithLateKey sends text in room, encrypted with a session guichet has no
// key for yet.
func sendWithLateKey(t *testing.T, w *world, alice *mxclient.Person, room id.RoomID, text string) (*lateKey, id.EventID) {
	t.Helper()
	sess, err := session.NewMegolmOutboundSession()
	if err != nil {
		t.Fatal(err)
	}
	plain, err := json.Marshal(map[string]any{
		"type":    event.EventMessage.Type,
		"room_id": room,
		"content": map[string]any{"msgtype": event.MsgText, "body": text},
	})
	if err != nil {
		t.Fatal(err)
	}
	key, err := sess.SessionSharingMessage()
	if err != nil {
		t.Fatal(err)
	}
	ciphertext, err := sess.Encrypt(plain)
	if err != nil {
		t.Fatal(err)
	}
	mach := alice.Client.Crypto.(*cryptohelper.CryptoHelper).Machine()
	content := &event.EncryptedEventContent{
		Algorithm: id.AlgorithmMegolmV1, SenderKey: mach.OwnIdentity().IdentityKey, DeviceID: alice.Client.DeviceID,
		SessionID: sess.ID(), MegolmCiphertext: ciphertext,
	}
	resp, err := alice.Client.SendMessageEvent(w.ctx(), room, event.EventEncrypted, content, mautrix.ReqSendEvent{DontEncrypt: true})
	if err != nil {
		t.Fatal(err)
	}
	return &lateKey{sess: sess, key: key, alice: alice, room: room}, resp.EventID
}

// share sends the session's key to guichet's device, over Olm.
func (k *lateKey) share(t *testing.T, w *world, device id.DeviceID) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	mach := k.alice.Client.Crypto.(*cryptohelper.CryptoHelper).Machine()
	dev, err := mach.GetOrFetchDevice(ctx, w.tb.Bot.UserID, device)
	if err != nil {
		t.Fatalf("failed to read guichet's device: %v", err)
	}
	content := event.Content{Parsed: &event.RoomKeyEventContent{
		Algorithm: id.AlgorithmMegolmV1, RoomID: k.room, SessionID: k.sess.ID(), SessionKey: string(k.key),
	}}
	if err := mach.SendEncryptedToDevice(ctx, dev, event.ToDeviceRoomKey, content); err != nil {
		t.Fatalf("failed to share the key: %v", err)
	}
}

// waitRecorded waits until guichet's inbox holds evt, waiting for its key.
func waitRecorded(t *testing.T, w *world, evt id.EventID) {
	t.Helper()
	for deadline := time.Now().Add(wait); ; {
		if dbCount(t, w.cfg.Database, `SELECT COUNT(*) FROM inbox WHERE event_id=$1 AND waiting_session<>''`, evt.String()) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("guichet never recorded the message waiting for its key")
		}
		time.Sleep(50 * time.Millisecond) // polling guichet's database
	}
}

// A DM message whose Megolm key arrives after the sync, while guichet is
// down, is answered after the restart: it was recorded, encrypted, before
// the sync token moved, and is decrypted when the key comes.
func TestMessageWhoseKeyArrivesAfterAStopIsAnswered(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	alice, dm := activeAgent(t, w)
	bot, device := w.tb.Bot.UserID, w.app.Bot.DeviceID()

	k, q := sendWithLateKey(t, w, alice, dm, "Question dont la clé arrive après l'arrêt")
	waitRecorded(t, w, q)
	w.stopGuichet()
	k.share(t, w, device)
	w.startGuichet()

	answer := w.expect(alice, "the answer to the message whose key came late", from(bot), replyTo(q), msgType(event.MsgText))
	mustContain(t, answer, "Question dont la clé arrive après l'arrêt")
	if n := count(alice, from(bot), replyTo(q), contains("déchiffrer")); n != 0 {
		t.Errorf("alice was asked %d times to send again a message that was answered", n)
	}
}

// A key that arrives after cryptohelper stopped waiting for it (25 s) is
// not too late: the message is answered then, and its sender was asked to
// send it again only after keyWait.
func TestMessageWhoseKeyArrivesLateIsAnswered(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 26 s for cryptohelper to give up")
	}
	w := newWorld(t)
	w.startGuichet()
	alice, dm := activeAgent(t, w)
	bot, device := w.tb.Bot.UserID, w.app.Bot.DeviceID()

	k, q := sendWithLateKey(t, w, alice, dm, "Question dont la clé arrive tard")
	waitRecorded(t, w, q)
	// Until cryptohelper gives up on it (3 s, then 22 s after a key request).
	for deadline := time.Now().Add(40 * time.Second); !strings.Contains(w.log.String(), "Still waiting for the key of an event"); {
		if time.Now().After(deadline) {
			t.Fatal("cryptohelper never gave up waiting")
		}
		time.Sleep(100 * time.Millisecond) // polling guichet's log
	}
	k.share(t, w, device)
	answer := w.expect(alice, "the answer to the message whose key came late", from(bot), replyTo(q), msgType(event.MsgText))
	mustContain(t, answer, "Question dont la clé arrive tard")
}
