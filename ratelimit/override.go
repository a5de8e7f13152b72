package ratelimit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// ErrBadOverride is returned (wrapped, with the detail) for an override that
// ParseOverride does not understand or SetOverride refuses.
var ErrBadOverride = errors.New("bad limit override")

// maxOverride keeps figures far from integer overflow.
const maxOverride = 1_000_000_000_000

// ParseOverride reads the limits a moderator types after "!quota @agent".
// The text is one or more items separated by spaces, commas, ";" or "et";
// each item is a positive number and a unit:
//
//	500/jour, 500/j, 500 par jour, 500 messages, 500 questions/jour -> MessagesPerDay
//	10/min, 10/minute, 10 par minute, 10 messages/min              -> MessagesPerMinute
//	50000, 50000 tokens, 50 000 jetons, 50k tokens, 50000 tokens/j  -> TokensPerDay
//
// A per-minute figure holds over any 60 seconds, like the configured one
// (see Limits). A bare number is a token figure. Thousands may be grouped with spaces
// ("50 000") and "k" multiplies by 1,000. "défaut" (or "defaut", "default",
// "aucun", "reset") gives the zero Limits, which removes the override.
//
// The rule for what is not given: a field left out is 0, which means "the
// configured default". An override replaces the previous one as a whole, so
// "!quota @a 500/jour" after "!quota @a 50000 tokens" brings the token limit
// back to the default; give both at once ("500/jour 50000 tokens") to keep
// both. Errors wrap ErrBadOverride.
func ParseOverride(s string) (Limits, error) {
	text := strings.ToLower(strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) { // includes the no-break spaces French uses in figures
			return ' '
		}
		return r
	}, s)))
	switch strings.Trim(text, " .!") {
	case "":
		return Limits{}, fmt.Errorf("%w: empty", ErrBadOverride)
	case "défaut", "defaut", "default", "aucun", "aucune", "reset":
		return Limits{}, nil
	}
	var lim Limits
	seen := map[Kind]bool{}
	rest := text
	for {
		rest = strings.TrimLeft(rest, " ,;+")
		if rest == "" {
			break
		}
		n, after, ok := readNumber(rest)
		if !ok {
			return Limits{}, fmt.Errorf("%w: expected a number at %q", ErrBadOverride, rest)
		}
		unit, after := readUnit(after)
		kind, mult, err := unitKind(unit)
		if err != nil {
			return Limits{}, err
		}
		n *= mult
		if n <= 0 || n > maxOverride {
			return Limits{}, fmt.Errorf("%w: %d is out of range", ErrBadOverride, n)
		}
		if seen[kind] {
			return Limits{}, fmt.Errorf("%w: %s given twice", ErrBadOverride, kind)
		}
		seen[kind] = true
		switch kind {
		case PerMinute:
			lim.MessagesPerMinute = n
		case PerDay:
			lim.MessagesPerDay = n
		case TokensPerDay:
			lim.TokensPerDay = n
		}
		rest = after
	}
	return lim, nil
}

// readNumber reads digits, allowing groups of three after a space ("50 000").
func readNumber(s string) (int, string, bool) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == 0 {
		return 0, s, false
	}
	digits := s[:i]
	for i+4 <= len(s) && s[i] == ' ' && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) && (i+4 == len(s) || !isDigit(s[i+4])) {
		digits += s[i+1 : i+4]
		i += 4
	}
	if len(digits) > 13 {
		return 0, s, false
	}
	n, err := strconv.Atoi(digits)
	return n, s[i:], err == nil
}

// readUnit reads up to the next item: a comma, a semicolon, a "+" or a digit.
func readUnit(s string) (string, string) {
	end := strings.IndexFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == '+' || r >= '0' && r <= '9' })
	if end < 0 {
		end = len(s)
	}
	unit := strings.TrimSpace(s[:end])
	if unit == "et" {
		unit = ""
	}
	unit = strings.TrimSuffix(unit, " et")
	return unit, s[end:]
}

func unitKind(unit string) (Kind, int, error) {
	mult := 1
	if unit == "k" || strings.HasPrefix(unit, "k ") || strings.HasPrefix(unit, "k/") {
		mult, unit = 1000, strings.TrimSpace(unit[1:])
	}
	unit = strings.TrimSpace(strings.ReplaceAll(" "+unit+" ", " par ", "/"))
	unit = strings.ReplaceAll(strings.TrimSuffix(unit, "."), " ", "")
	noun, period, _ := strings.Cut(unit, "/")
	var tokens bool
	switch noun {
	case "", "message", "messages", "msg", "msgs", "question", "questions":
		tokens = noun == "" && period == ""
	case "token", "tokens", "jeton", "jetons", "tok":
		tokens = true
	default:
		return "", 0, fmt.Errorf("%w: unknown unit %q", ErrBadOverride, unit)
	}
	switch period {
	case "", "jour", "j", "day", "d", "24h":
		if tokens {
			return TokensPerDay, mult, nil
		}
		return PerDay, mult, nil
	case "min", "minute", "mn", "m":
		if tokens {
			return "", 0, fmt.Errorf("%w: tokens are counted per day, not per minute", ErrBadOverride)
		}
		return PerMinute, mult, nil
	}
	return "", 0, fmt.Errorf("%w: unknown period %q", ErrBadOverride, period)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
