package state

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestProjectsRoundTripAndUnchangedWrite(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := s.Projects()
	if err != nil || len(ps) != 0 {
		t.Fatalf("fresh store: %v %v", ps, err)
	}
	ps["web"] = &Project{Commit: "c1", AppliedAt: time.Unix(1, 0).UTC(), LastGood: "c1",
		Services: map[string]Service{"app": {ConfigHash: "h", Image: "demoweb:1.0.0", Secrets: map[string]string{"K": "hmac"}}}}
	if err := s.SaveProjects(ps); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, projectsFile)
	fi1, _ := os.Stat(p)
	old := time.Unix(100, 0)
	os.Chtimes(p, old, old)
	if err := s.SaveProjects(ps); err != nil {
		t.Fatal(err)
	}
	if fi2, _ := os.Stat(p); !fi2.ModTime().Equal(old) {
		t.Errorf("unchanged content rewrote %s", p)
	}
	if fi1.Mode().Perm() != 0o600 {
		t.Errorf("projects.json mode %v, want 0600", fi1.Mode().Perm())
	}
	got, err := s.Projects()
	if err != nil || got["web"].Services["app"].Secrets["K"] != "hmac" || got["web"].LastGood != "c1" {
		t.Fatalf("round trip: %+v %v", got["web"], err)
	}
}

func TestLockCleansLeftoversOfAKilledWriteOnlyForItsHolder(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, snapshotsDir, "c9"+tmpSuffix), 0o700)
	os.WriteFile(filepath.Join(dir, projectsFile+tmpSuffix), []byte("{half"), 0o600)
	leftovers := []string{projectsFile + tmpSuffix, filepath.Join(snapshotsDir, "c9"+tmpSuffix)}
	exist := func() bool {
		for _, p := range leftovers {
			if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
				return false
			}
		}
		return true
	}
	// Opening (as a second sync or a plan does) must not touch what the
	// holder of the lock may be writing.
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !exist() {
		t.Fatal("Open removed files another syncd may be writing")
	}
	OpenReadOnly(dir).Projects()
	unlock, err := s.Lock()
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := Open(dir)
	if _, err := s2.Lock(); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second Lock: %v", err)
	}
	unlock()
	for _, p := range leftovers {
		if _, err := os.Stat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("leftover %s kept by the lock's holder", p)
		}
	}
}

func TestReadOnlyStoreWritesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "absent")
	s := OpenReadOnly(dir)
	if ps, err := s.Projects(); err != nil || len(ps) != 0 {
		t.Fatalf("Projects of an absent directory: %v %v", ps, err)
	}
	k1, err := s.HashKey()
	if err != nil || len(k1) != 32 {
		t.Fatalf("HashKey: %v", err)
	}
	if k2, _ := s.HashKey(); string(k1) != string(k2) {
		t.Error("the ephemeral key changed within one store")
	}
	for name, err := range map[string]error{
		"SaveProjects": s.SaveProjects(Projects{}),
		"SaveSnapshot": s.SaveSnapshot("c1", t.TempDir()),
		"Upgrade":      s.Upgrade(),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s on a read-only store: %v", name, err)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Error("a read-only store created its directory")
	}
}

func TestCorruptProjectsFileSaysWhatToDo(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, projectsFile), []byte("{not json"), 0o600)
	s, _ := Open(dir)
	if _, err := s.Projects(); err == nil {
		t.Fatal("corrupt file accepted")
	}
}

func TestSnapshotsAndPrune(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "apps", "web"), 0o755)
	os.WriteFile(filepath.Join(src, "apps", "web", "compose.yaml"), []byte("services: {}\n"), 0o644)
	os.MkdirAll(filepath.Join(src, ".git"), 0o755)
	s, _ := Open(t.TempDir())
	for _, c := range []string{"c1", "c2"} {
		if err := s.SaveSnapshot(c, src); err != nil {
			t.Fatal(err)
		}
	}
	d, ok := s.Snapshot("c1")
	if !ok {
		t.Fatal("snapshot c1 missing")
	}
	if _, err := os.Stat(filepath.Join(d, "apps", "web", "compose.yaml")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(d, ".git")); !os.IsNotExist(err) {
		t.Error(".git copied into a snapshot")
	}
	if err := s.PruneSnapshots([]string{"c2"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Snapshot("c1"); ok {
		t.Error("c1 kept after prune")
	}
	if _, ok := s.Snapshot("c2"); !ok {
		t.Error("c2 pruned")
	}
}

func TestHashKeyIsStable(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	k1, err := s.HashKey()
	if err != nil || len(k1) != 32 {
		t.Fatal(err)
	}
	s2, _ := Open(dir)
	k2, _ := s2.HashKey()
	if string(k1) != string(k2) {
		t.Error("hash key changed between opens")
	}
}

func TestLockIsExclusive(t *testing.T) {
	dir := t.TempDir()
	a, _ := Open(dir)
	b, _ := Open(dir)
	unlock, err := a.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lock(); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	unlock()
	unlock2, err := b.Lock()
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	unlock2()
}

func TestCreateFileNeverReplaces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key")
	if err := CreateFile(p, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CreateFile(p, []byte("second"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second CreateFile: %v, want fs.ErrExist", err)
	}
	data, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(data) != "first" || st.Mode().Perm() != 0o600 {
		t.Errorf("%s: %q, mode %v", p, data, st.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), "*"+tmpSuffix)); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
}
