package bot

import (
	neturl "net/url"
	"strings"
	"unicode"

	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"
)

// Every outgoing message is Markdown, rendered by format.RenderMarkdown(md,
// true, false): CommonMark with tables, strikethrough and spoilers, raw HTML
// escaped, the plain body derived from the HTML. A value guichet did not
// write itself (a user id, a moderator's reason or note, a model name, a
// command someone typed, even a URL from the configuration) must reach the
// Markdown through one of the helpers below, which render it literally: the
// people who read it see exactly that string, and it adds no emphasis, link,
// pill, tag, line break, list or table cell. An id with underscores
// (@a._und_.b) must not turn italic, since moderators read and copy it.
//
// Mentions: the outbox sends m.mentions on every message (only the users it
// is told to ping, never the room), so "@room" or a user id in the text
// pings nobody; homeservers and clients ignore the legacy body-matching
// push rules when m.mentions is present.

// maxEchoed bounds what guichet repeats of something someone typed (a
// command name, an unrecognised target, a model asked for): enough to recognise
// it, not enough to turn a reply into a copy of a 60 KB message.
const maxEchoed = 80

// maxFreeText bounds a moderator's reason or note in a message: escaping can
// double a text's size, and an event over 64 KB could never be sent, which
// would hold back every later message to the same room.
const maxFreeText = 500

// mdActive is the ASCII punctuation that can start or end something
// anywhere in a line: emphasis, code, links and images, HTML and entities,
// strikethrough, spoilers and table cells, and the backslash itself.
const mdActive = "\\`*_[]()<>&~|"

// mdPunct is the ASCII punctuation CommonMark lets a backslash escape: an
// escaped character is always literal text.
const mdPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// literal renders s as plain text, in any position: inline, at the start
// of a line, in a list item, a link's text or a table cell. The characters
// of mdActive are backslash-escaped everywhere; so is a first character
// that could open a block at the start of a line (a heading, quote, list,
// rule, fence or table: any punctuation but "@", so that user ids stay
// readable in the Markdown), and the "." of a leading number ("1. x" would
// be a list). A leading space is written as an entity (four would be code),
// and control characters, line breaks included, become spaces: a value can
// end no paragraph, list item or table row. Never inside a code span or a
// link's destination. Bidirectional controls are dropped: they could make
// a reason or an echoed command reorder the sentence around it on screen.
func literal(s string) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/4)
	digits := true // only digits so far
	for i, r := range s {
		if unicode.Is(unicode.Bidi_Control, r) {
			continue
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			r = ' '
		}
		switch {
		case i == 0 && r == ' ':
			b.WriteString("&#32;")
			continue
		case r < 0x80 && strings.ContainsRune(mdActive, r),
			i == 0 && r != '@' && r < 0x80 && strings.ContainsRune(mdPunct, r),
			digits && i > 0 && r == '.':
			b.WriteByte('\\')
		}
		digits = digits && r >= '0' && r <= '9'
		b.WriteRune(r)
	}
	return b.String()
}

// userText shows a user id as text, literally, without pinging them (the
// moderators' lists and confirmations).
func userText(user id.UserID) string { return literal(user.String()) }

// usersText shows user ids as text, separated by commas.
func usersText(users []string) string {
	shown := make([]string, len(users))
	for i, u := range users {
		shown[i] = literal(u)
	}
	return strings.Join(shown, ", ")
}

// mention is a pill for user: a matrix.to link whose text is their id,
// shown literally. Where it pings depends on the message's m.mentions, not
// on this link.
func mention(user id.UserID) string { return link(user.String(), user.URI().MatrixToURL()) }

// roomLink is a link to a room, shown as its id.
func roomLink(room id.RoomID) string { return link(room.String(), room.URI().MatrixToURL()) }

// link is a Markdown link whose text and destination are both taken
// literally (backslash escapes are honoured in a destination too).
func link(text, url string) string {
	return "[" + literal(text) + "](" + literal(strings.Map(noSpace, url)) + ")"
}

// webLink is a link to an http(s) page; text alone, literally, when url is
// not one (a document's metadata is whatever its uploader wrote).
func webLink(text, url string) string {
	if !isWebURL(url) {
		return literal(text)
	}
	return link(text, url)
}

// isWebURL reports whether s is an absolute http or https URL with a host.
func isWebURL(s string) bool {
	u, err := neturl.Parse(strings.TrimSpace(s))
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// noSpace drops white space and control characters, which cannot be part
// of a link's destination.
func noSpace(r rune) rune {
	if unicode.IsSpace(r) || unicode.IsControl(r) {
		return -1
	}
	return r
}

// code shows s as inline code: format.SafeMarkdownCode picks a fence longer
// than any run of backticks in s, and a code span is otherwise literal.
// Control characters become spaces (a line break would end the span's
// paragraph). Not for table cells: GFM splits a row on "|" even in code.
func code(s string) string {
	return format.SafeMarkdownCode(strings.Map(controlToSpace, s))
}

// echoed shows something someone typed as inline code, cut to maxEchoed
// characters.
func echoed(s string) string { return code(clip(s, maxEchoed)) }

// freeText shows a moderator's reason or note: trimmed, cut to maxFreeText
// characters and rendered literally.
func freeText(s string) string { return literal(clip(strings.TrimSpace(s), maxFreeText)) }

func controlToSpace(r rune) rune {
	if unicode.Is(unicode.Bidi_Control, r) {
		return -1 // dropped
	}
	if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
		return ' '
	}
	return r
}

// clip cuts s to n characters, marking the cut with "…".
func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
