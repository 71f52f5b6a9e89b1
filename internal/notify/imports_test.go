package notify

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering of the package doc: it knows nothing of syncd's other packages.
func TestImports(t *testing.T) {
	testenv.CheckImports(t, "github.com/syncd-dev/syncd/", "os/exec")
}
