package runtime

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/jobs/probe"
	"github.com/syncd-dev/syncd/internal/notify"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// notifierTo is a running Notifier that sends to every sink of
// testenv.NotifySinks through the real shoutrrr services.
func notifierTo(t *testing.T) (*notify.Notifier, []*testenv.NotifySink) {
	sinks := testenv.NotifySinks(t)
	var urls []notify.Sink
	for _, s := range sinks {
		urls = append(urls, notify.Sink{URL: s.URL})
	}
	n := notify.New(notify.Config{Sinks: urls, MinBackoff: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go n.Run(ctx)
	return n, sinks
}

func wantBody(t *testing.T, s *testenv.NotifySink, what string, parts ...string) {
	t.Helper()
	got := s.Next(t, what)
	for _, p := range parts {
		if !strings.Contains(got.Body, p) {
			t.Errorf("%s: the body of %s does not say %q: %q", s.Service, what, p, got.Body)
		}
	}
}

// TestProbeNotificationsStandAlone: a real probe monitor checking a
// loopback target that refuses connections, then answers, notifies
// through ProbeNotifier; every sink's body (the generic plain one has no
// title) names the host, the app, the probe and what happened, in correct
// number.
func TestProbeNotificationsStandAlone(t *testing.T) {
	n, sinks := notifierTo(t)
	target := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	addr := target.Listener.Addr().String()
	target.Listener.Close() // refused until started on the same address
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	m, err := probe.NewMonitor(probe.Options{StateDir: t.TempDir(), Now: func() time.Time { return now }, OnEvent: ProbeNotifier("web-01", n)})
	if err != nil {
		t.Fatal(err)
	}
	p := desired.Probe{Name: "healthz", Schedule: "@every 1m", FailureThreshold: 2, SuccessThreshold: 1,
		HTTP: &desired.HTTPProbe{URL: "http://" + addr + "/healthz"}}
	if err := m.Set([]*desired.Project{{App: &desired.App{Name: "nextcloud"}, Probes: []desired.Probe{p}}}, nil); err != nil {
		t.Fatal(err)
	}
	tick := func(k int) {
		for range k {
			if err := m.Tick(t.Context()); err != nil {
				t.Fatal(err)
			}
			now = now.Add(time.Minute)
		}
	}
	tick(3)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the target's port was taken meanwhile: %v", err)
	}
	target.Listener = ln
	target.Start()
	defer target.Close()
	tick(2)
	for _, s := range sinks {
		wantBody(t, s, "the probe failure", "probe healthz of app nextcloud on host web-01 failed 2 checks in a row: ", "/healthz", "connection refused")
		wantBody(t, s, "the probe recovery", "probe healthz of app nextcloud on host web-01 recovered: 1 check passed")
	}
}

// TestReleaseNotificationsStandAlone: a release rolled back, one taken
// down and a failed cycle, as a cycle's report tells them, reach every
// sink with a body that names the host, the app and the commit.
func TestReleaseNotificationsStandAlone(t *testing.T) {
	n, sinks := notifierTo(t)
	r := &Runtime{host: "web-01", notify: n}
	const commit = "0123456789abcdef0123456789abcdef01234567"
	r.events(reconcile.Report{Commit: commit, Outcomes: []reconcile.Outcome{
		{Project: "nextcloud", Result: reconcile.RolledBack, Err: errors.New("service app: healthcheck failed 3 times")},
		{Project: "wiki", Result: reconcile.TakenDown, Err: errors.New("probe home: 2 checks failed")},
	}}, errors.New("2 projects failed"))
	for _, s := range sinks {
		wantBody(t, s, "the failed cycle", "the cycle at commit 0123456789ab on host web-01 failed: 2 projects failed")
		wantBody(t, s, "the rollback", "release of commit 0123456789ab of app nextcloud on host web-01 failed and was rolled back: service app: healthcheck failed 3 times")
		wantBody(t, s, "the take-down", "release of commit 0123456789ab of app wiki on host web-01 failed and was taken down: probe home: 2 checks failed")
	}
}
