package desired

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Probe fields take ${NAME} as compose files do: host vars over fleet
// defaults, secrets, SYNCD_HOST, defaults written in the reference.
func TestRenderProbesInterpolate(t *testing.T) {
	files := with(baseRepo, map[string]string{
		"apps/web/app.yaml": `after: [proxy]
probes:
  - name: home
    timeout: 3s
    failure_threshold: 5
    gate: false
    http:
      url: https://${SYNCD_HOST}.example.org/health?token=${api_token}
      body: ${GREETING}
  - name: db
    tcp: {address: "${DB_HOST:-db}:5432"}
  - name: web
    container: {service: web}
`,
		"hosts/beta/secrets.sops.yaml": "placeholder: the test hands values in\n",
	})
	p := renderOne(t, files, "beta", "web", Secrets{"api_token": "tok-123456789"})
	if len(p.Probes) != 3 {
		t.Fatalf("probes: %+v", p.Probes)
	}
	home, db, web := p.Probes[0], p.Probes[1], p.Probes[2]
	if home.HTTP.URL != "https://beta.example.org/health?token=tok-123456789" || home.HTTP.Body != "hello" {
		t.Errorf("home: %+v", *home.HTTP)
	}
	if db.TCP.Address != "db:5432" {
		t.Errorf("db: %+v", *db.TCP)
	}
	if home.TimeoutOr() != 3*time.Second || home.FailuresOr() != 5 || home.SuccessesOr() != DefaultSuccessThreshold || home.Gates() {
		t.Errorf("home settings: %+v", home)
	}
	if db.TimeoutOr() != DefaultProbeTimeout || !db.Gates() || web.Gates() || web.Kind() != "container" {
		t.Errorf("defaults: db gates %v, web gates %v", db.Gates(), web.Gates())
	}
	// The repository's own probes keep their ${NAME}s: one app, many hosts.
	r := mustLoad(t, files)
	if got := r.Apps["web"].Probes[0].HTTP.URL; !strings.Contains(got, "${api_token}") {
		t.Errorf("Load's probe was filled in: %s", got)
	}
}

func TestRenderProbesProblems(t *testing.T) {
	files := with(baseRepo, map[string]string{
		"apps/web/app.yaml": "after: [proxy]\nprobes:\n  - name: home\n    http:\n      url: https://${NOPE}/\n",
	})
	r := mustLoad(t, files)
	_, ps := r.Render(context.Background(), "beta", nil)
	want := `apps/web/app.yaml:5: error: probes[0] (home): http.url: variable ${NOPE} is not defined for host "beta"`
	if !strings.Contains(ps.Error(), want) {
		t.Errorf("problems lack %q:\n%v", want, ps)
	}

	// A URL that is only wrong once filled in: said for that host, with
	// the secret it holds named, never shown.
	files = with(baseRepo, map[string]string{
		"apps/web/app.yaml":            "after: [proxy]\nprobes:\n  - name: home\n    http:\n      url: http://${GREETING}:${api_token}/\n",
		"hosts/beta/secrets.sops.yaml": "placeholder: the test hands values in\n",
	})
	r = mustLoad(t, files)
	_, ps = r.Render(context.Background(), "beta", Secrets{"api_token": "99999-secret"})
	if !strings.Contains(ps.Error(), `apps/web/app.yaml:5: error: probes[0] (home): http.url for host "beta"`) || strings.Contains(ps.Error(), "99999-secret") {
		t.Errorf("problems: %v", ps)
	}
}
