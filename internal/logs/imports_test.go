package logs

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering: the log handler: imports nothing of syncd.
func TestImports(t *testing.T) {
	testenv.AllowImports(t)
}
