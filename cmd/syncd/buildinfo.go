package main

import "runtime/debug"

// Set by the release build (scripts/release.sh) with -ldflags -X; empty in
// a development build, which then reports what Go stamped.
var (
	buildVersion string
	buildCommit  string
)

// commit is the Git commit syncd was built from, or "".
func commit() string {
	if buildCommit != "" {
		return buildCommit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}
