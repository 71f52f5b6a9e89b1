package rollout

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps the layering of the package doc: the gate is pure:
// it reads what it is handed.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if pkg.Doc == "" {
		t.Error("package rollout has no doc comment")
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/syncd-dev/syncd/") || imp == "os/exec" || imp == "os" || imp == "net" {
			t.Errorf("package rollout imports %s", imp)
		}
	}
}
