package bot

import (
	"encoding/json"
	"strings"
	"testing"

	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// realEncryptedSize encrypts the event that shows markdown as an edit with a
// real Megolm session and returns the size of the m.room.encrypted content
// guichet would send, JSON-encoded as mautrix encodes it.
func realEncryptedSize(t *testing.T, sess *session.MegolmOutboundSession, markdown string, room id.RoomID, replaces id.EventID) int {
	t.Helper()
	content := answerContent(markdown, "", replaces)
	plain, err := json.Marshal(map[string]any{"type": event.EventMessage.Type, "content": content, "room_id": room})
	if err != nil {
		t.Fatal(err)
	}
	ciphertext, err := sess.Encrypt(plain)
	if err != nil {
		t.Fatal(err)
	}
	enc := &event.EncryptedEventContent{
		Algorithm:        id.AlgorithmMegolmV1,
		SenderKey:        "c2VuZGVyIGtleSBvZiBndWljaGV0IHRoYXQgaXMgNDNjaGFycw",
		DeviceID:         "GUICHETDEVICE",
		SessionID:        sess.ID(),
		MegolmCiphertext: ciphertext,
		RelatesTo:        content.RelatesTo,
	}
	raw, err := json.Marshal(enc)
	if err != nil {
		t.Fatal(err)
	}
	return len(raw)
}

// Worst cases for one event: every character escaped twice (HTML, then
// JSON), multi-byte UTF-8, characters JSON escapes as six bytes, Markdown
// that the renderer multiplies, and plain prose; each of about 47,000
// characters, the answer that was lost to a 413.
func TestLongAnswersSplitIntoEventsWellUnderTheLimit(t *testing.T) {
	const n = 47000
	cases := []struct {
		name string
		text string
	}{
		{"ampersands", strings.Repeat("&", n)},
		{"html specials", strings.Repeat(`<>&"'`, n/5)},
		{"four-byte emoji", strings.Repeat("😀", n)},
		{"line separators", strings.Repeat("\u2028", n)},
		{"accents and spaces", strings.Repeat("éèà ", n/4)},
		{"markdown list", strings.Repeat("- **a** `<b>` [c](https://d.fr/?e=f&g=h)\n", n/42)},
		{"code block", "```go\n" + strings.Repeat("if a < b && c > d { x = \"&\" }\n", n/32) + "```\n"},
		{"prose", strings.Repeat("Le service public répond aux usagers avec précision. ", n/53)},
	}
	room := id.RoomID("!aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:agent.interieur.tchap.gouv.fr")
	replaces := id.EventID("$" + strings.Repeat("b", 43))
	sess, err := session.NewMegolmOutboundSession()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			parts := splitAnswer(tt.text, room)
			if len(parts) < 2 {
				t.Fatalf("a %d-byte answer was not split", len(tt.text))
			}
			largest := 0
			var joined strings.Builder
			for i, p := range parts {
				real := realEncryptedSize(t, sess, p, room, replaces)
				largest = max(largest, real)
				if real > eventBudget {
					t.Errorf("part %d of %d: %d bytes encrypted, over the budget of %d", i+1, len(parts), real, eventBudget)
				}
				if est := eventSize(p, room); est < real {
					t.Errorf("part %d: estimated %d bytes, less than the real %d", i+1, est, real)
				}
				// What the stream shows while the part grows.
				if stream := realEncryptedSize(t, sess, p+" …", room, replaces); stream > maxEventBytes-8<<10 {
					t.Errorf("part %d as a streamed edit: %d bytes", i+1, stream)
				}
				joined.WriteString(p)
			}
			t.Logf("%d characters, %d bytes: %d messages, largest event %d bytes encrypted (limit %d)",
				len([]rune(tt.text)), len(tt.text), len(parts), largest, maxEventBytes)
			if got, want := strip(joined.String()), strip(tt.text); got != want && !strings.Contains(tt.name, "code") {
				t.Errorf("the parts do not hold the answer: %d characters instead of %d", len(got), len(want))
			}
		})
	}
}

func strip(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

// A code block cut in two is closed and reopened.
func TestSplitKeepsCodeBlocks(t *testing.T) {
	text := "Voici :\n\n```python\n" + strings.Repeat("print('<&>' * 3)\n", 4000) + "```\n\nFin."
	parts := splitAnswer(text, "!r:x")
	if len(parts) < 2 {
		t.Fatal("not split")
	}
	for i, p := range parts {
		if openFence(p) != "" {
			t.Errorf("part %d leaves a code block open", i+1)
		}
		if i > 0 && i < len(parts)-1 && !strings.HasPrefix(p, "```python") {
			t.Errorf("part %d does not reopen the code block: %.30q", i+1, p)
		}
	}
	if !strings.HasSuffix(parts[len(parts)-1], "Fin.") {
		t.Error("the end of the answer is lost")
	}
}
