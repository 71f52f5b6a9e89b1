package backup

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/syncd-dev/syncd/internal/escape"
)

// A run's files are named as Extract lays them out beneath DIR:
// volumes/<key>/…, paths/<absolute path>/…, dumps/<file>. `syncd backup
// --list --run` shows them so, and `syncd restore --path` takes them so.

// part is one place of a run: the tree of one snapshot that Extract writes
// to one directory (or file) beneath DIR.
type part struct {
	snap Snapshot
	root string // the path in the snapshot
	name string // where it goes beneath DIR
	dump string // a dump's file ("": a tree)
}

// parts lists run's places, in the run's order.
func (run Run) parts() []part {
	var ps []part
	for _, s := range run.Snapshots {
		switch kind := s.Kind(); {
		case strings.HasPrefix(kind, kindVolume):
			ps = append(ps, part{snap: s, root: s.Paths[0], name: filepath.Join("volumes", strings.TrimPrefix(kind, kindVolume))})
		case kind == kindPaths:
			for _, p := range s.Paths {
				ps = append(ps, part{snap: s, root: p, name: filepath.Join("paths", p)})
			}
		case strings.HasPrefix(kind, kindDump):
			file := strings.TrimPrefix(kind, kindDump)
			ps = append(ps, part{snap: s, root: "/" + file, name: filepath.Join("dumps", file), dump: file})
		}
	}
	return ps
}

// partNames is the places of run, for a message.
func (run Run) partNames() string {
	var names []string
	for _, p := range run.parts() {
		names = append(names, p.name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// inside returns the path of p relative to root ("" for root itself), and
// whether p is root or beneath it.
func inside(root, p string) (string, bool) {
	if p == root {
		return "", true
	}
	prefix := root + "/"
	if root == "/" {
		prefix = "/"
	}
	rel, ok := strings.CutPrefix(p, prefix)
	return rel, ok
}

// File is one entry of a run.
type File struct {
	Part string // the snapshot's kind: volume:<key>, paths, dump:<file>
	// Path is where Extract puts it beneath DIR, and what restore --path
	// takes; the repository's text, so escaped (a name with a control
	// character shows as Go escapes it).
	Path  string
	Type  string // file, dir, symlink...
	Size  uint64
	Mtime time.Time
}

// FileList is what Files found: the first of a run's files, and how many
// more there were.
type FileList struct {
	Files []File
	// More and MoreBytes count the files not kept (past the cap).
	More      int
	MoreBytes uint64
}

// Files lists what run holds, part by part (restic ls of each snapshot),
// keeping the first limit entries and counting the rest.
func (r *Runner) Files(ctx context.Context, run Run, limit int) (FileList, error) {
	var list FileList
	byID := map[string][]part{}
	var order []string
	for _, p := range run.parts() {
		if byID[p.snap.ID] == nil {
			order = append(order, p.snap.ID)
		}
		byID[p.snap.ID] = append(byID[p.snap.ID], p)
	}
	for _, id := range order {
		ps := byID[id]
		err := r.Restic.Ls(ctx, id, func(n Node) {
			for _, p := range ps {
				rel, ok := inside(p.root, n.Path)
				if !ok {
					continue // a directory above the part's (/var/lib/docker...)
				}
				if len(list.Files) >= limit {
					list.More++
					list.MoreBytes += n.Size
					return
				}
				list.Files = append(list.Files, File{Part: p.snap.Kind(), Path: escape.Text(filepath.Join(p.name, rel)), Type: escape.Text(n.Type), Size: n.Size, Mtime: n.Mtime})
				return
			}
		})
		if err != nil {
			return list, err
		}
	}
	return list, nil
}

// ExtractPaths writes each of paths (named as Files names them) of run
// into dir, where Extract would put it, and nothing else: a directory
// with what is beneath it, a file, a dump. It writes beneath dir as
// Extract does. A path that is not clean, holds .. or lies in no part of
// the run is refused, naming the run's parts, before anything is written.
func (r *Runner) ExtractPaths(ctx context.Context, run Run, dir string, paths []string) ([]string, error) {
	type pick struct {
		part
		rel, path string
	}
	var picks []pick
	var errs []error
	ps := run.parts()
	for _, p := range paths {
		if err := checkRunPath(p); err != nil {
			errs = append(errs, fmt.Errorf("--path %q: %w", p, err))
			continue
		}
		found := false
		for _, pt := range ps {
			if rel, ok := inside(pt.name, p); ok && (pt.dump == "" || rel == "") {
				picks = append(picks, pick{part: pt, rel: rel, path: p})
				found = true
				break
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("--path %q is in no part of run %s", p, run.ID))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w; the run's parts are %s (`syncd backup --list --app %s --run %s` lists its files); nothing was restored", err, run.partNames(), run.App, run.ID)
	}
	// What is asked must be in the snapshot: restic restores nothing, and
	// says nothing, for an include that matches no file.
	for _, pk := range picks {
		if pk.dump != "" || pk.rel == "" {
			continue
		}
		want, found := filepath.Join(pk.root, pk.rel), false
		if err := r.Restic.Ls(ctx, pk.snap.ID, func(n Node) { found = found || n.Path == want }); err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("--path %q: run %s has no such file (`syncd backup --list --app %s --run %s` lists its files); nothing was restored", pk.path, run.ID, run.App, run.ID)
		}
	}
	root, err := extractRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var wrote []string
	for _, pk := range picks {
		if pk.dump != "" {
			to, err := r.dumpTo(ctx, root, pk.snap.ID, pk.dump, pk.name)
			if err != nil {
				return wrote, err
			}
			wrote = append(wrote, to)
			continue
		}
		to, err := beneath(root, pk.name)
		if err != nil {
			return wrote, err
		}
		var include []string
		if pk.rel != "" {
			include = []string{"/" + pattern(pk.rel)}
		}
		if err := r.Restic.RestoreTree(ctx, pk.snap.ID, pk.root, to, false, include...); err != nil {
			return wrote, err
		}
		wrote = append(wrote, filepath.Join(to, pk.rel))
	}
	return wrote, nil
}

// checkRunPath says why p cannot name a place of a run: not relative and
// clean, a .. in it, or not text.
func checkRunPath(p string) error {
	switch {
	case p == "":
		return errors.New("is empty")
	case filepath.IsAbs(p):
		return errors.New("is absolute; name it as `syncd backup --list --run` shows it (volumes/<key>/…, paths/<path>/…, dumps/<file>)")
	case p == ".." || strings.HasPrefix(p, "../") || strings.HasSuffix(p, "/..") || strings.Contains(p, "/../"):
		return errors.New("holds ..; syncd restores only beneath --to")
	case filepath.Clean(p) != p:
		return errors.New("is not clean (a ., a // or a trailing /)")
	}
	return checkText(p)
}

// pattern quotes p for restic's --include, whose patterns are
// filepath.Match's: a file named "a*b" is that file, not a glob.
func pattern(p string) string {
	var b strings.Builder
	for _, c := range p {
		if strings.ContainsRune(`*?[\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
