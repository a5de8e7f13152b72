package dendrite

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// binDir returns the binaries folder, building it when GUICHET_E2E=1, or
// skips the test when binaries are missing.
func binDir(t *testing.T) string {
	t.Helper()
	dir, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	if missing := missingBinaries(dir); len(missing) > 0 {
		if os.Getenv("GUICHET_E2E") != "1" {
			t.Skipf("dendrite binaries missing in %s (%s); set GUICHET_E2E=1 to build them", dir, strings.Join(missing, ", "))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		if err := EnsureBinaries(ctx, dir, testWriter{t}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// testWriter sends dendrite's output to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startServer(t *testing.T, bin string) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	s, err := Start(ctx, Options{BinDir: bin, DataDir: t.TempDir(), Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dendrite ready at %s in %v", s.URL, time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func client(t *testing.T, s *Server, a Account) *mautrix.Client {
	t.Helper()
	c, err := mautrix.NewClient(s.URL, a.UserID, a.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	c.DeviceID = a.DeviceID
	return c
}

// syncUntil runs /sync for c until cond accepts a response or ctx ends.
func syncUntil(ctx context.Context, t *testing.T, c *mautrix.Client, since *string, what string, cond func(*mautrix.RespSync) bool) {
	t.Helper()
	for {
		resp, err := c.SyncRequest(ctx, 1000, *since, "", false, event.PresenceOffline)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		*since = resp.NextBatch
		if cond(resp) {
			return
		}
	}
}

func TestServer(t *testing.T) {
	bin := binDir(t)
	s := startServer(t, bin)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	alice, err := s.Register(ctx, "alice", "alice-password", true)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := s.Register(ctx, "bob", "bob-password", false)
	if err != nil {
		t.Fatal(err)
	}
	if want := id.NewUserID("alice", s.ServerName); alice.UserID != want {
		t.Fatalf("alice is %s, want %s", alice.UserID, want)
	}
	if _, err := s.Register(ctx, "carol", "short", false); err == nil {
		t.Fatal("registering with a 5-character password worked")
	}

	bob2, err := s.Login(ctx, "bob", "bob-password", "")
	if err != nil {
		t.Fatal(err)
	}
	if bob2.UserID != bob.UserID || bob2.DeviceID == "" || bob2.DeviceID == bob.DeviceID || bob2.AccessToken == bob.AccessToken {
		t.Fatalf("login gave %+v, registration gave %+v; want same user, new device and token", bob2, bob)
	}
	bob3, err := s.Login(ctx, "bob", "bob-password", "BOBPHONE")
	if err != nil {
		t.Fatal(err)
	}
	if bob3.DeviceID != "BOBPHONE" {
		t.Fatalf("login with device id BOBPHONE gave %s", bob3.DeviceID)
	}

	a, b := client(t, s, alice), client(t, s, bob2)
	who, err := b.Whoami(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if who.UserID != bob.UserID || who.DeviceID != bob2.DeviceID {
		t.Fatalf("whoami: %+v", who)
	}

	room, err := a.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}

	var since string
	syncUntil(ctx, t, b, &since, "invite", func(r *mautrix.RespSync) bool {
		_, ok := r.Rooms.Invite[room.RoomID]
		return ok
	})
	if _, err := b.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}

	const text = "bonjour Bob"
	sent, err := a.SendText(ctx, room.RoomID, text)
	if err != nil {
		t.Fatal(err)
	}
	syncUntil(ctx, t, b, &since, "message", func(r *mautrix.RespSync) bool {
		joined, ok := r.Rooms.Join[room.RoomID]
		if !ok {
			return false
		}
		for _, evt := range joined.Timeline.Events {
			if evt.ID != sent.EventID {
				continue
			}
			if evt.Sender != alice.UserID || evt.Type != event.EventMessage {
				t.Fatalf("event %s: sender %s type %s", evt.ID, evt.Sender, evt.Type.Type)
			}
			if body, _ := evt.Content.Raw["body"].(string); body != text {
				t.Fatalf("message body %q, want %q", body, text)
			}
			return true
		}
		return false
	})

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := b.Whoami(ctx); err == nil {
		t.Fatal("server still answers after Stop")
	}
}

// TestServersSideBySide runs two servers at once.
func TestServersSideBySide(t *testing.T) {
	bin := binDir(t)
	servers := make([]*Server, 2)
	var wg sync.WaitGroup
	errs := make([]error, len(servers))
	for i := range servers {
		dir := t.TempDir()
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			servers[i], errs[i] = Start(ctx, Options{BinDir: bin, DataDir: dir, ServerName: "hs" + string(rune('a'+i)) + ".test"})
		})
	}
	wg.Wait()
	for i, s := range servers {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		t.Cleanup(func() { _ = s.Stop() })
	}
	if servers[0].URL == servers[1].URL {
		t.Fatalf("both servers at %s", servers[0].URL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range servers {
		acc, err := s.Register(ctx, "user", "user-password", false)
		if err != nil {
			t.Fatal(err)
		}
		if want := id.NewUserID("user", s.ServerName); acc.UserID != want {
			t.Fatalf("registered %s, want %s", acc.UserID, want)
		}
	}
}

func TestStartRejectsUsedDataDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/leftover", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(context.Background(), Options{BinDir: "/nonexistent", DataDir: dir}); err == nil {
		t.Fatal("Start accepted a data dir that is not empty")
	}
}

// TestStartRetriesOnBindFailure hands Start a taken port first: held by a
// listener that never answers, then by another dendrite.
func TestStartRetriesOnBindFailure(t *testing.T) {
	bin := binDir(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	other := startServer(t, bin)
	otherPort, err := strconv.Atoi(other.URL[strings.LastIndex(other.URL, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	orig := freePort
	t.Cleanup(func() { freePort = orig })
	for name, port := range map[string]int{
		"silent listener": silent.Addr().(*net.TCPAddr).Port,
		"other dendrite":  otherPort,
	} {
		t.Run(name, func(t *testing.T) {
			calls := 0
			freePort = func() (int, error) {
				calls++
				if calls == 1 {
					return port, nil
				}
				return orig()
			}
			s := startServer(t, bin)
			if calls != 2 {
				t.Fatalf("freePort called %d times, want 2", calls)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := s.Register(ctx, "user", "user-password", false); err != nil {
				t.Fatal(err)
			}
		})
	}
}
