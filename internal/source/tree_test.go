package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
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
		got, err := trees.Resolve(context.Background(), rev)
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

	_, err = trees.Resolve(context.Background(), "nosuch")
	if !errors.Is(err, ErrUnknownRevision) || !strings.Contains(err.Error(), "fetch-depth: 0") {
		t.Errorf("unknown revision: %v", err)
	}
	if _, err := OpenTrees(context.Background(), t.TempDir(), &Git{}); err == nil || !strings.Contains(err.Error(), "must be a Git repository") {
		t.Errorf("a directory outside Git: %v", err)
	}
}

// Trees of a Git URL resolve what a pull-request job names: commit hashes
// (whole and short) on main and on a branch only, branch names (and
// origin/<branch>), tags and expressions; a bare repository whose HEAD
// names a branch it does not have (git init --bare before the first push
// of main) is no obstacle.
func TestTreesFromURL(t *testing.T) {
	for _, headBranch := range []string{"main", "master"} {
		t.Run("HEAD="+headBranch, func(t *testing.T) {
			needGit(t)
			dir := filepath.Join(t.TempDir(), "fleet.git")
			testenv.Git(t, "", "init", "-q", "--bare", "-b", headBranch, dir)
			url := "file://" + dir
			w := newWorkRepo(t)
			first := w.commit("first", map[string]string{"hosts/a/host.yaml": "apps: [web]\n"})
			second := w.commit("second", map[string]string{"hosts/a/host.yaml": "apps: [web, db]\n"})
			w.push(url)
			testenv.Git(t, w.dir, "tag", "v1", first)
			testenv.Git(t, w.dir, "push", "-q", url, "v1")
			testenv.Git(t, w.dir, "checkout", "-q", "-b", "feature")
			feature := w.commit("feature", map[string]string{"hosts/a/host.yaml": "apps: [db]\n"})
			testenv.Git(t, w.dir, "push", "-q", url, "feature")
			// A pull request from a fork: its head is on no branch of the
			// repository, only under refs/pull/.
			fork := w.commit("from a fork", map[string]string{"hosts/a/host.yaml": "apps: [fork]\n"})
			testenv.Git(t, w.dir, "push", "-q", url, "HEAD:refs/pull/7/head")

			trees, err := OpenTrees(context.Background(), url, &Git{})
			if err != nil {
				t.Fatal(err)
			}
			for rev, want := range map[string]string{
				first: first, second: second, feature: feature, feature[:10]: feature,
				"main": second, "origin/main": second, "feature": feature, "origin/feature": feature,
				"v1": first, "refs/tags/v1": first, "main~1": first, fork: fork,
			} {
				got, err := trees.Resolve(context.Background(), rev)
				if err != nil || got != want {
					t.Errorf("Resolve(%q) = %s, %v; want %s", rev, got, err, want)
				}
			}
			dest := filepath.Join(t.TempDir(), "out")
			if err := trees.Export(context.Background(), feature, dest); err != nil {
				t.Fatal(err)
			}
			assertTree(t, dest, map[string]string{"hosts/a/host.yaml": "apps: [db]\n"})
		})
	}
}
