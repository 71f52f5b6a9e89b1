package plan

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering: pure: the plan is a function of its inputs, no I/O, no adapter.
func TestImports(t *testing.T) {
	testenv.AllowImports(t, "internal/abbrev", "internal/escape")
}
