package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/plan"
)

// ErrNoSnapshot: the snapshot or run asked for does not exist.
var ErrNoSnapshot = errors.New("no such snapshot")

// Pick finds the run of app that sel names: "" or "latest" for the newest
// complete run, a run ID, or the ID (or short ID) of one of its snapshots.
func (r *Runner) Pick(ctx context.Context, app, sel string) (Run, error) {
	snaps, err := r.Restic.Snapshots(ctx, r.Host, app)
	if err != nil {
		return Run{}, err
	}
	runs := Runs(snaps, r.Host, app)
	list := fmt.Sprintf("`syncd backup --list --app %s` lists them", app)
	if sel == "" || sel == "latest" {
		for _, run := range runs {
			if run.Complete() {
				return run, nil
			}
		}
		return Run{}, fmt.Errorf("%w: %s has no complete backup run on host %s (%d incomplete); %s", ErrNoSnapshot, app, r.Host, len(runs), list)
	}
	for _, run := range runs {
		if run.ID == sel {
			return run, nil
		}
		for _, s := range run.Snapshots {
			if len(sel) >= 8 && strings.HasPrefix(s.ID, sel) {
				return run, nil
			}
		}
	}
	return Run{}, fmt.Errorf("%w: %q is neither a run nor a snapshot of %s on host %s; %s", ErrNoSnapshot, sel, app, r.Host, list)
}

// Extract writes what run saved into dir, touching nothing that runs:
// volumes/<key>/, paths/<absolute path>/ and dumps/<file>.
func (r *Runner) Extract(ctx context.Context, run Run, dir string) ([]string, error) {
	var wrote []string
	for _, s := range run.Snapshots {
		kind := s.Kind()
		switch {
		case strings.HasPrefix(kind, "volume:") && len(s.Paths) == 1:
			to := filepath.Join(dir, "volumes", strings.TrimPrefix(kind, "volume:"))
			if err := r.Restic.RestoreTree(ctx, s.ID, s.Paths[0], to, false); err != nil {
				return wrote, err
			}
			wrote = append(wrote, to)
		case kind == "paths":
			for _, p := range s.Paths {
				to := filepath.Join(dir, "paths", p)
				if err := r.Restic.RestoreTree(ctx, s.ID, p, to, false); err != nil {
					return wrote, err
				}
				wrote = append(wrote, to)
			}
		case strings.HasPrefix(kind, "dump:"):
			file := strings.TrimPrefix(kind, "dump:")
			to := filepath.Join(dir, "dumps", file)
			if err := r.dumpTo(ctx, s.ID, file, to); err != nil {
				return wrote, err
			}
			wrote = append(wrote, to)
		}
	}
	return wrote, nil
}

func (r *Runner) dumpTo(ctx context.Context, id, file, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = r.Restic.Dump(ctx, id, file, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(to)
	}
	return err
}

// RestoreResult is what an in-place restore did.
type RestoreResult struct {
	Run string
	// Safety is the pre-restore run that saved what the restore replaced.
	Safety RunResult
}

// Restore puts run back in place for app. First it backs up what is there
// now (tag pre-restore): if that fails, nothing is touched. Then it stops
// the app, restores its volumes and paths (exactly: files the snapshot does
// not have are removed), starts the services its dumps need and streams
// each dump into its restore_command, and starts again what was running.
func (r *Runner) Restore(ctx context.Context, app App, run Run, commit string) (RestoreResult, error) {
	res := RestoreResult{Run: run.ID}
	if !run.Complete() {
		return res, fmt.Errorf("run %s of %s is incomplete: restore a complete run in place, or extract this one with --to DIR", run.ID, app.Name)
	}
	// Everything the run holds must have a place and, for a dump, a
	// restore_command, before anything is changed.
	dumps := map[string]desired.Dump{}
	for _, d := range app.Dumps {
		dumps[d.Filename] = d
	}
	volumes := map[string]string{}
	for _, v := range app.Volumes {
		volumes[v.Key] = v.Name
	}
	for _, s := range run.Snapshots {
		kind := s.Kind()
		switch {
		case strings.HasPrefix(kind, "volume:"):
			if _, ok := volumes[strings.TrimPrefix(kind, "volume:")]; !ok {
				return res, fmt.Errorf("run %s has %s, which app.yaml backup.volumes of %s no longer lists; extract it with --to DIR", run.ID, kind, app.Name)
			}
		case strings.HasPrefix(kind, "dump:"):
			d, ok := dumps[strings.TrimPrefix(kind, "dump:")]
			if !ok || len(d.RestoreCommand) == 0 {
				return res, fmt.Errorf("run %s has %s, which has no restore_command in apps/%s/app.yaml backup.dumps; add one, or extract the dump with --to DIR", run.ID, kind, app.Name)
			}
		}
	}
	safety, err := r.Backup(ctx, app, commit, TagPreRestore)
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
		case strings.HasPrefix(kind, "volume:") && len(s.Paths) == 1:
			var path string
			if path, err = r.Engine.VolumePath(ctx, volumes[strings.TrimPrefix(kind, "volume:")]); err == nil {
				err = r.Restic.RestoreTree(ctx, s.ID, s.Paths[0], path, true)
			}
		case kind == "paths":
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
		if !strings.HasPrefix(kind, "dump:") {
			continue
		}
		d := dumps[strings.TrimPrefix(kind, "dump:")]
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
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(r.Restic.Dump(ctx, s.ID, d.Filename, pw)) }()
	err = r.Engine.Exec(ctx, id, d.RestoreCommand, pr, io.Discard)
	pr.CloseWithError(errors.New("restore_command ended"))
	if err != nil {
		return fmt.Errorf("dump %s: restore_command: %w", d.Filename, err)
	}
	r.log().Info("dump restored", "app", app.Name, "file", d.Filename, "snapshot", s.ShortID)
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
