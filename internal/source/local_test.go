package source

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLocalRevisionFollowsContentOnly(t *testing.T) {
	dir := t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("hosts/a/host.yaml", "apps: [web]\n")
	l := Local{Dir: dir}
	r1, err := l.Revision()
	if err != nil {
		t.Fatal(err)
	}
	write(".git/HEAD", "ref: refs/heads/main\n")
	if r2, _ := l.Revision(); r2 != r1 {
		t.Errorf(".git changed the revision: %s → %s", r1, r2)
	}
	write("hosts/a/host.yaml", "apps: [web, db]\n")
	r3, _ := l.Revision()
	if r3 == r1 {
		t.Error("a content change kept the revision")
	}
	if _, err := (Local{Dir: filepath.Join(dir, "missing")}).Revision(); err == nil {
		t.Error("a missing directory has a revision")
	}
}
