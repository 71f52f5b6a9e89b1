package runtime

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering of the package doc: the runtime wires domain packages; the adapters' libraries stay behind them.
func TestImports(t *testing.T) {
	testenv.CheckImports(t, "os/exec", "github.com/go-git/", "github.com/getsops/", "github.com/docker/", "github.com/moby/")
	testenv.AllowImports(t, "internal/abbrev", "internal/agent", "internal/desired", "internal/engine", "internal/jobs", "internal/jobs/probe",
		"internal/notify", "internal/plan", "internal/reconcile", "internal/rollout", "internal/state", "internal/status")
}
