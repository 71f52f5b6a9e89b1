// Package testenv finds what tests need outside Go: the pinned tool binaries
// (sops, age, age-keygen, restic...) that scripts/tools.sh builds. A test
// that needs a missing tool fails when SYNCD_TEST_STRICT=1 (make test, CI)
// and skips with a loud reason elsewhere, so `go test ./...` on a laptop
// without the tools still runs everything else.
//
// It is imported only by tests; it must not import other syncd packages.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Strict reports whether a missing part must fail the test rather than skip
// it (SYNCD_TEST_STRICT=1, set by `make test`).
func Strict() bool {
	return os.Getenv("SYNCD_TEST_STRICT") == "1"
}

// ToolsDir is where scripts/tools.sh puts the binaries: $SYNCD_TOOLS/bin,
// else ~/.cache/syncd-tools/bin.
func ToolsDir() string {
	if d := os.Getenv("SYNCD_TOOLS"); d != "" {
		return filepath.Join(d, "bin")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "syncd-tools", "bin")
}

// LookTool returns the absolute path of the tool name, from the tools
// directory (the pinned build wins over whatever PATH has, such as
// Debian's docker-compose 1.x) or else PATH, or "" when there is none.
func LookTool(name string) string {
	if d := ToolsDir(); d != "" {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
		return p
	}
	return ""
}

// Tool returns the path of the tool name or ends the test: Fatal in strict
// mode, Skip otherwise, saying how to get it.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p := LookTool(name); p != "" {
		return p
	}
	Missing(t, "the %q binary is on neither PATH nor %s; build it with `make tools` (scripts/tools.sh)", name, ToolsDir())
	return ""
}

// Missing ends the test because a part it needs is absent: Fatal when
// Strict, else a loud Skip.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Strict() {
		t.Fatalf("SYNCD_TEST_STRICT=1 and "+format, args...)
	}
	t.Skipf("SKIPPING (set SYNCD_TEST_STRICT=1 to fail instead): "+format, args...)
}
