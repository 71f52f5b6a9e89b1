// Package schedule runs a host's day-2 jobs (backups, scans, probes) on
// cron schedules: 5-field specs and descriptors (@daily, @every 1h), with a
// delay derived from the host name so a fleet does not hit one backup
// repository at the same second, no run overlapping its own previous one, a
// timeout per run, catch-up of a run missed while syncd was down, and one
// lock per Compose project shared with apply, so a job and an apply of the
// same project never overlap.
//
// It owns when jobs run, not what they do; it must not import the engine,
// reconcile, the source or the jobs themselves. Time is the time package's:
// tests run it inside testing/synctest bubbles, where time is virtual, so
// they never sleep for a schedule.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// parser reads what syncd.yaml, host.yaml and app.yaml accept: 5 cron
// fields or a descriptor. Seconds are not offered.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ErrNoNextTime is a schedule that never fires again ("0 0 30 2 *": 30
// February): robfig/cron gives the zero time for its next run, which a
// loop waiting "until next" would take as due at once, forever.
var ErrNoNextTime = errors.New("it never fires (no such date within five years)")

// MinJobPeriod is the shortest period a backup, backup check or scan
// schedule may have: "@every 1ms" would run one back to back. Five cron
// fields cannot fire more often than once a minute; @every can.
const MinJobPeriod = time.Minute

// Parse checks a schedule spec: 5 cron fields or a descriptor, with a
// next time. validate (through desired, every cycle too) and the
// scheduler share it.
func Parse(spec string) (cron.Schedule, error) {
	sc, err := parser.Parse(spec)
	if err != nil {
		return nil, err
	}
	if sc.Next(time.Now()).IsZero() {
		return nil, ErrNoNextTime
	}
	return sc, nil
}

// Check is Parse for a job that may not run more often than every
// minPeriod (MinJobPeriod for backups and scans; 0 for no floor).
func Check(spec string, minPeriod time.Duration) (cron.Schedule, error) {
	sc, err := Parse(spec)
	if err != nil {
		return nil, err
	}
	if every, ok := sc.(cron.ConstantDelaySchedule); ok && every.Delay < minPeriod {
		return nil, fmt.Errorf("it runs more often than once every %s", minPeriod)
	}
	return sc, nil
}

// Interval is the shortest time between two of sc's next runs after from
// (an @every's period; for cron fields, over their next 64 runs): what a
// probe's timeout is compared with. 0 for a schedule with no next run.
func Interval(sc cron.Schedule, from time.Time) time.Duration {
	if every, ok := sc.(cron.ConstantDelaySchedule); ok {
		return every.Delay
	}
	var shortest time.Duration
	t := sc.Next(from)
	for range 64 {
		next := sc.Next(t)
		if t.IsZero() || next.IsZero() {
			break
		}
		if d := next.Sub(t); shortest == 0 || d < shortest {
			shortest = d
		}
		t = next
	}
	return shortest
}

// Job is one scheduled job.
type Job struct {
	// Name identifies the job in logs, metrics and the status ("backup",
	// "backup nextcloud", "scan").
	Name string
	// Spec is its schedule.
	Spec string
	// Timeout bounds one run; 0 means DefaultTimeout.
	Timeout time.Duration
	// Project is the Compose project the job touches, "" for none: a run
	// holds that project's lock.
	Project string
	// Run does the work.
	Run func(ctx context.Context) error
}

// DefaultTimeout bounds a run whose job sets none.
const DefaultTimeout = 6 * time.Hour

// MaxJitter is the longest delay a host adds to a job's scheduled times;
// a job that runs more often gets at most a tenth of its period.
const MaxJitter = 15 * time.Minute

// Result is what one run (or a tick it had to skip) came to.
type Result struct {
	Job      string
	Start    time.Time
	Duration time.Duration
	Err      error // nil on success
	// CatchUp marks a run made because a scheduled one was missed.
	CatchUp bool
}

// Scheduler runs jobs for one host.
type Scheduler struct {
	// Host seeds the jitter.
	Host string
	// Locks are the project locks apply takes too (nil: none shared).
	Locks *Locks
	// LastSuccess returns when job last succeeded (persisted by the
	// caller), for catch-up; nil means never known, so never caught up.
	LastSuccess func(job string) (time.Time, bool)
	// Done is told each run's result (metrics, status, notifications);
	// it must not block for long.
	Done   func(Result)
	Logger *slog.Logger
}

// Run runs jobs until ctx ends, each in a loop of its own, and waits for
// the running ones to return (their contexts are cancelled).
func (s *Scheduler) Run(ctx context.Context, jobs []Job) error {
	type parsed struct {
		job   Job
		sched cron.Schedule
	}
	var ps []parsed
	var errs []error
	for _, j := range jobs {
		sc, err := Parse(j.Spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("job %s: schedule %q: %w", j.Name, j.Spec, err))
			continue
		}
		ps = append(ps, parsed{j, sc})
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { s.loop(ctx, p.job, p.sched) })
	}
	wg.Wait()
	return nil
}

// loop runs one job at its scheduled times plus the host's jitter. Runs
// never overlap: a tick that passes while a run goes on is skipped, and
// said once.
func (s *Scheduler) loop(ctx context.Context, j Job, sc cron.Schedule) {
	log := s.log().With("job", j.Name)
	now := time.Now()
	next := s.Next(j.Name, sc, now)
	if next.IsZero() {
		s.unscheduled(j, now)
		return
	}
	catchUp := false
	if s.LastSuccess != nil {
		if last, ok := s.LastSuccess(j.Name); ok && !sc.Next(last).IsZero() && sc.Next(last).Before(now) {
			// A run was due while syncd was down: soon, not a period late.
			next, catchUp = now.Add(s.catchUpDelay(j.Name)), true
			log.Info("a scheduled run was missed; catching up", "last_success", last, "at", next)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		res := s.runOnce(ctx, j)
		res.CatchUp = catchUp
		catchUp = false
		if ctx.Err() != nil && res.Err != nil {
			return // stopped, not failed
		}
		if s.Done != nil {
			s.Done(res)
		}
		after := s.Next(j.Name, sc, time.Now())
		if after.IsZero() {
			s.unscheduled(j, time.Now())
			return
		}
		if skipped := ticksBetween(sc, s.jitter(j.Name, sc), next, time.Now()); skipped > 0 {
			log.Warn("the run took longer than the schedule's period; ticks skipped", "skipped", skipped, "took", res.Duration.Round(time.Second))
		}
		next = after
	}
}

// unscheduled reports a job whose schedule has no next time and leaves it
// unscheduled: waiting "until" the zero time would run it back to back.
// Parse refuses such a spec; this is for one that ran out since (29
// February when the next leap day is more than five years away).
func (s *Scheduler) unscheduled(j Job, now time.Time) {
	err := fmt.Errorf("job %s: schedule %q: %w; not scheduled until its schedule changes", j.Name, j.Spec, ErrNoNextTime)
	s.log().Error("job not scheduled", "job", j.Name, "err", err)
	if s.Done != nil {
		s.Done(Result{Job: j.Name, Start: now, Err: err})
	}
}

// runOnce runs the job with its timeout, holding its project's lock.
func (s *Scheduler) runOnce(ctx context.Context, j Job) Result {
	start := time.Now()
	res := Result{Job: j.Name, Start: start}
	timeout := j.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if j.Project != "" && s.Locks != nil {
		unlock, err := s.Locks.Lock(rctx, j.Project)
		if err != nil {
			res.Duration, res.Err = time.Since(start), fmt.Errorf("job %s: waiting for project %s: %w", j.Name, j.Project, err)
			return res
		}
		defer unlock()
	}
	err := j.Run(rctx)
	if err != nil && errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("job %s: timed out after %s: %w", j.Name, timeout, err)
	}
	res.Duration, res.Err = time.Since(start), err
	return res
}

// Next returns job's next run after now: the schedule's next time plus
// the host's jitter for it; the zero time when the schedule has none.
func (s *Scheduler) Next(job string, sc cron.Schedule, now time.Time) time.Time {
	j := s.jitter(job, sc)
	// The jitter moves each scheduled time later; the one whose shifted
	// time is still ahead is next.
	t := sc.Next(now.Add(-j))
	if t.IsZero() {
		return t
	}
	return t.Add(j)
}

// jitter is the host's fixed delay for job: up to MaxJitter, and at most a
// tenth of the schedule's period, the same on every start.
func (s *Scheduler) jitter(job string, sc cron.Schedule) time.Duration {
	ref := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	a := sc.Next(ref)
	b := sc.Next(a)
	if a.IsZero() || b.IsZero() {
		return 0
	}
	period := b.Sub(a)
	limit := min(MaxJitter, period/10)
	if limit <= 0 {
		return 0
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s", s.Host, job)
	return time.Duration(h.Sum64() % uint64(limit))
}

// catchUpDelay spreads the catch-up runs of a fleet that comes back at
// once over a minute.
func (s *Scheduler) catchUpDelay(job string) time.Duration {
	h := fnv.New64a()
	fmt.Fprintf(h, "catch-up\x00%s\x00%s", s.Host, job)
	return time.Duration(h.Sum64() % uint64(time.Minute))
}

// ticksBetween counts the scheduled (shifted) times strictly after from
// and before to: the ticks a run that lasted from..to left out.
func ticksBetween(sc cron.Schedule, jitter time.Duration, from, to time.Time) int {
	n := 0
	for t := sc.Next(from.Add(-jitter)); !t.IsZero() && t.Add(jitter).Before(to) && n < 1000; t = sc.Next(t) {
		if t.Add(jitter).After(from) {
			n++
		}
	}
	return n
}

func (s *Scheduler) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Locks are one lock per Compose project, shared by the jobs and apply: a
// backup does not read a volume while an apply recreates its service.
type Locks struct {
	mu    sync.Mutex
	locks map[string]chan struct{}
}

func (l *Locks) lock(project string) chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.locks == nil {
		l.locks = map[string]chan struct{}{}
	}
	ch := l.locks[project]
	if ch == nil {
		ch = make(chan struct{}, 1)
		l.locks[project] = ch
	}
	return ch
}

// TryLock takes project's lock if it is free (apply: a project a job
// holds waits for the next cycle rather than blocking the others).
func (l *Locks) TryLock(project string) (func(), bool) {
	ch := l.lock(project)
	select {
	case ch <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-ch }) }, true
	default:
		return nil, false
	}
}

// Lock waits for project's lock (or ctx) and returns its unlock.
func (l *Locks) Lock(ctx context.Context, project string) (func(), error) {
	ch := l.lock(project)
	select {
	case ch <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-ch }) }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
