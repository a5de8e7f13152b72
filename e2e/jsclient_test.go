package e2e

import (
	"os"
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"

	"guichet/internal/jsagent"
	"guichet/internal/mxclient"
	"guichet/internal/testbed"
)

// The whole path with alice on matrix-js-sdk and its Rust crypto, the stack
// of Tchap's web client: she asks, is approved, receives the encrypted
// welcome, accepts and gets an answer she can decrypt.
func TestTchapWebClientFullFlow(t *testing.T) {
	w := newWorld(t)
	w.startGuichet()
	ctx := w.ctx()
	bot, room := w.tb.Bot.UserID, w.tb.SupportRoom
	alice, aliceID := webAgent(t, w, "alice.martin-interieur.gouv.fr", "ALICEWEB")

	expect := func(what string, conds ...cond) mxclient.Message {
		t.Helper()
		return w.expect(alice, what, conds...)
	}

	if err := alice.Join(ctx, room.String()); err != nil {
		t.Fatal(err)
	}
	ask, err := alice.SendText(ctx, room, "Bonjour, je souhaite accéder à l'Assistant IA")
	if err != nil {
		t.Fatal(err)
	}
	expect("the acknowledgement", from(bot), in(room), replyTo(ask), contains("n° 1"))

	w.send(w.tb.Moderator, room, "!approve "+aliceID.String())
	welcome := expect("the encrypted welcome", from(bot), notInRoom(room), contains("!accepter"))
	if !welcome.Encrypted {
		t.Error("the welcome was not encrypted")
	}
	dm := welcome.RoomID
	acc, err := alice.SendText(ctx, dm, "!accepter")
	if err != nil {
		t.Fatal(err)
	}
	expect("the consent confirmation", from(bot), in(dm), replyTo(acc), contains("Merci"))
	q, err := alice.SendText(ctx, dm, "Comment rédiger une note de synthèse ?")
	if err != nil {
		t.Fatal(err)
	}
	answer := expect("the answer", from(bot), in(dm), replyTo(q), encrypted())
	if !strings.Contains(answer.Body, "Comment rédiger une note de synthèse ?") || !strings.Contains(answer.FormattedBody, "<strong>") {
		t.Errorf("answer = %q / %q", answer.Body, answer.FormattedBody)
	}
	if reqs := w.tb.Albert.Requests(); len(reqs) != 1 || reqs[0].LastUserMessage() != "Comment rédiger une note de synthèse ?" {
		t.Errorf("guichet did not decrypt alice's question: %+v", reqs)
	}
}

// webAgent registers localpart and starts them on matrix-js-sdk with Rust
// crypto (Tchap's web client), logged in as device. Without Node.js the
// test is skipped, unless GUICHET_E2E=1 (make test) makes it a failure.
func webAgent(t *testing.T, w *world, localpart string, device id.DeviceID) (*jsagent.Agent, id.UserID) {
	t.Helper()
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
	if _, err := w.tb.HS.Register(ctx, localpart, testbed.Password, false); err != nil {
		t.Fatal(err)
	}
	acct, err := w.tb.HS.Login(ctx, localpart, testbed.Password, string(device))
	if err != nil {
		t.Fatal(err)
	}
	agent, err := jsagent.Start(ctx, jsagent.Options{Dir: dir, BaseURL: w.tb.HS.URL, UserID: acct.UserID,
		AccessToken: acct.AccessToken, DeviceID: acct.DeviceID, Log: testLogWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agent.Close)
	return agent, acct.UserID
}
