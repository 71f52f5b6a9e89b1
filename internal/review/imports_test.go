package review

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering of the package doc: the diff needs no engine, no state directory and no Git of its own.
func TestImports(t *testing.T) {
	testenv.CheckImports(t, "github.com/syncd-dev/syncd/internal/engine", "github.com/syncd-dev/syncd/internal/state", "github.com/syncd-dev/syncd/internal/source", "github.com/syncd-dev/syncd/internal/agent", "github.com/go-git/", "github.com/docker/compose/", "github.com/moby/", "os/exec")
}
