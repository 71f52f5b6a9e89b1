package review_test

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps the layering of DESIGN §6: a diff renders and plans
// with the cycle's code (reconcile.Desire, plan) and touches no engine,
// state, source or agent itself; Git and the engine stay behind it.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		for _, banned := range []string{"internal/engine", "internal/state", "internal/source", "internal/agent", "go-git", "docker/compose", "moby", "os/exec"} {
			if strings.Contains(imp, banned) {
				t.Errorf("package review imports %s", imp)
			}
		}
	}
}
