package bot

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/commands"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"
)

// command is a parsed "!name args" message.
type command struct {
	Name string   // lower-cased, without "!"
	Args []string // split on white space
	Raw  string   // everything after the name
}

// maxCommandLen bounds what the parser reads; longer messages are not commands.
const maxCommandLen = 4000

// messageText returns the text of a message, with mention pills in its HTML
// turned into user ids (a pill's plain body holds only a display name).
func messageText(ctx context.Context, content *event.MessageEventContent) string {
	if content.Format == event.FormatHTML && content.FormattedBody != "" {
		return commands.IDHTMLParser.Parse(content.FormattedBody, format.NewContext(ctx))
	}
	return content.Body
}

// parseCommand recognises "!name ..." messages.
func parseCommand(text string) (command, bool) {
	text = strings.TrimSpace(text)
	if len(text) < 2 || text[0] != '!' || len(text) > maxCommandLen {
		return command{}, false
	}
	fields := strings.Fields(text[1:])
	if len(fields) == 0 {
		return command{}, false
	}
	name := fields[0]
	raw := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(text[1:]), name))
	return command{Name: strings.ToLower(name), Args: fields[1:], Raw: raw}, true
}

// target is who a moderator's command is about: a user or a request number.
type target struct {
	User      id.UserID
	RequestID int64
}

var (
	errBadTarget = errors.New("not a user id or request number")
)

// parseTarget reads "@user:server", a matrix.to link (from a pill) or "#42".
func parseTarget(arg string) (target, error) {
	arg = strings.TrimSpace(arg)
	if strings.HasPrefix(arg, "https://matrix.to/#/") {
		arg = strings.TrimPrefix(arg, "https://matrix.to/#/")
		if i := strings.IndexAny(arg, "/?"); i >= 0 {
			arg = arg[:i]
		}
	}
	if strings.HasPrefix(arg, "#") {
		n, err := strconv.ParseInt(arg[1:], 10, 64)
		if err != nil || n <= 0 {
			return target{}, errBadTarget
		}
		return target{RequestID: n}, nil
	}
	user := id.UserID(arg)
	if local, _, err := user.ParseAndValidateRelaxed(); err != nil || local == "" || !strings.HasPrefix(arg, "@") {
		return target{}, errBadTarget
	}
	return target{User: user}, nil
}

// splitTargets takes the leading targets of args; the rest is the note or
// reason.
func splitTargets(args []string) (targets []target, bad []string, rest string) {
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "@") && !strings.HasPrefix(a, "#") && !strings.HasPrefix(a, "https://matrix.to/") {
			break
		}
		t, err := parseTarget(a)
		if err != nil {
			bad = append(bad, a)
			continue
		}
		targets = append(targets, t)
	}
	return targets, bad, strings.Join(args[i:], " ")
}
