package reconcile

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering: the cycle: below runtime, jobs and the CLI.
func TestImports(t *testing.T) {
	testenv.AllowImports(t, "internal/abbrev", "internal/desired", "internal/engine", "internal/plan", "internal/redact", "internal/state")
}
