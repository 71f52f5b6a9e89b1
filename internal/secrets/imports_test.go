package secrets

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports: callers hand secrets bytes and get values back; of syncd it
// imports only the leaf atomicfile, for the key it writes.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/syncd-dev/syncd/") && imp != "github.com/syncd-dev/syncd/internal/atomicfile" {
			t.Errorf("package secrets imports %s", imp)
		}
	}
}
