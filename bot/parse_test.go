package bot

import (
	"context"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// tchapAlice is the user of issue 9's instance, as Tchap's web client links
// her.
const (
	tchapAlice     = "@alice.martin-interieur.gouv.fr:agent.interieur.tchap.gouv.fr"
	tchapAliceLink = "https://tchap.gouv.fr/#/user/" + tchapAlice
)

func TestParsePermalink(t *testing.T) {
	const v12Room = "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM"
	tests := []struct {
		name string
		in   string
		want permalink // zero: not a permalink
	}{
		// Users.
		{name: "bare user id", in: "@a:b", want: permalink{User: "@a:b"}},
		{name: "bare Tchap user id", in: tchapAlice, want: permalink{User: tchapAlice}},
		{name: "bare user with port", in: "@a:localhost:8448", want: permalink{User: "@a:localhost:8448"}},
		{name: "historical localpart", in: "@Bob_Smith!:b", want: permalink{User: "@Bob_Smith!:b"}},
		{name: "matrix.to", in: "https://matrix.to/#/@a:b", want: permalink{User: "@a:b"}},
		{name: "matrix.to percent-encoded", in: "https://matrix.to/#/%40a%3Ab", want: permalink{User: "@a:b"}},
		{name: "matrix.to percent-encoded Tchap user with via", in: "https://matrix.to/#/%40alice.martin-interieur.gouv.fr%3Aagent.interieur.tchap.gouv.fr?via=agent.interieur.tchap.gouv.fr", want: permalink{User: tchapAlice}},
		{name: "matrix.to with two via", in: "https://matrix.to/#/@a:b?via=b&via=c", want: permalink{User: "@a:b"}},
		{name: "matrix.to over http", in: "http://matrix.to/#/@a:b", want: permalink{User: "@a:b"}},
		{name: "matrix.to in capitals", in: "HTTPS://MATRIX.TO/#/@a:b", want: permalink{User: "@a:b"}},
		{name: "matrix.to without the slash", in: "https://matrix.to/#@a:b", want: permalink{User: "@a:b"}},
		{name: "matrix.to user and event", in: "https://matrix.to/#/@a:b/$event", want: permalink{User: "@a:b"}},
		{name: "matrix.to layout on another host", in: "https://to.example.org/#/@a:b", want: permalink{User: "@a:b"}},
		{name: "matrix URI", in: "matrix:u/a:b", want: permalink{User: "@a:b"}},
		{name: "matrix URI long segment", in: "matrix:user/a:b", want: permalink{User: "@a:b"}},
		{name: "matrix URI with action", in: "matrix:u/a:b?action=chat", want: permalink{User: "@a:b"}},
		{name: "matrix URI percent-encoded", in: "matrix:u/a%3Ab", want: permalink{User: "@a:b"}},
		{name: "matrix URI scheme in capitals", in: "MATRIX:u/a:b", want: permalink{User: "@a:b"}},
		{name: "Tchap user link", in: tchapAliceLink, want: permalink{User: tchapAlice}},
		{name: "Tchap user link percent-encoded", in: "https://www.tchap.gouv.fr/#/user/%40a%3Ab", want: permalink{User: "@a:b"}},
		{name: "Element user link with via", in: "https://app.element.io/#/user/@a:b?via=b", want: permalink{User: "@a:b"}},
		{name: "Element user link under a path", in: "https://chat.example.org/element/#/user/@a:b", want: permalink{User: "@a:b"}},
		{name: "Element user link with a trailing slash", in: "https://tchap.gouv.fr/#/user/@a:b/", want: permalink{User: "@a:b"}},
		{name: "surrounding spaces", in: " @a:b\n", want: permalink{User: "@a:b"}},

		// Rooms.
		{name: "bare room id", in: "!room:b", want: permalink{Room: "!room:b"}},
		{name: "bare room id of version 12", in: v12Room, want: permalink{Room: v12Room}},
		{name: "bare alias", in: "#support:b", want: permalink{Alias: "#support:b"}},
		{name: "bare alias in French", in: "#équipe-numérique:b", want: permalink{Alias: "#équipe-numérique:b"}},
		{name: "matrix.to room", in: "https://matrix.to/#/!room:b?via=b", want: permalink{Room: "!room:b"}},
		{name: "matrix.to room percent-encoded", in: "https://matrix.to/#/%21room%3Ab", want: permalink{Room: "!room:b"}},
		{name: "matrix.to alias", in: "https://matrix.to/#/#support:b", want: permalink{Alias: "#support:b"}},
		{name: "matrix.to alias percent-encoded", in: "https://matrix.to/#/%23support%3Ab", want: permalink{Alias: "#support:b"}},
		{name: "matrix.to event", in: "https://matrix.to/#/!room:b/$evt?via=b", want: permalink{Room: "!room:b", Event: "$evt"}},
		{name: "matrix.to event of room version 3", in: "https://matrix.to/#/!room:b/$a/b+c", want: permalink{Room: "!room:b", Event: "$a/b+c"}},
		{name: "matrix.to event with an encoded slash", in: "https://matrix.to/#/!room:b/%24a%2Fb", want: permalink{Room: "!room:b", Event: "$a/b"}},
		{name: "matrix.to event under an alias", in: "https://matrix.to/#/#support:b/$evt", want: permalink{Alias: "#support:b", Event: "$evt"}},
		{name: "matrix URI room", in: "matrix:roomid/room:b?via=b", want: permalink{Room: "!room:b"}},
		{name: "matrix URI event", in: "matrix:roomid/room:b/e/evt?via=b", want: permalink{Room: "!room:b", Event: "$evt"}},
		{name: "matrix URI alias", in: "matrix:r/support:b", want: permalink{Alias: "#support:b"}},
		{name: "matrix URI alias with query", in: "matrix:r/support:b?via=b&action=join", want: permalink{Alias: "#support:b"}},
		{name: "matrix URI alias percent-encoded", in: "matrix:r/%C3%A9quipe:b", want: permalink{Alias: "#équipe:b"}},
		{name: "Tchap room link", in: "https://tchap.gouv.fr/#/room/!room:b", want: permalink{Room: "!room:b"}},
		{name: "Tchap alias link", in: "https://tchap.gouv.fr/#/room/#support:b", want: permalink{Alias: "#support:b"}},
		{name: "Tchap alias link percent-encoded", in: "https://tchap.gouv.fr/#/room/%23support%3Ab", want: permalink{Alias: "#support:b"}},
		{name: "Tchap event link", in: "https://tchap.gouv.fr/#/room/!room:b/$evt?via=b", want: permalink{Room: "!room:b", Event: "$evt"}},

		// Not permalinks.
		{name: "empty", in: ""},
		{name: "at sign", in: "@"},
		{name: "user without server", in: "@a"},
		{name: "user with empty localpart", in: "@:b"},
		{name: "user with empty server", in: "@a:"},
		{name: "user with a space", in: "@a b:c"},
		{name: "user with bad server", in: "@a:b_c!"},
		{name: "user with accented localpart", in: "@é:b"},
		{name: "user with a zero-width space", in: "@a:b\u200b"},
		{name: "too long user", in: "@" + strings.Repeat("a", 250) + ":b.fr"},
		{name: "bang", in: "!"},
		{name: "room with a space", in: "!a b"},
		{name: "room with bad server", in: "!a:b_c"},
		{name: "hash", in: "#"},
		{name: "request number", in: "#42"},
		{name: "alias with empty server", in: "#a:"},
		{name: "alias with a space", in: "#a b:c"},
		{name: "bare event", in: "$evt:b"},
		{name: "empty matrix.to", in: "https://matrix.to/#/"},
		{name: "matrix.to without fragment", in: "https://matrix.to/"},
		{name: "matrix.to to an event without its sigil", in: "https://matrix.to/#/!room:b/evt"},
		{name: "matrix.to with a bad escape", in: "https://matrix.to/#/@a:b%zz"},
		{name: "web page", in: "https://example.org/"},
		{name: "web page with an id in its path", in: "https://example.org/@a:b"},
		{name: "web page with another fragment", in: "https://example.org/#/users/@a:b"},
		{name: "page anchor like a user", in: "https://example.org/#@media:print"},
		{name: "hashbang like a room", in: "https://example.org/#!page:2"},
		{name: "Tchap user link to a room", in: "https://tchap.gouv.fr/#/user/!room:b"},
		{name: "Tchap room link to a user", in: "https://tchap.gouv.fr/#/room/@a:b"},
		{name: "Tchap user link with more", in: "https://tchap.gouv.fr/#/user/@a:b/extra"},
		{name: "Tchap group link", in: "https://tchap.gouv.fr/#/group/+g:b"},
		{name: "Tchap room link without room", in: "https://tchap.gouv.fr/#/room/"},
		{name: "empty matrix URI", in: "matrix:u/"},
		{name: "matrix URI to an event alone", in: "matrix:e/evt"},
		{name: "matrix URI of unknown kind", in: "matrix:x/a:b"},
		{name: "mail link", in: "mailto:a@b.fr"},
		{name: "other scheme", in: "ftp://matrix.to/#/@a:b"},
		{name: "too long", in: "https://matrix.to/#/@a:b?via=" + strings.Repeat("b", maxLinkLen)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parsePermalink(tt.in)
			if want := tt.want != (permalink{}); ok != want || got != tt.want {
				t.Errorf("parsePermalink(%.60q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, want)
			}
		})
	}
}

func TestParseCommandUnicode(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		wantName string // "": not a command
		wantArgs []string
		wantRaw  string
	}{
		{name: "combining acute accent", text: "!re\u0301voquer @x:b motif", wantName: "révoquer", wantArgs: []string{"@x:b", "motif"}, wantRaw: "@x:b motif"},
		{name: "combining accent in capitals", text: "!RE\u0301VOQUER @x:b", wantName: "révoquer", wantArgs: []string{"@x:b"}, wantRaw: "@x:b"},
		{name: "combining accent at the end", text: "!capacite\u0301 500", wantName: "capacité", wantArgs: []string{"500"}, wantRaw: "500"},
		{name: "combining accent ending the text", text: "!reject @x:b déposé", wantName: "reject", wantArgs: []string{"@x:b", "déposé"}, wantRaw: "@x:b déposé"},
		{name: "combining mark without a composed form ending the text", text: "!reject @x:b q̇", wantName: "reject", wantArgs: []string{"@x:b", "q̇"}, wantRaw: "@x:b q̇"},
		{name: "combining accent in an argument", text: "!reject @x:b de\u0301part", wantName: "reject", wantArgs: []string{"@x:b", "départ"}, wantRaw: "@x:b départ"},
		{name: "full-width bang", text: "！approve @a:b", wantName: "approve", wantArgs: []string{"@a:b"}, wantRaw: "@a:b"},
		{name: "no-break space", text: "!approve\u00a0@a:b", wantName: "approve", wantArgs: []string{"@a:b"}, wantRaw: "@a:b"},
		{name: "narrow no-break space", text: "!approve\u202f@a:b", wantName: "approve", wantArgs: []string{"@a:b"}, wantRaw: "@a:b"},
		{name: "ideographic space", text: "!approve\u3000@a:b", wantName: "approve", wantArgs: []string{"@a:b"}, wantRaw: "@a:b"},
		{name: "line separator", text: "!approve\u2028@a:b", wantName: "approve", wantArgs: []string{"@a:b"}, wantRaw: "@a:b"},
		{name: "zero-width space before", text: "\u200b!approve @a:b", wantName: "approve", wantArgs: []string{"@a:b"}, wantRaw: "@a:b"},
		{name: "byte order mark before", text: "\ufeff!aide", wantName: "aide"},
		{name: "right-to-left override before", text: "\u202e!approve @a:b", wantName: "approve", wantArgs: []string{"@a:b"}, wantRaw: "@a:b"},
		{name: "zero-width space in the name", text: "!app\u200brove @a:b", wantName: "approve", wantArgs: []string{"@a:b"}, wantRaw: "@a:b"},
		{name: "bidi isolates around the name", text: "!\u2066approve\u2069 @a:b", wantName: "approve", wantArgs: []string{"@a:b"}, wantRaw: "@a:b"},
		{name: "right-to-left override in the name", text: "!ap\u202eprove", wantName: "approve"},
		{name: "word joiner after the name", text: "!pending\u2060", wantName: "pending"},
		{name: "variation selector after the name", text: "!aide\ufe0f", wantName: "aide"},
		{name: "invisible word among the arguments", text: "!approve \u200b @a:b \u2060 motif", wantName: "approve", wantArgs: []string{"@a:b", "motif"}, wantRaw: "@a:b \u2060 motif"},
		{name: "invisible after the arguments", text: "!approve @a:b \u200b\u200d", wantName: "approve", wantArgs: []string{"@a:b"}, wantRaw: "@a:b"},
		{name: "invisible after the bang", text: "!\u200b approve", wantName: "approve"},
		{name: "emoji sequence kept in the reason", text: "!reject @a:b 👩\u200d💻", wantName: "reject", wantArgs: []string{"@a:b", "👩\u200d💻"}, wantRaw: "@a:b 👩\u200d💻"},
		{name: "full-width name", text: "！ＡＩＤＥ", wantName: "aide"},
		{name: "small bang", text: "﹗aide", wantName: "aide"},
		{name: "double exclamation mark is not a bang", text: "‼aide"},
		{name: "click letter is not a bang", text: "ǃaide"},
		{name: "ligature in the name", text: "!conﬁrmer", wantName: "confirmer"},
		{name: "period after the name", text: "!aide.", wantName: "aide"},
		{name: "punctuation after the name", text: "!pending ?", wantName: "pending", wantArgs: []string{"?"}, wantRaw: "?"},
		{name: "ellipsis after the name", text: "!aide…", wantName: "aide"},
		{name: "name of punctuation only", text: "!!!", wantName: "!!"},
		{name: "bang and a zero-width space", text: "!\u200b"},
		{name: "bang and a combining mark", text: "!\u0301"},
		{name: "zero-width space alone", text: "\u200b"},
		{name: "bang after a letter", text: "a!approve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, ok := parseCommand(tt.text)
			if ok != (tt.wantName != "") {
				t.Fatalf("parseCommand(%q) = %+v, %v", tt.text, cmd, ok)
			}
			if cmd.Name != tt.wantName || !slices.Equal(cmd.Args, tt.wantArgs) || cmd.Raw != tt.wantRaw {
				t.Errorf("parseCommand(%q) = %q %q %q, want %q %q %q", tt.text, cmd.Name, cmd.Args, cmd.Raw, tt.wantName, tt.wantArgs, tt.wantRaw)
			}
		})
	}
}

func TestParseTargetForms(t *testing.T) {
	tests := []struct {
		name string
		arg  string
		want target // zero: errBadTarget
	}{
		{name: "Tchap user link", arg: tchapAliceLink, want: target{User: tchapAlice}},
		{name: "Element user link", arg: "https://app.element.io/#/user/@a:b", want: target{User: "@a:b"}},
		{name: "percent-encoded matrix.to", arg: "https://matrix.to/#/%40a%3Ab?via=b", want: target{User: "@a:b"}},
		{name: "matrix URI", arg: "matrix:u/a:b", want: target{User: "@a:b"}},
		{name: "matrix URI with query", arg: "matrix:u/a:b?action=chat", want: target{User: "@a:b"}},
		{name: "in angle brackets", arg: "<@a:b>", want: target{User: "@a:b"}},
		{name: "link in angle brackets", arg: "<https://matrix.to/#/@a:b>", want: target{User: "@a:b"}},
		{name: "in backticks", arg: "`@a:b`", want: target{User: "@a:b"}},
		{name: "in French quotes", arg: "«@a:b»", want: target{User: "@a:b"}},
		{name: "with a comma", arg: "@a:b,", want: target{User: "@a:b"}},
		{name: "request with a comma", arg: "#4,", want: target{RequestID: 4}},
		{name: "IPv6 server without a port", arg: "@bob:[::1]", want: target{User: "@bob:[::1]"}},
		{name: "IPv6 server in parentheses", arg: "(@bob:[::1])", want: target{User: "@bob:[::1]"}},
		{name: "zero-width space before", arg: "\u200b@a:b", want: target{User: "@a:b"}},
		{name: "bidi isolates around", arg: "\u2068@a:b\u2069", want: target{User: "@a:b"}},
		{name: "right-to-left override", arg: "\u202e@a:b", want: target{User: "@a:b"}},
		{name: "soft hyphen inside", arg: "@jean\u00ad.dupont:b", want: target{User: "@jean.dupont:b"}},
		{name: "full-width forms", arg: "＠a：b", want: target{User: "@a:b"}},
		{name: "full-width request number", arg: "＃４２", want: target{RequestID: 42}},
		{name: "request with a sign", arg: "#+5"},
		{name: "request with a space", arg: "# 5"},
		{name: "request as guichet writes it", arg: "n°5", want: target{RequestID: 5}},
		{name: "request with an ordinal indicator", arg: "nº5", want: target{RequestID: 5}},
		{name: "request with a numero sign", arg: "№5", want: target{RequestID: 5}},
		{name: "request sign with letters", arg: "n°abc"},
		{name: "Tchap room link", arg: "https://tchap.gouv.fr/#/room/!room:b"},
		{name: "Tchap alias link", arg: "https://tchap.gouv.fr/#/room/#support:b"},
		{name: "matrix URI to an alias", arg: "matrix:r/support:b"},
		{name: "matrix URI to a room", arg: "matrix:roomid/room:b"},
		{name: "matrix.to event", arg: "https://matrix.to/#/!room:b/$evt"},
		{name: "only invisible", arg: "\u200b\u2060"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTarget(tt.arg)
			if tt.want == (target{}) {
				if err == nil {
					t.Errorf("parseTarget(%q) = %+v, want errBadTarget", tt.arg, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseTarget(%q) = %+v, %v; want %+v", tt.arg, got, err, tt.want)
			}
		})
	}
}

func TestSplitTargetsPermalinks(t *testing.T) {
	tests := []struct {
		name        string
		args        string // split on spaces
		wantTargets []target
		wantBad     []string
		wantRest    string
	}{
		{name: "Tchap link and matrix URI", args: tchapAliceLink + " matrix:u/c:d motif", wantTargets: []target{{User: tchapAlice}, {User: "@c:d"}}, wantRest: "motif"},
		{name: "Element link", args: "https://app.element.io/#/user/@a:b merci", wantTargets: []target{{User: "@a:b"}}, wantRest: "merci"},
		{name: "wrapped ids", args: "<@a:b>, `@c:d` #3, ok", wantTargets: []target{{User: "@a:b"}, {User: "@c:d"}, {RequestID: 3}}, wantRest: "ok"},
		{name: "Tchap room link is a bad target", args: "https://tchap.gouv.fr/#/room/!r:b ok", wantBad: []string{"https://tchap.gouv.fr/#/room/!r:b"}, wantRest: "ok"},
		{name: "matrix URI to a room is a bad target", args: "matrix:r/support:b ok", wantBad: []string{"matrix:r/support:b"}, wantRest: "ok"},
		{name: "broken matrix URI is a bad target", args: "matrix:u/ ok", wantBad: []string{"matrix:u/"}, wantRest: "ok"},
		{name: "web page with a fragment ends the targets", args: "@a:b https://example.org/#section", wantTargets: []target{{User: "@a:b"}}, wantRest: "https://example.org/#section"},
		{name: "bidi isolates around a target", args: "\u2068@a:b\u2069 motif", wantTargets: []target{{User: "@a:b"}}, wantRest: "motif"},
		{name: "Markdown list in the body", args: "- @a:b - @c:d motif", wantTargets: []target{{User: "@a:b"}, {User: "@c:d"}}, wantRest: "motif"},
		{name: "list as the HTML renders it", args: "* @a:b * #4", wantTargets: []target{{User: "@a:b"}, {RequestID: 4}}},
		{name: "numbered list", args: "1. @a:b 2. #4", wantTargets: []target{{User: "@a:b"}, {RequestID: 4}}},
		{name: "joined by et", args: "@a:b et @c:d, #4 & #5 merci", wantTargets: []target{{User: "@a:b"}, {User: "@c:d"}, {RequestID: 4}, {RequestID: 5}}, wantRest: "merci"},
		{name: "et starting the note", args: "@a:b et voilà", wantTargets: []target{{User: "@a:b"}}, wantRest: "et voilà"},
		{name: "dash starting the reason", args: "@a:b - compte perso", wantTargets: []target{{User: "@a:b"}}, wantRest: "- compte perso"},
		{name: "bullet before nothing", args: "@a:b -", wantTargets: []target{{User: "@a:b"}}, wantRest: "-"},
		{name: "number as guichet writes it", args: "n° 3 motif", wantTargets: []target{{RequestID: 3}}, wantRest: "motif"},
		{name: "number glued to its sign", args: "n°3, N°4", wantTargets: []target{{RequestID: 3}, {RequestID: 4}}},
		{name: "ordinal indicator and numero sign", args: "nº3 № 4", wantTargets: []target{{RequestID: 3}, {RequestID: 4}}},
		{name: "number sign without a number", args: "n° abc", wantRest: "n° abc"},
		{name: "number sign at the end", args: "@a:b n°", wantTargets: []target{{User: "@a:b"}}, wantRest: "n°"},
		{name: "number zero", args: "n° 0 motif", wantBad: []string{"n° 0"}, wantRest: "motif"},
		{name: "no starts an English reason", args: "@a:b no 2 accounts", wantTargets: []target{{User: "@a:b"}}, wantRest: "no 2 accounts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			targets, bad, rest := splitTargets(strings.Fields(tt.args))
			if !slices.Equal(targets, tt.wantTargets) || !slices.Equal(bad, tt.wantBad) || rest != tt.wantRest {
				t.Errorf("splitTargets(%q) = %+v, %q, %q; want %+v, %q, %q", tt.args, targets, bad, rest, tt.wantTargets, tt.wantBad, tt.wantRest)
			}
		})
	}
}

// htmlReply is a reply's HTML as Element and mautrix build it: the quoted
// event in an <mx-reply>, then the reply.
func htmlReply(quotedSender id.UserID, quotedHTML, reply string) string {
	return `<mx-reply><blockquote><a href="https://matrix.to/#/!room:b/$quoted?via=b">In reply to</a> ` +
		`<a href="https://matrix.to/#/` + string(quotedSender) + `">` + string(quotedSender) + `</a><br>` + quotedHTML +
		`</blockquote></mx-reply>` + reply
}

func replyTo(evt id.EventID) *event.RelatesTo {
	return &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: evt}}
}

func TestMessageText(t *testing.T) {
	html := func(body, formatted string) event.MessageEventContent {
		return event.MessageEventContent{MsgType: event.MsgText, Body: body, Format: event.FormatHTML, FormattedBody: formatted}
	}
	reply := func(c event.MessageEventContent) event.MessageEventContent {
		c.RelatesTo = replyTo("$quoted")
		return c
	}
	plain := func(body string) event.MessageEventContent {
		return event.MessageEventContent{MsgType: event.MsgText, Body: body}
	}
	tests := []struct {
		name    string
		content event.MessageEventContent
		want    string
	}{
		// Links and pills.
		{name: "Tchap pill", content: html("!approve Alice Martin", `!approve <a href="`+tchapAliceLink+`">Alice Martin</a>`), want: "!approve " + tchapAlice},
		{name: "matrix.to pill", content: html("!approve Jean", `!approve <a href="https://matrix.to/#/@jean:b">Jean</a>`), want: "!approve @jean:b"},
		{name: "percent-encoded matrix.to pill", content: html("!approve Jean", `!approve <a href="https://matrix.to/#/%40jean%3Ab?via=b">Jean</a>`), want: "!approve @jean:b"},
		{name: "matrix URI pill", content: html("!approve Jean", `!approve <a href="matrix:u/jean:b?action=chat">Jean</a>`), want: "!approve @jean:b"},
		{name: "Element pill under a path", content: html("!approve Jean", `!approve <a href="https://chat.example.org/app/#/user/%40jean%3Ab">Jean</a>`), want: "!approve @jean:b"},
		{name: "Tchap room pill", content: html("voir #support", `voir <a href="https://tchap.gouv.fr/#/room/#support:b">#support</a>`), want: "voir #support:b"},
		{name: "Tchap room id link", content: html("voir Support", `voir <a href="https://tchap.gouv.fr/#/room/!r:b">Support</a>`), want: "voir !r:b"},
		{name: "matrix URI room pill", content: html("voir Support", `voir <a href="matrix:r/support:b">Support</a>`), want: "voir #support:b"},
		{name: "event link", content: html("voir ce message", `voir <a href="https://tchap.gouv.fr/#/room/!r:b/$e?via=b">ce message</a>`), want: "voir https://matrix.to/#/%21r:b/$e"},
		{name: "ordinary link", content: html("!reject @a:b voir la charte", `!reject @a:b voir <a href="https://example.org/charte">la charte</a>`), want: "!reject @a:b voir la charte (https://example.org/charte)"},
		{name: "linkified permalink", content: html("!approve "+tchapAliceLink, `!approve <a href="`+tchapAliceLink+`">`+tchapAliceLink+`</a>`), want: "!approve " + tchapAlice},
		{name: "id that Markdown emphasised", content: html("!approve @a._und_.b:c", `!approve @a.<em>und</em>.b:c`), want: "!approve @a._und_.b:c"},
		{name: "id in inline code", content: html("!approve `@a:b`", `!approve <code>@a:b</code>`), want: "!approve @a:b"},
		{name: "non-breaking space entity", content: html("!approve\u00a0@a:b", `!approve&nbsp;@a:b`), want: "!approve\u00a0@a:b"},

		// Reply fallbacks.
		{name: "reply with both fallbacks", content: reply(html("> <@alice:b> Bonjour\n\n!approve Alice", htmlReply("@alice:b", "Bonjour", `!approve <a href="https://matrix.to/#/@alice:b">Alice</a>`))), want: "!approve @alice:b"},
		{name: "reply with a Tchap pill", content: reply(html("> <"+tchapAlice+"> Bonjour\n\n!approve Alice", htmlReply(tchapAlice, "Bonjour", `!approve <a href="`+tchapAliceLink+`">Alice</a>`))), want: "!approve " + tchapAlice},
		{name: "reply with a body fallback only", content: reply(plain("> <@alice:b> Bonjour,\n> je voudrais l'assistant\n\n!approve @alice:b")), want: "!approve @alice:b"},
		{name: "reply to an emote", content: reply(plain("> * <@alice:b> salue\n\n!aide")), want: "!aide"},
		{name: "reply quoting an empty line", content: reply(plain("> <@alice:b> Bonjour\n>\n> merci\n\n!aide")), want: "!aide"},
		{name: "reply with CRLF", content: reply(plain("> <@alice:b> Bonjour\r\n\r\n!aide")), want: "!aide"},
		{name: "reply without a blank line", content: reply(plain("> <@alice:b> Bonjour\n!aide")), want: "!aide"},
		{name: "reply whose own text starts with a quote", content: reply(plain("> <@alice:b> Bonjour\n\n> citation\n\n!aide")), want: "> citation\n\n!aide"},
		{name: "reply without a fallback keeps a Markdown quote", content: reply(plain("> citation\n\nréponse")), want: "> citation\n\nréponse"},
		{name: "quote-like text that is not a reply", content: plain("> <@alice:b> a dit\n\n!aide"), want: "> <@alice:b> a dit\n\n!aide"},
		{name: "mx-reply without a relation", content: html("> <@alice:b> Bonjour\n\n!aide", htmlReply("@alice:b", "Bonjour", "!aide")), want: "!aide"},
		{name: "mx-reply in capitals after spaces", content: reply(html("", "  <MX-REPLY><blockquote>Bonjour</blockquote></MX-REPLY>!aide")), want: "!aide"},
		{name: "nested mx-reply", content: reply(html("", "<mx-reply><blockquote><mx-reply><blockquote>old</blockquote></mx-reply>Bonjour</blockquote></mx-reply>!aide")), want: "!aide"},
		{name: "unclosed mx-reply falls back to the body", content: reply(html("> <@alice:b> Bonjour\n\n!aide", "<mx-reply><blockquote>Bonjour")), want: "!aide"},
		{name: "fallback and nothing else", content: reply(html("> <@alice:b> Bonjour", htmlReply("@alice:b", "Bonjour", ""))), want: ""},
		{name: "mx-reply later in the HTML is not a fallback", content: html("a", "a<mx-reply>b</mx-reply>"), want: "ab"},

		// Unicode.
		{name: "combining accent composed", content: plain("!re\u0301voquer @a:b motif"), want: "!révoquer @a:b motif"},
		{name: "combining accent in HTML", content: html("!re\u0301voquer", "!re\u0301voquer"), want: "!révoquer"},
		{name: "zero-width space", content: plain("\u200b"), want: ""},
		{name: "zero-width space in HTML", content: html("\u200b", "&#8203;"), want: ""},
		{name: "invisible characters", content: plain("\u200c\u200d\u2060\ufeff\ufe0f \u00a0\u3000"), want: ""},
		{name: "bidi controls", content: plain("\u202e\u2066\u2069\u200e"), want: ""},
		{name: "Hangul filler", content: plain("\u3164"), want: ""},
		{name: "combining mark alone", content: plain("\u0301"), want: ""},
		{name: "tag characters", content: plain("\U000e0041\U000e007f"), want: ""},
		{name: "Arabic number sign is visible", content: plain("\u0600"), want: "\u0600"},
		{name: "surrounding spaces", content: plain("  !aide \n"), want: "!aide"},
		{name: "empty HTML uses the body", content: html("!aide", " "), want: "!aide"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.content
			if got := messageText(context.Background(), &tt.content); got != tt.want {
				t.Errorf("messageText() = %q, want %q", got, tt.want)
			}
			if tt.content.Body != before.Body || tt.content.FormattedBody != before.FormattedBody {
				t.Errorf("messageText changed the content")
			}
		})
	}
}

func TestMessageBody(t *testing.T) {
	tests := []struct {
		name    string
		content event.MessageEventContent
		want    string
	}{
		{
			name: "question sent as a reply with both fallbacks",
			content: event.MessageEventContent{
				MsgType: event.MsgText, RelatesTo: replyTo("$answer"),
				Body:   "> <@guichet:b> Voici la procédure.\n> Étape 1 : ...\n\nEt l'étape **2** ?",
				Format: event.FormatHTML, FormattedBody: htmlReply("@guichet:b", "Voici la procédure.<br>Étape 1 : ...", "Et l'étape <strong>2</strong> ?"),
			},
			want: "Et l'étape **2** ?",
		},
		{
			name:    "question sent as a reply with a body fallback only",
			content: event.MessageEventContent{MsgType: event.MsgText, RelatesTo: replyTo("$answer"), Body: "> <@guichet:b> Voici.\n\nEt ensuite ?"},
			want:    "Et ensuite ?",
		},
		{
			name: "mx-reply without a relation",
			content: event.MessageEventContent{
				MsgType: event.MsgText, Body: "> <@guichet:b> Voici.\n\nEt ensuite ?",
				Format: event.FormatHTML, FormattedBody: htmlReply("@guichet:b", "Voici.", "Et ensuite ?"),
			},
			want: "Et ensuite ?",
		},
		{
			name:    "Markdown quote in a question that is not a reply",
			content: event.MessageEventContent{MsgType: event.MsgText, Body: "> <@x:b> a écrit ceci\n\nQu'en penses-tu ?"},
			want:    "> <@x:b> a écrit ceci\n\nQu'en penses-tu ?",
		},
		{
			name:    "Markdown kept rather than the HTML",
			content: event.MessageEventContent{MsgType: event.MsgText, Body: "Que fait `ls -l` ?", Format: event.FormatHTML, FormattedBody: "Que fait <code>ls -l</code> ?"},
			want:    "Que fait `ls -l` ?",
		},
		{name: "NFC", content: event.MessageEventContent{MsgType: event.MsgText, Body: "Qu'est-ce qu'une de\u0301le\u0301gation ?"}, want: "Qu'est-ce qu'une délégation ?"},
		{name: "zero-width space", content: event.MessageEventContent{MsgType: event.MsgText, Body: "\u200b"}},
		{name: "zero-width space as a reply", content: event.MessageEventContent{MsgType: event.MsgText, RelatesTo: replyTo("$answer"), Body: "> <@guichet:b> Voici.\n\n\u200b"}},
		{name: "fallback alone", content: event.MessageEventContent{MsgType: event.MsgText, RelatesTo: replyTo("$answer"), Body: "> <@guichet:b> Voici."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := messageBody(&tt.content); got != tt.want {
				t.Errorf("messageBody() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStripHTMLReplyFallback(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     string
		stripped bool
	}{
		{name: "none", in: "<p>a</p>", want: "<p>a</p>"},
		{name: "plain", in: "<mx-reply>q</mx-reply>a", want: "a", stripped: true},
		{name: "attributes", in: `<mx-reply data-x="1">q</mx-reply >a`, want: "a", stripped: true},
		{name: "leading white space", in: "\n <mx-reply>q</mx-reply>a", want: "a", stripped: true},
		{name: "nested", in: "<mx-reply>1<mx-reply>2</mx-reply>3</mx-reply>a", want: "a", stripped: true},
		{name: "unclosed", in: "<mx-reply>q", stripped: true},
		{name: "close without its bracket", in: "<mx-reply>q</mx-reply", stripped: true},
		{name: "longer tag name", in: "<mx-replyx>q</mx-replyx>a", want: "<mx-replyx>q</mx-replyx>a"},
		{name: "longer closing tag name is not a close", in: "<mx-reply>q</mx-replyx>a</mx-reply>b", want: "b", stripped: true},
		{name: "not at the start", in: "a<mx-reply>q</mx-reply>", want: "a<mx-reply>q</mx-reply>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, stripped := stripHTMLReplyFallback(tt.in)
			if got != tt.want || stripped != tt.stripped {
				t.Errorf("stripHTMLReplyFallback(%q) = %q, %v; want %q, %v", tt.in, got, stripped, tt.want, tt.stripped)
			}
		})
	}
}
