package notify

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering of the package doc: it knows nothing of
// syncd's other packages but the leaf that escapes text.
func TestImports(t *testing.T) {
	testenv.CheckImports(t, "os/exec")
	testenv.AllowImports(t, "internal/escape")
}
