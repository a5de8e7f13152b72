package bot

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
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

// parseCommand recognises "!name ..." messages. The text is put in NFC, so
// that a name typed with a combining accent (as some keyboards send it)
// matches; the name is lower-cased and loses the invisible characters that
// may hide in it. "！" (full width) counts as "!". White space is any
// Unicode space (NBSP included), and words made only of invisible
// characters (a lone U+200B) are not arguments.
func parseCommand(text string) (command, bool) {
	text = strings.TrimFunc(text, invisible)
	if len(text) > maxCommandLen {
		return command{}, false
	}
	text = norm.NFC.String(text)
	rest, ok := strings.CutPrefix(text, "!")
	if !ok {
		if rest, ok = strings.CutPrefix(text, "！"); !ok {
			return command{}, false
		}
	}
	// After the trim, the name starts with a visible character.
	rest = strings.TrimLeftFunc(rest, invisible)
	if rest == "" {
		return command{}, false
	}
	end := strings.IndexFunc(rest, unicode.IsSpace)
	if end < 0 {
		end = len(rest)
	}
	name := dropIgnorable(rest[:end])
	rest = rest[end:]
	raw := strings.TrimFunc(rest, invisible)
	return command{Name: norm.NFC.String(strings.ToLower(name)), Args: words(raw), Raw: raw}, true
}

// words splits text on Unicode white space, leaving out the words that show
// nothing.
func words(text string) []string {
	var out []string
	for _, w := range strings.Fields(text) {
		if visible(w) {
			out = append(out, w)
		}
	}
	return out
}

// target is who a moderator's command is about: a user or a request number.
type target struct {
	User      id.UserID
	RequestID int64
}

var (
	errBadTarget = errors.New("not a user id or request number")
)

// parseTarget reads a user as a bare id or any permalink to them (see
// parsePermalink: matrix.to, matrix:u/, Tchap's https://HOST/#/user/...),
// or a request number "#42". Invisible characters, full-width forms and
// wrapping punctuation ("<@a:b>", "`@a:b`", "@a:b,") are ignored. A link to
// a room is not a target.
func parseTarget(arg string) (target, error) {
	arg = cleanTarget(arg)
	if n, ok := strings.CutPrefix(arg, "#"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
		number, err := strconv.ParseInt(n, 10, 64)
		if err != nil || number <= 0 {
			return target{}, errBadTarget
		}
		return target{RequestID: number}, nil
	}
	if p, ok := parsePermalink(arg); ok && p.User != "" {
		return target{User: p.User}, nil
	}
	return target{}, errBadTarget
}

// cleanTarget removes from a word what may surround an id without being
// part of it.
func cleanTarget(arg string) string {
	arg = norm.NFKC.String(dropIgnorable(arg))
	arg = strings.TrimFunc(arg, unicode.IsSpace)
	arg = strings.TrimLeft(arg, "<([{\"'`«“‘")
	arg = strings.TrimRight(arg, ">)]}\"'`»”’,;.!?")
	return arg
}

// looksLikeTarget reports whether a word is meant as a target (and is
// reported as a bad one if it does not parse), rather than the start of the
// note or reason.
func looksLikeTarget(arg string) bool {
	arg = cleanTarget(arg)
	if strings.HasPrefix(arg, "@") || strings.HasPrefix(arg, "#") || hasPrefixFold(arg, "matrix:") {
		return true
	}
	if u, err := url.Parse(arg); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
		if strings.EqualFold(u.Hostname(), "matrix.to") {
			return true
		}
		_, ok := parsePermalink(arg)
		return ok
	}
	return false
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// splitTargets takes the leading targets of args; the rest is the note or
// reason.
func splitTargets(args []string) (targets []target, bad []string, rest string) {
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if !looksLikeTarget(a) {
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
