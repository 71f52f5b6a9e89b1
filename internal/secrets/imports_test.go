package secrets

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports: callers hand secrets bytes and get values back; of syncd it
// imports only the leaves atomicfile (for the key it writes) and abbrev.
func TestImports(t *testing.T) {
	testenv.AllowImports(t, "internal/atomicfile", "internal/abbrev")
}
