package jobs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/jobs/backup"
	"github.com/syncd-dev/syncd/internal/jobs/scan"
	"github.com/syncd-dev/syncd/internal/notify"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/redact"
	"github.com/syncd-dev/syncd/internal/schedule"
	"github.com/syncd-dev/syncd/internal/state"
	"github.com/syncd-dev/syncd/internal/status"
)

// Default schedules of the backup jobs when host.yaml sets none.
const (
	DefaultBackupSchedule = "@daily"
	// DefaultCheckSchedule is Sunday 04:00, away from the nightly backups
	// (prune locks the repository).
	DefaultCheckSchedule = "0 4 * * 0"
)

// Runner runs the host's backups: on their schedules between cycles (the
// agent), before an upgrade (the reconciler's BeforeUpgrade), and when
// asked (`syncd backup`, `syncd restore`). Each run of an app holds the
// app's project lock, which apply takes too.
type Runner struct {
	Host string
	// Restic is the restic binary.
	Restic string
	Engine backup.Engine
	// Drills is what a restore drill needs of the engine besides Engine
	// (nil: `syncd drill` is refused).
	Drills backup.DrillEngine
	Store  *state.Store
	Locks  *schedule.Locks
	Notify *notify.Notifier // nil: none
	Log    *slog.Logger
	// Changed is called after a job's result is recorded (the status is
	// published again); may be nil.
	Changed func()
	// Scanner, when set, scans what runs on host.yaml scan.schedule; it is
	// the deploy gate's, so they share one cache.
	Scanner *scan.Scanner
	// Observe lists what runs on the engine (for the scheduled scan).
	Observe func(ctx context.Context) (plan.Observed, error)
	// ScanAfterDeploy scans what runs after each cycle that applied
	// something (the agent; `syncd sync` exits before it would end).
	ScanAfterDeploy bool
	// Progress, when set, is told where each backup and restore of a part
	// stands, every 5 s (`syncd backup` and `restore` print it).
	Progress func(backup.Progress)

	mu       sync.Mutex
	rendered *reconcile.Rendered
	results  map[ID]status.Job
	loaded   bool
	renew    chan struct{} // the job list changed
	metrics  *jobMetrics
	scanning atomic.Bool // a scan after a deploy runs
}

// jobsFile keeps the last result of each job in the state directory, for
// the status and for catch-up after a restart: a list of status.Job, each
// named by its ID's String form.
const jobsFile = "jobs.json"

// Update gives the jobs what the last cycle rendered; the scheduled jobs
// follow its schedules.
func (j *Runner) Update(r *reconcile.Rendered) {
	if j == nil || r == nil || r.Host == nil {
		return
	}
	j.mu.Lock()
	before := specs(j.rendered)
	j.rendered = r
	changed := !maps.Equal(before, specs(r))
	if j.renew == nil {
		j.renew = make(chan struct{}, 1)
	}
	j.mu.Unlock()
	if changed {
		select {
		case j.renew <- struct{}{}:
		default:
		}
	}
}

func (j *Runner) current() (*reconcile.Rendered, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.rendered == nil {
		return nil, errors.New("no cycle has rendered the host's desired state yet")
	}
	return j.rendered, nil
}

// specs are the scheduled jobs of r with their schedules.
func specs(r *reconcile.Rendered) map[ID]string {
	out := map[ID]string{}
	if r == nil || r.Host == nil {
		return out
	}
	if sc := r.Host.Scan; sc != nil && sc.Schedule != "" {
		out[Scan] = sc.Schedule
	}
	if r.Host.Backup == nil {
		return out
	}
	hb := r.Host.Backup
	for name, p := range r.Projects {
		if p.App.Backup == nil {
			continue
		}
		out[Backup(name)] = cmp.Or(p.App.Backup.Schedule, hb.Schedule, DefaultBackupSchedule)
		if d := p.App.Backup.Drill; d != nil && d.Schedule != "" {
			out[Drill(name)] = d.Schedule
		}
	}
	out[Check] = cmp.Or(hb.CheckSchedule, DefaultCheckSchedule)
	return out
}

// Run runs the scheduled jobs until ctx ends, following the schedules of
// the last Update.
func (j *Runner) Run(ctx context.Context) {
	j.Recover(ctx)
	j.mu.Lock()
	if j.renew == nil {
		j.renew = make(chan struct{}, 1)
	}
	renew := j.renew
	j.mu.Unlock()
	// The scheduler names a job by its ID's String form, which ParseID
	// reads back.
	sched := &schedule.Scheduler{Host: j.Host, Locks: j.Locks, Logger: j.log(),
		LastSuccess: func(name string) (time.Time, bool) {
			id, err := ParseID(name)
			if err != nil {
				return time.Time{}, false
			}
			return j.lastSuccess(id)
		},
		Done: func(res schedule.Result) {
			id, err := ParseID(res.Job)
			if err != nil {
				j.log().Error("jobs: a result of no job", "job", res.Job, "err", err)
				return
			}
			if id.Kind == KindDrill {
				return // its verdict is its app's last_drill (scheduledDrill)
			}
			j.record(id, res.Start, res.Duration, res.Err, "")
		}}
	for {
		j.mu.Lock()
		var list []schedule.Job
		for id, spec := range specs(j.rendered) {
			list = append(list, j.job(id, spec))
		}
		j.mu.Unlock()
		slices.SortFunc(list, func(a, b schedule.Job) int { return strings.Compare(a.Name, b.Name) })
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := sched.Run(sctx, list); err != nil {
				j.log().Error("jobs: not scheduled", "err", err)
			}
		}()
		select {
		case <-ctx.Done():
			cancel()
			<-done
			return
		case <-renew:
			cancel()
			<-done
		}
	}
}

// job is the scheduled job id.
func (j *Runner) job(id ID, spec string) schedule.Job {
	name := id.String()
	switch id.Kind {
	case KindScan:
		return schedule.Job{Name: name, Spec: spec, Timeout: time.Hour, Run: func(ctx context.Context) error {
			det, err := j.scanRunning(ctx)
			j.setDetail(id, det)
			return err
		}}
	case KindCheck:
		return schedule.Job{Name: name, Spec: spec, Run: func(ctx context.Context) error {
			_, err := j.check(ctx)
			return err
		}}
	case KindDrill:
		// No Project: the drill takes the app's lock itself once it has
		// picked its run, and bounds its wait by backup.drill.timeout.
		return schedule.Job{Name: name, Spec: spec, Run: func(ctx context.Context) error {
			return j.scheduledDrill(ctx, id.App)
		}}
	}
	return schedule.Job{Name: name, Spec: spec, Project: id.App, Run: func(ctx context.Context) error {
		r, err := j.current()
		if err != nil {
			return err
		}
		res, err := j.backupApp(ctx, r, id.App)
		j.setDetail(id, detail(res))
		return err
	}}
}

// Recover starts again what a killed backup or restore left stopped. Call
// it only while no job runs (the agent's start, a sync or job of its own).
func (j *Runner) Recover(ctx context.Context) {
	if j == nil || j.Engine == nil {
		return
	}
	r := &backup.Runner{Host: j.Host, Engine: j.Engine, Log: j.log(), StateDir: j.Store.Dir()}
	if err := r.Recover(ctx); err != nil {
		j.log().Error("jobs: start again what an interrupted job stopped", "err", err)
	}
}

// runner is a backup runner for the host's repository in r.
func (j *Runner) runner(r *reconcile.Rendered) (*backup.Runner, error) {
	h := r.Host
	if h == nil || h.Backup == nil {
		return nil, fmt.Errorf("hosts/%s/host.yaml has no backup: section naming the restic repository", j.Host)
	}
	if r.SecretsPending {
		return nil, fmt.Errorf("host %s cannot open its secrets yet (enrolling), so its restic repository is unknown", j.Host)
	}
	b := h.Backup
	secret := func(field, key string) (string, error) {
		v, ok := r.Secrets[key]
		if !ok || v == "" {
			return "", fmt.Errorf("hosts/%s/host.yaml backup.%s names %q, which %s does not hold", j.Host, field, key, h.SecretsFile)
		}
		return v, nil
	}
	repo, err := secret("repository_secret", b.RepositorySecret)
	if err != nil {
		return nil, err
	}
	password, err := secret("password_secret", b.PasswordSecret)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for name, key := range b.Env {
		if env[name], err = secret("env."+name, key); err != nil {
			return nil, err
		}
	}
	bin := j.Restic
	if bin == "" {
		bin = "restic"
	}
	return &backup.Runner{
		Host: j.Host, Engine: j.Engine, Log: j.log(), StateDir: j.Store.Dir(),
		Keep: backup.Keep{Daily: b.Retention.Daily, Weekly: b.Retention.Weekly, Monthly: b.Retention.Monthly},
		Restic: &backup.Restic{Binary: bin, Repository: repo, Password: password, Env: env,
			CacheDir: filepath.Join(j.Store.Dir(), "restic-cache"), Redact: r.Redactor().Outside, Log: j.log().With("component", "restic"),
			Progress: j.Progress},
	}, nil
}

func (j *Runner) app(r *reconcile.Rendered, name string) (backup.App, error) {
	p, ok := r.Projects[name]
	if !ok {
		return backup.App{}, fmt.Errorf("host %s does not run app %q (hosts/%s/host.yaml apps)", j.Host, name, j.Host)
	}
	a, ok := backup.AppOf(p)
	if !ok {
		return backup.App{}, fmt.Errorf("app %s has no backup: in apps/%s/app.yaml", name, name)
	}
	return a, nil
}

// backupApp backs one app up (the caller holds its lock).
func (j *Runner) backupApp(ctx context.Context, r *reconcile.Rendered, name string, tags ...string) (backup.RunResult, error) {
	runner, err := j.runner(r)
	if err != nil {
		return backup.RunResult{}, err
	}
	a, err := j.app(r, name)
	if err != nil {
		return backup.RunResult{}, err
	}
	return runner.Backup(ctx, a, r.Commit, tags...)
}

// BeforeUpgrade backs app up before its upgrade (tag pre-upgrade); apply
// holds the app's lock. It is the reconciler's BeforeUpgrade.
func (j *Runner) BeforeUpgrade(ctx context.Context, r *reconcile.Rendered, app string) error {
	start := time.Now()
	res, err := j.backupApp(ctx, r, app, backup.TagPreUpgrade)
	if err != nil {
		err = r.Redactor().Err(err)
	}
	j.record(Backup(app), start, time.Since(start), err, detail(res))
	return err
}

// Backup backs up app now, or every app of the host with a backup: when app
// is "", each under its lock.
func (j *Runner) Backup(ctx context.Context, r *reconcile.Rendered, app string) ([]backup.RunResult, error) {
	apps := []string{app}
	if app == "" {
		apps = nil
		for _, name := range slices.Sorted(maps.Keys(r.Projects)) {
			if r.Projects[name].App.Backup != nil {
				apps = append(apps, name)
			}
		}
		if len(apps) == 0 {
			return nil, fmt.Errorf("no app of host %s has a backup: in its app.yaml", j.Host)
		}
	}
	var results []backup.RunResult
	var errs []error
	for _, name := range apps {
		start := time.Now()
		res, err := j.locked(ctx, name, func() (backup.RunResult, error) { return j.backupApp(ctx, r, name) })
		j.record(Backup(name), start, time.Since(start), err, detail(res))
		results = append(results, res)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return results, errors.Join(errs...)
}

func (j *Runner) locked(ctx context.Context, app string, fn func() (backup.RunResult, error)) (backup.RunResult, error) {
	if j.Locks != nil {
		unlock, err := j.Locks.Lock(ctx, app)
		if err != nil {
			return backup.RunResult{}, err
		}
		defer unlock()
	}
	return fn()
}

// Snapshots lists the snapshots host (this host, or another's to move an
// app) made of app ("" for all).
func (j *Runner) Snapshots(ctx context.Context, r *reconcile.Rendered, host, app string) ([]backup.Snapshot, error) {
	snaps, _, err := j.snapshots(ctx, r, host, app)
	return snaps, err
}

// snapshots is Snapshots, and of this host's runs those its syncd did not
// make (its state directory's record): made in its name elsewhere.
func (j *Runner) snapshots(ctx context.Context, r *reconcile.Rendered, host, app string) ([]backup.Snapshot, map[string]bool, error) {
	runner, err := j.runner(r)
	if err != nil {
		return nil, nil, err
	}
	snaps, err := runner.Restic.Snapshots(ctx, host, app)
	if err != nil || host != j.Host {
		return snaps, nil, err
	}
	elsewhere := map[string]bool{}
	apps := map[string]bool{}
	for _, s := range snaps {
		apps[s.Tag("app")] = true
	}
	for a := range apps {
		runs := backup.Runs(snaps, host, a)
		here, known, err := runner.MadeHere(runs)
		if err != nil {
			return snaps, nil, err
		}
		for _, run := range runs {
			if known && !here[run.ID] {
				elsewhere[run.ID] = true
			}
		}
	}
	return snaps, elsewhere, nil
}

// Restore restores app from the run sel names among those host made (see
// backup.Runner.Pick): into dir when dir is set, touching nothing that
// runs; else in place, after a pre-restore backup. It returns what to
// print. paths, with dir, restore only those places of the run.
func (j *Runner) Restore(ctx context.Context, r *reconcile.Rendered, app, sel, dir, host string, paths ...string) (string, error) {
	runner, err := j.runner(r)
	if err != nil {
		return "", err
	}
	a, err := j.app(r, app)
	if err != nil {
		return "", err
	}
	run, err := runner.Pick(ctx, host, app, sel)
	if err != nil {
		return "", err
	}
	ofHost := ""
	if host != j.Host {
		ofHost = " of host " + host
	}
	var out strings.Builder
	if dir != "" && len(paths) > 0 {
		wrote, err := runner.ExtractPaths(ctx, run, dir, paths)
		for _, w := range wrote {
			fmt.Fprintf(&out, "extracted %s\n", w)
		}
		if err != nil {
			return out.String(), err
		}
		fmt.Fprintf(&out, "%d path(s) of run %s of %s%s extracted into %s; nothing that runs was touched\n", len(paths), run.ID, app, ofHost, dir)
		return out.String(), nil
	}
	if dir != "" {
		wrote, err := runner.Extract(ctx, run, dir)
		for _, w := range wrote {
			fmt.Fprintf(&out, "extracted %s\n", w)
		}
		if err != nil {
			return out.String(), err
		}
		fmt.Fprintf(&out, "run %s of %s%s extracted into %s; nothing that runs was touched\n", run.ID, app, ofHost, dir)
		return out.String(), nil
	}
	// Once started, an in-place restore runs to its end: a caller that goes
	// away (Ctrl-C, a closed socket) must not leave it half done.
	ctx = context.WithoutCancel(ctx)
	res, err := j.locked(ctx, app, func() (backup.RunResult, error) {
		res, err := runner.Restore(ctx, a, run, r.Commit)
		return res.Safety, err
	})
	if res.Run != "" && res.Complete() {
		fmt.Fprintf(&out, "saved what was there first: run %s (tag %s)\n", res.Run, backup.TagPreRestore)
	}
	if err != nil {
		return out.String(), err
	}
	fmt.Fprintf(&out, "restored %s from run %s%s (%s)\n", app, run.ID, ofHost, run.Time.Local().Format(time.DateTime))
	return out.String(), nil
}

// Drill proves the run sel names (see backup.Runner.Pick: latest is the
// newest complete run this host made) of app restorable: restored into a
// throwaway project of its own, healthy, and passing app.yaml's
// backup.drill.verify checks; nothing of the app is touched. It holds the
// app's lock, records the verdict as the app's last_drill and returns what
// to print: every step's verdict. A failed drill is an error.
//
// The drill project is the app's project as this commit renders it, not
// as it was when the run was made.
func (j *Runner) Drill(ctx context.Context, r *reconcile.Rendered, app, sel string) (string, error) {
	out, _, err := j.drill(ctx, r, app, sel)
	return out, err
}

// scheduledDrill drills app's latest run (backup.drill.schedule). Unlike
// `syncd drill`, a drill that cannot start (no run to drill, no
// repository) is a failed drill too: nobody is there to read the error.
func (j *Runner) scheduledDrill(ctx context.Context, app string) error {
	start := time.Now()
	r, err := j.current()
	ran := false
	if err == nil {
		_, ran, err = j.drill(ctx, r, app, "latest")
	}
	if err != nil && !ran {
		j.recordDrill(r.Redactor(), app, "", start, time.Since(start), backup.DrillResult{}, err)
	}
	return err
}

// drill is Drill; ran says whether the drill started, its verdict
// recorded.
func (j *Runner) drill(ctx context.Context, r *reconcile.Rendered, app, sel string) (string, bool, error) {
	if j.Drills == nil {
		return "", false, errors.New("this syncd cannot run drills (no engine)")
	}
	runner, err := j.runner(r)
	if err != nil {
		return "", false, err
	}
	a, err := j.app(r, app)
	if err != nil {
		return "", false, err
	}
	p := r.Projects[app]
	for name := range r.Projects {
		if strings.HasPrefix(name, backup.DrillPrefix(app)) {
			return "", false, fmt.Errorf("host %s runs app %s, whose name a drill of %s could take: rename one of them", j.Host, name, app)
		}
	}
	run, err := runner.Pick(ctx, j.Host, app, sel)
	if err != nil {
		return "", false, err
	}
	var checks []desired.DrillCheck
	timeout := p.App.Backup.Drill.TimeoutOr()
	if d := p.App.Backup.Drill; d != nil {
		checks = d.Verify
	}
	// A drill runs to its end or its timeout: a caller that goes away must
	// not leave its project behind (it is removed at its end regardless).
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	start := time.Now()
	var res backup.DrillResult
	_, err = j.locked(dctx, app, func() (backup.RunResult, error) {
		var err error
		res, err = runner.Drill(dctx, j.Drills, a, p, checks, run)
		return backup.RunResult{}, err
	})
	if err != nil && dctx.Err() != nil && res.Detail == "" {
		err = fmt.Errorf("drill of %s: %w (apps/%s/app.yaml backup.drill.timeout is %s)", app, err, app, timeout)
	}
	j.recordDrill(r.Redactor(), app, run.ID, start, time.Since(start), res, err)
	var out strings.Builder
	for _, c := range res.Checks {
		verdict := "ok  "
		if !c.Passed {
			verdict = "FAIL"
		}
		fmt.Fprintf(&out, "%s %s: %s\n", verdict, c.Name, c.Detail)
	}
	if err != nil {
		fmt.Fprintf(&out, "drill of %s from run %s: failed after %s; project %s removed; nothing of %s was touched\n", app, run.ID, time.Since(start).Round(time.Second), res.Project, app)
		return out.String(), true, err
	}
	fmt.Fprintf(&out, "drill of %s from run %s (%s): passed in %s; project %s removed; nothing of %s was touched\n",
		app, run.ID, run.Time.Local().Format(time.DateTime), time.Since(start).Round(time.Second), res.Project, app)
	return out.String(), true, nil
}

// recordDrill keeps a drill's verdict as app's last_drill, on its backup
// job (state directory, status).
func (j *Runner) recordDrill(red *redact.Redactor, app, run string, start time.Time, took time.Duration, res backup.DrillResult, err error) {
	d := &status.Drill{Run: run, At: start, DurationMS: took.Milliseconds(), Result: status.DrillPassed, Detail: red.Text(res.Detail)}
	if err != nil {
		d.Result = status.DrillFailed
		d.Detail = red.Text(abbrev.Line(err.Error()))
	}
	id := Backup(app)
	j.mu.Lock()
	j.load()
	jr := j.results[id]
	if jr.Name == "" {
		jr = status.Job{Name: id.String(), Result: "none"} // backed up by another syncd, or its result lost
	}
	jr.LastDrill = d
	j.results[id] = jr
	j.save()
	j.mu.Unlock()
	j.metricsOf().observeDrill(app, d, took)
	// Notified on every verdict, like a backup's: the notifier sends a
	// failure once and a recovery only after one.
	ev := notify.Event{Kind: notify.DrillFailed, Key: app, Host: j.Host, App: app, Subject: "restore drill"}
	if err != nil {
		j.log().Error("drill failed", "app", app, "run", run, "err", d.Detail)
		ev.What, ev.Detail = "failed", d.Detail
		if run != "" {
			ev.What = "of run " + run + " failed"
		}
	} else {
		j.log().Info("drill passed", "app", app, "run", run, "took", took.Round(time.Millisecond))
		ev.What, ev.Detail, ev.Recovered = "of run "+run+" passed again", d.Detail, true
	}
	j.Notify.Notify(ev)
	if j.Changed != nil {
		j.Changed()
	}
}

// check prunes the repository and checks it, reading one twelfth of its
// data each time (all of it over twelve runs).
func (j *Runner) check(ctx context.Context) (string, error) {
	r, err := j.current()
	if err != nil {
		return "", err
	}
	runner, err := j.runner(r)
	if err != nil {
		return "", err
	}
	if err := runner.Restic.Prune(ctx); err != nil {
		return "", err
	}
	_, week := time.Now().ISOWeek()
	subset := fmt.Sprintf("%d/12", week%12+1)
	res, err := runner.Restic.Check(ctx, subset)
	if err == nil && res.SuggestRepairIndex {
		err = errors.New("check: restic suggests `restic repair index`")
	}
	return "read data subset " + subset, err
}

func detail(res backup.RunResult) string {
	if res.Run == "" {
		return ""
	}
	var added int64
	for _, s := range res.Saved {
		added += s.Summary.DataAdded
	}
	return fmt.Sprintf("run %s: %d of %d snapshots, %s added", res.Run, len(res.Saved), res.Parts, backup.Bytes(added))
}

func (j *Runner) setDetail(id ID, d string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.load()
	if d != "" {
		jr := j.results[id]
		jr.Detail = d
		j.results[id] = jr
	}
}

// record keeps a run's result (state directory, metrics, status) and
// notifies a failure or a recovery.
func (j *Runner) record(id ID, start time.Time, took time.Duration, err error, det string) {
	name := id.String()
	j.mu.Lock()
	j.load()
	prev := j.results[id]
	jr := status.Job{Name: name, At: start, DurationMS: took.Milliseconds(), Result: "ok", LastSuccess: prev.LastSuccess, Detail: det, LastDrill: prev.LastDrill}
	if det == "" && prev.Detail != "" && err == nil {
		jr.Detail = prev.Detail
	}
	if err != nil {
		// Kept in the state directory, logged and published: redacted
		// with the host's secrets as the last cycle rendered them (text
		// from restic or a container was redacted where it entered).
		msg := j.rendered.Redactor().Text(abbrev.Line(err.Error()))
		jr.Result, jr.Error = "failed", msg
	} else {
		jr.LastSuccess = start.Add(took)
	}
	j.results[id] = jr
	j.save()
	j.mu.Unlock()
	j.metricsOf().observe(id, jr, took)

	ev := notify.Event{Kind: notify.BackupFailed, Key: id.App, Host: j.Host, App: id.App, Subject: "backup"}
	switch id.Kind {
	case KindCheck:
		ev.Kind, ev.Key, ev.Subject = notify.CheckFailed, "repository", "check of the backup repository"
	case KindScan:
		ev.Kind = "" // its news are its new findings (scanRunning)
	}
	kind := ev.Kind
	switch {
	case kind == "":
	case err != nil:
		j.log().Error("job failed", "job", name, "err", jr.Error)
		ev.What, ev.Detail = "failed", jr.Error
		j.Notify.Notify(ev)
	default:
		j.log().Info("job done", "job", name, "took", took.Round(time.Millisecond), "detail", jr.Detail)
		ev.What, ev.Detail, ev.Recovered = "works again", jr.Detail, true
		j.Notify.Notify(ev)
	}
	if err != nil && kind == "" {
		j.log().Error("job failed", "job", name, "err", jr.Error)
	}
	if j.Changed != nil {
		j.Changed()
	}
}

// AfterDeploy scans, in the background, what runs after a cycle applied
// something: a new image is scanned once (the cache keeps the others), so
// its findings are known without waiting for scan.schedule. A scan still
// going is not started twice.
func (j *Runner) AfterDeploy(ctx context.Context) {
	if j == nil || !j.ScanAfterDeploy || j.Scanner == nil || j.Observe == nil {
		return
	}
	r, err := j.current()
	if err != nil || r.Host == nil || r.Host.Scan == nil {
		return
	}
	if !j.scanning.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer j.scanning.Store(false)
		start := time.Now()
		det, err := j.scanRunning(context.WithoutCancel(ctx))
		j.record(Scan, start, time.Since(start), err, det)
	}()
}

// scanRunning scans every image that runs (cached by image ID and DB
// version) and judges it by its project's policy at the last commit; new
// findings at or above the policy are notified, once each.
func (j *Runner) scanRunning(ctx context.Context) (string, error) {
	if j.Scanner == nil || j.Observe == nil {
		return "", errors.New("no scanner")
	}
	r, err := j.current()
	if err != nil {
		return "", err
	}
	observed, err := j.Observe(ctx)
	if err != nil {
		return "", err
	}
	running := scan.RunningOf(observed, func(p string) desired.ScanPolicy { return r.Repo.ScanPolicyOf(r.Host, p) })
	for i := range running {
		// A reference may be made of a secret; it names the image in logs,
		// the status and notifications only.
		running[i].Image.Ref = r.Redactor().Text(running[i].Image.Ref)
	}
	results := j.Scanner.ScanRunning(ctx, running)
	var errs []error
	violating := 0
	for _, res := range results {
		if res.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", res.Image, res.Err))
			continue
		}
		if res.Verdict.Refused() {
			violating++
		}
		if len(res.New) > 0 {
			var ids []string
			for _, f := range res.New {
				fixed := f.Fixed
				if fixed == "" {
					fixed = "no fix yet"
				}
				ids = append(ids, fmt.Sprintf("%s %s (%s %s, fixed in %s)", f.Severity, f.ID, f.Package, f.Installed, fixed))
			}
			j.Notify.Notify(notify.Event{Kind: notify.NewFindings, Key: res.Project + "@" + res.Image.ID,
				Host: j.Host, App: res.Project, Subject: fmt.Sprintf("running image %s", res.Image),
				What: "has " + notify.Count(len(res.New), "new finding"), Detail: strings.Join(ids, "\n")})
		}
	}
	det := fmt.Sprintf("%d images scanned, %d violate the policy", len(results), violating)
	if violating > 0 {
		errs = append(errs, fmt.Errorf("%d running images have findings at or above the policy (syncd scan lists them)", violating))
	}
	return det, errors.Join(errs...)
}

// Status is the last result of every job, for the status document.
func (j *Runner) Status() []status.Job {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.load()
	out := slices.Collect(maps.Values(j.results))
	slices.SortFunc(out, func(a, b status.Job) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (j *Runner) lastSuccess(id ID) (time.Time, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.load()
	t := j.results[id].LastSuccess
	if id.Kind == KindDrill {
		// A drill's only record is its app's last_drill: its last success
		// is known while that drill passed.
		t = time.Time{}
		if d := j.results[Backup(id.App)].LastDrill; d != nil && d.Result == status.DrillPassed {
			t = d.At.Add(time.Duration(d.DurationMS) * time.Millisecond)
		}
	}
	return t, !t.IsZero()
}

// load reads the results kept in the state directory once (j.mu held).
// Names of an older syncd ("backup X", "backup check") are read as the
// jobs they meant and written back in the new form, so an upgrade loses
// no last success.
func (j *Runner) load() {
	if j.loaded {
		return
	}
	j.loaded = true
	j.results = map[ID]status.Job{}
	data, err := os.ReadFile(filepath.Join(j.Store.Dir(), jobsFile))
	if err != nil {
		return
	}
	var list []status.Job
	if err := json.Unmarshal(data, &list); err != nil {
		j.log().Warn("jobs: the kept results cannot be read; starting afresh", "err", err)
		return
	}
	var legacy []status.Job
	for _, r := range list {
		id, err := ParseID(r.Name)
		if err != nil {
			legacy = append(legacy, r)
			continue
		}
		j.results[id] = r
	}
	// A result in the new form is newer than one of the old name.
	for _, r := range legacy {
		id, ok := legacyID(r.Name)
		if !ok {
			j.log().Warn("jobs: a kept result names no job; dropped", "job", r.Name)
			continue
		}
		if _, ok := j.results[id]; !ok {
			r.Name = id.String()
			j.results[id] = r
		}
	}
	if len(legacy) > 0 {
		j.save()
	}
}

// legacyID reads a job name of syncd before typed IDs: "backup <app>",
// "backup check" (the repository check, which hid an app named check) and
// "scan".
func legacyID(name string) (ID, bool) {
	switch name {
	case "backup check":
		return Check, true
	case "scan":
		return Scan, true
	}
	app, ok := strings.CutPrefix(name, "backup ")
	id := Backup(app)
	return id, ok && id.Validate() == nil
}

// save writes the results (j.mu held). Errors are redacted already.
func (j *Runner) save() {
	list := slices.Collect(maps.Values(j.results))
	slices.SortFunc(list, func(a, b status.Job) int { return strings.Compare(a.Name, b.Name) })
	data, err := json.MarshalIndent(list, "", "  ")
	if err == nil {
		err = state.WriteFile(filepath.Join(j.Store.Dir(), jobsFile), data, 0o600)
	}
	if err != nil {
		j.log().Warn("jobs: keep results", "err", err)
	}
}

func (j *Runner) log() *slog.Logger {
	if j.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return j.Log
}

// Collectors are the jobs' metrics, for /metrics.
func (j *Runner) Collectors() []prometheus.Collector { return j.metricsOf().collectors() }

func (j *Runner) metricsOf() *jobMetrics {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.metrics == nil {
		j.metrics = newJobMetrics()
	}
	return j.metrics
}

// jobMetrics are the jobs' Prometheus metrics; the result gauge is 0 after
// a failure (never "success" for a failed run).
type jobMetrics struct {
	duration    *prometheus.GaugeVec
	success     *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	runs        *prometheus.CounterVec
	// A drill's, per app: by hand or scheduled (job metrics are the
	// scheduler's runs; a drill's verdict is what counts).
	drillSuccess     *prometheus.GaugeVec
	drillDuration    *prometheus.GaugeVec
	drillLastSuccess *prometheus.GaugeVec
}

func newJobMetrics() *jobMetrics {
	return &jobMetrics{
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "syncd_job_duration_seconds",
			Help: "How long the last run of each job took."}, []string{"kind", "app"}),
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "syncd_job_success",
			Help: "1 when the last run of the job succeeded, 0 when it failed."}, []string{"kind", "app"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "syncd_job_last_success_timestamp_seconds",
			Help: "Unix time at which the job last succeeded."}, []string{"kind", "app"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "syncd_job_runs_total",
			Help: "Runs of each job by result (ok, failed)."}, []string{"kind", "app", "result"}),
		drillSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "syncd_drill_success",
			Help: "1 when the app's last restore drill passed, 0 when it failed."}, []string{"app"}),
		drillDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "syncd_drill_duration_seconds",
			Help: "How long the app's last restore drill took."}, []string{"app"}),
		drillLastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "syncd_drill_last_success_timestamp_seconds",
			Help: "Unix time at which the app's last passing restore drill ended."}, []string{"app"}),
	}
}

func (m *jobMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.duration, m.success, m.lastSuccess, m.runs,
		m.drillSuccess, m.drillDuration, m.drillLastSuccess}
}

// observeDrill sets app's drill metrics from its last drill.
func (m *jobMetrics) observeDrill(app string, d *status.Drill, took time.Duration) {
	m.drillDuration.WithLabelValues(app).Set(took.Seconds())
	if d.Result != status.DrillPassed {
		m.drillSuccess.WithLabelValues(app).Set(0)
		return
	}
	m.drillSuccess.WithLabelValues(app).Set(1)
	m.drillLastSuccess.WithLabelValues(app).Set(float64(d.At.Add(took).Unix()))
}

// observe sets id's metrics, labelled by kind and app ("" for the host's
// jobs), never by a name an app could share.
func (m *jobMetrics) observe(id ID, jr status.Job, took time.Duration) {
	kind, app := string(id.Kind), id.App
	m.duration.WithLabelValues(kind, app).Set(took.Seconds())
	m.runs.WithLabelValues(kind, app, jr.Result).Inc()
	if jr.Result == "ok" {
		m.success.WithLabelValues(kind, app).Set(1)
	} else {
		m.success.WithLabelValues(kind, app).Set(0)
	}
	if !jr.LastSuccess.IsZero() {
		m.lastSuccess.WithLabelValues(kind, app).Set(float64(jr.LastSuccess.Unix()))
	}
}
