package engine_test

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps the layering of DESIGN §6: the engine adapter knows
// nothing of the loop that drives it.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		for _, banned := range []string{"reconcile", "state", "source"} {
			if imp == "github.com/syncd-dev/syncd/internal/"+banned || strings.HasPrefix(imp, "github.com/syncd-dev/syncd/internal/"+banned+"/") {
				t.Errorf("package engine imports %s", imp)
			}
		}
	}
}
