package bot

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"
)

// Homeservers refuse events over 64 KiB (413 M_TOO_LARGE), and a refused
// final edit can never be delivered. What guichet sends for an answer is
// larger than its text: an edit carries it twice (body and m.new_content),
// each with its HTML rendering; JSON escapes '<', '>' and '&' as six bytes
// ("&" in the text is "&amp;" in the HTML, then "\u0026amp;": ten bytes);
// Megolm encrypts the whole JSON and base64 adds a third. Long answers are
// therefore cut into several messages, each measured as the event it
// becomes, encrypted, never by counting characters.

// maxEventBytes is the homeserver's limit on an event.
const maxEventBytes = 64 << 10

// eventBudget is the most guichet lets one of its events weigh, as it sends
// it (encrypted): a quarter under the limit, which leaves room for the
// homeserver's own fields (sender, hashes, signatures, prev and auth events:
// under 2 KiB on Synapse and Dendrite) and for ids longer than the ones
// measured.
const eventBudget = 48 << 10

// megolmOverhead is what a Megolm message adds to its plaintext before
// base64: version (1), message index (at most 5), the AES-CBC padding
// counted apart, MAC (8) and Ed25519 signature (64).
const megolmOverhead = 1 + 5 + 8 + 64

// encryptedEnvelope bounds the other fields of m.room.encrypted content
// (algorithm, sender key, session id, device id, m.relates_to with one
// event id) and the JSON around the ciphertext.
const encryptedEnvelope = 1024

// encryptedSize is the size of the m.room.encrypted content that carries a
// plaintext event of n bytes: PKCS#7 pads it to the next 16 bytes, and
// unpadded base64 writes 4 characters for 3 bytes.
func encryptedSize(n int) int {
	cipher := (n/16 + 1) * 16
	raw := cipher + megolmOverhead
	return (raw*4+2)/3 + encryptedEnvelope
}

// answerContent is a message of an answer as guichet sends it: the
// Markdown rendered as the outbox and the stream render it, an edit of
// replaces when set, else a reply to replyTo.
func answerContent(markdown string, replyTo, replaces id.EventID) *event.MessageEventContent {
	content := format.RenderMarkdown(markdown, true, false)
	content.MsgType = event.MsgText
	content.Mentions = &event.Mentions{}
	if replaces != "" {
		content.SetEdit(replaces)
	} else if replyTo != "" {
		content.RelatesTo = &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: replyTo}}
	}
	return &content
}

// sizeProbe is an event id as long as any a homeserver gives (room versions
// 4 and later: "$" and 43 characters of base64), for measuring edits.
const sizeProbe = id.EventID("$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")

// eventSize is the size of the event that shows markdown as an edit (the
// largest form: text twice), encrypted in room.
func eventSize(markdown string, room id.RoomID) int {
	content := answerContent(markdown, "", sizeProbe)
	plain, err := json.Marshal(struct {
		Type    string                     `json:"type"`
		Content *event.MessageEventContent `json:"content"`
		RoomID  id.RoomID                  `json:"room_id"`
	}{event.EventMessage.Type, content, room})
	if err != nil {
		return maxEventBytes // cannot happen: nothing in it fails to encode
	}
	return encryptedSize(len(plain))
}

// fits tells whether markdown, shown as an edit in room, stays within
// eventBudget.
func fits(markdown string, room id.RoomID) bool {
	return eventSize(markdown, room) <= eventBudget
}

// splitAnswer cuts an answer into messages that each fit (see fits), at
// the last paragraph, line or word break that keeps a part full enough, and
// keeps a code block open across a cut readable: the part that cuts it
// closes it and the next one opens it again.
func splitAnswer(text string, room id.RoomID) []string {
	var parts []string
	for text != "" {
		if fits(text, room) {
			return append(parts, text)
		}
		part, rest := cutPart(text, room)
		parts = append(parts, part)
		text = rest
	}
	return parts
}

// cutPart returns the first part of text that fits, and the rest.
func cutPart(text string, room id.RoomID) (part, rest string) {
	// The longest prefix (in runes) that fits, by bisection: the size
	// grows with the prefix, except for Markdown that a cut changes,
	// which the checks below absorb.
	runes := []rune(text)
	lo, hi := 1, len(runes)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if fits(closeFence(string(runes[:mid])), room) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	for n := lo; n > 0; n -= max(1, n/50) {
		prefix := string(runes[:n])
		cut := breakAt(prefix)
		for _, c := range []int{cut, len(prefix)} {
			head := strings.TrimRight(prefix[:c], " \n")
			if head == "" {
				continue
			}
			if closed := closeFence(head); fits(closed, room) {
				tail := strings.TrimLeft(text[c:], " \n")
				if fence := openFence(head); fence != "" && tail != "" {
					tail = fence + "\n" + tail
				}
				return closed, tail
			}
		}
	}
	// Nothing fits (cannot happen with any text: one character's event is
	// a few hundred bytes): one rune per part rather than a loop.
	_, size := utf8.DecodeRuneInString(text)
	return text[:size], text[size:]
}

// breakAt is where to cut prefix: after its last paragraph break, else its
// last line break, else its last space, if that keeps at least half of it;
// else at its end.
func breakAt(prefix string) int {
	for _, sep := range []string{"\n\n", "\n", " "} {
		if i := strings.LastIndex(prefix, sep); i >= len(prefix)/2 {
			return i + len(sep)
		}
	}
	return len(prefix)
}

// openFence returns the opening line of the code block that md leaves open
// ("" if none).
func openFence(md string) string {
	open := ""
	for line := range strings.SplitSeq(md, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		if !strings.HasPrefix(trimmed, "```") && !strings.HasPrefix(trimmed, "~~~") {
			continue
		}
		if open == "" {
			open = trimmed
		} else if strings.HasPrefix(trimmed, open[:3]) && strings.TrimSpace(trimmed[3:]) == "" {
			open = ""
		}
	}
	return open
}

// closeFence closes the code block md leaves open, if any.
func closeFence(md string) string {
	if fence := openFence(md); fence != "" {
		return md + "\n" + fence[:3]
	}
	return md
}
