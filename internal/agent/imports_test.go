package agent

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps the layering of the package doc: the loop is handed
// its cycle and knows nothing of what a cycle does.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if pkg.Doc == "" {
		t.Error("package agent has no doc comment")
	}
	for _, imp := range pkg.Imports {
		for _, banned := range []string{"engine", "reconcile", "source", "status"} {
			if imp == "github.com/syncd-dev/syncd/internal/"+banned || strings.HasPrefix(imp, "github.com/syncd-dev/syncd/internal/"+banned+"/") {
				t.Errorf("package agent imports %s", imp)
			}
		}
	}
}
