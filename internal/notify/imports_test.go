package notify

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps the layering of the package doc: desired imports
// notify, so notify imports no syncd package.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if pkg.Doc == "" {
		t.Error("package notify has no doc comment")
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/syncd-dev/syncd/") || imp == "os/exec" {
			t.Errorf("package notify imports %s", imp)
		}
	}
}
