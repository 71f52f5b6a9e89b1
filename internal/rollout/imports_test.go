package rollout

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering of the package doc: the gate is pure: it reads what it is handed.
func TestImports(t *testing.T) {
	testenv.CheckImports(t, "os/exec", "os", "net")
	testenv.AllowImports(t, "internal/abbrev")
}
