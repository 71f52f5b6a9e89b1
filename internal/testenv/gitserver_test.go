package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestGitServerCloneAndPush(t *testing.T) {
	s := NewGitServer(t)
	s.Token = "t0ken-for-test"
	url := s.InitBare(t, "fleet")
	authURL := "http://x:" + s.Token + "@" + url[len("http://"):]
	work := t.TempDir()
	Git(t, work, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(work, "a"), []byte("a\n"), 0o644)
	Git(t, work, "add", "a")
	Git(t, work, "commit", "-qm", "a")
	Git(t, work, "push", "-q", authURL, "main")
	clone := filepath.Join(t.TempDir(), "c")
	Git(t, "", "clone", "-q", authURL, clone)
	if _, err := os.Stat(filepath.Join(clone, "a")); err != nil {
		t.Fatal(err)
	}
	s.ReadOnly.Store(true)
	os.WriteFile(filepath.Join(work, "b"), []byte("b\n"), 0o644)
	Git(t, work, "add", "b")
	Git(t, work, "commit", "-qm", "b")
	cmd := []string{"push", "-q", authURL, "main"}
	if out, err := gitErr(work, cmd...); err == nil {
		t.Fatalf("push to a read-only server succeeded: %s", out)
	}
	if s.Requests.Load() == 0 || s.ResponseBytes.Load() == 0 {
		t.Error("nothing counted")
	}
}

func gitErr(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	return cmd.CombinedOutput()
}
