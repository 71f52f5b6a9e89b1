package source

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Beside the live checkout Dir/repo: repo.new-* is a checkout being made
// (or, after an exchange, the old one being removed); repo.old-* is the old
// checkout moved aside where the two directories cannot be exchanged in
// one step.
const (
	newSuffix = ".new-"
	oldSuffix = ".old-"
)

// swapIn makes next the directory at live and removes what was there.
// Where the kernel can exchange two directories in one step, live never
// disappears; elsewhere it is missing for an instant between two renames,
// which recoverSwap repairs after a crash.
func swapIn(live, next string) error {
	if _, err := os.Lstat(live); os.IsNotExist(err) {
		return os.Rename(next, live)
	}
	if err := exchange(live, next); err == nil {
		// next now holds the old checkout.
		return os.RemoveAll(next)
	}
	old, err := os.MkdirTemp(filepath.Dir(live), filepath.Base(live)+oldSuffix)
	if err != nil {
		return err
	}
	if err := os.Remove(old); err != nil {
		return err
	}
	if err := os.Rename(live, old); err != nil {
		return err
	}
	if err := os.Rename(next, live); err != nil {
		// Put the old one back, so that live stays a complete checkout.
		if back := os.Rename(old, live); back != nil {
			return fmt.Errorf("%w (and moving the old checkout back: %v)", err, back)
		}
		return err
	}
	return os.RemoveAll(old)
}

// recoverSwap undoes what a swap killed half-way left: when live is gone
// but an old checkout was moved aside, that one comes back (it is
// complete); every other leftover is removed.
func recoverSwap(live string) error {
	parent, base := filepath.Dir(live), filepath.Base(live)
	entries, err := os.ReadDir(parent)
	if err != nil {
		return err
	}
	var olds, news []string
	for _, e := range entries {
		switch name := e.Name(); {
		case strings.HasPrefix(name, base+oldSuffix):
			olds = append(olds, filepath.Join(parent, name))
		case strings.HasPrefix(name, base+newSuffix):
			news = append(news, filepath.Join(parent, name))
		}
	}
	if _, err := os.Lstat(live); os.IsNotExist(err) && len(olds) > 0 {
		// Only one swap runs at a time, so there is at most one.
		if err := os.Rename(olds[0], live); err != nil {
			return err
		}
		olds = olds[1:]
	}
	for _, p := range append(olds, news...) {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}
