package jobs

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering of the package doc.
func TestImports(t *testing.T) {
	testenv.CheckImports(t, "os/exec", "github.com/go-git/", "github.com/docker/", "github.com/moby/", "github.com/getsops/")
	testenv.AllowImports(t, "internal/abbrev", "internal/desired", "internal/jobs/backup", "internal/jobs/scan", "internal/notify",
		"internal/plan", "internal/reconcile", "internal/schedule", "internal/state", "internal/status", "internal/redact")
}
