package validate_test

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestImports keeps the layering: the offline check of a repository: the schema only.
func TestImports(t *testing.T) {
	testenv.AllowImports(t, "internal/desired")
}
