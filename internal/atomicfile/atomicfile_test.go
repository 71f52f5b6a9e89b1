package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

func TestImports(t *testing.T) {
	testenv.CheckImports(t, "github.com/syncd-dev/syncd/")
}

// leftovers are the temporary files in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+TempSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestWriteFileReplacesWholeWithItsMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	for _, content := range []string{"one", "two, longer"} {
		if err := WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read %q %v, want %q", got, err, content)
		}
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", st.Mode().Perm())
	}
	if l := leftovers(t, dir); len(l) > 0 {
		t.Errorf("temporary files left: %v", l)
	}
}

func TestCreateNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := Create(p, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Create(p, []byte("second"), 0o600)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create: %v, want fs.ErrExist", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "first" {
		t.Errorf("the file was replaced: %q", got)
	}
	if l := leftovers(t, dir); len(l) > 0 {
		t.Errorf("temporary files left: %v", l)
	}
}

// TestAFullDiskLeavesTheOldFileOrNone: a write that fails part way leaves
// under the name what was there, and no temporary file.
func TestAFullDiskLeavesTheOldFileOrNone(t *testing.T) {
	dir := testenv.FullDisk(t)
	p := filepath.Join(dir, "new")
	data := []byte(strings.Repeat("x", 300))
	for name, write := range map[string]func() error{
		"WriteFile": func() error { return WriteFile(p, data, 0o600) },
		"Create":    func() error { return Create(p, data, 0o600) },
	} {
		err := write()
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "write "+p+": no space left on device") {
			t.Errorf("%s on a full disk: %v", name, err)
		}
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %s exists after the failed write (%v)", name, p, err)
		}
		if l := leftovers(t, dir); len(l) > 0 {
			t.Errorf("%s: temporary files left: %v", name, l)
		}
	}
}
