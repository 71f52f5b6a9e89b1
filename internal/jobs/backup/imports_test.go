package backup

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering: backup and restore of one app through restic: no engine adapter of its own, no loop.
func TestImports(t *testing.T) {
	testenv.AllowImports(t, "internal/abbrev", "internal/desired", "internal/escape", "internal/plan", "internal/proc", "internal/state")
}
