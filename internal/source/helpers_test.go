package source

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// workRepo is a working repository the tests commit in and push from,
// with the real git.
type workRepo struct {
	t   *testing.T
	dir string
}

func newWorkRepo(t *testing.T) *workRepo {
	t.Helper()
	needGit(t)
	dir := t.TempDir()
	testenv.Git(t, dir, "init", "-q", "-b", "main")
	return &workRepo{t: t, dir: dir}
}

func needGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		testenv.Missing(t, "this test needs git: %v", err)
	}
}

// commit writes files ("" deletes one), commits everything with message
// msg and the git options before "commit" (-c ...), and returns the
// commit hash.
func (w *workRepo) commit(msg string, files map[string]string, gitOpts ...string) string {
	w.t.Helper()
	for name, content := range files {
		p := filepath.Join(w.dir, name)
		if content == "" {
			os.Remove(p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	testenv.Git(w.t, w.dir, "add", "-A")
	testenv.Git(w.t, w.dir, append(gitOpts, "commit", "-q", "--allow-empty", "-m", msg)...)
	return testenv.Git(w.t, w.dir, "rev-parse", "HEAD")
}

// push pushes HEAD to the main branch of url, by force.
func (w *workRepo) push(url string) {
	w.t.Helper()
	testenv.Git(w.t, w.dir, "push", "-q", "-f", url, "HEAD:refs/heads/main")
}

// bareRepo makes an empty bare repository whose default branch is main and
// returns its file:// URL.
func bareRepo(t *testing.T) string {
	t.Helper()
	needGit(t)
	dir := filepath.Join(t.TempDir(), "fleet.git")
	testenv.Git(t, "", "init", "-q", "--bare", "-b", "main", dir)
	return "file://" + dir
}

// tree reads every file under dir but .git, as path → content.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			out[filepath.ToSlash(rel)] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func assertTree(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	got := tree(t, dir)
	if len(got) != len(want) {
		t.Errorf("%s holds %v, want %v", dir, keys(got), keys(want))
	}
	for name, content := range want {
		if got[name] != content {
			t.Errorf("%s/%s = %q, want %q", dir, name, got[name], content)
		}
	}
}

func keys(m map[string]string) []string {
	var k []string
	for name := range m {
		k = append(k, name)
	}
	sort.Strings(k)
	return k
}

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func assertOnlyRepo(t *testing.T, dir string) {
	t.Helper()
	if names := entries(t, dir); len(names) != 1 || names[0] != "repo" {
		t.Errorf("%s holds %s, want only repo", dir, strings.Join(names, ", "))
	}
}
