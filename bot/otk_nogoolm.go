//go:build !goolm

package bot

// Without the goolm build tag mautrix encrypts with libolm, whose accounts
// the one-time-key keeper (otk.go) cannot read: it would keep no keys at
// all, and once the server's ran out agents' first encrypted messages could
// not be read. This import of a package that does not exist stops any build
// without the tag, naming the fix: build with -tags goolm, as make does.
import _ "guichet/bot/must-build-with-tags-goolm"
