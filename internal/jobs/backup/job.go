package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/state"
)

// Engine is what a backup needs of Docker (internal/engine implements it).
type Engine interface {
	// Containers lists a project's service containers, running or not.
	Containers(ctx context.Context, project string) ([]plan.Container, error)
	// VolumePath is where the engine keeps a volume's data on this host.
	VolumePath(ctx context.Context, name string) (string, error)
	Stop(ctx context.Context, ids []string) error
	// Start starts containers in order, each ready before the next.
	Start(ctx context.Context, ids []string, timeout time.Duration) error
	// Exec runs argv in a container, stdin streamed in, stdout out; a
	// non-zero exit is an error.
	Exec(ctx context.Context, id string, argv []string, stdin io.Reader, stdout io.Writer) error
}

// Volume is a named volume of an app: its compose key and its engine name.
type Volume struct{ Key, Name string }

// App is what a backup of one app saves, resolved for the host.
type App struct {
	Name    string
	Volumes []Volume
	// Paths are absolute directories of the host.
	Paths []string
	Dumps []desired.Dump
	Stop  bool
	// Order is the app's services in start order (depends_on first);
	// Deps what each depends on.
	Order []string
	Deps  map[string][]string
	// Ready bounds the wait for each service started again.
	Ready time.Duration
}

// AppOf resolves app.yaml's backup: for the rendered project p: volume
// names as the engine knows them, relative paths in the project directory.
func AppOf(p *desired.Project) (App, bool) {
	b := p.App.Backup
	if b == nil {
		return App{}, false
	}
	a := App{Name: p.App.Name, Dumps: b.Dumps, Stop: b.Stop, Ready: p.App.HealthTimeout}
	if a.Ready <= 0 {
		a.Ready = desired.DefaultHealthTimeout
	}
	for _, key := range b.Volumes {
		name := key
		if v, ok := p.Compose.Volumes[key]; ok && v.Name != "" {
			name = v.Name
		}
		a.Volumes = append(a.Volumes, Volume{Key: key, Name: name})
	}
	for _, path := range b.Paths {
		if !filepath.IsAbs(path) {
			path = filepath.Join(p.Dir, path)
		}
		a.Paths = append(a.Paths, filepath.Clean(path))
	}
	deps := map[string][]string{}
	for name, svc := range p.Compose.Services {
		deps[name] = slices.Sorted(maps.Keys(svc.DependsOn))
	}
	a.Order, a.Deps = startOrder(deps), deps
	return a, true
}

// startOrder sorts services so that each comes after what it depends on;
// ties by name.
func startOrder(deps map[string][]string) []string {
	var order []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(s string) {
		if seen[s] {
			return
		}
		seen[s] = true
		for _, d := range deps[s] {
			if _, ok := deps[d]; ok {
				visit(d)
			}
		}
		order = append(order, s)
	}
	for _, s := range slices.Sorted(maps.Keys(deps)) {
		visit(s)
	}
	return order
}

// parts is how many snapshots a complete run of a has.
func (a App) parts() int {
	n := len(a.Dumps) + len(a.Volumes)
	if len(a.Paths) > 0 {
		n++
	}
	return n
}

// Runner runs an app's backups and restores on one host.
type Runner struct {
	Host   string
	Restic *Restic
	Engine Engine
	// Keep is the retention applied after each backup (zero: DefaultKeep).
	Keep Keep
	Log  *slog.Logger
	Now  func() time.Time
	// StateDir, when set, keeps a note of the containers a job stopped
	// until it has started them again, so that a syncd killed meanwhile
	// starts them at its next start (Recover), `drift: report` apps too.
	StateDir string
}

// Saved is one snapshot a run made.
type Saved struct {
	Kind    string
	Summary Summary
}

// RunResult is what one backup run of an app saved.
type RunResult struct {
	App   string
	Run   string
	Saved []Saved
	// Parts is how many snapshots a complete run has.
	Parts int
}

// Complete reports whether every part was saved.
func (r RunResult) Complete() bool { return len(r.Saved) == r.Parts && r.Parts > 0 }

// Tags of the runs made around a change.
const (
	TagPreUpgrade = "pre-upgrade"
	TagPreRestore = "pre-restore"
)

func (r *Runner) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

func (r *Runner) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

// runID names a run: when it started, and a random suffix.
func (r *Runner) runID() string {
	b := make([]byte, 3)
	rand.Read(b)
	return r.now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// Backup runs one backup of app: its dumps while it runs, then (stopped,
// with stop: true) its volumes and paths, each its own snapshot sharing one
// run tag; then the retention. Every part is tried; the error joins those
// that failed, and a run with one is never complete.
func (r *Runner) Backup(ctx context.Context, app App, commit string, tags ...string) (RunResult, error) {
	res := RunResult{App: app.Name, Run: r.runID(), Parts: app.parts()}
	if res.Parts == 0 {
		return res, fmt.Errorf("backup of %s: app.yaml backup: names no volumes, paths or dumps", app.Name)
	}
	// A part's kind names a directory or a file of a restore: one that a
	// restore would refuse (Snapshot.check) is not saved either.
	var bad []error
	for _, v := range app.Volumes {
		if err := checkName(v.Key); err != nil {
			bad = append(bad, fmt.Errorf("apps/%s/app.yaml backup.volumes %q: %w", app.Name, v.Key, err))
		}
	}
	for _, d := range app.Dumps {
		if err := checkName(d.Filename); err != nil {
			bad = append(bad, fmt.Errorf("apps/%s/app.yaml backup.dumps filename %q: %w", app.Name, d.Filename, err))
		}
	}
	if err := errors.Join(bad...); err != nil {
		return res, fmt.Errorf("backup of %s: a restore could not use it, so nothing was saved: %w", app.Name, err)
	}
	// The repository is checked first (bounded: an unreachable one fails in
	// seconds) when the app is to be stopped: nothing is stopped for a
	// backup that cannot be made. Otherwise the first restic call tells,
	// and a repository that does not exist yet is initialised then.
	ensured := false
	ensure := func() error {
		ensured = true
		return r.Restic.Ensure(ctx)
	}
	if app.Stop {
		if err := ensure(); err != nil {
			return res, fmt.Errorf("backup of %s: %w", app.Name, err)
		}
	}
	firstUse := func(save func() (Summary, error)) (Summary, error) {
		s, err := save()
		if errors.Is(err, ErrNoRepository) && !ensured {
			if err := ensure(); err != nil {
				return s, err
			}
			s, err = save()
		}
		return s, err
	}
	defer r.running(ctx, app.Name)()
	part := func(kind string) Part {
		return Part{Host: r.Host, App: app.Name, Commit: commit, Run: res.Run, Parts: res.Parts, Kind: kind, Extra: tags}
	}
	save := func(kind string, s Summary, err error) error {
		if err != nil {
			return err
		}
		res.Saved = append(res.Saved, Saved{Kind: kind, Summary: s})
		return r.recordMade(s.SnapshotID)
	}
	var errs []error
	if len(app.Dumps) > 0 {
		cs, err := r.Engine.Containers(ctx, app.Name)
		if err != nil {
			return res, fmt.Errorf("backup of %s: %w", app.Name, err)
		}
		for _, d := range app.Dumps {
			kind := "dump:" + d.Filename
			id, err := running(cs, app.Name, d.Service, "a dump")
			if err == nil {
				var s Summary
				s, err = firstUse(func() (Summary, error) {
					return r.Restic.BackupStream(ctx, part(kind), d.Filename, func(w io.Writer) error {
						cw := &counter{w: w}
						if err := r.Engine.Exec(ctx, id, d.Command, nil, cw); err != nil {
							return err
						}
						if cw.n == 0 {
							// An empty dump is no backup of a database.
							return fmt.Errorf("the command wrote nothing to its output in %s", d.Service)
						}
						return nil
					})
				})
				err = save(kind, s, err)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("dump %s: %w", d.Filename, err))
			}
		}
	}
	if len(app.Volumes) > 0 || len(app.Paths) > 0 {
		err := r.quiesced(ctx, app, func() error {
			var errs []error
			for _, v := range app.Volumes {
				kind := "volume:" + v.Key
				path, err := r.Engine.VolumePath(ctx, v.Name)
				if err == nil {
					var s Summary
					s, err = firstUse(func() (Summary, error) { return r.Restic.Backup(ctx, part(kind), path) })
					err = save(kind, s, err)
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("volume %s: %w", v.Key, err))
				}
			}
			if len(app.Paths) > 0 {
				err := checkPaths(app.Paths)
				if err == nil {
					var s Summary
					s, err = firstUse(func() (Summary, error) { return r.Restic.Backup(ctx, part("paths"), app.Paths...) })
					err = save("paths", s, err)
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("paths: %w", err))
				}
			}
			return errors.Join(errs...)
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("backup of %s: %d of %d parts saved; the run is incomplete: %w", app.Name, len(res.Saved), res.Parts, err)
	}
	if _, err := r.Restic.Forget(ctx, r.Host, app.Name, r.Keep); err != nil {
		return res, fmt.Errorf("backup of %s saved; retention failed: %w", app.Name, err)
	}
	return res, nil
}

func checkPaths(paths []string) error {
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, errors.Unwrap(err))
		}
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", p)
		}
	}
	return nil
}

// running returns the ID of a running container of service.
func running(cs []plan.Container, app, service, what string) (string, error) {
	for _, c := range cs {
		if c.Service == service && c.State == "running" {
			return c.ID, nil
		}
	}
	return "", fmt.Errorf("service %s of %s is not running: %s runs in its container", service, app, what)
}

// quiesced runs fn with app's services stopped when app says stop: true:
// in reverse start order; afterwards exactly those that were running are
// started again, in start order, even when fn failed or ctx ended.
func (r *Runner) quiesced(ctx context.Context, app App, fn func() error) error {
	if !app.Stop {
		return fn()
	}
	stopped, err := r.stopAll(ctx, app)
	if err == nil {
		err = fn()
	}
	if serr := r.startAgain(ctx, app, stopped); serr != nil {
		err = errors.Join(err, serr)
	}
	return err
}

// stopAll stops app's running containers, dependents first, and returns
// those it stopped (in stop order). On an error, the ones already stopped
// are returned too.
func (r *Runner) stopAll(ctx context.Context, app App) ([]plan.Container, error) {
	cs, err := r.Engine.Containers(ctx, app.Name)
	if err != nil {
		return nil, err
	}
	rank := map[string]int{}
	for i, s := range app.Order {
		rank[s] = i
	}
	var run []plan.Container
	for _, c := range cs {
		if c.State == "running" {
			run = append(run, c)
		}
	}
	slices.SortStableFunc(run, func(a, b plan.Container) int { return rank[b.Service] - rank[a.Service] })
	if err := r.note(app.Name, run); err != nil {
		return nil, fmt.Errorf("note what the backup stops (nothing was stopped): %w", err)
	}
	var stopped []plan.Container
	for _, c := range run {
		r.log().Info("stopping for the backup", "app", app.Name, "service", c.Service)
		if err := r.Engine.Stop(ctx, []string{c.ID}); err != nil {
			return stopped, err
		}
		stopped = append(stopped, c)
	}
	return stopped, nil
}

// startAgain starts stopped (given in stop order) in start order, on a
// context of its own: a cancelled job must not leave an app down.
func (r *Runner) startAgain(ctx context.Context, app App, stopped []plan.Container) error {
	if len(stopped) == 0 {
		return nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(len(stopped))*app.Ready+time.Minute)
	defer cancel()
	var ids, names []string
	for i := len(stopped) - 1; i >= 0; i-- {
		ids = append(ids, stopped[i].ID)
		names = append(names, stopped[i].Service)
	}
	r.log().Info("starting again", "app", app.Name, "services", strings.Join(names, ","))
	if err := r.Engine.Start(sctx, ids, app.Ready); err != nil {
		return fmt.Errorf("start %s again: %w", strings.Join(names, ", "), err)
	}
	r.unnote(app.Name)
	return nil
}

// running notes that this process runs restic for app, until the
// returned func is called. A note another process left (killed: kill -9)
// means its restic left a lock, which restic would wait all of
// --retry-lock for before a forget: stale locks are removed first.
func (r *Runner) running(ctx context.Context, app string) func() {
	if r.StateDir == "" {
		return func() {}
	}
	notes, _ := filepath.Glob(filepath.Join(r.StateDir, "restic-run-*"))
	me := strconv.Itoa(os.Getpid())
	for _, n := range notes {
		if pid, err := os.ReadFile(n); err == nil && string(pid) != me {
			r.log().Info("a restic run of an earlier syncd was interrupted; removing stale locks")
			if err := r.Restic.Unlock(ctx); err != nil {
				r.log().Warn("could not remove stale locks", "error", err)
				break
			}
			for _, n := range notes {
				if pid, err := os.ReadFile(n); err == nil && string(pid) != me {
					os.Remove(n)
				}
			}
			break
		}
	}
	note := filepath.Join(r.StateDir, "restic-run-"+app)
	if err := state.WriteFile(note, []byte(me), 0o600); err != nil {
		r.log().Warn("note the restic run", "error", err)
	}
	return func() { os.Remove(note) }
}

// stoppedNote is the file naming what a job stopped of app.
func (r *Runner) stoppedNote(app string) string {
	return filepath.Join(r.StateDir, "stopped-"+app+".json")
}

// note records, before any is stopped, the containers a job stops.
func (r *Runner) note(app string, cs []plan.Container) error {
	if r.StateDir == "" || len(cs) == 0 {
		return nil
	}
	var ids []string
	for i := len(cs) - 1; i >= 0; i-- { // start order
		ids = append(ids, cs[i].ID)
	}
	data, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	return state.WriteFile(r.stoppedNote(app), data, 0o600)
}

func (r *Runner) unnote(app string) {
	if r.StateDir != "" {
		os.Remove(r.stoppedNote(app))
	}
}

// Recover starts the containers a killed job left stopped (its notes), in
// their start order, and drops the notes of those it started.
func (r *Runner) Recover(ctx context.Context) error {
	if r.StateDir == "" {
		return nil
	}
	notes, _ := filepath.Glob(filepath.Join(r.StateDir, "stopped-*.json"))
	var errs []error
	for _, n := range notes {
		app := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(n), "stopped-"), ".json")
		data, err := os.ReadFile(n)
		var ids []string
		if err == nil {
			err = json.Unmarshal(data, &ids)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
			continue
		}
		cs, err := r.Engine.Containers(ctx, app)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		state := map[string]string{}
		for _, c := range cs {
			state[c.ID] = c.State
		}
		var start []string
		for _, id := range ids {
			if st, ok := state[id]; ok && st != "running" {
				start = append(start, id)
			}
		}
		r.log().Warn("a backup or restore was interrupted with the app stopped; starting it again", "app", app, "containers", len(start))
		if err := r.Engine.Start(ctx, start, desired.DefaultHealthTimeout); err != nil {
			errs = append(errs, fmt.Errorf("start %s again after an interrupted job: %w", app, err))
			continue
		}
		os.Remove(n)
	}
	return errors.Join(errs...)
}

// counter counts what passes through to w.
type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
