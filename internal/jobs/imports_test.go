package jobs

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the package doc's promise: the standard library only,
// so the agent's socket can share the types without the jobs' adapters.
func TestImports(t *testing.T) {
	testenv.CheckImports(t, "github.com/", "golang.org/", "gopkg.in/")
}
