package source

import (
	"os"
	"path/filepath"
	"testing"
	"time"
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

func TestLocalRevisionSeesSymlinksAndLargeFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.env"), []byte("A=1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.env"), []byte("A=2\n"), 0o644)
	os.Symlink("a.env", filepath.Join(dir, "link.env"))
	rev := func() string {
		t.Helper()
		r, err := Local{Dir: dir}.Revision()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1 := rev()
	os.Remove(filepath.Join(dir, "link.env"))
	os.Symlink("b.env", filepath.Join(dir, "link.env"))
	r2 := rev()
	if r1 == r2 {
		t.Error("a symlink pointed elsewhere did not change the revision")
	}
	big := make([]byte, maxTreeFile+10)
	os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644)
	r3 := rev()
	big[len(big)-1] = 1
	os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644)
	os.Chtimes(filepath.Join(dir, "big.bin"), time.Now(), time.Now().Add(time.Second))
	if rev() == r3 {
		t.Error("a change past the hashed size did not change the revision")
	}
}
