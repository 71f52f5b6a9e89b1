package state

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering: the state directory: below every package that records.
func TestImports(t *testing.T) {
	testenv.AllowImports(t, "internal/atomicfile", "internal/plan")
}
