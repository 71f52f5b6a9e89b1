package secrets

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports: callers hand secrets bytes and get values back; of syncd it
// imports only the leaves atomicfile, for the key it writes, and proc, for
// the sops CLI; and no sops library: it reads the format itself.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/syncd-dev/syncd/") && imp != "github.com/syncd-dev/syncd/internal/atomicfile" && imp != "github.com/syncd-dev/syncd/internal/proc" {
			t.Errorf("package secrets imports %s", imp)
		}
		if strings.HasPrefix(imp, "github.com/getsops/") {
			t.Errorf("package secrets imports %s; it reads SOPS files itself, and writes them with the sops CLI", imp)
		}
	}
}
