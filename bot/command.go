package bot

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"maunium.net/go/mautrix/id"
)

// command is a parsed "!name args" message.
type command struct {
	Name string   // folded (see commandName), without "!"
	Args []string // split on Unicode white space, invisible words left out
	Raw  string   // everything after the name, in NFC
}

// maxCommandLen bounds what the parser reads; longer messages are not
// commands. It is the homeserver's event limit: a moderator's reason may
// be a pasted e-mail (what is shown of it is cut, see maxFreeText).
const maxCommandLen = 64 << 10

// parseCommand recognises "!name ..." messages. The text is put in NFC, so
// that a name typed with a combining accent (as some keyboards send it)
// matches; the name is folded (see commandName) and loses the invisible
// characters that may hide in it. "！" (full width) and "﹗" (small) count
// as "!". White space is any Unicode space (NBSP included), and words made
// only of invisible characters (a lone U+200B) are not arguments.
func parseCommand(text string) (command, bool) {
	if len(strings.TrimFunc(text, invisible)) > maxCommandLen {
		return command{}, false
	}
	text = trimInvisible(norm.NFC.String(text))
	bang, size := utf8.DecodeRuneInString(text)
	if bang != '!' && norm.NFKC.String(string(bang)) != "!" {
		return command{}, false
	}
	rest := text[size:]
	// After the trim, the name starts with a visible character.
	rest = strings.TrimLeftFunc(rest, invisible)
	if rest == "" {
		return command{}, false
	}
	end := strings.IndexFunc(rest, unicode.IsSpace)
	if end < 0 {
		end = len(rest)
	}
	name := dropBlank(rest[:end])
	rest = rest[end:]
	raw := trimInvisible(rest)
	return command{Name: commandName(name), Args: words(raw), Raw: raw}, true
}

// commandName folds a typed name: full-width and other compatibility forms
// (NFKC), lower case, and the punctuation a phone keyboard may add after
// it ("!aide." after a double space).
func commandName(name string) string {
	// NFKC may give a space (U+0384 is " \u0301"): then keep the name.
	if folded := norm.NFKC.String(name); !strings.ContainsFunc(folded, unicode.IsSpace) {
		if folded = dropBlank(folded); visible(folded) {
			name = folded
		}
	}
	name = norm.NFC.String(strings.Map(latinLookalike, strings.ToLower(name)))
	if trimmed := strings.TrimRight(name, ".,;:!?…"); trimmed != "" {
		return trimmed
	}
	return name
}

// latinLookalike maps the Cyrillic and Greek letters that look like Latin
// ones (а, е, о, р, с, …) to them: "!аpprove" typed with a Cyrillic а reads
// as "!approve" on screen, and no command name uses those scripts.
func latinLookalike(r rune) rune {
	if l, ok := lookalikes[r]; ok {
		return l
	}
	return r
}

var lookalikes = map[rune]rune{
	// Cyrillic
	'а': 'a', 'в': 'b', 'е': 'e', 'ё': 'ë', 'к': 'k', 'м': 'm', 'н': 'h', 'о': 'o', 'р': 'p', 'с': 'c',
	'т': 't', 'у': 'y', 'х': 'x', 'і': 'i', 'ї': 'ï', 'ј': 'j', 'ѕ': 's', 'ԁ': 'd', 'ԛ': 'q', 'ԝ': 'w', 'һ': 'h',
	// Greek
	'α': 'a', 'β': 'b', 'ε': 'e', 'ι': 'i', 'κ': 'k', 'ν': 'v', 'ο': 'o', 'ρ': 'p', 'τ': 't', 'υ': 'u', 'χ': 'x', 'ϲ': 'c',
}

// dropBlank removes from a word what shows nothing (controls, format
// characters), keeping combining marks, which belong to their letter.
func dropBlank(s string) string {
	return strings.Map(func(r rune) rune {
		if ignorable(r) || invisible(r) && !unicode.In(r, unicode.Mn, unicode.Me) {
			return -1
		}
		return r
	}, s)
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
// or a request number: "#42", or "n°42" as guichet writes it. Invisible
// characters, full-width forms and wrapping punctuation ("<@a:b>",
// "`@a:b`", "@a:b,") are ignored. A link to a room is not a target.
func parseTarget(arg string) (target, error) {
	arg = cleanTarget(arg)
	// Unwrapped first: "@alice:hs." ends a sentence, and a server name
	// with a final dot would pass for a valid, other, one.
	for _, a := range []string{unwrap(arg), arg} {
		if n, ok := requestNumber(a); ok {
			number, err := strconv.ParseInt(n, 10, 64)
			if err != nil || number <= 0 {
				return target{}, errBadTarget
			}
			return target{RequestID: number}, nil
		}
		if p, ok := parsePermalink(a); ok && p.User != "" {
			return target{User: p.User}, nil
		}
	}
	return target{}, errBadTarget
}

// requestNumber returns the digits of "#42", "n°42" or "no42" ("nº42" and
// "№42" after NFKC), written as one word.
func requestNumber(arg string) (string, bool) {
	for _, prefix := range []string{"#", "n°", "no"} {
		if hasPrefixFold(arg, prefix) {
			n := arg[len(prefix):]
			return n, n != "" && strings.Trim(n, "0123456789") == ""
		}
	}
	return "", false
}

// isNumberSign reports whether a word is "n°" written apart from its
// number (not "no", which may start an English reason).
func isNumberSign(arg string) bool {
	switch strings.ToLower(strings.TrimFunc(dropIgnorable(arg), unicode.IsSpace)) {
	case "n°", "nº", "№":
		return true
	}
	return false
}

// isConnector reports whether a word only joins targets in a list: "et",
// "and", "&", or a list bullet ("-", "*", "•", "1."), which Markdown lists
// leave in both the body and the text of the HTML.
func isConnector(arg string) bool {
	arg = strings.ToLower(cleanTarget(arg))
	switch arg {
	case "et", "and", "&", "+", "-", "–", "—", "*", "•", ",", ";":
		return true
	}
	n, ok := strings.CutSuffix(arg, ".")
	return ok && n != "" && strings.Trim(n, "0123456789") == ""
}

// cleanTarget removes the invisible characters of a word and folds its
// full-width forms (NFKC): neither can be part of an id.
func cleanTarget(arg string) string {
	return strings.TrimFunc(norm.NFKC.String(dropIgnorable(arg)), unicode.IsSpace)
}

// unwrap removes what may surround an id in a sentence without being part
// of it; it is tried after the word as it is, since an IPv6 server name
// ends with "]".
func unwrap(arg string) string {
	arg = strings.TrimLeft(arg, "<([{\"'`«“‘")
	for arg != "" {
		r, size := utf8.DecodeLastRuneInString(arg)
		if !strings.ContainsRune(">)]}\"'`»”’,;:.!?", r) {
			break
		}
		// Keep a bracket that closes one inside the id.
		if open, ok := openers[r]; ok && strings.Count(arg, open) >= strings.Count(arg, string(r)) {
			break
		}
		arg = arg[:len(arg)-size]
	}
	return arg
}

var openers = map[rune]string{')': "(", ']': "[", '}': "{"}

// splitJoined splits the words that list targets without spaces
// ("#1,#2;#3", "@a:b,@c:d"): every part must look like a target.
func splitJoined(args []string) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		parts := strings.FieldsFunc(a, func(r rune) bool { return r == ',' || r == ';' })
		if len(parts) < 2 || !allTargets(parts) {
			out = append(out, a)
			continue
		}
		out = append(out, parts...)
	}
	return out
}

func allTargets(parts []string) bool {
	for _, p := range parts {
		if !looksLikeTarget(p) {
			return false
		}
	}
	return true
}

// looksLikeTarget reports whether a word is meant as a target (and is
// reported as a bad one if it does not parse), rather than the start of the
// note or reason.
func looksLikeTarget(arg string) bool {
	arg = unwrap(cleanTarget(arg))
	if strings.HasPrefix(arg, "@") || strings.HasPrefix(arg, "#") || hasPrefixFold(arg, "matrix:") {
		return true
	}
	if _, ok := requestNumber(arg); ok {
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
// reason. Targets may be written as a list (joined by "et", "and", "&",
// commas or list bullets), and a request number as "n° 42".
func splitTargets(args []string) (targets []target, bad []string, rest string) {
	args = splitJoined(args)
	i := 0
	for i < len(args) {
		a := args[i]
		next := i+1 < len(args) && (looksLikeTarget(args[i+1]) || isNumberSign(args[i+1]))
		switch {
		case isNumberSign(a) && i+1 < len(args):
			if _, ok := requestNumber("#" + unwrap(cleanTarget(args[i+1]))); !ok {
				return targets, bad, strings.Join(args[i:], " ")
			}
			i++
			a += " " + args[i]
		case isConnector(a) && next:
			i++
			continue
		case !looksLikeTarget(a):
			return targets, bad, strings.Join(args[i:], " ")
		}
		i++
		if t, err := parseTarget(strings.Replace(a, " ", "", 1)); err != nil {
			bad = append(bad, a)
		} else {
			targets = append(targets, t)
		}
	}
	return targets, bad, ""
}
