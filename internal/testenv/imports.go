package testenv

import (
	"go/build"
	"slices"
	"strings"
	"testing"
)

// CheckImports fails t unless the package in the current directory has a
// doc comment and imports none of banned: an import path, which also bans
// the packages below it ("github.com/go-git/go-git/v5" bans its
// plumbing/...), or a prefix ending in "/" ("github.com/getsops/").
func CheckImports(t *testing.T, banned ...string) {
	t.Helper()
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if pkg.Doc == "" {
		t.Errorf("package %s has no doc comment", pkg.Name)
	}
	for _, imp := range pkg.Imports {
		for _, b := range banned {
			if imp == b || strings.HasPrefix(imp, strings.TrimSuffix(b, "/")+"/") {
				t.Errorf("package %s imports %s", pkg.Name, imp)
			}
		}
	}
}

// AllowImports fails t when the package in the current directory imports a
// package of syncd's (github.com/syncd-dev/syncd/...) that is not one of
// allowed: the layering said as what a package may use.
func AllowImports(t *testing.T, allowed ...string) {
	t.Helper()
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	const module = "github.com/syncd-dev/syncd/"
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, module) && !slices.Contains(allowed, strings.TrimPrefix(imp, module)) {
			t.Errorf("package %s imports %s; it may import only %v of syncd's packages", pkg.Name, imp, allowed)
		}
	}
}
