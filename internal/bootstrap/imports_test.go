package bootstrap

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps the layering of the package doc: sops and age stay
// behind Keys, Git and the engine out of enrolment altogether.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if pkg.Doc == "" {
		t.Error("package bootstrap has no doc comment")
	}
	for _, imp := range pkg.Imports {
		for _, banned := range []string{"github.com/getsops/", "filippo.io/age", "github.com/go-git/", "github.com/docker/", "os/exec",
			"github.com/syncd-dev/syncd/internal/engine", "github.com/syncd-dev/syncd/internal/reconcile", "github.com/syncd-dev/syncd/internal/agent", "github.com/syncd-dev/syncd/internal/secrets"} {
			if strings.HasPrefix(imp, banned) {
				t.Errorf("package bootstrap imports %s", imp)
			}
		}
	}
}
