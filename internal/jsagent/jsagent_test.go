package jsagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	_ "go.mau.fi/util/dbutil/litestream" // registers the sqlite3-fk-wal driver of the crypto store
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"guichet/internal/dendrite"
	"guichet/internal/mxclient"
)

// wait bounds every wait on the homeserver and the clients.
const wait = 30 * time.Second

// needed skips the test when node, the npm modules or the dendrite binaries
// are missing, or fails it when GUICHET_E2E=1.
func needed(t *testing.T) (jsDir, binDir string) {
	t.Helper()
	skip := func(err error) {
		t.Helper()
		if os.Getenv("GUICHET_E2E") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	jsDir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	if err := Available(jsDir); err != nil {
		skip(err)
	}
	binDir, err = dendrite.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(binDir, "dendrite")); err != nil {
		skip(fmt.Errorf("dendrite binaries missing in %s: %w", binDir, err))
	}
	return jsDir, binDir
}

// testLog sends a process's output to the test log.
type testLog struct {
	t    *testing.T
	name string
}

func (w testLog) Write(p []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startDendrite(t *testing.T, bin string) *dendrite.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := dendrite.Start(ctx, dendrite.Options{BinDir: bin, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

// account registers localpart and logs it in on its own device (every
// shared-secret registration gets the same device id).
func account(ctx context.Context, t *testing.T, s *dendrite.Server, localpart, device string) dendrite.Account {
	t.Helper()
	const password = "password-" + "1234"
	if _, err := s.Register(ctx, localpart, password, false); err != nil {
		t.Fatal(err)
	}
	acct, err := s.Login(ctx, localpart, password, device)
	if err != nil {
		t.Fatal(err)
	}
	return acct
}

func TestEncryptedDMWithMautrix(t *testing.T) {
	jsDir, bin := needed(t)
	hs := startDendrite(t, bin)
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()

	aliceAcct := account(ctx, t, hs, "alice", "ALICEWEB")
	bobAcct := account(ctx, t, hs, "bob", "BOBGO")

	began := time.Now()
	alice, err := Start(ctx, Options{Dir: jsDir, BaseURL: hs.URL, UserID: aliceAcct.UserID,
		AccessToken: aliceAcct.AccessToken, DeviceID: aliceAcct.DeviceID, Log: testLog{t, "alice (js)"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("matrix-js-sdk started and synced in %v", time.Since(began).Round(time.Millisecond))
	defer func() {
		if err := alice.Stop(); err != nil {
			t.Errorf("stopping the agent: %v", err)
		}
	}()

	bob, err := mxclient.Start(ctx, mxclient.Options{Homeserver: hs.URL, UserID: bobAcct.UserID,
		AccessToken: bobAcct.AccessToken, DeviceID: bobAcct.DeviceID, Dir: t.TempDir(),
		Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()

	within := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, wait) }
	aliceSees := func(what string, match func(Message) bool) Message {
		t.Helper()
		wctx, cancel := within()
		defer cancel()
		m, err := alice.WaitMessage(wctx, match)
		if err != nil {
			t.Fatalf("alice (js) never saw %s: %v\nsaw: %+v\ndecryption errors: %+v", what, err, alice.Messages(), alice.DecryptErrors())
		}
		return m
	}
	bobSees := func(what string, match func(mxclient.Message) bool) mxclient.Message {
		t.Helper()
		wctx, cancel := within()
		defer cancel()
		m, err := bob.WaitMessage(wctx, match)
		if err != nil {
			t.Fatalf("bob (mautrix) never saw %s: %v\nsaw: %+v", what, err, bob.Messages())
		}
		return m
	}

	// bob opens an encrypted DM; alice's agent joins it by itself.
	dm, err := bob.CreateDM(ctx, alice.UserID())
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := within()
	joined, err := alice.WaitJoined(wctx)
	wcancel()
	if err != nil {
		t.Fatalf("alice did not join the DM: %v (invites: %+v)", err, alice.Invites())
	}
	if joined != dm {
		t.Fatalf("alice joined %s, want the DM %s", joined, dm)
	}
	if inv := alice.Invites(); len(inv) != 1 || inv[0].RoomID != dm || inv[0].Inviter != bob.UserID() || !inv[0].IsDirect {
		t.Errorf("invites = %+v, want one direct invite from bob to %s", inv, dm)
	}
	wctx, wcancel = within()
	err = bob.WaitMember(wctx, dm, alice.UserID())
	wcancel()
	if err != nil {
		t.Fatalf("bob never saw alice join: %v", err)
	}

	// bob -> alice, encrypted.
	hello, err := bob.SendText(ctx, dm, "Bonjour Alice")
	if err != nil {
		t.Fatal(err)
	}
	got := aliceSees("bob's message", func(m Message) bool { return m.EventID == hello })
	if got.Sender != bob.UserID() || got.RoomID != dm || got.Body != "Bonjour Alice" || got.MsgType != event.MsgText || !got.Encrypted {
		t.Errorf("alice saw %+v", got)
	}

	// alice -> bob, encrypted.
	answer, err := alice.Send(ctx, dm, "Bonjour Bob")
	if err != nil {
		t.Fatal(err)
	}
	back := bobSees("alice's answer", func(m mxclient.Message) bool { return m.EventID == answer })
	if back.Sender != alice.UserID() || back.Body != "Bonjour Bob" || !back.Encrypted {
		t.Errorf("bob saw %+v", back)
	}

	// bob edits his message: alice sees the edit and its new content.
	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "Bonjour Alice, ça va ?",
		Format: event.FormatHTML, FormattedBody: "Bonjour <strong>Alice</strong>, ça va ?"}
	edit.SetEdit(hello)
	editID, err := bob.Send(ctx, dm, edit)
	if err != nil {
		t.Fatal(err)
	}
	got = aliceSees("bob's edit", func(m Message) bool { return m.EventID == editID })
	if got.ReplaceOf != hello || got.Body != "Bonjour Alice, ça va ?" || got.Format != event.FormatHTML ||
		got.FormattedBody != "Bonjour <strong>Alice</strong>, ça va ?" || !got.Encrypted {
		t.Errorf("alice saw the edit as %+v", got)
	}

	// Replies both ways keep their m.in_reply_to (outside the ciphertext).
	reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "Très bien"}
	reply.RelatesTo = (&event.RelatesTo{}).SetReplyTo(editID)
	replyID, err := alice.SendContent(ctx, dm, reply)
	if err != nil {
		t.Fatal(err)
	}
	back = bobSees("alice's reply", func(m mxclient.Message) bool { return m.EventID == replyID })
	if back.InReplyTo != editID || back.Body != "Très bien" || !back.Encrypted {
		t.Errorf("bob saw alice's reply as %+v", back)
	}
	reply = &event.MessageEventContent{MsgType: event.MsgText, Body: "Tant mieux"}
	reply.RelatesTo = (&event.RelatesTo{}).SetReplyTo(replyID)
	replyID, err = bob.Send(ctx, dm, reply)
	if err != nil {
		t.Fatal(err)
	}
	got = aliceSees("bob's reply", func(m Message) bool { return m.EventID == replyID })
	if got.InReplyTo != back.EventID || got.ReplaceOf != "" || got.Body != "Tant mieux" {
		t.Errorf("alice saw bob's reply as %+v", got)
	}

	// WaitMessage hands each message out once; Messages keeps them all, and
	// alice's own messages are not reported.
	wctx, wcancel = context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = alice.WaitMessage(wctx, func(m Message) bool { return m.EventID == hello })
	wcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a consumed message was returned again (err %v)", err)
	}
	var ids []id.EventID
	for _, m := range alice.Messages() {
		ids = append(ids, m.EventID)
		if m.Sender == alice.UserID() {
			t.Errorf("alice's own message was reported: %+v", m)
		}
	}
	if want := []id.EventID{hello, editID, replyID}; !slices.Equal(ids, want) {
		t.Errorf("alice's messages are %v, want %v", ids, want)
	}
	if errs := alice.DecryptErrors(); len(errs) > 0 {
		t.Logf("transient decryption errors: %+v", errs)
	}
}

// A wrong access token fails Start instead of hanging.
func TestStartWithBadToken(t *testing.T) {
	jsDir, bin := needed(t)
	hs := startDendrite(t, bin)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	acct := account(ctx, t, hs, "carol", "CAROLWEB")
	a, err := Start(ctx, Options{Dir: jsDir, BaseURL: hs.URL, UserID: acct.UserID,
		AccessToken: "not-a-token", DeviceID: acct.DeviceID, Log: testLog{t, "carol (js)"}})
	if err == nil {
		a.Close()
		t.Fatal("Start worked with a wrong access token")
	}
	if ctx.Err() != nil {
		t.Fatalf("Start hung until the deadline: %v", err)
	}
	t.Logf("Start failed as expected: %v", err)
}

func TestAvailable(t *testing.T) {
	if err := Available(t.TempDir()); err == nil {
		t.Error("Available accepted a folder without agent.mjs")
	}
}

// What bob sends right after the invite, before alice's agent joined, is
// reported once she is in (as a person opening the DM would see it); what
// was there before her agent started is not.
func TestMessagesAroundStartAndJoin(t *testing.T) {
	jsDir, bin := needed(t)
	hs := startDendrite(t, bin)
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	aliceAcct := account(ctx, t, hs, "alice", "ALICEWEB")
	bobAcct := account(ctx, t, hs, "bob", "BOBGO")
	bob, err := mxclient.Start(ctx, mxclient.Options{Homeserver: hs.URL, UserID: bobAcct.UserID,
		AccessToken: bobAcct.AccessToken, DeviceID: bobAcct.DeviceID, Dir: t.TempDir(),
		Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()

	// A clear room alice is in before her agent starts, with history.
	old, err := bob.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SendText(ctx, old.RoomID, "avant"); err != nil {
		t.Fatal(err)
	}
	aliceCli, err := mautrix.NewClient(hs.URL, aliceAcct.UserID, aliceAcct.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aliceCli.JoinRoomByID(ctx, old.RoomID); err != nil {
		t.Fatal(err)
	}

	alice, err := Start(ctx, Options{Dir: jsDir, BaseURL: hs.URL, UserID: aliceAcct.UserID,
		AccessToken: aliceAcct.AccessToken, DeviceID: aliceAcct.DeviceID, Log: testLog{t, "alice (js)"}})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()

	dm, err := bob.CreateDM(ctx, alice.UserID())
	if err != nil {
		t.Fatal(err)
	}
	early, err := bob.SendText(ctx, dm, "Bienvenue")
	if err != nil {
		t.Fatal(err)
	}
	after, err := bob.SendText(ctx, old.RoomID, "après")
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, wait)
	defer wcancel()
	m, err := alice.WaitMessage(wctx, func(m Message) bool { return m.EventID == early })
	if err != nil {
		t.Fatalf("alice never saw the message sent before she joined: %v\nsaw %+v\ndecryption errors: %+v", err, alice.Messages(), alice.DecryptErrors())
	}
	if m.Body != "Bienvenue" || !m.Encrypted {
		t.Errorf("alice saw %+v", m)
	}
	m, err = alice.WaitMessage(wctx, func(m Message) bool { return m.RoomID == old.RoomID })
	if err != nil {
		t.Fatal(err)
	}
	if m.EventID != after || m.Body != "après" || m.Encrypted {
		t.Errorf("first message alice saw in the room she was already in: %+v, want %q", m, "après")
	}
}
