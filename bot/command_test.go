package bot

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

const tchapUser = "@jean.dupont-developpement-durable.gouv.fr:agent.dev-durable.tchap.gouv.fr"

func TestParseCommand(t *testing.T) {
	long := func(n int) string { return "!approve " + strings.Repeat("x", n-len("!approve ")) }
	tests := []struct {
		name     string
		text     string
		wantOK   bool
		wantName string
		wantArgs []string
		wantRaw  string
	}{
		{name: "plain", text: "!approve @a:b", wantOK: true, wantName: "approve", wantArgs: []string{"@a:b"}, wantRaw: "@a:b"},
		{name: "no arguments", text: "!pending", wantOK: true, wantName: "pending"},
		{name: "upper case", text: "!APPROVE @a:b", wantOK: true, wantName: "approve", wantArgs: []string{"@a:b"}, wantRaw: "@a:b"},
		{name: "mixed-case alias", text: "!Valider #42", wantOK: true, wantName: "valider", wantArgs: []string{"#42"}, wantRaw: "#42"},
		{name: "accented alias in capitals", text: "!RÉVOQUER @a:b départ", wantOK: true, wantName: "révoquer", wantArgs: []string{"@a:b", "départ"}, wantRaw: "@a:b départ"},
		{name: "arguments keep their case", text: "!reject @A:b Compte PERSO", wantOK: true, wantName: "reject", wantArgs: []string{"@A:b", "Compte", "PERSO"}, wantRaw: "@A:b Compte PERSO"},
		{name: "leading and trailing spaces", text: "   !aide  \n", wantOK: true, wantName: "aide"},
		{name: "inner spacing kept in Raw", text: "!reject @a:b  compte   personnel", wantOK: true, wantName: "reject", wantArgs: []string{"@a:b", "compte", "personnel"}, wantRaw: "@a:b  compte   personnel"},
		{name: "arguments over lines", text: "!approve @a:b\n@c:d\tmerci", wantOK: true, wantName: "approve", wantArgs: []string{"@a:b", "@c:d", "merci"}, wantRaw: "@a:b\n@c:d\tmerci"},
		{name: "Tchap target", text: "!info " + tchapUser, wantOK: true, wantName: "info", wantArgs: []string{tchapUser}, wantRaw: tchapUser},
		{name: "space after the bang", text: "! approve @a:b", wantOK: true, wantName: "approve", wantArgs: []string{"@a:b"}, wantRaw: "@a:b"},
		{name: "double bang", text: "!!", wantOK: true, wantName: "!"},
		{name: "bang alone", text: "!"},
		{name: "bang and spaces", text: "!    "},
		{name: "spaces around a bang", text: "  !  \n"},
		{name: "empty", text: ""},
		{name: "blank", text: " \t\n"},
		{name: "ordinary message", text: "Bonjour, je voudrais accéder à l'assistant !"},
		{name: "bang inside", text: "approve !now"},
		{name: "longest command", text: long(maxCommandLen), wantOK: true, wantName: "approve", wantArgs: []string{strings.Repeat("x", maxCommandLen-len("!approve "))}, wantRaw: strings.Repeat("x", maxCommandLen-len("!approve "))},
		{name: "one byte too long", text: long(maxCommandLen + 1)},
		{name: "much too long", text: long(100 * maxCommandLen)},
		{name: "long only because of spaces", text: strings.Repeat(" ", maxCommandLen) + "!aide" + strings.Repeat("\n", maxCommandLen), wantOK: true, wantName: "aide"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, ok := parseCommand(tt.text)
			if ok != tt.wantOK {
				t.Fatalf("parseCommand(%.40q) ok = %v, want %v (%+v)", tt.text, ok, tt.wantOK, cmd)
			}
			if !ok {
				if cmd.Name != "" || cmd.Args != nil || cmd.Raw != "" {
					t.Errorf("rejected input gave %+v, want the zero command", cmd)
				}
				return
			}
			if cmd.Name != tt.wantName {
				t.Errorf("Name = %q, want %q", cmd.Name, tt.wantName)
			}
			if len(cmd.Args) != len(tt.wantArgs) || (len(tt.wantArgs) > 0 && !slices.Equal(cmd.Args, tt.wantArgs)) {
				t.Errorf("Args = %q, want %q", cmd.Args, tt.wantArgs)
			}
			if cmd.Raw != tt.wantRaw {
				t.Errorf("Raw = %.60q, want %.60q", cmd.Raw, tt.wantRaw)
			}
		})
	}
}

func TestModeratorCommandAliases(t *testing.T) {
	tests := []struct {
		text string
		want string // first name of the command; "" for none
	}{
		{"!approve @a:b", "approve"},
		{"!APPROVE @a:b", "approve"},
		{"!valider @a:b", "approve"},
		{"!Valider @a:b", "approve"},
		{"!reject @a:b", "reject"},
		{"!refuser @a:b", "reject"},
		{"!revoke @a:b", "revoke"},
		{"!revoquer @a:b", "revoke"},
		{"!RÉVOQUER @a:b", "revoke"},
		{"!pending", "pending"},
		{"!attente", "pending"},
		{"!info #3", "info"},
		{"!capacity 500", "capacity"},
		{"!capacite", "capacity"},
		{"!Capacité", "capacity"},
		{"!help", "help"},
		{"!AIDE", "help"},
		{"!approuver @a:b", ""},
		{"!approve-all", ""},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			cmd, ok := parseCommand(tt.text)
			if !ok {
				t.Fatalf("parseCommand(%q) failed", tt.text)
			}
			c := moderatorCommands.find(cmd.Name)
			switch {
			case tt.want == "" && c != nil:
				t.Errorf("%q found command %v, want none", cmd.Name, c.names)
			case tt.want != "" && c == nil:
				t.Errorf("%q found no command, want %s", cmd.Name, tt.want)
			case tt.want != "" && c.names[0] != tt.want:
				t.Errorf("%q found %s, want %s", cmd.Name, c.names[0], tt.want)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		name string
		arg  string
		want target // zero: errBadTarget
	}{
		{name: "user id", arg: "@a:b", want: target{User: "@a:b"}},
		{name: "Tchap user id", arg: tchapUser, want: target{User: tchapUser}},
		{name: "user id with port", arg: "@bob:localhost:8448", want: target{User: "@bob:localhost:8448"}},
		{name: "user id with IPv6 server", arg: "@bob:[::1]:8448", want: target{User: "@bob:[::1]:8448"}},
		{name: "historical localpart", arg: "@Bob_Smith:b", want: target{User: "@Bob_Smith:b"}},
		{name: "surrounding spaces", arg: "  @a:b\n", want: target{User: "@a:b"}},
		{name: "pill link", arg: "https://matrix.to/#/@a:b", want: target{User: "@a:b"}},
		{name: "pill link to a Tchap user", arg: "https://matrix.to/#/" + tchapUser, want: target{User: tchapUser}},
		{name: "pill link with via", arg: "https://matrix.to/#/@a:b?via=b", want: target{User: "@a:b"}},
		{name: "pill link to a message", arg: "https://matrix.to/#/@a:b/$event", want: target{User: "@a:b"}},
		{name: "request number", arg: "#42", want: target{RequestID: 42}},
		{name: "request number with zeros", arg: "#007", want: target{RequestID: 7}},
		{name: "largest request number", arg: "#9223372036854775807", want: target{RequestID: 9223372036854775807}},
		{name: "request zero", arg: "#0"},
		{name: "negative request", arg: "#-1"},
		{name: "request overflow", arg: "#9223372036854775808"},
		{name: "request letters", arg: "#abc"},
		{name: "request with suffix", arg: "#42abc"},
		{name: "hash alone", arg: "#"},
		{name: "room alias", arg: "#support:agent.dinum.tchap.gouv.fr"},
		{name: "pill link to a room", arg: "https://matrix.to/#/#support:b"},
		{name: "pill link to a room id", arg: "https://matrix.to/#/!room:b"},
		{name: "empty pill link", arg: "https://matrix.to/#/"},
		{name: "user without server", arg: "@nocolon"},
		{name: "user with empty server", arg: "@a:"},
		{name: "user with reason words", arg: "@a:b extra reason words"},
		{name: "user with bad server", arg: "@a:b_c!"},
		{name: "server with bad port", arg: "@a:b:port"},
		{name: "user without sigil", arg: "a:b"},
		{name: "room id", arg: "!room:b"},
		{name: "event id", arg: "$event:b"},
		{name: "empty", arg: ""},
		{name: "at sign alone", arg: "@"},
		{name: "matrix.to layout on another host", arg: "https://example.org/#/@a:b", want: target{User: "@a:b"}},
		{name: "other link", arg: "https://example.org/@a:b"},
		{name: "other link with a fragment", arg: "https://example.org/#/users/@a:b"},
		{name: "too long user id", arg: "@" + strings.Repeat("a", 250) + ":b.fr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTarget(tt.arg)
			if tt.want == (target{}) {
				if !errors.Is(err, errBadTarget) {
					t.Errorf("parseTarget(%.40q) = %+v, %v; want errBadTarget", tt.arg, got, err)
				}
				if got != (target{}) {
					t.Errorf("failed parse returned %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseTarget(%q): %v", tt.arg, err)
			}
			if got != tt.want {
				t.Errorf("parseTarget(%q) = %+v, want %+v", tt.arg, got, tt.want)
			}
		})
	}
}

func TestSplitTargets(t *testing.T) {
	tests := []struct {
		name        string
		args        string // split on spaces
		wantTargets []target
		wantBad     []string
		wantRest    string
	}{
		{name: "nothing", args: ""},
		{name: "one user and a reason", args: "@a:b extra reason words", wantTargets: []target{{User: "@a:b"}}, wantRest: "extra reason words"},
		{name: "several targets", args: "@a:b #42 https://matrix.to/#/@c:d merci", wantTargets: []target{{User: "@a:b"}, {RequestID: 42}, {User: "@c:d"}}, wantRest: "merci"},
		{name: "Tchap user only", args: tchapUser, wantTargets: []target{{User: tchapUser}}},
		{name: "bad targets are reported", args: "@nocolon #abc #0 @a:b motif", wantTargets: []target{{User: "@a:b"}}, wantBad: []string{"@nocolon", "#abc", "#0"}, wantRest: "motif"},
		{name: "reason first: no targets", args: "motif @a:b", wantRest: "motif @a:b"},
		{name: "targets after the reason stay in it", args: "@a:b pour #42", wantTargets: []target{{User: "@a:b"}}, wantRest: "pour #42"},
		{name: "number without hash is a reason", args: "42 @a:b", wantRest: "42 @a:b"},
		{name: "other link ends the targets", args: "https://example.org/@a:b", wantRest: "https://example.org/@a:b"},
		{name: "matrix.to link to a room is bad", args: "https://matrix.to/#/#room:b ok", wantBad: []string{"https://matrix.to/#/#room:b"}, wantRest: "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			targets, bad, rest := splitTargets(strings.Fields(tt.args))
			if !slices.Equal(targets, tt.wantTargets) {
				t.Errorf("targets = %+v, want %+v", targets, tt.wantTargets)
			}
			if !slices.Equal(bad, tt.wantBad) {
				t.Errorf("bad = %q, want %q", bad, tt.wantBad)
			}
			if rest != tt.wantRest {
				t.Errorf("rest = %q, want %q", rest, tt.wantRest)
			}
		})
	}
}

func TestMessageTextTurnsPillsIntoIDs(t *testing.T) {
	tests := []struct {
		name    string
		content event.MessageEventContent
		want    []target
	}{
		{
			name:    "plain body",
			content: event.MessageEventContent{MsgType: event.MsgText, Body: "!approve @a:b"},
			want:    []target{{User: "@a:b"}},
		},
		{
			name: "pill in HTML",
			content: event.MessageEventContent{
				MsgType: event.MsgText, Body: "!approve Jean Dupont", Format: event.FormatHTML,
				FormattedBody: `!approve <a href="https://matrix.to/#/` + tchapUser + `">Jean Dupont</a>`,
			},
			want: []target{{User: tchapUser}},
		},
		{
			name: "two pills and a request number",
			content: event.MessageEventContent{
				MsgType: event.MsgText, Body: "!approve Jean Marie #4 ok", Format: event.FormatHTML,
				FormattedBody: `!approve <a href="https://matrix.to/#/@jean:b">Jean</a> <a href="https://matrix.to/#/@marie:b">Marie</a> #4 ok`,
			},
			want: []target{{User: "@jean:b"}, {User: "@marie:b"}, {RequestID: 4}},
		},
		{
			name: "Tchap pills in a Markdown list",
			content: event.MessageEventContent{
				MsgType: event.MsgText, Body: "!approve\n- Alice\n- Marie", Format: event.FormatHTML,
				FormattedBody: `<p>!approve</p><ul><li><a href="https://tchap.gouv.fr/#/user/@alice:b">Alice</a></li><li><a href="https://tchap.gouv.fr/#/user/@marie:b">Marie</a></li></ul>`,
			},
			want: []target{{User: "@alice:b"}, {User: "@marie:b"}},
		},
		{
			name:    "ids in a numbered list of the body",
			content: event.MessageEventContent{MsgType: event.MsgText, Body: "!approve\n1. @a:b\n2. n° 4"},
			want:    []target{{User: "@a:b"}, {RequestID: 4}},
		},
		{
			name: "HTML format without a body falls back to the plain body",
			content: event.MessageEventContent{
				MsgType: event.MsgText, Body: "!approve @a:b", Format: event.FormatHTML,
			},
			want: []target{{User: "@a:b"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := messageText(context.Background(), &tt.content)
			cmd, ok := parseCommand(text)
			if !ok || cmd.Name != "approve" {
				t.Fatalf("parseCommand(%q) = %+v, %v", text, cmd, ok)
			}
			targets, bad, _ := splitTargets(cmd.Args)
			if len(bad) > 0 || !slices.Equal(targets, tt.want) {
				t.Errorf("targets of %q = %+v (bad %q), want %+v", text, targets, bad, tt.want)
			}
		})
	}
}

// checkTarget asserts what every parsed target must satisfy.
func checkTarget(t *testing.T, in string, got target) {
	t.Helper()
	if (got.User != "") == (got.RequestID != 0) {
		t.Fatalf("parseTarget(%q) = %+v: want exactly one of User and RequestID", in, got)
	}
	if got.User != "" {
		if !strings.HasPrefix(string(got.User), "@") {
			t.Fatalf("parseTarget(%q) user %q does not start with @", in, got.User)
		}
		if _, _, err := got.User.ParseAndValidateRelaxed(); err != nil {
			t.Fatalf("parseTarget(%q) user %q does not validate: %v", in, got.User, err)
		}
	}
	if got.RequestID < 0 {
		t.Fatalf("parseTarget(%q) request %d is not positive", in, got.RequestID)
	}
}

var fuzzSeeds = []string{
	"!approve @a:b",
	"!APPROVE " + tchapUser + " https://matrix.to/#/@c:d #42 équipe projet",
	"  !reject @a:b extra reason words",
	"! approve @a:b",
	"!",
	"!!",
	"#42", "#0", "#-1", "#abc", "@nocolon", "@a:b extra reason words",
	"https://matrix.to/#/@a:b?via=b",
	"https://matrix.to/#/",
	"!RÉVOQUER @a:b\u00a0départ",
	"!capacity 500",
	"\x00!\xff\xfe",
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		cmd, ok := parseCommand(text)
		trimmed := trimInvisible(norm.NFC.String(text))
		first, size := utf8.DecodeRuneInString(trimmed)
		after, bang := trimmed[size:], first == '!' || norm.NFKC.String(string(first)) == "!"
		if !ok {
			if cmd.Name != "" || cmd.Args != nil || cmd.Raw != "" {
				t.Fatalf("parseCommand(%q) refused but returned %+v", text, cmd)
			}
			if bang && len(strings.TrimFunc(text, invisible)) <= maxCommandLen && visible(after) {
				t.Fatalf("parseCommand(%q) refused a command", text)
			}
			return
		}
		if len(strings.TrimFunc(text, invisible)) > maxCommandLen || !bang {
			t.Fatalf("parseCommand(%q) accepted a non-command", text)
		}
		if cmd.Name == "" || cmd.Name != norm.NFC.String(strings.ToLower(cmd.Name)) || strings.ContainsFunc(cmd.Name, unicode.IsSpace) || strings.ContainsFunc(cmd.Name, ignorable) || strings.ContainsFunc(cmd.Name, unicode.IsControl) {
			t.Fatalf("parseCommand(%q) Name = %q: want non-empty, lower-case, NFC, one word, no invisible character", text, cmd.Name)
		}
		if !norm.NFC.IsNormalString(cmd.Raw) {
			t.Fatalf("parseCommand(%q) Raw = %q is not NFC", text, cmd.Raw)
		}
		for _, a := range cmd.Args {
			if a == "" || strings.ContainsFunc(a, unicode.IsSpace) || !visible(a) {
				t.Fatalf("parseCommand(%q) Args = %q: want visible words", text, cmd.Args)
			}
		}
		if got := words(cmd.Raw); !slices.Equal(got, cmd.Args) {
			t.Fatalf("parseCommand(%q): Raw %q holds %q, Args %q", text, cmd.Raw, got, cmd.Args)
		}
		// Its own text reads the same (unless normalising lengthened it past
		// the limit: NFC and lower case may).
		if own := "!" + cmd.Name + " " + cmd.Raw; len(own) <= maxCommandLen {
			if again, ok := parseCommand(own); !ok || again.Name != cmd.Name || again.Raw != cmd.Raw {
				t.Fatalf("parseCommand(%q) = %+v, but its own text reads as %+v, %v", text, cmd, again, ok)
			}
		}

		targets, bad, rest := splitTargets(cmd.Args)
		for _, tg := range targets {
			checkTarget(t, text, tg)
			if strings.ContainsFunc(string(tg.User), unicode.IsSpace) {
				t.Fatalf("target %q of %q contains white space", tg.User, text)
			}
		}
		restWords := strings.Fields(rest)
		if len(targets)+len(bad)+len(restWords) > len(cmd.Args) {
			t.Fatalf("splitTargets(%q) = %+v, %q, %q: words added", cmd.Args, targets, bad, rest)
		}
		if !slices.Equal(restWords, cmd.Args[len(cmd.Args)-len(restWords):]) {
			t.Fatalf("splitTargets(%q) rest %q is not the tail of the arguments", cmd.Args, rest)
		}
	})
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		got, err := parseTarget(arg)
		if err != nil {
			if !errors.Is(err, errBadTarget) || got != (target{}) {
				t.Fatalf("parseTarget(%q) = %+v, %v; want the zero target and errBadTarget", arg, got, err)
			}
			return
		}
		checkTarget(t, arg, got)
		if got.User != "" && len(got.User) > id.UserIDMaxLength {
			t.Fatalf("parseTarget(%q) user longer than %d", arg, id.UserIDMaxLength)
		}
	})
}

func TestParseTargetRejectsEmptyLocalpart(t *testing.T) {
	for _, arg := range []string{"@:agent.dinum.tchap.gouv.fr", "https://matrix.to/#/@:server"} {
		if tgt, err := parseTarget(arg); err == nil {
			t.Errorf("parseTarget(%q) = %+v, want an error", arg, tgt)
		}
	}
}
