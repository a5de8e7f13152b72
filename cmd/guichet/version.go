package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is guichet's version, set by the Makefile from git describe:
// -ldflags "-X main.version=...". Left empty, the build's VCS information
// stands in (see readVersions).
var version string

const mautrixPath = "maunium.net/go/mautrix"

// versions are what an operator quotes in a bug report.
type versions struct {
	guichet, goVersion, mautrix string
}

func (v versions) String() string {
	return fmt.Sprintf("guichet %s (%s, mautrix %s)", v.guichet, v.goVersion, v.mautrix)
}

// readVersions takes guichet's version from linked (the -X variable), else
// from the commit go build stamped into info, else from the module version
// go install stamped, else "dev"; mautrix's from info's dependencies.
func readVersions(linked string, info *debug.BuildInfo) versions {
	v := versions{guichet: linked, goVersion: runtime.Version(), mautrix: "unknown"}
	if info == nil {
		if v.guichet == "" {
			v.guichet = "dev"
		}
		return v
	}
	if v.guichet == "" {
		v.guichet = vcsVersion(info)
	}
	if v.guichet == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v.guichet = info.Main.Version
	}
	if v.guichet == "" {
		v.guichet = "dev"
	}
	for _, dep := range info.Deps {
		if dep.Path != mautrixPath {
			continue
		}
		v.mautrix = dep.Version
		if r := dep.Replace; r != nil {
			switch {
			case r.Version != "" && r.Path == mautrixPath:
				v.mautrix = r.Version
			case r.Version != "":
				v.mautrix = fmt.Sprintf("%s %s (replacing %s)", r.Path, r.Version, dep.Version)
			default:
				v.mautrix = fmt.Sprintf("%s (replacing %s)", r.Path, dep.Version)
			}
		}
	}
	return v
}

// vcsVersion gives the abbreviated commit, with "-dirty" when the work tree
// had changes, as git describe --always --dirty does without a tag.
func vcsVersion(info *debug.BuildInfo) string {
	var revision, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if revision == "" {
		return ""
	}
	if len(revision) > 12 {
		revision = revision[:12]
	}
	if modified == "true" {
		revision += "-dirty"
	}
	return revision
}
