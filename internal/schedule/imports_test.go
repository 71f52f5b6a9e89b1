package schedule

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering of the package doc: the scheduler knows when jobs run, nothing of what they do.
func TestImports(t *testing.T) {
	testenv.CheckImports(t, "github.com/syncd-dev/syncd/", "os/exec")
}
