package bot

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestBuildNeedsGoolm checks that a build without -tags goolm stops at once
// with a message naming the tag, instead of producing a guichet whose
// one-time-key keeper silently does nothing (otk_nogoolm.go).
func TestBuildNeedsGoolm(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to load the package with")
	}
	list := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(gobin, append(append([]string{"list", "-e"}, args...),
			"-f", "{{range .DepsErrors}}{{.}}\n{{end}}", ".")...)
		cmd.Env = append(os.Environ(), "GOFLAGS=") // no tags from the environment
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := list(); !strings.Contains(out, "must-build-with-tags-goolm") {
		t.Errorf("without -tags goolm, loading the package gave %q; want an error naming the tag", out)
	}
	if out := list("-tags", "goolm"); strings.Contains(out, "goolm") {
		t.Errorf("with -tags goolm, loading the package gave %q", out)
	}
}
