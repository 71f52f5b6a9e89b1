package secrets

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports: callers hand secrets bytes and get values back; of syncd it
// imports only the leaves atomicfile (for the key it writes), proc (for the
// sops CLI) and abbrev; and no sops library: it reads the format itself.
func TestImports(t *testing.T) {
	testenv.CheckImports(t, "github.com/getsops/")
	testenv.AllowImports(t, "internal/atomicfile", "internal/proc", "internal/abbrev")
}
