package bot

import (
	"slices"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"
)

// hostile are values people control (localparts, reasons, typed commands)
// that Markdown or HTML would read as something else than text.
var hostile = []struct{ name, s string }{
	{"underscores", "a._und_.b"},
	{"stars", "*gras* **très**"},
	{"backtick", "a`b"},
	{"backticks at the ends", "`code`"},
	{"fence", "```go x```"},
	{"link", "[x](https://evil.example)"},
	{"image", "![x](https://evil.example/x.png)"},
	{"autolink", "<https://evil.example>"},
	{"bold tag", "<b>gras</b>"},
	{"anchor tag", `<a href="https://evil.example">ici</a>`},
	{"script", "<script>alert(1)</script>"},
	{"entities", "&lt;b&gt; &amp; &#64;"},
	{"room mention", "@room"},
	{"pill", "[@x:y](https://matrix.to/#/@x:y)"},
	{"pipes", "a | b || c ||"},
	{"newlines", "ligne 1\nligne 2\r\n\n# titre\n- puce\n\n| a | b |\n| - | - |"},
	{"backslashes", `a\_b\`},
	{"strike", "~~barré~~"},
	{"heading", "# titre"},
	{"ordered list", "1. premier"},
	{"ordered list with a parenthesis", "12) douze"},
	{"indented code", "    code indenté"},
	{"indented list", "  - puce"},
	{"setext underline", "==="},
	{"plus list", "+ puce"},
	{"quote", "> cité"},
	{"thematic break", "---"},
	{"html comment", "<!-- x -->"},
	{"control characters", "a\x00b\tc\x1bd\u2028e"},
	{"bidi controls", "motif \u202eevil\u202c \u2066gpj.exe\u2069 \u200fx"},
	{"long", strings.Repeat("_a*<b>", 2000)},
}

// benign stands for an ordinary value: a hostile one must render with
// exactly the same structure.
const benign = "benin"

// sent is a message as people receive it: rendered exactly as the outbox
// renders it (bot/outbox.go deliver).
type sent struct {
	body string // the plain body
	html string // the formatted body, or the escaped body when there is none
}

func render(md string) sent {
	c := format.RenderMarkdown(md, true, false)
	if c.Format != event.FormatHTML {
		return sent{body: c.Body, html: html.EscapeString(c.Body)}
	}
	return sent{body: c.Body, html: c.FormattedBody}
}

// shape is what the HTML of a message does: its elements in order, their
// links, and the text people read.
type shape struct {
	tags  []string
	hrefs []string
	text  string
}

func shapeOf(t *testing.T, s string) shape {
	t.Helper()
	nodes, err := html.ParseFragment(strings.NewReader(s), &html.Node{Type: html.ElementNode, Data: "body", DataAtom: atom.Body})
	if err != nil {
		t.Fatalf("unparsable HTML %q: %v", short(s), err)
	}
	var sh shape
	var text strings.Builder
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		switch n.Type {
		case html.ElementNode:
			sh.tags = append(sh.tags, n.Data)
			for _, a := range n.Attr {
				if a.Key == "href" {
					sh.hrefs = append(sh.hrefs, a.Val)
				}
			}
		case html.TextNode:
			text.WriteString(n.Data)
		case html.CommentNode:
			sh.tags = append(sh.tags, "!--")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	for _, n := range nodes {
		walk(n)
	}
	sh.text = collapse(text.String())
	return sh
}

// collapse turns every run of white space into one space, as clients do
// when they display HTML (and as the body's converter does).
func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

// shown is how a value must read once rendered: literally, line breaks and
// other control characters as spaces.
func shown(s string) string {
	return collapse(strings.Map(controlToSpace, s))
}

// checkLiteral checks that md, built around a hostile value, reads as want
// in both the body and the HTML, and has the structure of benignMD, built
// around an ordinary one.
func checkLiteral(t *testing.T, md, benignMD, want string) {
	t.Helper()
	got, ref := render(md), render(benignMD)
	if !strings.Contains(collapse(got.body), want) {
		t.Errorf("body %q lacks %q\nmarkdown: %q", short(got.body), short(want), short(md))
	}
	gs, rs := shapeOf(t, got.html), shapeOf(t, ref.html)
	if !strings.Contains(gs.text, want) {
		t.Errorf("HTML text %q lacks %q\nHTML: %q\nmarkdown: %q", short(gs.text), short(want), short(got.html), short(md))
	}
	if !slices.Equal(gs.tags, rs.tags) {
		t.Errorf("HTML elements %v, want %v as for an ordinary value\nHTML: %q\nmarkdown: %q", gs.tags, rs.tags, short(got.html), short(md))
	}
	if len(gs.hrefs) != len(rs.hrefs) {
		t.Errorf("links %v, want %d\nHTML: %q", gs.hrefs, len(rs.hrefs), short(got.html))
	}
}

// short keeps failure messages readable with the long hostile value.
func short(s string) string { return clip(s, 300) }

// contexts are the places a value can take in a message.
var contexts = []struct {
	name string
	wrap func(v string) string
}{
	{"inline", func(v string) string { return "Bonjour " + v + ", voici." }},
	{"bold", func(v string) string { return "**n° 3** " + v + " **fin**" }},
	{"line start", func(v string) string { return v + " : aucune demande." }},
	{"list item", func(v string) string { return "Liste :\n\n- n° 1 — " + v + " — attend\n- n° 2" }},
	{"table cell", func(v string) string { return "| qui | quoi |\n| --- | --- |\n| " + v + " | x |" }},
	{"link text", func(v string) string { return "[" + v + "](https://exemple.gouv.fr)" }},
}

func TestLiteralRendersEveryValueAsItsText(t *testing.T) {
	for _, c := range contexts {
		for _, h := range hostile {
			t.Run(c.name+"/"+h.name, func(t *testing.T) {
				checkLiteral(t, c.wrap(literal(h.s)), c.wrap(literal(benign)), shown(h.s))
			})
		}
	}
}

// Ordinary ids and words are written as they are: the Markdown stays
// readable, and tests and logs that look for an id in it find it.
func TestLiteralLeavesOrdinaryValuesAlone(t *testing.T) {
	for _, s := range []string{
		"@alice.martin-interieur.gouv.fr:agent.interieur.tchap.gouv.fr",
		"@a=b/c+d:hs.example:8448",
		"hs.example",
		"compte personnel, merci !",
		"2026-11-30",
	} {
		if got := literal(s); got != s {
			t.Errorf("literal(%q) = %q", s, got)
		}
	}
}

func TestCodeRendersEveryValueAsItsText(t *testing.T) {
	for _, c := range contexts {
		if c.name == "table cell" {
			continue // GFM splits a row on "|" even inside code: code is not for tables
		}
		for _, h := range hostile {
			t.Run(c.name+"/"+h.name, func(t *testing.T) {
				want := strings.Map(controlToSpace, h.s)
				checkLiteral(t, c.wrap(code(h.s)), c.wrap(code(benign)), collapse(want))
			})
		}
	}
}

func TestEchoedAndFreeTextAreBounded(t *testing.T) {
	long := strings.Repeat("é_<", 10000)
	for _, tt := range []struct {
		name string
		md   string
		want string
		max  int
	}{
		{"echoed", echoed(long), clip(long, maxEchoed), maxEchoed},
		{"free text", freeText(long), clip(long, maxFreeText), maxFreeText},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := render(tt.md)
			if !strings.Contains(got.body, tt.want) {
				t.Errorf("body %q lacks %q", short(got.body), short(tt.want))
			}
			if n := len([]rune(got.body)); n > tt.max+3 {
				t.Errorf("body of %d characters, want at most %d", n, tt.max+3)
			}
		})
	}
	if got := freeText("  compte personnel \n"); got != "compte personnel" {
		t.Errorf("freeText keeps the surrounding space: %q", got)
	}
}

// A mention is a pill for exactly that user, whose text is their id.
func TestMentionIsAPillForThatUser(t *testing.T) {
	for _, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			user := id.UserID("@" + h.s + ":hs.example")
			md, ref := "Bonjour "+mention(user)+", voici.", "Bonjour "+mention("@benin:hs.example")+", voici."
			checkLiteral(t, md, ref, shown(user.String()))
			hrefs := shapeOf(t, render(md).html).hrefs
			if len(hrefs) != 1 {
				t.Fatalf("links %v, want one", hrefs)
			}
			// Markdown must leave the link as mautrix builds it (Element
			// splits the fragment before decoding it, so "/" in a localpart
			// is fine; mautrix's own parser is not used on our messages).
			if want := user.URI().MatrixToURL(); hrefs[0] != want {
				t.Errorf("the pill links to %q, want %q", hrefs[0], want)
			}
			if uri, err := id.ParseMatrixURIOrMatrixToURL(hrefs[0]); err == nil && uri.UserID() != user {
				t.Errorf("the pill links to %q, want %q", uri.UserID(), user)
			}
		})
	}
}

// A link's destination is taken as written, whatever it holds.
func TestLinkKeepsItsDestination(t *testing.T) {
	for _, url := range []string{
		"https://exemple.gouv.fr/politique",
		"https://exemple.gouv.fr/politique_(v2)?a=1&b=_x_#s",
		"https://exemple.gouv.fr/a\\b*c*[d]<e>",
	} {
		t.Run(url, func(t *testing.T) {
			hrefs := shapeOf(t, render(link("politique", url)).html).hrefs
			if len(hrefs) != 1 {
				t.Fatalf("links %v, want one", hrefs)
			}
			if want := (&htmlURL{url}).escaped(); hrefs[0] != url && hrefs[0] != want {
				t.Errorf("link to %q, want %q", hrefs[0], url)
			}
		})
	}
}

// htmlURL is how goldmark writes a destination holding characters a URL
// may not: percent-encoded.
type htmlURL struct{ s string }

func (u *htmlURL) escaped() string {
	r := strings.NewReplacer("\\", "%5C", "[", "%5B", "]", "%5D", "<", "%3C", ">", "%3E")
	return r.Replace(u.s)
}

// Bidirectional controls in a value never reach the message: they could
// make it reorder the sentence around it.
func TestBidiControlsAreDropped(t *testing.T) {
	const v = "motif \u202eevil\u202c \u2066gpj.exe\u2069 \u200fx \u061c"
	for name, md := range map[string]string{"literal": literal(v), "code": code(v), "freeText": freeText(v), "echoed": echoed(v)} {
		got := render("x " + md + " y")
		for _, r := range got.body + got.html {
			if unicode.Is(unicode.Bidi_Control, r) {
				t.Errorf("%s: bidi control %U in %q", name, r, got.body)
			}
		}
	}
}
