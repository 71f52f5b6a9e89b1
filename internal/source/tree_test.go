package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Trees reads any commit of a repository without touching its work tree.
func TestTreesExport(t *testing.T) {
	w := newWorkRepo(t)
	first := w.commit("first", map[string]string{"hosts/a/host.yaml": "apps: [web]\n", "apps/web/compose.yaml": "services: {}\n"})
	second := w.commit("second", map[string]string{"hosts/a/host.yaml": "apps: [web, db]\n", "apps/web/compose.yaml": ""})
	if err := os.WriteFile(filepath.Join(w.dir, "uncommitted"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	trees, err := OpenTrees(context.Background(), filepath.Join(w.dir, "hosts"), &Git{})
	if err != nil {
		t.Fatal(err)
	}
	for rev, want := range map[string]string{"HEAD": second, "main~1": first, first[:10]: first, "main": second} {
		got, err := trees.Resolve(rev)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %s, %v; want %s", rev, got, err, want)
		}
	}
	dest := filepath.Join(t.TempDir(), "out")
	if err := trees.Export(context.Background(), first, dest); err != nil {
		t.Fatal(err)
	}
	assertTree(t, dest, map[string]string{"hosts/a/host.yaml": "apps: [web]\n", "apps/web/compose.yaml": "services: {}\n"})
	if st, err := os.Stat(filepath.Join(w.dir, "uncommitted")); err != nil || st.Size() != 1 {
		t.Errorf("the work tree was touched: %v", err)
	}

	_, err = trees.Resolve("nosuch")
	if !errors.Is(err, ErrUnknownRevision) || !strings.Contains(err.Error(), "fetch-depth: 0") {
		t.Errorf("unknown revision: %v", err)
	}
	if _, err := OpenTrees(context.Background(), t.TempDir(), &Git{}); err == nil || !strings.Contains(err.Error(), "must be a Git repository") {
		t.Errorf("a directory outside Git: %v", err)
	}
}
