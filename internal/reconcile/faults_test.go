package reconcile

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/state"
	"github.com/syncd-dev/syncd/internal/testenv"
)

func TestEngineOutOfResourcesIsNotBlamedOnTheCommit(t *testing.T) {
	f := newFixture(t)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	f.host("1.1.0", "hello")
	f.eng.fail = fmt.Errorf("apply web: could not find an available, non-overlapping IPv4 address pool: %w", engine.ErrResources)
	rep, err := f.sync()
	if err == nil || errors.Is(err, ErrReleaseFailed) || !errors.Is(err, engine.ErrResources) {
		t.Fatalf("err = %v, want ErrResources and no failed release", err)
	}
	if got := results(rep); got != "db=unchanged web=failed" {
		t.Errorf("outcomes %s", got)
	}
	recs, _ := f.r.Store.Projects()
	if recs["web"].FailedCommit != "" {
		t.Errorf("the commit is held for web (%q) although the engine was at fault", recs["web"].FailedCommit)
	}
	// Once the host is fixed, the same commit applies.
	f.eng.fail = nil
	f.eng.takeCalls()
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if calls := f.eng.takeCalls(); !slices.Equal(calls, []string{"apply web demoweb:1.1.0"}) {
		t.Errorf("calls %v, want the retry", calls)
	}
}

// tmpfsState gives the fixture a state directory on a tmpfs of size bytes,
// and a way to fill it up.
func tmpfsState(t *testing.T, f *fixture, size int) (fill func(), free func()) {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		testenv.Missing(t, "this test mounts a small tmpfs (root, CAP_SYS_ADMIN): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	store, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	f.r.Store = store
	filler := filepath.Join(dir, "filler")
	return func() {
			big := make([]byte, size)
			os.WriteFile(filler, big, 0o600) // fails part-way: that is the point
		}, func() {
			os.Remove(filler)
		}
}

func TestStateDiskFullBeforeApplyChangesNothing(t *testing.T) {
	f := newFixture(t)
	fill, free := tmpfsState(t, f, 256<<10)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	f.eng.takeCalls()
	fill()
	f.host("1.1.0", "hello")
	rep, err := f.sync()
	if err == nil || !strings.Contains(err.Error(), "state directory") {
		t.Fatalf("err = %v, want a state directory error", err)
	}
	if calls := f.eng.takeCalls(); len(calls) != 0 {
		t.Errorf("the engine was called although no snapshot could be written: %v", calls)
	}
	if got := results(rep); got != "db=unchanged web=failed" {
		t.Errorf("outcomes %s", got)
	}
	free()
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if img := f.eng.projects["web"].Containers[0].Image; img != "demoweb:1.1.0" {
		t.Errorf("web runs %s once the disk has room", img)
	}
}

func TestStateDiskFullAfterApplyKeepsTheRollbackTarget(t *testing.T) {
	f := newFixture(t)
	fill, free := tmpfsState(t, f, 256<<10)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	// The disk fills while web's new release is being applied: it runs,
	// but its record cannot be written.
	f.eng.onApply = fill
	f.host("1.1.0", "hello")
	if _, err := f.sync(); err == nil || !strings.Contains(err.Error(), "kept in memory") {
		t.Fatalf("err = %v, want the record write reported", err)
	}
	f.eng.onApply = nil
	// With the disk still full, nothing more is started.
	f.host("bad", "hello")
	if _, err := f.sync(); err == nil {
		t.Fatal("a cycle with a full state disk succeeded")
	}
	if img := f.eng.projects["web"].Containers[0].Image; img != "demoweb:1.1.0" {
		t.Fatalf("web runs %s with the state disk full", img)
	}
	// Room again: the kept record is written first, and the failing
	// release rolls back to 1.1.0, what ran (the record on disk still said
	// 1.0.0), instead of going back further or being taken down.
	free()
	rep, err := f.sync()
	if !errors.Is(err, ErrReleaseFailed) {
		t.Fatalf("err = %v, want the failed release", err)
	}
	if got := results(rep); got != "db=unchanged web=rolled back" {
		t.Errorf("outcomes %s, want web rolled back", got)
	}
	if img := f.eng.projects["web"].Containers[0].Image; img != "demoweb:1.1.0" {
		t.Errorf("web runs %s after the rollback, want demoweb:1.1.0", img)
	}
	f.host("1.2.0", "hello")
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	recs, err := f.r.Store.Projects()
	if err != nil || recs["web"].LastGood == "" || recs["web"].Services["app"].Image != "demoweb:1.2.0" {
		t.Errorf("records on disk after the disk has room: %+v %v", recs["web"], err)
	}
}
