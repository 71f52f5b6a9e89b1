package host

import (
	"go/build"
	"testing"
)

// TestImports keeps the layering of the package doc: the runtime wires
// domain packages; the adapters' libraries stay behind them.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if pkg.Doc == "" {
		t.Error("package host has no doc comment")
	}
	for _, imp := range pkg.Imports {
		switch imp {
		case "os/exec", "github.com/go-git/go-git/v5", "github.com/getsops/sops/v3", "github.com/docker/compose/v5/pkg/compose":
			t.Errorf("package host imports %s", imp)
		}
	}
}
