// Package guichet holds what belongs to the module as a whole rather than to
// one of its packages: the documented example configuration, embedded so
// that `guichet -generate-config` can print it from the binary alone.
package guichet

import _ "embed" // for go:embed

// exampleConfig lives at the module root, where operators look for it, and
// go:embed reaches it only from this package.
//
//go:embed config.example.yaml
var exampleConfig string

// ExampleConfig returns config.example.yaml: every key, its default or an
// example value, and what it does.
func ExampleConfig() string { return exampleConfig }
