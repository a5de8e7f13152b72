package bot

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
)

// The seed corpora run under plain go test; go test -fuzz=FuzzX explores.

func FuzzParsePermalink(f *testing.F) {
	for _, s := range []string{
		"@a:b", tchapAlice, tchapAliceLink, "!room:b", "#support:b", "$evt:b",
		"https://matrix.to/#/@a:b?via=b", "https://matrix.to/#/%40a%3Ab",
		"https://matrix.to/#/!room:b/$a/b+c", "https://matrix.to/#/%23support%3Ab/%24e",
		"matrix:u/a:b?action=chat", "matrix:roomid/room:b/e/evt?via=b", "matrix:r/%C3%A9quipe:b",
		"https://tchap.gouv.fr/#/room/#support:b", "https://tchap.gouv.fr/#/room/!r:b/$e?via=b",
		"https://chat.example.org/app/#/user/%40a%3Ab/", "https://example.org/#/users/@a:b",
		"@a:[::1]:8448", "@a:b%zz", "https://matrix.to/#/@a:b%", "matrix:u/", "\x00@\xff:b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := parsePermalink(s)
		if !ok {
			if p != (permalink{}) {
				t.Fatalf("parsePermalink(%q) failed but returned %+v", s, p)
			}
			return
		}
		kinds := 0
		for _, v := range []string{string(p.User), string(p.Room), string(p.Alias)} {
			if v != "" {
				kinds++
			}
		}
		if kinds != 1 {
			t.Fatalf("parsePermalink(%q) = %+v: want exactly one of user, room, alias", s, p)
		}
		var forms []string // other spellings of the same permalink
		switch {
		case p.User != "":
			if !validUserID(string(p.User)) || p.Event != "" {
				t.Fatalf("parsePermalink(%q) = %+v: invalid user", s, p)
			}
			if _, _, err := p.User.ParseAndValidateRelaxed(); err != nil {
				t.Fatalf("parsePermalink(%q) user %q: %v", s, p.User, err)
			}
			forms = []string{string(p.User), p.User.URI().MatrixToURL(), p.User.URI().String(),
				"https://tchap.gouv.fr/#/user/" + url.PathEscape(string(p.User))}
		case p.Event != "" && p.Room != "":
			forms = []string{p.Room.EventURI(p.Event).MatrixToURL(), p.Room.EventURI(p.Event).String()}
		case p.Event != "":
			forms = []string{p.Alias.EventURI(p.Event).MatrixToURL()}
		case p.Room != "":
			forms = []string{string(p.Room), p.Room.URI().MatrixToURL(), p.Room.URI().String(),
				"https://tchap.gouv.fr/#/room/" + url.PathEscape(string(p.Room))}
		default:
			forms = []string{string(p.Alias), p.Alias.URI().MatrixToURL(), p.Alias.URI().String(),
				"https://tchap.gouv.fr/#/room/" + url.PathEscape(string(p.Alias))}
		}
		if p.Room != "" && !validRoomID(string(p.Room)) || p.Alias != "" && !validAlias(string(p.Alias)) || p.Event != "" && !validOpaque(string(p.Event)) {
			t.Fatalf("parsePermalink(%q) = %+v: invalid identifier", s, p)
		}
		for _, form := range forms {
			if again, ok := parsePermalink(form); !ok || again != p {
				t.Fatalf("parsePermalink(%q) = %+v, but its form %q reads as %+v, %v", s, p, form, again, ok)
			}
		}
		if p.User != "" {
			if got, err := parseTarget(string(p.User)); err != nil || got.User != p.User {
				t.Fatalf("parseTarget(%q) = %+v, %v", p.User, got, err)
			}
		}
		// In a command's text, a link is the id it designates, or a link
		// that reads the same.
		text := permalinkText("x", s, format.NewContext(context.Background()))
		if again, _ := parsePermalink(text); again != p || p.Event == "" && text != string(p.User)+string(p.Room)+string(p.Alias) {
			t.Fatalf("permalinkText(%q) = %q for %+v", s, text, p)
		}
	})
}

func FuzzReplyFallback(f *testing.F) {
	f.Add("> <@alice:b> Bonjour\n\n!approve @alice:b", htmlReply("@alice:b", "Bonjour", "!approve @alice:b"), true)
	f.Add("> * <@alice:b> salue\r\n>\r\n\r\n> citation\n\nsuite", "", true)
	f.Add("> <@a:b> x", "<MX-REPLY>q</mx-reply >a", false)
	f.Add("> citation\n\ntexte", "<blockquote>citation</blockquote>texte", true)
	f.Add("\u200b", "&#8203;", false)
	f.Add("!re\u0301voquer @x:b", "!re\u0301voquer <a href=\""+tchapAliceLink+"\">A</a>", false)
	f.Add("> <@a:b> x\n", "<mx-reply><mx-reply></mx-reply>", true)
	f.Fuzz(func(t *testing.T, body, html string, reply bool) {
		got := stripReplyFallback(body, reply)
		if !strings.HasSuffix(body, got) {
			t.Fatalf("stripReplyFallback(%q) = %q: not a suffix", body, got)
		}
		if got != body && !reply {
			t.Fatalf("stripReplyFallback(%q) stripped a message that is not a reply", body)
		}
		// What was stripped is quoted lines and then blank lines.
		cut, quoted := strings.Split(body[:len(body)-len(got)], "\n"), true
		for i, line := range cut[:len(cut)-1] {
			if quoted && !strings.HasPrefix(line, ">") {
				quoted = false
			}
			if !quoted && strings.TrimSpace(line) != "" || i == 0 && !quoted {
				t.Fatalf("stripReplyFallback(%q) cut %q, which is not a fallback", body, cut)
			}
		}

		rest, stripped := stripHTMLReplyFallback(html)
		if !strings.HasSuffix(html, rest) || !stripped && rest != html {
			t.Fatalf("stripHTMLReplyFallback(%q) = %q, %v", html, rest, stripped)
		}
		if stripped && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(html)), "<mx-reply") {
			t.Fatalf("stripHTMLReplyFallback(%q) stripped what does not start with mx-reply", html)
		}

		content := event.MessageEventContent{MsgType: event.MsgText, Body: body, Format: event.FormatHTML, FormattedBody: html}
		if reply {
			content.RelatesTo = replyTo("$quoted")
		}
		for name, text := range map[string]string{
			"messageText": messageText(context.Background(), &content),
			"messageBody": messageBody(&content),
		} {
			checkNormalized(t, name, text)
		}
		// A plain body that was read once reads the same.
		text := messageBody(&content)
		if again := messageText(context.Background(), &event.MessageEventContent{Body: text}); again != text {
			t.Fatalf("messageText of %q = %q", text, again)
		}
	})
}

// checkNormalized asserts what messageText and messageBody promise.
func checkNormalized(t *testing.T, name, text string) {
	t.Helper()
	if text == "" {
		return
	}
	if !visible(text) {
		t.Fatalf("%s = %q: nothing visible, want \"\"", name, text)
	}
	if !norm.NFC.IsNormalString(text) {
		t.Fatalf("%s = %q: not NFC", name, text)
	}
	if strings.TrimSpace(text) != text {
		t.Fatalf("%s = %q: surrounding white space", name, text)
	}
}

func FuzzNormalizeText(f *testing.F) {
	for _, s := range []string{
		"", "\u200b", "\u200b\u200c\u200d\u2060\ufeff", "\ufe0f", "\u202e!approve", "\u3164", "\u2800",
		"e\u0301", "\u0301", " \u00a0\u202f\u3000", "\u0600", "👩\u200d💻", "\U000e0041", "\xff", "\u0958",
		"!RE\u0301VOQUER @x:b", "！aide",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := normalizeText(s)
		checkNormalized(t, "normalizeText", got)
		if (got == "") == visible(s) {
			t.Fatalf("normalizeText(%q) = %q, but visible = %v", s, got, visible(s))
		}
		if again := normalizeText(got); again != got {
			t.Fatalf("normalizeText not idempotent: %q -> %q -> %q", s, got, again)
		}
		if cmd, ok := parseCommand(s); ok {
			// Reading the normalised text gives the same command.
			again, ok := parseCommand(got)
			if !ok || again.Name != cmd.Name || again.Raw != cmd.Raw {
				t.Fatalf("parseCommand(%q) = %+v, but of its normalised text %+v, %v", s, cmd, again, ok)
			}
		}
		if dropped := dropIgnorable(s); strings.ContainsFunc(dropped, ignorable) {
			t.Fatalf("dropIgnorable(%q) = %q", s, dropped)
		}
		if tg, err := parseTarget(s); err == nil && tg.User != "" && !validUserID(string(tg.User)) {
			t.Fatalf("parseTarget(%q) = invalid %q", s, tg.User)
		}
	})
}
