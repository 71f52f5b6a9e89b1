package bootstrap

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering of the package doc: it reaches sops and Git only through package secrets and the status branch's reader.
func TestImports(t *testing.T) {
	testenv.CheckImports(t, "github.com/getsops/", "filippo.io/age", "github.com/go-git/", "github.com/docker/", "os/exec", "github.com/syncd-dev/syncd/internal/engine", "github.com/syncd-dev/syncd/internal/reconcile", "github.com/syncd-dev/syncd/internal/agent", "github.com/syncd-dev/syncd/internal/secrets")
}
