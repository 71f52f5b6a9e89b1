package schedule

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// idleSpecs are the worst schedules validate accepts for a backup or a
// scan (Check with MinJobPeriod, the check desired makes): the most
// frequent (@every 1m, every minute), and the rarest, whose next time
// robfig/cron searches for day by day (29 February, 31 December).
var idleSpecs = []string{"@every 1m", "* * * * *", "0 0 29 2 *", "59 23 31 12 *", "0 0 29 2 1"}

// BenchmarkSchedulerIdle: what the scheduler costs while it waits, with
// the jobs of a host running 20 apps ("scan", "backup check", "backup
// <app>", as host.Jobs names them) on idleSpecs, each caught up at its
// start (a last success two hours ago) so runs happen in the window too,
// against the same process with no jobs: the process's CPU time
// (getrusage, user + system) over 60 s of wall time each
// (SYNCD_BENCH_SCHED_IDLE, e.g. 10s, for a quick look). The job bodies
// are empty: what is measured is the scheduler. The measurement is made
// once, in the first iteration; ns/op means nothing here. It fails when
// the jobs cost more than 0.5% of a core above the baseline (a spec with
// no next time spun at a quarter of one).
func BenchmarkSchedulerIdle(b *testing.B) {
	window := time.Minute
	if s := os.Getenv("SYNCD_BENCH_SCHED_IDLE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("SYNCD_BENCH_SCHED_IDLE=%q: %v", s, err)
		}
		window = d
	}
	var runs atomic.Int64
	names := []string{"scan", "backup check"}
	for i := range 20 {
		names = append(names, fmt.Sprintf("backup app%d", i))
	}
	var jobs []Job
	for i, name := range names {
		spec := idleSpecs[i%len(idleSpecs)]
		if _, err := Check(spec, MinJobPeriod); err != nil {
			b.Fatalf("validate refuses %q: %v", spec, err)
		}
		jobs = append(jobs, Job{Name: name, Spec: spec, Run: func(context.Context) error { runs.Add(1); return nil }})
	}
	for i := 0; b.Loop(); i++ {
		if i > 0 {
			continue
		}
		base := cpuDuring(b, window, func(ctx context.Context) { <-ctx.Done() })
		withJobs := cpuDuring(b, window, func(ctx context.Context) {
			s := &Scheduler{Host: "bench", Locks: &Locks{},
				LastSuccess: func(string) (time.Time, bool) { return time.Now().Add(-2 * time.Hour), true }}
			if err := s.Run(ctx, jobs); err != nil {
				b.Error(err)
			}
		})
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(ms(base), "idle-cpu-ms")
		b.ReportMetric(ms(withJobs), "jobs-cpu-ms")
		b.ReportMetric(ms(withJobs)/max(ms(base), 0.001), "jobs/idle")
		b.ReportMetric(float64(runs.Load()), "runs")
		b.ReportMetric(0, "ns/op")
		b.Logf("%d jobs on %v for %s: CPU %.1f ms (%d runs), against %.1f ms with no jobs", len(jobs), idleSpecs, window, ms(withJobs), runs.Load(), ms(base))
		if extra := withJobs - base; extra > window/200 {
			b.Errorf("the idle scheduler used %s of CPU more than no jobs in %s (more than 0.5%% of a core)", extra, window)
		}
	}
}

// cpuDuring runs fn for window of wall time and returns the CPU time the
// whole process used meanwhile.
func cpuDuring(b *testing.B, window time.Duration, fn func(ctx context.Context)) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	before := processCPU(b)
	fn(ctx)
	<-ctx.Done()
	return processCPU(b) - before
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
