package schedule

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// recorder collects results; safe for the scheduler's goroutines.
type recorder struct {
	mu  sync.Mutex
	res []Result
}

func (r *recorder) done(res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res = append(r.res, res)
}

func (r *recorder) all() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Result(nil), r.res...)
}

// runFor runs s with jobs for d of virtual time, then stops it.
func runFor(t *testing.T, s *Scheduler, d time.Duration, jobs ...Job) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, jobs) }()
	time.Sleep(d)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestJitterIsPerHostStableAndBounded(t *testing.T) {
	daily, _ := Parse("0 3 * * *")
	every, _ := Parse("@every 1m")
	a, b := &Scheduler{Host: "alpha"}, &Scheduler{Host: "beta"}
	if a.jitter("backup", daily) != a.jitter("backup", daily) {
		t.Error("the jitter changes between calls")
	}
	if a.jitter("backup", daily) == b.jitter("backup", daily) {
		t.Error("two hosts got the same jitter (one backup repository, the same second)")
	}
	if j := a.jitter("backup", daily); j < 0 || j >= MaxJitter {
		t.Errorf("daily jitter %v out of [0, %v)", j, MaxJitter)
	}
	if j := a.jitter("probe", every); j >= 6*time.Second {
		t.Errorf("jitter %v of a 1m job is more than a tenth of its period", j)
	}
	hosts := map[time.Duration]bool{}
	for _, h := range []string{"h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8"} {
		hosts[(&Scheduler{Host: h}).jitter("backup", daily)] = true
	}
	if len(hosts) < 6 {
		t.Errorf("8 hosts share %d jitters: not spread", len(hosts))
	}
}

func TestDailyJobRunsAtItsTimePlusJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := &Scheduler{Host: "alpha", Done: rec.done}
		daily, _ := Parse("0 3 * * *")
		j := s.jitter("backup", daily)
		start := time.Now()
		runFor(t, s, 49*time.Hour, Job{Name: "backup", Spec: "0 3 * * *", Run: func(context.Context) error { return nil }})
		got := rec.all()
		if len(got) != 2 {
			t.Fatalf("%d runs in 49 h of a daily job, want 2: %+v", len(got), got)
		}
		for i, r := range got {
			want := start.Add(time.Duration(i)*24*time.Hour + 3*time.Hour + j)
			if !r.Start.Equal(want) || r.CatchUp || r.Err != nil {
				t.Errorf("run %d at %v (catch-up %v, err %v), want %v", i, r.Start, r.CatchUp, r.Err, want)
			}
		}
	})
}

func TestRunsNeverOverlapAndSkippedTicksAreSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := &Scheduler{Host: "alpha", Done: rec.done}
		var running, most atomic.Int32
		job := Job{Name: "slow", Spec: "@every 1m", Run: func(ctx context.Context) error {
			if n := running.Add(1); n > most.Load() {
				most.Store(n)
			}
			defer running.Add(-1)
			time.Sleep(150 * time.Second) // longer than the period
			return nil
		}}
		runFor(t, s, 10*time.Minute, job)
		if most.Load() != 1 {
			t.Errorf("%d runs at once", most.Load())
		}
		// Every run takes 2.5 periods: about one run per 3 minutes, not ten.
		if n := len(rec.all()); n < 2 || n > 4 {
			t.Errorf("%d runs in 10 min of a 150 s job every minute", n)
		}
	})
}

func TestTimeoutEndsARun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := &Scheduler{Host: "alpha", Done: rec.done}
		job := Job{Name: "stuck", Spec: "@every 1h", Timeout: 5 * time.Minute, Run: func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}}
		runFor(t, s, 70*time.Minute, job)
		got := rec.all()
		if len(got) != 1 || got[0].Err == nil || !strings.Contains(got[0].Err.Error(), "timed out after 5m0s") || got[0].Duration != 5*time.Minute {
			t.Fatalf("results %+v, want one run timed out after 5 min", got)
		}
	})
}

func TestMissedRunIsCaughtUpSoonAfterStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		start := time.Now()
		s := &Scheduler{Host: "alpha", Done: rec.done, LastSuccess: func(job string) (time.Time, bool) {
			return start.Add(-50 * time.Hour), true // down for two days
		}}
		runFor(t, s, 2*time.Hour, Job{Name: "backup", Spec: "0 3 * * *", Run: func(context.Context) error { return nil }})
		got := rec.all()
		if len(got) != 1 || !got[0].CatchUp || got[0].Start.Sub(start) > time.Minute {
			t.Fatalf("results %+v, want one catch-up run within a minute of the start", got)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		start := time.Now()
		s := &Scheduler{Host: "alpha", Done: rec.done, LastSuccess: func(string) (time.Time, bool) {
			return start.Add(-time.Hour), true // 23:00 yesterday: today's 03:00 is still ahead
		}}
		runFor(t, s, 2*time.Hour, Job{Name: "backup", Spec: "0 3 * * *", Run: func(context.Context) error { return nil }})
		if got := rec.all(); len(got) != 0 {
			t.Fatalf("results %+v, want no catch-up when no run was missed", got)
		}
	})
}

func TestAJobWaitsForItsProjectsLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		locks := &Locks{}
		s := &Scheduler{Host: "alpha", Done: rec.done, Locks: locks}
		// An apply of web holds the lock from 0:00 to 0:30.
		unlock, err := locks.Lock(t.Context(), "web")
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(30*time.Minute, unlock)
		runFor(t, s, 50*time.Minute, Job{Name: "backup web", Spec: "@every 20m", Project: "web", Run: func(context.Context) error { return nil }})
		got := rec.all()
		if len(got) == 0 {
			t.Fatal("the job never ran")
		}
		if started := got[0].Start.Add(got[0].Duration); started.Before(time.Date(2000, 1, 1, 0, 30, 0, 0, time.UTC)) {
			t.Errorf("the job finished at %v, while the apply held the project", started)
		}
	})
}

func TestBadSpecIsRefusedNamingTheJob(t *testing.T) {
	err := (&Scheduler{Host: "a"}).Run(t.Context(), []Job{{Name: "backup", Spec: "every day", Run: func(context.Context) error { return nil }}})
	if err == nil || !strings.Contains(err.Error(), "job backup") || !strings.Contains(err.Error(), `"every day"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestParseRefusesAScheduleThatNeverFires(t *testing.T) {
	for _, spec := range []string{"0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6 *"} {
		if _, err := Parse(spec); !errors.Is(err, ErrNoNextTime) {
			t.Errorf("Parse(%q) = %v, want ErrNoNextTime", spec, err)
		}
	}
	for _, spec := range []string{"0 0 29 2 *", "0 3 * * *", "@yearly", "@every 1h"} {
		if _, err := Parse(spec); err != nil {
			t.Errorf("Parse(%q): %v", spec, err)
		}
	}
}

func TestCheckRefusesAJobRunningMoreOftenThanItsFloor(t *testing.T) {
	for _, spec := range []string{"@every 1ms", "@every 1s", "@every 59s"} {
		if _, err := Check(spec, MinJobPeriod); err == nil || !strings.Contains(err.Error(), "more often than once every 1m0s") {
			t.Errorf("Check(%q) = %v", spec, err)
		}
	}
	for _, spec := range []string{"@every 1m", "* * * * *", "@hourly"} {
		if _, err := Check(spec, MinJobPeriod); err != nil {
			t.Errorf("Check(%q): %v", spec, err)
		}
	}
	if _, err := Check("@every 1s", 0); err != nil {
		t.Errorf("no floor: %v", err)
	}
	if _, err := Check("0 0 30 2 *", 0); !errors.Is(err, ErrNoNextTime) {
		t.Errorf("Check of 30 February = %v", err)
	}
}

func TestInterval(t *testing.T) {
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for spec, want := range map[string]time.Duration{
		"@every 90s":   90 * time.Second,
		"*/5 * * * *":  5 * time.Minute,
		"0 3,4 * * *":  time.Hour,
		"@daily":       24 * time.Hour,
		"* * * * *":    time.Minute,
		"0 12 * * 1-5": 24 * time.Hour,
	} {
		sc, err := Parse(spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := Interval(sc, from); got != want {
			t.Errorf("Interval(%q) = %v, want %v", spec, got, want)
		}
	}
}

// runsOut fires at at and never again: a schedule whose next time ran out
// since it was parsed.
type runsOut struct{ at time.Time }

func (r runsOut) Next(t time.Time) time.Time {
	if t.Before(r.at) {
		return r.at
	}
	return time.Time{}
}

// TestAScheduleWithNoNextTimeIsNotScheduledAndIsReported: the scheduler
// never waits "until" the zero time (which is at once, forever).
func TestAScheduleWithNoNextTimeIsNotScheduledAndIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := &Scheduler{Host: "alpha", Done: rec.done}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var runs atomic.Int32
		job := Job{Name: "scan", Spec: "(runs out)", Run: func(context.Context) error {
			if runs.Add(1) >= 5 {
				cancel() // the old loop ran it back to back: stop it
			}
			return nil
		}}
		start := time.Now()
		done := make(chan struct{})
		go func() { defer close(done); s.loop(ctx, job, runsOut{start.Add(time.Hour)}) }()
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("the job's loop goes on with no next time")
		}
		if n := runs.Load(); n != 1 {
			t.Errorf("%d runs, want the one scheduled run", n)
		}
		got := rec.all()
		if len(got) != 2 || got[1].Err == nil || !errors.Is(got[1].Err, ErrNoNextTime) || !strings.Contains(got[1].Err.Error(), "job scan") {
			t.Fatalf("results %+v, want the run, then the job reported as not scheduled", got)
		}
	})
	// A spec with no next time at all is refused before anything runs.
	err := (&Scheduler{Host: "a"}).Run(t.Context(), []Job{{Name: "scan", Spec: "0 0 30 2 *", Run: func(context.Context) error { return nil }}})
	if !errors.Is(err, ErrNoNextTime) || !strings.Contains(err.Error(), "job scan") {
		t.Fatalf("Run: %v", err)
	}
}
