package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/jobs/backup"
	"github.com/syncd-dev/syncd/internal/notify"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/state"
	"github.com/syncd-dev/syncd/internal/status"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// sent records what a notifier sent.
type sent struct {
	mu   sync.Mutex
	msgs []string
}

func (s *sent) Send(_ context.Context, _, title, msg string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, title+": "+msg)
	return nil
}

func (s *sent) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

// TestJobSchedulesFollowTheRepository: every app with a backup: has its
// own scheduled backup, apps named check, prune and all included: an app
// named check keeps its backup beside the repository check.
func TestJobSchedulesFollowTheRepository(t *testing.T) {
	rd := &reconcile.Rendered{
		Host: &desired.Host{Name: "h", Backup: &desired.HostBackup{Schedule: "0 2 * * *", CheckSchedule: "0 5 * * 6"},
			Scan: &desired.HostScan{Schedule: "@daily"}},
		Projects: map[string]*desired.Project{
			"db": {App: &desired.App{Name: "db", Backup: &desired.AppBackup{Schedule: "@every 6h", Dumps: []desired.Dump{{}},
				Drill: &desired.Drill{Schedule: "0 6 * * 1"}}}},
			"files": {App: &desired.App{Name: "files", Backup: &desired.AppBackup{Volumes: []string{"x"},
				Drill: &desired.Drill{Timeout: time.Minute}}}}, // drilled by hand only
			"check": {App: &desired.App{Name: "check", Backup: &desired.AppBackup{Schedule: "@every 1h", Volumes: []string{"x"}}}},
			"prune": {App: &desired.App{Name: "prune", Backup: &desired.AppBackup{Volumes: []string{"x"}}}},
			"all":   {App: &desired.App{Name: "all", Backup: &desired.AppBackup{Volumes: []string{"x"}}}},
			"scan":  {App: &desired.App{Name: "scan", Backup: &desired.AppBackup{Volumes: []string{"x"}}}},
			"web":   {App: &desired.App{Name: "web"}},
		},
	}
	got := specs(rd)
	want := map[ID]string{Backup("db"): "@every 6h", Backup("files"): "0 2 * * *",
		Backup("check"): "@every 1h", Backup("prune"): "0 2 * * *", Backup("all"): "0 2 * * *",
		Backup("scan"): "0 2 * * *", Check: "0 5 * * 6", Scan: "@daily", Drill("db"): "0 6 * * 1"}
	if len(got) != len(want) {
		t.Fatalf("specs = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	// The scheduler's names are as distinct as the jobs.
	j := &Runner{Host: "h"}
	names := map[string]bool{}
	for id, spec := range got {
		sj := j.job(id, spec)
		if names[sj.Name] {
			t.Errorf("two scheduled jobs are named %q", sj.Name)
		}
		names[sj.Name] = true
		if back, err := ParseID(sj.Name); err != nil || back != id {
			t.Errorf("scheduled job %q reads back as %+v, %v; want %+v", sj.Name, back, err, id)
		}
		want := id.App
		if id.Kind == KindDrill {
			want = "" // the drill takes the app's lock itself
		}
		if sj.Project != want {
			t.Errorf("job %s holds project %q, want %q", sj.Name, sj.Project, want)
		}
	}
	rd.Host.Backup, rd.Host.Scan = nil, nil
	if got := specs(rd); len(got) != 0 {
		t.Errorf("a host without backup: schedules %v", got)
	}
}

// TestJobResultsPersistNotifyAndCount: a failed run keeps the last success,
// is kept across a restart, sets the success gauge to 0 and is notified
// once; its recovery is notified once.
func TestJobResultsPersistNotifyAndCount(t *testing.T) {
	store, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sink := &sent{}
	n := notify.New(notify.Config{Sinks: []notify.Sink{{URL: "generic://sink"}}, Sender: sink})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	changed := 0
	j := &Runner{Host: "h", Store: store, Notify: n, Changed: func() { changed++ }}

	t0 := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	j.record(Backup("db"), t0, time.Second, nil, "run r1: 2 of 2 snapshots, 1.0 MiB added")
	j.record(Backup("db"), t0.Add(24*time.Hour), time.Second, errors.New("dump db.sql: the command exited 3\nmore"), "")
	j.record(Backup("db"), t0.Add(48*time.Hour), time.Second, errors.New("dump db.sql: the command exited 3"), "")

	if got := testutil.ToFloat64(j.metricsOf().success.WithLabelValues("backup", "db")); got != 0 {
		t.Errorf("syncd_job_success after a failure = %v, want 0", got)
	}
	again := &Runner{Host: "h", Store: store}
	st := again.Status()
	if len(st) != 1 || st[0].Result != "failed" || st[0].Error != "dump db.sql: the command exited 3" || !st[0].LastSuccess.Equal(t0.Add(time.Second)) {
		t.Fatalf("status after a restart = %+v", st)
	}
	if last, ok := again.lastSuccess(Backup("db")); !ok || !last.Equal(t0.Add(time.Second)) {
		t.Errorf("lastSuccess = %v %v", last, ok)
	}

	j.record(Backup("db"), t0.Add(72*time.Hour), time.Second, nil, "run r4: 2 of 2 snapshots, 12 B added")
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.list()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	msgs := sink.list()
	if len(msgs) != 2 || !strings.Contains(msgs[0], "backup of app db on host h failed") || !strings.Contains(msgs[1], "works again") {
		t.Errorf("notifications = %q, want one failure and one recovery", msgs)
	}
	if changed != 4 {
		t.Errorf("Changed called %d times, want 4", changed)
	}
}

// TestJobNotificationsStandAlone: a backup's failure and its recovery, and
// the repository check's failure, reach the real shoutrrr services with a
// body that names the host, the app or the job, and what happened.
func TestJobNotificationsStandAlone(t *testing.T) {
	store, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sinks := testenv.NotifySinks(t)
	var urls []notify.Sink
	for _, s := range sinks {
		urls = append(urls, notify.Sink{URL: s.URL})
	}
	n := notify.New(notify.Config{Sinks: urls, MinBackoff: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go n.Run(ctx)
	j := &Runner{Host: "web-01", Store: store, Notify: n}
	t0 := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	j.record(Backup("nextcloud"), t0, time.Second, errors.New("dump db.sql: the command exited 3"), "")
	j.record(Backup("nextcloud"), t0.Add(time.Hour), time.Second, nil, "run r2: 2 of 2 snapshots, 1.0 MiB added")
	j.record(Check, t0.Add(2*time.Hour), time.Second, errors.New("restic check: 1 pack is damaged"), "")
	for _, s := range sinks {
		for _, want := range []string{
			"backup of app nextcloud on host web-01 failed: dump db.sql: the command exited 3",
			"backup of app nextcloud on host web-01 works again: run r2: 2 of 2 snapshots, 1.0 MiB added",
			"check of the backup repository on host web-01 failed: restic check: 1 pack is damaged",
		} {
			if got := s.Next(t, want); got.Body != want {
				t.Errorf("%s: body %q, want %q", s.Service, got.Body, want)
			}
		}
	}
}

// TestDrillNotificationsStandAlone: a failed drill is notified once to
// every sink, by its app and run and with the check that failed; the next
// passing drill, once, as drill_recovered; passing drills after that say
// nothing.
func TestDrillNotificationsStandAlone(t *testing.T) {
	store, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sinks := testenv.NotifySinks(t)
	var urls []notify.Sink
	for _, s := range sinks {
		urls = append(urls, notify.Sink{URL: s.URL})
	}
	n := notify.New(notify.Config{Sinks: urls, MinBackoff: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go n.Run(ctx)
	j := &Runner{Host: "web-01", Store: store, Notify: n}
	t0 := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	j.recordDrill(nil, "nextcloud", "r1", t0, time.Second, backup.DrillResult{Detail: "2 checks passed"}, nil) // never failed: nothing to say
	fail := errors.New(`verify[0] (psql -tAc 'select count(*) from users'): printed "0", want a match of ^[1-9]`)
	j.recordDrill(nil, "nextcloud", "r2", t0.Add(24*time.Hour), time.Second, backup.DrillResult{}, fail)
	j.recordDrill(nil, "nextcloud", "r3", t0.Add(48*time.Hour), time.Second, backup.DrillResult{}, fail) // still failing: not again
	j.recordDrill(nil, "nextcloud", "r4", t0.Add(72*time.Hour), time.Second, backup.DrillResult{Detail: "2 checks passed"}, nil)
	j.recordDrill(nil, "nextcloud", "r5", t0.Add(96*time.Hour), time.Second, backup.DrillResult{Detail: "2 checks passed"}, nil)
	j.recordDrill(nil, "mail", "", t0.Add(96*time.Hour), 0, backup.DrillResult{}, errors.New("app mail has no complete run to drill"))
	for _, s := range sinks {
		for _, want := range []string{
			`restore drill of app nextcloud on host web-01 of run r2 failed: verify[0] (psql -tAc 'select count(*) from users'): printed "0", want a match of ^[1-9]`,
			"restore drill of app nextcloud on host web-01 of run r4 passed again: 2 checks passed",
			"restore drill of app mail on host web-01 failed: app mail has no complete run to drill",
		} {
			if got := s.Next(t, want); got.Body != want {
				t.Errorf("%s: body %q, want %q", s.Service, got.Body, want)
			}
		}
	}
}

// TestJobErrorsAreRedacted: a job's error that holds one of the host's
// secret values (a dump's stderr, say) reaches neither the kept results
// nor what Request returns to the terminal or the socket.
func TestJobErrorsAreRedacted(t *testing.T) {
	const value = "s3cr3t-Value-Qz81"
	store, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rd := &reconcile.Rendered{Host: &desired.Host{Name: "h"}, Secrets: desired.Secrets{"db_password": value},
		Projects: map[string]*desired.Project{}}
	j := &Runner{Host: "h", Store: store}
	j.Update(rd)
	j.record(Backup("db"), time.Now(), time.Second, errors.New("pg_dump: password "+value+" refused"), "")
	data, err := os.ReadFile(filepath.Join(store.Dir(), jobsFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), value) || strings.Contains(fmt.Sprint(j.Status()), value) {
		t.Errorf("the job's error kept the secret value:\n%s", data)
	}
	_, err = j.Request(context.Background(), rd, Request{Kind: RequestRestore, App: value})
	if err == nil || strings.Contains(err.Error(), value) {
		t.Errorf("Request's error = %v, want one without the value", err)
	}
}

// TestJobIdentityAppsNamedLikeJobs: apps named check, prune and all have
// results, metrics and last successes of their own, apart from the
// repository check's, across a restart too.
func TestJobIdentityAppsNamedLikeJobs(t *testing.T) {
	store, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	j := &Runner{Host: "h", Store: store}
	t0 := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	j.record(Check, t0, time.Second, nil, "read data subset 1/12")
	j.record(Backup("check"), t0, time.Second, errors.New("volume data: gone"), "")
	j.record(Backup("prune"), t0, time.Second, nil, "run r1")
	j.record(Backup("all"), t0, time.Second, nil, "run r2")

	m := j.metricsOf()
	for _, c := range []struct {
		kind, app string
		want      float64
	}{{"check", "", 1}, {"backup", "check", 0}, {"backup", "prune", 1}, {"backup", "all", 1}} {
		if got := testutil.ToFloat64(m.success.WithLabelValues(c.kind, c.app)); got != c.want {
			t.Errorf("syncd_job_success{kind=%q,app=%q} = %v, want %v", c.kind, c.app, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.success); n != 4 {
		t.Errorf("%d success series, want 4", n)
	}

	again := &Runner{Host: "h", Store: store}
	got := map[string]string{}
	for _, s := range again.Status() {
		got[s.Name] = s.Result
	}
	want := map[string]string{"check": "ok", "backup/check": "failed", "backup/prune": "ok", "backup/all": "ok"}
	if len(got) != len(want) {
		t.Errorf("status jobs = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("status job %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if _, ok := again.lastSuccess(Backup("check")); ok {
		t.Error("the failed backup of app check took the repository check's last success")
	}
	if last, ok := again.lastSuccess(Check); !ok || !last.Equal(t0.Add(time.Second)) {
		t.Errorf("check's last success = %v %v", last, ok)
	}
}

// TestJobsFileOfOldNamesMigrates: a jobs.json an older syncd wrote
// ("backup X", "backup check", "scan") keeps every last success under the
// typed IDs and is written back in the new form.
func TestJobsFileOfOldNamesMigrates(t *testing.T) {
	store, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	old := fmt.Sprintf(`[
  {"name": "backup check", "result": "ok", "last_success": %q},
  {"name": "backup db", "result": "failed", "error": "x", "last_success": %q},
  {"name": "scan", "result": "ok", "last_success": %q},
  {"name": "backup ../x", "result": "ok", "last_success": %q}
]`, t0.Format(time.RFC3339), t0.Add(time.Hour).Format(time.RFC3339), t0.Add(2*time.Hour).Format(time.RFC3339), t0.Format(time.RFC3339))
	file := filepath.Join(store.Dir(), jobsFile)
	if err := os.WriteFile(file, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	j := &Runner{Host: "h", Store: store}
	for id, want := range map[ID]time.Time{Check: t0, Backup("db"): t0.Add(time.Hour), Scan: t0.Add(2 * time.Hour)} {
		if last, ok := j.lastSuccess(id); !ok || !last.Equal(want) {
			t.Errorf("%s: last success %v %v, want %v", id, last, ok, want)
		}
	}
	if _, ok := j.lastSuccess(Backup("check")); ok {
		t.Error("the old repository check became the backup of an app named check")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range j.Status() {
		names = append(names, s.Name)
	}
	if strings.Join(names, " ") != "backup/db check scan" || strings.Contains(string(data), `"backup `) {
		t.Errorf("after the migration: status %v, jobs.json:\n%s", names, data)
	}
}

// TestLastDrillOutlivesBackups: a drill's verdict is kept on its app's
// backup job, redacted, across the backups that follow and a restart.
func TestLastDrillOutlivesBackups(t *testing.T) {
	const value = "s3cr3t-Value-Dr41"
	store, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	red := desired.Secrets{"db_password": value}.Redactor()
	j := &Runner{Host: "h", Store: store}
	t0 := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	j.recordDrill(red, "db", "r1", t0, 3*time.Second, backup.DrillResult{}, errors.New("verify[0] (db: psql): exited 1, want 0 (first line: password "+value+" refused)"))
	j.record(Backup("db"), t0.Add(time.Hour), time.Second, nil, "run r2: 2 of 2 snapshots, 12 B added")
	again := &Runner{Host: "h", Store: store}
	st := again.Status()
	if len(st) != 1 || st[0].Name != "backup/db" || st[0].Result != "ok" {
		t.Fatalf("status = %+v", st)
	}
	d := st[0].LastDrill
	if d == nil || d.Run != "r1" || d.Result != status.DrillFailed || d.DurationMS != 3000 || !strings.Contains(d.Detail, "verify[0]") {
		t.Errorf("last_drill = %+v, want r1 failed naming verify[0]", d)
	}
	if strings.Contains(fmt.Sprint(st), value) {
		t.Errorf("last_drill kept the secret value: %+v", d)
	}
}

// TestScheduledDrillRecordsItsVerdict: a scheduled drill that cannot even
// start is a failed last_drill of its app (nobody reads its error), and a
// drill's last success, for the scheduler's catch-up, is its app's last
// passing drill.
func TestScheduledDrillRecordsItsVerdict(t *testing.T) {
	store, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	j := &Runner{Host: "h", Store: store}
	j.Update(&reconcile.Rendered{Host: &desired.Host{Name: "h", Backup: &desired.HostBackup{}},
		Projects: map[string]*desired.Project{"db": {App: &desired.App{Name: "db",
			Backup: &desired.AppBackup{Volumes: []string{"x"}, Drill: &desired.Drill{Schedule: "@daily"}}}}}})
	sj := j.job(Drill("db"), "@daily")
	if err := sj.Run(context.Background()); err == nil {
		t.Fatal("a drill without an engine passed")
	}
	st := (&Runner{Host: "h", Store: store}).Status()
	if len(st) != 1 || st[0].Name != "backup/db" || st[0].LastDrill == nil || st[0].LastDrill.Result != status.DrillFailed ||
		!strings.Contains(st[0].LastDrill.Detail, "cannot run drills") {
		t.Fatalf("status after a drill that could not start = %+v", st)
	}
	if _, ok := j.lastSuccess(Drill("db")); ok {
		t.Error("a failed drill has a last success")
	}
	t0 := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	j.recordDrill(nil, "db", "r1", t0, 2*time.Second, backup.DrillResult{Detail: "2 checks passed"}, nil)
	if got, ok := j.lastSuccess(Drill("db")); !ok || !got.Equal(t0.Add(2*time.Second)) {
		t.Errorf("last success of a passed drill = %v %v, want %v", got, ok, t0.Add(2*time.Second))
	}
	if _, ok := j.lastSuccess(Drill("web")); ok {
		t.Error("an app never drilled has a last success")
	}
}

// TestDrillMetrics: the jobs' collectors (the agent's /metrics) carry each
// app's drill verdict, duration and last passing time; a failed drill
// sets success to 0 and keeps the last success.
func TestDrillMetrics(t *testing.T) {
	store, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	j := &Runner{Host: "h", Store: store}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(j.Collectors()...)
	t0 := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	j.recordDrill(nil, "db", "r1", t0, 3*time.Second, backup.DrillResult{}, nil)
	j.recordDrill(nil, "db", "r2", t0.Add(24*time.Hour), 5*time.Second, backup.DrillResult{}, errors.New("verify[0]: printed 0"))
	j.recordDrill(nil, "web", "r3", t0, 2*time.Second, backup.DrillResult{}, nil)
	want := fmt.Sprintf(`
# HELP syncd_drill_duration_seconds How long the app's last restore drill took.
# TYPE syncd_drill_duration_seconds gauge
syncd_drill_duration_seconds{app="db"} 5
syncd_drill_duration_seconds{app="web"} 2
# HELP syncd_drill_last_success_timestamp_seconds Unix time at which the app's last passing restore drill ended.
# TYPE syncd_drill_last_success_timestamp_seconds gauge
syncd_drill_last_success_timestamp_seconds{app="db"} %d
syncd_drill_last_success_timestamp_seconds{app="web"} %d
# HELP syncd_drill_success 1 when the app's last restore drill passed, 0 when it failed.
# TYPE syncd_drill_success gauge
syncd_drill_success{app="db"} 0
syncd_drill_success{app="web"} 1
`, t0.Add(3*time.Second).Unix(), t0.Add(2*time.Second).Unix())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"syncd_drill_success", "syncd_drill_duration_seconds", "syncd_drill_last_success_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}
