package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestOriginURL: the origin of a clone of a plain path is a file:// URL
// (which Git fetches), also from a subdirectory and from a linked worktree,
// whose .git is a file and whose config lives in the main repository.
func TestOriginURL(t *testing.T) {
	needGit(t)
	w := newWorkRepo(t)
	w.commit("first", map[string]string{"hosts/alpha/host.yaml": "apps: [web]\n"})
	bare := filepath.Join(t.TempDir(), "fleet.git")
	testenv.Git(t, "", "clone", "-q", "--bare", w.dir, bare)
	clone := filepath.Join(t.TempDir(), "clone")
	testenv.Git(t, "", "clone", "-q", bare, clone)
	wt := filepath.Join(t.TempDir(), "wt")
	testenv.Git(t, clone, "worktree", "add", "-q", "-b", "other", wt)
	if st, err := os.Stat(filepath.Join(wt, ".git")); err != nil || st.IsDir() {
		t.Fatalf("the worktree's .git is not a file: %v", err)
	}
	want := "file://" + bare
	for _, dir := range []string{clone, filepath.Join(clone, "hosts", "alpha"), wt} {
		got, err := OriginURL(dir)
		if err != nil || got != want {
			t.Errorf("OriginURL(%s) = %q, %v; want %q", dir, got, err, want)
		}
	}
	// The URL is one this package reads.
	g := &Git{URL: want, Dir: t.TempDir()}
	if _, err := g.Auth(); err != nil {
		t.Errorf("Auth of %s: %v", want, err)
	}

	testenv.Git(t, clone, "remote", "set-url", "origin", "https://git.example.org/ops/fleet.git")
	if got, err := OriginURL(wt); err != nil || got != "https://git.example.org/ops/fleet.git" {
		t.Errorf("an https origin: %q, %v", got, err)
	}
	testenv.Git(t, clone, "remote", "remove", "origin")
	if _, err := OriginURL(clone); err == nil || !strings.Contains(err.Error(), `no remote "origin"`) {
		t.Errorf("no origin: %v", err)
	}
	if _, err := OriginURL(t.TempDir()); err == nil {
		t.Error("a directory that is no repository has an origin")
	}
}
