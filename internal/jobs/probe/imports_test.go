package probe

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering of the package doc.
func TestImports(t *testing.T) {
	testenv.CheckImports(t, "github.com/syncd-dev/syncd/internal/engine", "github.com/syncd-dev/syncd/internal/reconcile",
		"github.com/syncd-dev/syncd/internal/agent", "github.com/syncd-dev/syncd/internal/notify",
		"github.com/syncd-dev/syncd/internal/status", "github.com/docker/", "os/exec")
}
