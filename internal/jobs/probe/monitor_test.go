package probe

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/syncd-dev/syncd/internal/desired"
)

// clock is a time the test moves.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func project(name string, probes ...desired.Probe) *desired.Project {
	return &desired.Project{App: &desired.App{Name: name}, Probes: probes}
}

type recorder struct{ events []Event }

func (r *recorder) on(e Event) { r.events = append(r.events, e) }
func (r *recorder) kinds() []string {
	var out []string
	for _, e := range r.events {
		out = append(out, string(e.Kind)+" "+e.Key())
	}
	return out
}

// switchable serves 200 or 500 as the test says.
func switchable(t *testing.T) (*httptest.Server, *atomic.Bool) {
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv, &failing
}

func newMonitor(t *testing.T, dir string, c *clock, rec *recorder, containers Containers, projects ...*desired.Project) *Monitor {
	t.Helper()
	opts := Options{StateDir: dir, Now: c.now, OnEvent: rec.on}
	if containers != nil {
		opts.Containers = containers
	}
	m, err := NewMonitor(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Set(projects, nil); err != nil {
		t.Fatal(err)
	}
	return m
}

func tick(t *testing.T, m *Monitor, c *clock, n int, every time.Duration) {
	t.Helper()
	for range n {
		if err := m.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		c.add(every)
	}
}

// Probes run on their schedule, by the injected clock: a tick before the
// next time runs nothing.
func TestMonitorSchedule(t *testing.T) {
	srv, _ := switchable(t)
	c := &clock{t: t0}
	rec := &recorder{}
	p := desired.Probe{Name: "home", Schedule: "@every 1m", HTTP: &desired.HTTPProbe{URL: srv.URL}}
	m := newMonitor(t, t.TempDir(), c, rec, nil, project("app", p))
	tick(t, m, c, 10, 10*time.Second) // 100 seconds: runs at 0 and 60
	if got := m.Snapshots()[0].Checks; got != 2 {
		t.Errorf("checks in 100s of @every 1m: %d", got)
	}
}

// State survives a restart: an outage reported before it is not reported
// again after it, and its recovery still is.
func TestMonitorRestartDoesNotReAlert(t *testing.T) {
	srv, failing := switchable(t)
	dir := t.TempDir()
	c := &clock{t: t0}
	rec := &recorder{}
	p := desired.Probe{Name: "home", Schedule: "@every 1m", HTTP: &desired.HTTPProbe{URL: srv.URL}}
	m := newMonitor(t, dir, c, rec, nil, project("app", p))
	tick(t, m, c, 2, time.Minute)
	failing.Store(true)
	tick(t, m, c, 4, time.Minute)
	if got := rec.kinds(); !slices.Equal(got, []string{"probe_down app/home"}) {
		t.Fatalf("before the restart: %v", got)
	}

	// A restart (a new Monitor on the same state directory), still failing.
	rec2 := &recorder{}
	m2 := newMonitor(t, dir, c, rec2, nil, project("app", p))
	tick(t, m2, c, 5, time.Minute)
	if len(rec2.events) != 0 {
		t.Errorf("the restart alerted again: %v", rec2.kinds())
	}
	s := m2.Snapshots()[0]
	if s.Status != Down || s.Since != t0.Add(4*time.Minute) || len(s.Results) != 11 || !strings.Contains(s.LastError, "status 503") {
		t.Errorf("state after the restart: %s since %v, %d results, %q", s.Status, s.Since, len(s.Results), s.LastError)
	}
	failing.Store(false)
	tick(t, m2, c, 2, time.Minute)
	if got := rec2.kinds(); !slices.Equal(got, []string{"probe_up app/home"}) {
		t.Errorf("recovery after the restart: %v", got)
	}
	// The state file is the state directory's, private, and written whole.
	st, err := os.Stat(filepath.Join(dir, StateFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v %v", st, err)
	}
}

// A state file that is not JSON is set aside: probing goes on afresh.
func TestMonitorCorruptState(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, StateFile), []byte("{not json"), 0o600)
	srv, _ := switchable(t)
	c := &clock{t: t0}
	m := newMonitor(t, dir, c, &recorder{}, nil, project("app", desired.Probe{Name: "home", HTTP: &desired.HTTPProbe{URL: srv.URL}}))
	tick(t, m, c, 1, time.Minute)
	if s := m.Snapshots()[0]; s.Status != Up {
		t.Errorf("after a corrupt state file: %+v", s)
	}
}

// When the engine is unreachable, one host alert goes out instead of one
// per app; when it answers again, the apps still down are reported.
func TestMonitorEngineDownHoldsAppAlerts(t *testing.T) {
	f := &fakeContainers{health: map[string]string{"a/web": "healthy", "b/web": "healthy", "c/web": "healthy"}}
	srv, failing := switchable(t)
	c := &clock{t: t0}
	rec := &recorder{}
	cp := desired.Probe{Name: "web", Container: &desired.ContainerProbe{Service: "web"}}
	hp := desired.Probe{Name: "home", HTTP: &desired.HTTPProbe{URL: srv.URL}}
	m := newMonitor(t, t.TempDir(), c, rec, f, project("a", cp, hp), project("b", cp), project("c", cp))
	tick(t, m, c, 2, time.Minute)

	f.down = errors.New("Cannot connect to the Docker daemon")
	failing.Store(true) // the engine's containers serve nothing either
	queries := f.queries
	tick(t, m, c, 5, time.Minute)
	if got := rec.kinds(); !slices.Equal(got, []string{"engine_down engine"}) {
		t.Fatalf("engine down: %v", got)
	}
	if f.queries != queries {
		t.Errorf("container probes asked an engine that does not answer %d times", f.queries-queries)
	}
	for _, s := range m.Snapshots() {
		if s.Status != Down {
			t.Errorf("%s/%s is %s while the engine is down; it is still evaluated", s.Project, s.Probe, s.Status)
		}
	}

	// The engine is back; b's container is unhealthy, the rest recovered.
	f.down = nil
	f.health["b/web"] = "unhealthy"
	failing.Store(false)
	rec.events = nil
	tick(t, m, c, 3, time.Minute)
	if got := rec.kinds(); !slices.Equal(got, []string{"engine_up engine", "probe_down b/web"}) {
		t.Errorf("engine back: %v", got)
	}
}

// Set forgets the probes a project no longer has.
func TestMonitorSetForgets(t *testing.T) {
	srv, _ := switchable(t)
	c := &clock{t: t0}
	dir := t.TempDir()
	a := desired.Probe{Name: "a", HTTP: &desired.HTTPProbe{URL: srv.URL}}
	b := desired.Probe{Name: "b", TCP: &desired.TCPProbe{Address: strings.TrimPrefix(srv.URL, "http://")}}
	m := newMonitor(t, dir, c, &recorder{}, nil, project("app", a, b))
	tick(t, m, c, 1, time.Minute)
	m.Set([]*desired.Project{project("app", a)}, nil)
	tick(t, m, c, 1, time.Minute)
	data, _ := os.ReadFile(filepath.Join(dir, StateFile))
	if strings.Contains(string(data), `"app/b"`) || len(m.Snapshots()) != 1 {
		t.Errorf("state keeps a removed probe:\n%s", data)
	}
}

func TestMonitorMetrics(t *testing.T) {
	srv, failing := switchable(t)
	c := &clock{t: t0}
	m := newMonitor(t, t.TempDir(), c, &recorder{}, &fakeContainers{health: map[string]string{"app/web": "healthy"}},
		project("app", desired.Probe{Name: "home", HTTP: &desired.HTTPProbe{URL: srv.URL}}, desired.Probe{Name: "web", Container: &desired.ContainerProbe{Service: "web"}}))
	tick(t, m, c, 1, time.Minute)
	failing.Store(true)
	tick(t, m, c, 3, time.Minute)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	want := `
# HELP syncd_probe_up 1 when the probe is up, 0 when it is down (after its thresholds); absent until its first check.
# TYPE syncd_probe_up gauge
syncd_probe_up{kind="container",probe="web",project="app"} 1
syncd_probe_up{kind="http",probe="home",project="app"} 0
# HELP syncd_probe_checks_total Checks of the probe since its state began, by result: ok or failed.
# TYPE syncd_probe_checks_total counter
syncd_probe_checks_total{kind="container",probe="web",project="app",result="failed"} 0
syncd_probe_checks_total{kind="container",probe="web",project="app",result="ok"} 4
syncd_probe_checks_total{kind="http",probe="home",project="app",result="failed"} 3
syncd_probe_checks_total{kind="http",probe="home",project="app",result="ok"} 1
# HELP syncd_probe_engine_up 1 when the Docker engine answered the probes' last ping, else 0.
# TYPE syncd_probe_engine_up gauge
syncd_probe_engine_up 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "syncd_probe_up", "syncd_probe_checks_total", "syncd_probe_engine_up"); err != nil {
		t.Error(err)
	}
}
