package scan

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

func TestImports(t *testing.T) {
	testenv.CheckImports(t, "github.com/syncd-dev/syncd/internal/engine", "github.com/syncd-dev/syncd/internal/reconcile",
		"github.com/syncd-dev/syncd/internal/source", "github.com/syncd-dev/syncd/internal/host", "github.com/docker/", "github.com/moby/")
}
