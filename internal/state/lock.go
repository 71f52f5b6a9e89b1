package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrLocked means another syncd process works on the same state directory.
var ErrLocked = errors.New("another syncd holds the state directory")

// Lock takes the state directory for this process: one agent or one sync
// at a time, and removes what a killed write left. The kernel drops the lock when the process dies, `kill -9`
// included, so a crash never leaves it taken.
func (s *Store) Lock() (unlock func(), err error) {
	if s.readOnly {
		return nil, ErrReadOnly
	}
	p := filepath.Join(s.dir, "syncd.lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s); stop it, or run `syncd sync` with the agent up to ask it for a cycle", ErrLocked, s.dir)
		}
		return nil, err
	}
	// Only the holder may clean up: the leftovers are a killed run's.
	if err := s.cleanLeftovers(); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// InUse reports whether another process holds the lock of the state
// directory dir (a running syncd). A directory that cannot be seen from
// here is reported as not found.
func InUse(dir string) (bool, error) {
	f, err := os.OpenFile(filepath.Join(dir, "syncd.lock"), os.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, derr := os.Stat(dir); derr != nil {
				return false, derr
			}
			return false, nil // a state directory nothing ever locked
		}
		return false, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return true, nil
		}
		return false, err
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false, nil
}
