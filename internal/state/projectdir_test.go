package state

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/syncd-dev/syncd/internal/atomicfile"
)

func write(t *testing.T, p, content string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestMaterialiseKeepsWhatContainersWrote(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Upgrade(); err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	write(t, filepath.Join(repo, "apps/web/conf/a.conf"), "a v1")
	write(t, filepath.Join(repo, "apps/web/conf/sub/b.conf"), "b v1")
	dst := filepath.Join(s.ProjectsDir(), "web", "conf")
	if err := s.Materialise(dst, "apps/web/conf", filepath.Join(repo, "apps/web/conf"), true); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(dst, "sub/b.conf")) != "b v1" {
		t.Fatal("content not materialised")
	}
	// A container adds a file; the repository changes one and drops one.
	write(t, filepath.Join(dst, "written-by-container"), "data")
	write(t, filepath.Join(repo, "apps/web/conf/a.conf"), "a v2")
	os.Remove(filepath.Join(repo, "apps/web/conf/sub/b.conf"))
	d1, _ := Digest(filepath.Join(repo, "apps/web/conf"), true)
	if err := s.Materialise(dst, "apps/web/conf", filepath.Join(repo, "apps/web/conf"), true); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(dst, "a.conf")) != "a v2" || read(t, filepath.Join(dst, "written-by-container")) != "data" {
		t.Error("an update lost the container's file or kept the old content")
	}
	if _, err := os.Stat(filepath.Join(dst, "sub/b.conf")); err != nil {
		t.Error("a file the repository dropped was deleted: syncd deletes nothing in a project directory")
	}
	write(t, filepath.Join(repo, "apps/web/conf/a.conf"), "a v3")
	if d2, _ := Digest(filepath.Join(repo, "apps/web/conf"), true); d2 == d1 {
		t.Error("Digest did not change with the content")
	}

	// Data: created, then kept.
	data := filepath.Join(s.ProjectsDir(), "web", "data")
	if err := s.Materialise(data, "apps/web/data", "", true); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(data, "db"), "rows")
	if err := s.Materialise(data, "apps/web/data", "", true); err != nil || read(t, filepath.Join(data, "db")) != "rows" {
		t.Errorf("data not kept: %v", err)
	}
	// A leftover of a killed write (an older syncd's, or atomicfile's) is
	// cleaned, nothing else.
	write(t, filepath.Join(dst, materialiseTmp+"123"), "half")
	write(t, filepath.Join(dst, ".nginx.conf.123"+atomicfile.TempSuffix), "half")
	write(t, filepath.Join(dst, "mine"+atomicfile.TempSuffix), "a container's")
	if err := s.Materialise(dst, "apps/web/conf", filepath.Join(repo, "apps/web/conf"), true); err != nil {
		t.Fatal(err)
	}
	for _, left := range []string{materialiseTmp + "123", ".nginx.conf.123" + atomicfile.TempSuffix} {
		if _, err := os.Stat(filepath.Join(dst, left)); err == nil {
			t.Errorf("a killed write's leftover %s stayed", left)
		}
	}
	if read(t, filepath.Join(dst, "mine"+atomicfile.TempSuffix)) != "a container's" {
		t.Error("a file that is not syncd's was removed")
	}
	if err := s.Materialise("/etc/passwd", "x", "", false); err == nil {
		t.Error("Materialise wrote outside the projects directory")
	}
}

func TestUpgradeMovesTheOldCheckoutsData(t *testing.T) {
	dir := t.TempDir()
	// What a syncd before project directories left: its checkout, with a
	// container's writes in apps/web/data.
	write(t, filepath.Join(dir, "repo/apps/web/compose.yaml"), "services: {}")
	write(t, filepath.Join(dir, "repo/apps/web/data/pg/base"), "rows")
	write(t, filepath.Join(dir, "repo/apps/web/data/x.syncd-tmp"), "a user's file with syncd's temp suffix")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Upgrade(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "repo")); err == nil {
		t.Fatal("the old checkout is still where a new checkout would replace it")
	}
	data := filepath.Join(s.ProjectsDir(), "web", "data")
	if err := s.Materialise(data, "apps/web/data", "", true); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(data, "pg/base")) != "rows" {
		t.Error("the data was not moved into the project directory")
	}
	// Open again: its cleanup does not walk into project data.
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(data, "x.syncd-tmp")) == "" {
		t.Error("Open's cleanup removed a file in project data")
	}
	// A second Upgrade (a later start) changes nothing.
	write(t, filepath.Join(dir, "repo/apps/web/compose.yaml"), "a new checkout")
	if err := s.Upgrade(); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(dir, "repo/apps/web/compose.yaml")) != "a new checkout" {
		t.Error("Upgrade moved a checkout made after the upgrade")
	}
}
