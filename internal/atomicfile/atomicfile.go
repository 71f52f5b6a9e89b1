// Package atomicfile writes a file whole or not at all: the content goes to
// a temporary file beside it (.<name>.<random>.syncd-tmp, mode set before
// any byte is written), which is fsynced and closed, then renamed over the
// name (or, for a file that must never be replaced, linked to it), and the
// directory is fsynced. Every step's error is checked and returned: a full
// disk, a crash or a kill -9 at any instant leaves the old file (or none)
// under the name, never a short one, and at most a temporary file, which
// the owner of the directory may remove by TempSuffix.
//
// It is the one copy of this mechanism (state.WriteFile is a call of it);
// it is a leaf that imports nothing of syncd, so secrets can use it too.
package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// TempSuffix ends the name of every temporary file: what a killed write
// left is found by it.
const TempSuffix = ".syncd-tmp"

// WriteFile writes data to path atomically, replacing what path holds.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return write(path, bytes.NewReader(data), perm, true)
}

// Copy is WriteFile with the content read from r (a file copied without
// holding it in memory).
func Copy(path string, r io.Reader, perm fs.FileMode) error {
	return write(path, r, perm, true)
}

// Create writes data to path atomically unless path exists: then it
// writes nothing and returns an error wrapping fs.ErrExist. Two Creates
// at once make one file, never a mix.
func Create(path string, data []byte, perm fs.FileMode) error {
	return write(path, bytes.NewReader(data), perm, false)
}

func write(path string, r io.Reader, perm fs.FileMode, replace bool) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*"+TempSuffix)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, bare(err))
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = io.Copy(f, r)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if replace {
			err = os.Rename(tmp, path)
		} else {
			// A link fails when the name exists; the temporary name goes
			// after, so a crash between leaves both, never neither.
			err = os.Link(tmp, path)
		}
	}
	if err != nil || !replace {
		if rerr := os.Remove(tmp); err == nil && rerr != nil {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, bare(err))
	}
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SyncDir fsyncs directory dir, so a rename or a link in it survives a
// crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, bare(err))
	}
	return nil
}

// bare drops the temporary file's name from a path error: the caller's
// message names the file it writes.
func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
