package source

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
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

// TestAttackTreeExportEscapes: a pull request from a fork can push any tree
// objects, including ones Git itself never makes. A tree that holds "a" as a
// symlink to a directory outside and "a/x" as a file made Export follow the
// symlink and write x there. Export must refuse the tree and write nothing
// outside dest.
func TestAttackTreeExportEscapes(t *testing.T) {
	w := newWorkRepo(t)
	w.commit("first", map[string]string{"hosts/a/host.yaml": "apps: []\n"})
	victim := t.TempDir()
	hashObject := func(kind string, data []byte) string {
		t.Helper()
		cmd := exec.Command("git", "hash-object", "-w", "--literally", "-t", kind, "--stdin")
		cmd.Dir, cmd.Stdin = w.dir, bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git hash-object -t %s: %v", kind, err)
		}
		return strings.TrimSpace(string(out))
	}
	entry := func(mode, name, hash string) []byte {
		raw, err := hex.DecodeString(hash)
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte(mode+" "+name+"\x00"), raw...)
	}
	link := hashObject("blob", []byte(victim))
	file := hashObject("blob", []byte("planted\n"))
	sub := hashObject("tree", entry("100644", "x", file))
	for name, top := range map[string][]byte{
		"symlink then a directory of the same name": append(entry("120000", "a", link), entry("40000", "a", sub)...),
		"a name that leaves the tree":               entry("100644", "..", file),
	} {
		t.Run(name, func(t *testing.T) {
			commit := testenv.Git(t, w.dir, "commit-tree", "-m", "crafted", hashObject("tree", top))
			trees, err := OpenTrees(context.Background(), w.dir, &Git{})
			if err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(t.TempDir(), "out")
			err = trees.Export(context.Background(), commit, dest)
			if err == nil {
				t.Errorf("Export of a crafted tree: no error")
			}
			if _, serr := os.Stat(filepath.Join(victim, "x")); serr == nil {
				t.Fatalf("Export wrote %s, outside its destination (err %v)", filepath.Join(victim, "x"), err)
			}
			if _, serr := os.Stat(filepath.Join(filepath.Dir(dest), "planted")); serr == nil {
				t.Fatalf("Export wrote beside its destination")
			}
		})
	}
}
