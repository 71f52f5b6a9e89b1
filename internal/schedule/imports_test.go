package schedule

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps the layering of the package doc: the scheduler knows
// when jobs run, nothing of what they do or of the cycle.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if pkg.Doc == "" {
		t.Error("package schedule has no doc comment")
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/syncd-dev/syncd/") || imp == "os/exec" {
			t.Errorf("package schedule imports %s", imp)
		}
	}
}
