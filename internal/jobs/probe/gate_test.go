package probe

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
)

func TestGate(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch {
		case r.URL.Path == "/broken":
			http.Error(w, "broken release", http.StatusInternalServerError)
		case r.URL.Path == "/slow-start" && n < 3:
			http.Error(w, "starting", http.StatusServiceUnavailable)
		default:
			w.Write([]byte("ok"))
		}
	}))
	t.Cleanup(srv.Close)
	g := &Gate{Checker: &Checker{}, Interval: 10 * time.Millisecond}
	probe := func(path string, gate *bool) desired.Probe {
		return desired.Probe{Name: strings.Trim(path, "/"), Gate: gate, HTTP: &desired.HTTPProbe{URL: srv.URL + path, Status: 200}}
	}
	no := false

	if err := g.Verify(context.Background(), project("app", probe("/ok", nil), probe("/slow-start", nil)), nil, 5*time.Second); err != nil {
		t.Errorf("passing release: %v", err)
	}
	// A probe with gate: false, and a container probe (not gating by
	// default), do not hold a release.
	cont := desired.Probe{Name: "web", Container: &desired.ContainerProbe{Service: "web"}}
	if err := g.Verify(context.Background(), project("app", probe("/broken", &no), cont), nil, time.Second); err != nil {
		t.Errorf("non-gating probes gated: %v", err)
	}
	start := time.Now()
	err := g.Verify(context.Background(), project("app", probe("/broken", nil), probe("/ok", nil)), nil, 300*time.Millisecond)
	var fe *FailedError
	if !errors.As(err, &fe) || len(fe.Probes) != 1 || !strings.Contains(err.Error(), "project app did not pass its probes within 300ms: probe broken: GET "+srv.URL+"/broken: status 500, want 200") {
		t.Errorf("failing release: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the gate took %s for a 300ms timeout", d)
	}
}
