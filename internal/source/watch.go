package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch calls changed once per burst of changes under the directory, when
// debounce has passed without a new one, until ctx ends (then it returns
// nil). Directories created later are watched too; .git and editors' temp
// and backup files (*.swp, *~, .#*, #*#) are not changes. changed runs on
// Watch's goroutine: while it runs, new events wait, and a burst during
// it makes one more call.
func (l Local) Watch(ctx context.Context, debounce time.Duration, changed func()) error {
	return l.watch(ctx, debounce, changed, nil)
}

// watch is Watch; ready, when not nil, is called once the tree is watched
// (for tests: a write before that may go unseen).
func (l Local) watch(ctx context.Context, debounce time.Duration, changed, ready func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", l.Dir, err)
	}
	defer w.Close()
	if err := watchTree(w, l.Dir); err != nil {
		return fmt.Errorf("watch %s: %w", l.Dir, err)
	}
	if ready != nil {
		ready()
	}
	timer := time.NewTimer(debounce)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if l.ignored(ev.Name) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				// A new directory may already hold files by the time it is
				// watched; the burst's one call covers them, as the
				// caller reads the whole tree again.
				_ = watchTree(w, ev.Name)
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Events were lost: count it as a change, the tree is read
				// whole anyway.
				timer.Reset(debounce)
				continue
			}
			return fmt.Errorf("watch %s: %w", l.Dir, err)
		case <-timer.C:
			changed()
		}
	}
}

// watchTree adds root and every directory under it, but not .git, to w.
// Something that is not a directory, or is gone already, is no error.
func watchTree(w *fsnotify.Watcher, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // gone again already, or unreadable: Revision will say
		}
		if !d.IsDir() {
			return nil
		}
		if d.Name() == ".git" && p != root {
			return filepath.SkipDir
		}
		return w.Add(p)
	})
}

// ignored reports whether an event on p is not a change of the desired
// state: inside .git, or an editor's temp, swap, lock or backup file.
func (l Local) ignored(p string) bool {
	rel, err := filepath.Rel(l.Dir, p)
	if err == nil {
		for _, part := range strings.Split(filepath.ToSlash(rel), "/") {
			if part == ".git" {
				return true
			}
		}
	}
	base := filepath.Base(p)
	switch {
	case strings.HasSuffix(base, ".swp"), strings.HasSuffix(base, ".swx"), strings.HasSuffix(base, ".swo"),
		strings.HasSuffix(base, "~"),
		strings.HasPrefix(base, ".#"),
		strings.HasPrefix(base, "#") && strings.HasSuffix(base, "#"),
		base == "4913": // vim's probe whether it may write the directory
		return true
	}
	return false
}
