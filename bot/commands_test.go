package bot

import (
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
	"maunium.net/go/mautrix/format"
)

// Each audience's table is the one source of its commands: names are unique,
// normalised as the parser normalises what people type, and every name and
// alias appears in the help rendered from the table.
func TestCommandTables(t *testing.T) {
	tables := []struct {
		name  string
		table commandTable
		help  string
	}{
		{"moderators", moderatorCommands, moderatorHelp()},
		{"agents", agentCommands, agentHelp()},
	}
	for _, tt := range tables {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[string]bool{}
			hasHelp := false
			for _, c := range tt.table {
				if len(c.names) == 0 || c.help == "" {
					t.Errorf("entry %v lacks names or a help line", c.names)
					continue
				}
				if c.run == nil {
					hasHelp = true
				}
				for _, n := range c.names {
					if seen[n] {
						t.Errorf("%q is in two entries", n)
					}
					seen[n] = true
					if n != strings.ToLower(norm.NFC.String(n)) {
						t.Errorf("%q is not lower-case NFC: the parser could never match it", n)
					}
					if tt.table.find(n) == nil {
						t.Errorf("find(%q) = nil", n)
					}
				}
				if !strings.Contains(tt.help, "`!"+c.names[0]) {
					t.Errorf("help lacks !%s", c.names[0])
				}
				if tt.name == "moderators" {
					for _, a := range c.names[1:] {
						if !strings.Contains(tt.help, "`!"+a+"`") {
							t.Errorf("help lacks the alias !%s", a)
						}
					}
				}
			}
			if !hasHelp {
				t.Error("no help entry")
			}
			// The help renders as a table or a list, with nothing escaped
			// into view.
			html := format.RenderMarkdown(tt.help, true, false).FormattedBody
			if tt.name == "moderators" && strings.Count(html, "<tr>") != len(tt.table)+1 {
				t.Errorf("moderators' help has %d rows, want %d:\n%s", strings.Count(html, "<tr>"), len(tt.table)+1, html)
			}
		})
	}
	// Reactions stand for commands of the moderators' table.
	for key, name := range reactionCommands {
		if moderatorCommands.find(name) == nil {
			t.Errorf("reaction %s stands for !%s, which is not a command", key, name)
		}
	}
	// A moderator's command typed in a DM is recognised as such, not as
	// an unknown one.
	for _, c := range moderatorCommands {
		if agentCommands.find(c.names[0]) != nil && c.names[0] != "help" && c.names[0] != "quota" {
			t.Errorf("!%s is in both tables", c.names[0])
		}
	}
}

func TestLowerFirst(t *testing.T) {
	for in, want := range map[string]string{"Désolé, x": "désolé, x", "": "", "é": "é", "Élan": "élan"} {
		if got := lowerFirst(in); got != want {
			t.Errorf("lowerFirst(%q) = %q, want %q", in, got, want)
		}
	}
}

// A long command with many unknown targets gets a reply of bounded size.
func TestBadTargetsAreListedBriefly(t *testing.T) {
	bad := make([]string, 10000)
	for i := range bad {
		bad[i] = "@x"
	}
	text := textBadTargets(bad)
	if len(text) > 2000 || !strings.Contains(text, "et 9995 autres") {
		t.Errorf("textBadTargets of 10,000 items: %d bytes, %q…", len(text), text[:min(len(text), 200)])
	}
}
