package bot

import (
	"context"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"
)

// This file reads messages as real clients send them: permalinks in every
// form a client produces, reply fallbacks, and Unicode that looks the same
// as what a person meant (see ../shared/tchap.md).

// permalink is what a link or a bare identifier designates: a user, or a
// room (by id or alias), possibly with one of its events.
type permalink struct {
	User  id.UserID
	Room  id.RoomID
	Alias id.RoomAlias
	Event id.EventID
}

// maxLinkLen bounds what parsePermalink reads: four identifiers of 255 bytes,
// percent-encoded, and a few via parameters fit.
const maxLinkLen = 4096

// parsePermalink reads a bare identifier (@user:server, !room:server,
// #alias:server), a matrix: URI (MSC2312: matrix:u/user:server,
// matrix:roomid/room:server/e/event, matrix:r/alias:server, with a query),
// or a web permalink on any host: matrix.to's form (https://matrix.to/#/@user:server,
// percent-encoded or not, with ?via=) and Element's, which Tchap builds on its
// own prefix (https://tchap.gouv.fr/#/user/@user:server,
// https://tchap.gouv.fr/#/room/!room:server/$event). Every identifier it
// returns is valid.
func parsePermalink(s string) (permalink, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > maxLinkLen {
		return permalink{}, false
	}
	switch s[0] {
	case '@', '!', '#':
		return identifiers(s, "")
	}
	u, err := url.Parse(s)
	if err != nil {
		return permalink{}, false
	}
	switch u.Scheme {
	case "matrix":
		uri, err := id.ProcessMatrixURI(u)
		if err != nil {
			return permalink{}, false
		}
		return identifiers(uri.PrimaryIdentifier(), uri.SecondaryIdentifier())
	case "https", "http":
		return webPermalink(u)
	}
	return permalink{}, false
}

// webPermalink reads the fragment of a permalink on any web host. mautrix's
// ParseMatrixToURL only knows the host matrix.to and its own fragment
// layout, while Element-based clients (Tchap) put /user/ or /room/ before the
// identifier on their configured prefix.
func webPermalink(u *url.URL) (permalink, bool) {
	if u.Host == "" || u.Fragment == "" {
		return permalink{}, false
	}
	// Split the raw fragment so that an encoded "/" or "?" inside an
	// identifier stays in it.
	frag := u.EscapedFragment()
	// Clients write "#/"; only matrix.to is read without the slash, so
	// that a page anchor ("#!page:2", "#@media:print") is not a permalink.
	frag, slash := strings.CutPrefix(frag, "/")
	if !slash && !strings.EqualFold(u.Hostname(), "matrix.to") {
		return permalink{}, false
	}
	frag, _, _ = strings.Cut(frag, "?")
	frag = strings.TrimSuffix(frag, "/")
	parts := strings.Split(frag, "/")
	switch parts[0] {
	case "user":
		if len(parts) != 2 {
			return permalink{}, false
		}
		if p, ok := identifiers(unescape(parts[1]), ""); ok && p.User != "" {
			return p, true
		}
		return permalink{}, false
	case "room":
		parts = parts[1:]
		if len(parts) == 0 {
			return permalink{}, false
		}
		if p, ok := identifiers(unescape(parts[0]), unescape(strings.Join(parts[1:], "/"))); ok && p.User == "" {
			return p, true
		}
		return permalink{}, false
	}
	// matrix.to's layout: the identifier first. Event ids of room version 3
	// may hold slashes, hence the join.
	return identifiers(unescape(parts[0]), unescape(strings.Join(parts[1:], "/")))
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return "\x00" // fails validation
}

// identifiers validates a primary identifier and an optional event id.
func identifiers(primary, secondary string) (permalink, bool) {
	var p permalink
	if primary == "" {
		return p, false
	}
	switch primary[0] {
	case '@':
		// matrix.to links to a user may name an event after it; the user is
		// what they designate.
		if !validUserID(primary) {
			return p, false
		}
		return permalink{User: id.UserID(primary)}, true
	case '!':
		if !validRoomID(primary) {
			return p, false
		}
		p.Room = id.RoomID(primary)
	case '#':
		if !validAlias(primary) {
			return p, false
		}
		p.Alias = id.RoomAlias(primary)
	default:
		return p, false
	}
	if secondary != "" {
		if secondary[0] != '$' || !validOpaque(secondary) {
			return permalink{}, false
		}
		p.Event = id.EventID(secondary)
	}
	return p, true
}

// validUserID accepts user ids of the spec's grammar and historical ones
// (printable ASCII localparts), with a valid server name.
func validUserID(s string) bool {
	user := id.UserID(s)
	local, _, err := user.ParseAndValidateRelaxed()
	return err == nil && s[0] == '@' && local != "" && printableASCII(local)
}

// validRoomID accepts "!opaque:server" and the server-less ids of room
// version 12.
func validRoomID(s string) bool {
	if !validOpaque(s) {
		return false
	}
	if _, server, found := strings.Cut(s, ":"); found {
		return id.ValidateServerName(server)
	}
	return true
}

// validAlias accepts "#local:server"; the localpart may be any Unicode but
// white space, controls and invisible characters.
func validAlias(s string) bool {
	local, server, found := strings.Cut(s[1:], ":")
	return found && len(s) <= 255 && local != "" && id.ValidateServerName(server) &&
		utf8.ValidString(local) && !strings.ContainsFunc(local, func(r rune) bool { return invisible(r) || unicode.IsControl(r) })
}

// validOpaque accepts a sigil and up to 254 bytes of printable ASCII.
func validOpaque(s string) bool {
	return len(s) >= 2 && len(s) <= 255 && printableASCII(s[1:])
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// permalinkText is what a link becomes in the text of a command: the id it
// designates (a pill's text is only a display name), a canonical matrix.to
// link for an event, or what mautrix's default gives for any other link.
func permalinkText(text, href string, _ format.Context) string {
	if p, ok := parsePermalink(href); ok {
		switch {
		case p.User != "":
			return string(p.User)
		case p.Event != "" && p.Room != "":
			return p.Room.EventURI(p.Event).MatrixToURL()
		case p.Event != "":
			return p.Alias.EventURI(p.Event).MatrixToURL()
		case p.Room != "":
			return string(p.Room)
		default:
			return string(p.Alias)
		}
	}
	if text == href || text == strings.TrimPrefix(href, "mailto:") ||
		text == strings.TrimPrefix(href, "http://") || text == strings.TrimPrefix(href, "https://") {
		return text
	}
	return text + " (" + href + ")"
}

// commandHTMLParser turns a message's HTML into the text a command is read
// from. Links go through permalinkText (no PillConverter: mautrix would only
// call it for matrix.to and matrix: links). Emphasis is written back with
// underscores, so that "@a._b_.c:d", which Markdown renders with <em>, reads
// as the id that was typed; inline code is its text, so that `@a:b` is a
// target.
var commandHTMLParser = &format.HTMLParser{
	TabsToSpaces:       4,
	Newline:            "\n",
	HorizontalLine:     "\n---\n",
	LinkConverter:      permalinkText,
	ItalicConverter:    func(s string, _ format.Context) string { return "_" + s + "_" },
	BoldConverter:      func(s string, _ format.Context) string { return "__" + s + "__" },
	MonospaceConverter: func(s string, _ format.Context) string { return s },
}

// messageText returns the text a command is read from: the reply fallback
// removed (body and HTML), links and mention pills in the HTML turned into
// the ids they designate, in NFC; "" if nothing in it is visible.
func messageText(ctx context.Context, content *event.MessageEventContent) string {
	reply := content.RelatesTo.GetReplyTo() != ""
	var text string
	if content.Format == event.FormatHTML && content.FormattedBody != "" {
		html, fallback := stripHTMLReplyFallback(content.FormattedBody)
		reply = reply || fallback
		if html != "" {
			text = commandHTMLParser.Parse(html, format.NewContext(ctx))
		}
	}
	if !visible(text) {
		text = stripReplyFallback(content.Body, reply)
	}
	return normalizeText(text)
}

// messageBody returns the plain body of a message (the Markdown a question
// is asked in) without its reply fallback, in NFC; "" if nothing in it is
// visible.
func messageBody(content *event.MessageEventContent) string {
	reply := content.RelatesTo.GetReplyTo() != ""
	if content.Format == event.FormatHTML {
		_, fallback := stripHTMLReplyFallback(content.FormattedBody)
		reply = reply || fallback
	}
	return normalizeText(stripReplyFallback(content.Body, reply))
}

// normalizeText puts text in NFC without surrounding white space, or
// returns "" if no character of it is visible.
func normalizeText(text string) string {
	if !visible(text) {
		return ""
	}
	// NUL is dropped: PostgreSQL refuses it in text, and it shows nothing.
	return strings.TrimSpace(norm.NFC.String(strings.ReplaceAll(text, "\x00", "")))
}

// stripHTMLReplyFallback removes the <mx-reply> element that starts a
// reply's HTML. Unlike mautrix's TrimReplyFallbackHTML it allows white
// space before it, any case, and a fallback quoting another fallback
// (nested mx-reply, from clients that did not strip the quoted one). An
// unclosed mx-reply holds, as an HTML parser reads it, the whole rest.
func stripHTMLReplyFallback(html string) (string, bool) {
	start := len(html) - len(strings.TrimLeft(html, " \t\r\n"))
	if !isTag(html, start, "<mx-reply") {
		return html, false
	}
	lower := asciiLower(html)
	depth := 0
	for i := start; i < len(lower); {
		next := strings.Index(lower[i:], "mx-reply")
		if next < 0 {
			break
		}
		at := i + next
		i = at + len("mx-reply")
		switch {
		case isTag(lower, at-1, "<mx-reply"):
			depth++
		case isTag(lower, at-2, "</mx-reply"):
			depth--
			if depth == 0 {
				end := strings.IndexByte(lower[i:], '>')
				if end < 0 {
					return "", true
				}
				return html[i+end+1:], true
			}
		}
	}
	return "", true
}

// isTag reports whether s holds the tag name tag (with its "<" or "</") at
// i, followed by the end of the name.
func isTag(s string, i int, tag string) bool {
	if i < 0 || !strings.HasPrefix(strings.ToLower(s[i:min(len(s), i+len(tag))]), tag) {
		return false
	}
	if j := i + len(tag); j < len(s) {
		switch s[j] {
		case '>', '/', ' ', '\t', '\r', '\n', '\f':
		default:
			return false
		}
	}
	return true
}

// asciiLower lower-cases ASCII letters only, keeping byte offsets.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// stripReplyFallback removes the quoted lines that start a reply's body
// ("> <@sender> text", "> * <@sender> emote", further "> " lines) and the
// blank lines after them. A message that is not a reply keeps its
// Markdown quotes, and so does a reply whose body starts otherwise. Unlike
// mautrix's RemoveReplyFallback, this does not need the HTML to hold an
// mx-reply (a client may send a body alone), and it accepts a quoted empty
// line written ">" and CRLF line ends.
func stripReplyFallback(body string, reply bool) string {
	if !reply || !(strings.HasPrefix(body, "> <") || strings.HasPrefix(body, "> * <")) {
		return body
	}
	rest := body
	quoted := true
	for rest != "" {
		line, after, _ := strings.Cut(rest, "\n")
		line = strings.TrimSuffix(line, "\r")
		if quoted && strings.HasPrefix(line, ">") {
			rest = after
			continue
		}
		quoted = false
		if strings.TrimSpace(line) != "" {
			break
		}
		rest = after
	}
	return rest
}

// invisible reports whether r shows nothing: white space, controls,
// combining marks on their own, and the default-ignorable code points
// (format characters such as U+200B, joiners, bidi controls, variation
// selectors, Hangul fillers), plus the blank Braille pattern.
func invisible(r rune) bool {
	return unicode.IsSpace(r) || ignorable(r) || r == '\u2800' ||
		unicode.In(r, unicode.Cc, unicode.Zs, unicode.Zl, unicode.Zp, unicode.Mn, unicode.Me)
}

// ignorable reports whether r is a default-ignorable code point (Unicode's
// derived property, less the format characters that are drawn: the Arabic
// number signs and their kin).
func ignorable(r rune) bool {
	return unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point) &&
		!unicode.IsSpace(r) && !unicode.Is(unicode.Prepended_Concatenation_Mark, r)
}

// trimInvisible removes what shows nothing around s; a combining mark at
// the end stays with the character it marks.
func trimInvisible(s string) string {
	s = strings.TrimLeftFunc(s, invisible)
	return strings.TrimRightFunc(s, func(r rune) bool { return invisible(r) && !unicode.In(r, unicode.Mn, unicode.Me) })
}

// visible reports whether s has at least one character that shows.
func visible(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return !invisible(r) })
}

// dropIgnorable removes default-ignorable code points, which may hide in
// or around a command name or a target (U+200B pasted along, U+2066..U+2069
// around a copied name, U+202E turning text around).
func dropIgnorable(s string) string {
	if !strings.ContainsFunc(s, ignorable) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if ignorable(r) {
			return -1
		}
		return r
	}, s)
}
