package host

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

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/notify"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/state"
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

func TestJobSchedulesFollowTheRepository(t *testing.T) {
	rd := &reconcile.Rendered{
		Host: &desired.Host{Name: "h", Backup: &desired.HostBackup{Schedule: "0 2 * * *"}},
		Projects: map[string]*desired.Project{
			"db":    {App: &desired.App{Name: "db", Backup: &desired.AppBackup{Schedule: "@every 6h", Dumps: []desired.Dump{{}}}}},
			"files": {App: &desired.App{Name: "files", Backup: &desired.AppBackup{Volumes: []string{"x"}}}},
			"web":   {App: &desired.App{Name: "web"}},
		},
	}
	got := specs(rd)
	want := map[string]string{"backup db": "@every 6h", "backup files": "0 2 * * *", "backup check": DefaultCheckSchedule}
	if len(got) != len(want) {
		t.Fatalf("specs = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	rd.Host.Backup = nil
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
	j := &Jobs{Host: "h", Store: store, Notify: n, Changed: func() { changed++ }}

	t0 := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	j.record("backup db", t0, time.Second, nil, "run r1: 2 of 2 snapshots, 1.0 MiB added")
	j.record("backup db", t0.Add(24*time.Hour), time.Second, errors.New("dump db.sql: the command exited 3\nmore"), "")
	j.record("backup db", t0.Add(48*time.Hour), time.Second, errors.New("dump db.sql: the command exited 3"), "")

	if got := testutil.ToFloat64(j.metricsOf().success.WithLabelValues("backup db")); got != 0 {
		t.Errorf("syncd_job_success after a failure = %v, want 0", got)
	}
	again := &Jobs{Host: "h", Store: store}
	st := again.Status()
	if len(st) != 1 || st[0].Result != "failed" || st[0].Error != "dump db.sql: the command exited 3" || !st[0].LastSuccess.Equal(t0.Add(time.Second)) {
		t.Fatalf("status after a restart = %+v", st)
	}
	if last, ok := again.lastSuccess("backup db"); !ok || !last.Equal(t0.Add(time.Second)) {
		t.Errorf("lastSuccess = %v %v", last, ok)
	}

	j.record("backup db", t0.Add(72*time.Hour), time.Second, nil, "run r4: 2 of 2 snapshots, 12 B added")
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.list()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	msgs := sink.list()
	if len(msgs) != 2 || !strings.Contains(msgs[0], "backup db failed") || !strings.Contains(msgs[1], "works again") {
		t.Errorf("notifications = %q, want one failure and one recovery", msgs)
	}
	if changed != 4 {
		t.Errorf("Changed called %d times, want 4", changed)
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
	j := &Jobs{Host: "h", Store: store}
	j.Update(rd)
	j.record("backup db", time.Now(), time.Second, errors.New("pg_dump: password "+value+" refused"), "")
	data, err := os.ReadFile(filepath.Join(store.Dir(), jobsFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), value) || strings.Contains(fmt.Sprint(j.Status()), value) {
		t.Errorf("the job's error kept the secret value:\n%s", data)
	}
	_, err = j.Request(context.Background(), rd, map[string]string{"job": "restore", "app": value})
	if err == nil || strings.Contains(err.Error(), value) {
		t.Errorf("Request's error = %v, want one without the value", err)
	}
}
