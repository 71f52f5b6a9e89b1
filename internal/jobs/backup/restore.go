package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/escape"
	"github.com/syncd-dev/syncd/internal/plan"
)

// ErrNoSnapshot: the snapshot or run asked for does not exist.
var ErrNoSnapshot = errors.New("no such snapshot")

// Pick finds the run of app on host that sel names: "" or "latest" for
// the newest complete run, a run ID, or the ID (or short ID) of one of its
// snapshots. Only snapshots tagged host:<host> and app:<app>, made on host,
// are candidates: host is this host's name, or another's to move an app
// (--from-host).
func (r *Runner) Pick(ctx context.Context, host, app, sel string) (Run, error) {
	snaps, err := r.Restic.Snapshots(ctx, host, app)
	if err != nil {
		return Run{}, err
	}
	runs := Runs(snaps, host, app)
	list := fmt.Sprintf("`syncd backup --list --app %s` lists them", app)
	if host != r.Host {
		list = fmt.Sprintf("`syncd backup --list --app %s --from-host %s` lists them", app, host)
	}
	if sel == "" || sel == "latest" {
		// This host's latest is the newest complete run it made itself
		// (its state directory's record): a newer one in its name was made
		// by another holder of the password, and is named, not taken.
		here, known, err := r.MadeHere(runs)
		if err != nil {
			return Run{}, err
		}
		var foreign []string
		for _, run := range runs {
			switch {
			case !run.Complete():
			case host == r.Host && known && !here[run.ID]:
				foreign = append(foreign, run.ID)
			default:
				if len(foreign) > 0 {
					r.log().Warn("restore: passed over newer runs made in this host's name elsewhere, by a holder of the repository's password", "app", app, "runs", strings.Join(foreign, ", "), "taken", run.ID)
				}
				return run, nil
			}
		}
		if len(foreign) > 0 {
			return Run{}, fmt.Errorf("%w: %s has no complete run on host %s that this host's syncd made (its state directory records them); %d complete run(s) in its name were made elsewhere, by a holder of the repository's password (%s): if you know one is good, name it with --snapshot RUN; %s",
				ErrNoSnapshot, app, host, len(foreign), strings.Join(foreign[:min(3, len(foreign))], ", "), list)
		}
		return Run{}, fmt.Errorf("%w: %s has no complete backup run on host %s (%d incomplete); %s", ErrNoSnapshot, app, host, len(runs), list)
	}
	run, err := pick(runs, sel)
	if err != nil {
		return Run{}, fmt.Errorf("%w: %w of %s on host %s; %s", ErrNoSnapshot, err, app, host, list)
	}
	return run, nil
}

// pick finds the run that sel names among runs: a snapshot's ID, or at
// least 8 characters of it, before a run's ID. Run tags are written by
// whoever holds the repository's password; a snapshot ID is a hash of
// the snapshot. So a run tagged with another run's snapshot ID can never
// shadow it, and a short ID that two runs' snapshots share is refused.
func pick(runs []Run, sel string) (Run, error) {
	var found []Run
	if len(sel) >= 8 {
		for _, run := range runs {
			if slices.ContainsFunc(run.Snapshots, func(s Snapshot) bool { return strings.HasPrefix(s.ID, sel) }) {
				found = append(found, run)
			}
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
	default:
		return Run{}, fmt.Errorf("%q is the start of snapshots of %d runs (%s and %s); give more of the ID", sel, len(found), found[0].ID, found[1].ID)
	}
	for _, run := range runs {
		if run.ID == sel {
			return run, nil
		}
	}
	return Run{}, fmt.Errorf("%q is neither a run nor a snapshot", sel)
}

// extractRoot makes dir (0700) and opens it as the root every write of an
// extraction goes through.
func extractRoot(dir string) (*os.Root, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("extract into %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("extract into %s: %w", dir, err)
	}
	return root, nil
}

// Extract writes what run saved into dir, touching nothing that runs:
// volumes/<key>/, paths/<absolute path>/ and dumps/<file>. It writes only
// beneath dir: every directory on the way is a directory of dir's own (a
// symlink there, to anywhere, is refused, never followed), each dump file
// is written through dir's os.Root, and restic restores only into a
// directory so checked. What restic restores (symlinks of the snapshot
// included) syncd never writes through afterwards: no target lies inside
// another's tree unless that tree is real directories all the way.
func (r *Runner) Extract(ctx context.Context, run Run, dir string) ([]string, error) {
	return r.extract(ctx, run, dir, true)
}

// extract is Extract, the dumps left out unless dumps is set (a drill
// streams them into its own service instead).
func (r *Runner) extract(ctx context.Context, run Run, dir string, dumps bool) ([]string, error) {
	root, err := extractRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var wrote []string
	tree := func(s Snapshot, path, rel string) error {
		to, err := beneath(root, rel)
		if err != nil {
			return err
		}
		if err := r.Restic.RestoreTree(ctx, s.ID, path, to, false); err != nil {
			return err
		}
		wrote = append(wrote, to)
		return nil
	}
	for _, s := range run.Snapshots {
		kind := s.Kind()
		var err error
		switch {
		case strings.HasPrefix(kind, kindVolume):
			err = tree(s, s.Paths[0], filepath.Join("volumes", strings.TrimPrefix(kind, kindVolume)))
		case kind == kindPaths:
			for _, p := range s.Paths {
				if err = tree(s, p, filepath.Join("paths", p)); err != nil {
					break
				}
			}
		case strings.HasPrefix(kind, kindDump) && dumps:
			file := strings.TrimPrefix(kind, kindDump)
			var to string
			if to, err = r.dumpTo(ctx, root, s.ID, file, filepath.Join("dumps", file)); err == nil {
				wrote = append(wrote, to)
			}
		}
		if err != nil {
			return wrote, err
		}
	}
	return wrote, nil
}

// beneath makes rel a directory beneath root, each element on the way a
// directory (made here when missing), none a symlink, and returns its
// path. What restic is then told to restore into is a directory of root's
// own.
func beneath(root *os.Root, rel string) (string, error) {
	var at string
	for _, elem := range strings.Split(filepath.Clean(rel), string(filepath.Separator)) {
		if elem == "" {
			continue
		}
		at = filepath.Join(at, elem)
		err := root.Mkdir(at, 0o700)
		if err == nil || !errors.Is(err, fs.ErrExist) {
			if err != nil {
				return "", fmt.Errorf("extract: %w", err)
			}
			continue
		}
		fi, err := root.Lstat(at)
		if err != nil {
			return "", fmt.Errorf("extract: %w", err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return "", fmt.Errorf("extract: %s is a symlink; syncd writes only into directories of %s, never through a link: remove it, or extract into another directory", filepath.Join(root.Name(), at), root.Name())
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("extract: %s is not a directory", filepath.Join(root.Name(), at))
		}
	}
	return filepath.Join(root.Name(), at), nil
}

// dumpTo streams the dump file of snapshot id into rel beneath root: into
// a new file of its own first, renamed over rel only once the dump is
// whole, so a failed dump leaves (and removes) nothing but that file, and
// a symlink at rel is replaced, never written through.
func (r *Runner) dumpTo(ctx context.Context, root *os.Root, id, file, rel string) (string, error) {
	if _, err := beneath(root, filepath.Dir(rel)); err != nil {
		return "", err
	}
	to := filepath.Join(root.Name(), rel)
	if fi, err := root.Lstat(rel); err == nil && !fi.Mode().IsRegular() {
		return "", fmt.Errorf("extract: %s is not a regular file; syncd does not write through it: remove it, or extract into another directory", to)
	}
	b := make([]byte, 4)
	rand.Read(b)
	tmp := filepath.Join(filepath.Dir(rel), "."+file+".syncd-"+hex.EncodeToString(b))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("extract: %w", err)
	}
	err = r.Restic.Dump(ctx, id, file, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, rel)
	}
	if err != nil {
		root.Remove(tmp)
		return "", err
	}
	return to, nil
}

// RestoreResult is what an in-place restore did.
type RestoreResult struct {
	Run string
	// Safety is the pre-restore run that saved what the restore replaced.
	Safety RunResult
}

// Restore puts run back in place for app. It writes only what app.yaml
// lists now: a run that holds another volume, path or dump is refused,
// each named, before anything is changed (they can be extracted with --to
// DIR). First it backs up exactly what the restore overwrites (tag
// pre-restore): if that fails, nothing is touched. Then it stops the app,
// restores its volumes and paths (exactly: files the snapshot does not
// have are removed), starts the services its dumps need and streams each
// dump into its restore_command, and starts again what was running.
func (r *Runner) Restore(ctx context.Context, app App, run Run, commit string) (RestoreResult, error) {
	res := RestoreResult{Run: run.ID}
	if !run.Complete() {
		return res, fmt.Errorf("run %s of %s is incomplete: restore a complete run in place, or extract this one with --to DIR", run.ID, app.Name)
	}
	// Everything the run holds must have a place in app.yaml now and, for
	// a dump, a restore_command, before anything is changed. What it
	// overwrites is what the pre-restore backup saves: target.
	dumps := map[string]desired.Dump{}
	for _, d := range app.Dumps {
		dumps[d.Filename] = d
	}
	volumes := map[string]Volume{}
	for _, v := range app.Volumes {
		volumes[v.Key] = v
	}
	target := App{Name: app.Name, Stop: app.Stop, Order: app.Order, Deps: app.Deps, Ready: app.Ready}
	var unlisted, noRestore []string
	for _, s := range run.Snapshots {
		kind := s.Kind()
		switch {
		case strings.HasPrefix(kind, kindVolume):
			v, ok := volumes[strings.TrimPrefix(kind, kindVolume)]
			if !ok {
				unlisted = append(unlisted, fmt.Sprintf("volume %s (snapshot %s)", strings.TrimPrefix(kind, kindVolume), s.ShortID))
				continue
			}
			target.Volumes = append(target.Volumes, v)
		case kind == kindPaths:
			for _, p := range s.Paths {
				if !slices.Contains(app.Paths, p) {
					unlisted = append(unlisted, fmt.Sprintf("path %s (snapshot %s)", p, s.ShortID))
					continue
				}
				target.Paths = append(target.Paths, p)
			}
		case strings.HasPrefix(kind, kindDump):
			d, ok := dumps[strings.TrimPrefix(kind, kindDump)]
			switch {
			case !ok:
				unlisted = append(unlisted, fmt.Sprintf("dump %s (snapshot %s)", strings.TrimPrefix(kind, kindDump), s.ShortID))
			case len(d.RestoreCommand) == 0:
				noRestore = append(noRestore, d.Filename)
			default:
				target.Dumps = append(target.Dumps, d)
			}
		}
	}
	var errs []error
	if len(unlisted) > 0 {
		errs = append(errs, fmt.Errorf("run %s holds what apps/%s/app.yaml backup: does not list now: %s; an in-place restore writes only what app.yaml lists: extract the run with --to DIR", run.ID, app.Name, strings.Join(unlisted, ", ")))
	}
	if len(noRestore) > 0 {
		errs = append(errs, fmt.Errorf("run %s has dumps with no restore_command in apps/%s/app.yaml backup.dumps: %s; add one, or extract the dump with --to DIR", run.ID, app.Name, strings.Join(noRestore, ", ")))
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("restore of %s: nothing was changed: %w", app.Name, err)
	}
	safety, err := r.Backup(ctx, target, commit, TagPreRestore)
	res.Safety = safety
	if err != nil {
		return res, fmt.Errorf("restore of %s: the backup of what it would replace failed, so nothing was changed: %w", app.Name, err)
	}
	r.log().Info("saved what the restore replaces", "app", app.Name, "run", safety.Run)

	stopApp := app
	stopApp.Stop = true
	stopped, err := r.stopAll(ctx, stopApp)
	// What was running runs again at the end, whatever happens.
	defer func() {
		if serr := r.startAgain(ctx, app, notRunning(ctx, r.Engine, app.Name, stopped)); serr != nil {
			r.log().Error("restore: could not start the app again", "app", app.Name, "err", serr)
		}
	}()
	undo := fmt.Sprintf("; what was there before is run %s (`syncd restore --app %s --snapshot %s`)", safety.Run, app.Name, safety.Run)
	if err != nil {
		return res, fmt.Errorf("restore of %s: %w%s", app.Name, err, undo)
	}
	for _, s := range run.Snapshots {
		kind := s.Kind()
		var err error
		switch {
		case strings.HasPrefix(kind, kindVolume):
			var path string
			if path, err = r.Engine.VolumePath(ctx, volumes[strings.TrimPrefix(kind, kindVolume)].Name); err == nil {
				err = r.Restic.RestoreTree(ctx, s.ID, s.Paths[0], path, true)
			}
		case kind == kindPaths:
			for _, p := range s.Paths {
				if err = r.Restic.RestoreTree(ctx, s.ID, p, p, true); err != nil {
					break
				}
			}
		}
		if err != nil {
			return res, fmt.Errorf("restore of %s: %s: %w%s", app.Name, kind, err, undo)
		}
	}
	for _, s := range run.Snapshots {
		kind := s.Kind()
		if !strings.HasPrefix(kind, kindDump) {
			continue
		}
		d := dumps[strings.TrimPrefix(kind, kindDump)]
		if err := r.restoreDump(ctx, app, d, s); err != nil {
			return res, fmt.Errorf("restore of %s: %w%s", app.Name, err, undo)
		}
	}
	return res, nil
}

// restoreDump starts d's service (after what it depends on) and streams the
// dump into its restore_command.
func (r *Runner) restoreDump(ctx context.Context, app App, d desired.Dump, s Snapshot) error {
	cs, err := r.Engine.Containers(ctx, app.Name)
	if err != nil {
		return err
	}
	need := app.needs(d.Service)
	var start []string
	for _, svc := range app.Order {
		for _, c := range cs {
			if c.Service == svc && need[svc] && c.State != "running" {
				start = append(start, c.ID)
			}
		}
	}
	if err := r.Engine.Start(ctx, start, app.Ready); err != nil {
		return fmt.Errorf("start %s for its restore: %w", d.Service, err)
	}
	if cs, err = r.Engine.Containers(ctx, app.Name); err != nil {
		return err
	}
	id, err := running(cs, app.Name, d.Service, "a restore_command")
	if err != nil {
		return err
	}
	if err := r.streamDump(ctx, id, d, s); err != nil {
		return err
	}
	r.log().Info("dump restored", "app", app.Name, "file", d.Filename, "snapshot", s.ShortID)
	return nil
}

// streamDump streams the dump file of snapshot s into d's restore_command
// run in container id.
func (r *Runner) streamDump(ctx context.Context, id string, d desired.Dump, s Snapshot) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(r.Restic.Dump(ctx, s.ID, d.Filename, pw)) }()
	err := r.Engine.Exec(ctx, id, d.RestoreCommand, pr, io.Discard)
	pr.CloseWithError(errors.New("restore_command ended"))
	if err != nil {
		// A restore_command's stderr is the container's text: redacted here,
		// where it enters.
		return fmt.Errorf("dump %s: restore_command: %s", d.Filename, escape.Lines(r.Restic.redact(err.Error())))
	}
	return nil
}

// needs is svc and every service it depends on, directly or not.
func (a App) needs(svc string) map[string]bool {
	need := map[string]bool{}
	var walk func(string)
	walk = func(s string) {
		if need[s] {
			return
		}
		need[s] = true
		for _, d := range a.Deps[s] {
			walk(d)
		}
	}
	walk(svc)
	return need
}

// notRunning keeps those of stopped that are not running now.
func notRunning(ctx context.Context, e Engine, app string, stopped []plan.Container) []plan.Container {
	cs, err := e.Containers(context.WithoutCancel(ctx), app)
	if err != nil {
		return stopped
	}
	up := map[string]bool{}
	for _, c := range cs {
		if c.State == "running" {
			up[c.ID] = true
		}
	}
	var out []plan.Container
	for _, c := range stopped {
		if !up[c.ID] {
			out = append(out, c)
		}
	}
	return out
}
