package source

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering: Git and directories: no schema, no engine, no status model.
func TestImports(t *testing.T) {
	testenv.AllowImports(t, "internal/abbrev", "internal/redact")
}
