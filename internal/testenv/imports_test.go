package testenv

import (
	"testing"
)

// TestImports keeps the layering: test helpers: nothing of syncd, so every package's tests can use it.
func TestImports(t *testing.T) {
	AllowImports(t)
}
