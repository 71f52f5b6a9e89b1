// Package testenv finds what tests need outside Go: the pinned tool binaries
// (sops, age, age-keygen, restic...) that scripts/tools.sh builds. A test
// that needs a missing tool fails when SYNCD_TEST_STRICT=1 (make test, CI)
// and skips with a loud reason elsewhere, so `go test ./...` on a laptop
// without the tools still runs everything else.
//
// It is imported only by tests; it must not import other syncd packages.
package testenv

import (
	"fmt"
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
// directory (the pinned build wins over whatever PATH has) or else PATH
// when that one is the pinned version, or "" when there is none.
func LookTool(name string) string {
	p, _ := FindTool(name)
	return p
}

// FindTool is LookTool that says why there is no tool: none anywhere, or
// one on PATH that is not the version tools/ pins (Debian's
// docker-compose 1.29 failed the corpus test with "unexpected end of JSON
// input"), named with the version it is.
func FindTool(name string) (string, error) {
	if d := ToolsDir(); d != "" {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("the %q binary is on neither PATH nor %s; build it with `make tools` (scripts/tools.sh)", name, ToolsDir())
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if err := checkPinned(name, p); err != nil {
		return "", fmt.Errorf("%w; `make tools` (scripts/tools.sh) builds the pinned one into %s, which the tests take first", err, ToolsDir())
	}
	return p, nil
}

// Tool returns the path of the tool name or ends the test: Fatal in strict
// mode, Skip otherwise, saying how to get it. While scripts/tools.sh still
// builds it in the background (trivy, under make test), it waits.
func Tool(t testing.TB, name string) string {
	t.Helper()
	waitForBuild(t, name)
	p, err := FindTool(name)
	if err != nil {
		Missing(t, "%v", err)
	}
	return p
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
