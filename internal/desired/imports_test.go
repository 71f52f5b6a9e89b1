package desired

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering: the schema, below the loop, the engine and every adapter.
func TestImports(t *testing.T) {
	testenv.AllowImports(t, "internal/abbrev", "internal/notify", "internal/plan", "internal/redact", "internal/schedule")
}
