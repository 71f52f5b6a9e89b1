package reconcile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/jobs/scan"
	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/state"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestScanGate, end to end with the real engine and the real trivy
// (offline, against a DB the test writes): a clean image deploys; a
// vulnerable one is refused before any container is made from it, the
// running release stays, and the commit is held; an ignore entry for the
// finding lets it deploy.
func TestScanGate(t *testing.T) {
	trivy, cache := testenv.Trivy(t, testenv.CriticalAdvisory)
	clean := testenv.DemoImage(t, "syncd-scantest:clean", false)
	vulnerable := testenv.VulnerableDemoImage(t, "syncd-scantest:vulnerable")
	app := testenv.ProjectName(t)
	host := fmt.Sprintf("gate%d", time.Now().UnixNano()%1e6)
	dir := t.TempDir()
	put := func(p, s string) {
		t.Helper()
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put("syncd.yaml", "defaults:\n  soak: 0s\n  health_timeout: 60s\n")
	put("apps/"+app+"/compose.yaml", "services:\n  web:\n    image: ${IMAGE}\n")
	setImage := func(img string) {
		put("hosts/"+host+"/host.yaml", fmt.Sprintf("apps: [%s]\nvars:\n  IMAGE: %s\nscan:\n  refuse_severity: CRITICAL\n  on_error: refuse\n", app, img))
	}
	eng, err := engine.New(context.Background(), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	store, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	scanner := &scan.Scanner{Trivy: trivy, Env: testenv.TrivyEnv(cache), StateDir: filepath.Join(store.Dir(), "scan"), Timeout: 2 * time.Minute}
	r := &Reconciler{Host: host, Engine: eng, Store: store, Gate: scanner}
	sync := func() (Report, string, error) {
		t.Helper()
		rev, err := source.Local{Dir: dir}.Revision()
		if err != nil {
			t.Fatal(err)
		}
		rep, err := r.Sync(context.Background(), Source{Dir: dir, Commit: rev})
		return rep, rev, err
	}
	// The image IDs the project's containers were created from.
	running := func() string {
		t.Helper()
		ids := testenv.DockerCLI(t, "ps", "-aq", "--filter", "label=com.docker.compose.project="+app)
		if ids == "" {
			return ""
		}
		return testenv.DockerCLI(t, append([]string{"inspect", "--format", "{{.Image}}"}, strings.Fields(ids)...)...)
	}
	idOf := func(tag string) string { return testenv.DockerCLI(t, "image", "inspect", "--format", "{{.ID}}", tag) }

	setImage(clean)
	if rep, _, err := sync(); err != nil || results(rep) != app+"=applied" {
		t.Fatalf("clean image: %s, %v", results(rep), err)
	}
	if got := running(); got != idOf(clean) {
		t.Fatalf("runs %q, want the clean image %s", got, idOf(clean))
	}

	setImage(vulnerable)
	rep, commit, err := sync()
	if !errors.Is(err, ErrImageRefused) || results(rep) != app+"=refused" {
		t.Fatalf("vulnerable image: %s, %v", results(rep), err)
	}
	var refused *scan.RefusedError
	if !errors.As(rep.Outcomes[0].Err, &refused) {
		t.Errorf("the outcome does not carry the refusal: %T", rep.Outcomes[0].Err)
	}
	for _, w := range []string{"image syncd-scantest:vulnerable (", "CVE-2099-0001 (CRITICAL) in github.com/docker/go-units v0.5.0, fixed in 0.5.1"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	if got := running(); got != idOf(clean) {
		t.Errorf("after the refusal the project runs %q, want the clean release %s: no container from the refused image", got, idOf(clean))
	}
	recs, _ := store.Projects()
	if rec := recs[app]; rec == nil || rec.FailedCommit != commit || !strings.Contains(rec.FailedError, "CVE-2099-0001") || rec.Services["web"].Image != clean {
		t.Errorf("record after the refusal: %+v", rec)
	}
	// The same commit again: held, nothing pulled or scanned.
	rep, _, err = sync()
	if results(rep) != app+"=held" || !strings.Contains(rep.Plan.String(), "CVE-2099-0001") {
		t.Errorf("same commit: %s, %v\n%s", results(rep), err, rep.Plan)
	}

	put("apps/"+app+"/app.yaml", "scan:\n  ignore:\n    - id: CVE-2099-0001\n      until: "+time.Now().AddDate(0, 1, 0).Format(time.DateOnly)+"\n      reason: the vulnerable code is not reachable\n")
	if rep, _, err := sync(); err != nil || results(rep) != app+"=applied" {
		t.Fatalf("with an ignore entry: %s, %v", results(rep), err)
	}
	if got := running(); got != idOf(vulnerable) {
		t.Errorf("with an ignore entry the project runs %q, want %s", got, idOf(vulnerable))
	}

	// A scan that cannot be made (a new DB, so no cached result, and no
	// trivy): on_error refuse keeps the new image out without holding
	// the commit; on_error allow lets it in.
	testenv.WriteTrivyDB(t, cache, time.Now().UTC(), testenv.CriticalAdvisory)
	scanner.Trivy = filepath.Join(t.TempDir(), "no-trivy")
	setImage(clean)
	rep, _, err = sync()
	if err == nil || results(rep) != app+"=failed" || !strings.Contains(err.Error(), "trivy not found") {
		t.Fatalf("no trivy, on_error refuse: %s, %v", results(rep), err)
	}
	if recs, _ := store.Projects(); recs[app].FailedCommit != "" {
		t.Errorf("a failed scan held the commit: %+v", recs[app])
	}
	if got := running(); got != idOf(vulnerable) {
		t.Errorf("after a failed scan the project runs %q, want what it ran", got)
	}
	put("hosts/"+host+"/host.yaml", fmt.Sprintf("apps: [%s]\nvars:\n  IMAGE: %s\nscan:\n  refuse_severity: CRITICAL\n  on_error: allow\n", app, clean))
	if rep, _, err := sync(); err != nil || results(rep) != app+"=applied" {
		t.Fatalf("no trivy, on_error allow: %s, %v", results(rep), err)
	}
	if got := running(); got != idOf(clean) {
		t.Errorf("on_error allow: the project runs %q, want the clean image", got)
	}
}

// fakeGate answers every Admit with err, and records what it was asked.
type fakeGate struct {
	err    error
	images []map[string]string
}

func (g *fakeGate) Admit(_ context.Context, _ string, _ desired.ScanPolicy, images map[string]string) error {
	g.images = append(g.images, images)
	return g.err
}

type temporary struct{ error }

func (temporary) Temporary() bool { return true }

// TestGateDecisions: a gate that cannot decide holds nothing (the next
// cycle asks again); images that already run are not new; without
// refuse_severity the gate is not asked.
func TestGateDecisions(t *testing.T) {
	f := newFixture(t)
	g := &fakeGate{}
	f.r.Gate = g
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if len(g.images) != 0 {
		t.Errorf("asked without refuse_severity: %v", g.images)
	}
	f.write("apps/web/app.yaml", "after: [db]\nscan:\n  refuse_severity: HIGH\n")
	f.host("1.0.0", "changed")
	f.eng.takeCalls()
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if len(g.images) != 1 || len(g.images[0]) != 0 {
		t.Errorf("an image that runs is not new: %v", g.images)
	}
	if calls := f.eng.takeCalls(); !slicesEqual(calls, []string{"apply web demoweb:1.0.0", "pull web demoweb:1.0.0"}) {
		t.Errorf("calls %v", calls)
	}
	g.err = temporary{errors.New("scan web: trivy timed out")}
	f.host("1.1.0", "changed")
	rep, err := f.sync()
	if err == nil || results(rep) != "db=unchanged web=failed" {
		t.Fatalf("gate undecided: %s, %v", results(rep), err)
	}
	if g.images[1]["demoweb:1.1.0"] == "" {
		t.Errorf("the new image was not asked about: %v", g.images[1])
	}
	recs, _ := f.r.Store.Projects()
	if recs["web"].FailedCommit != "" {
		t.Errorf("an undecided gate held the commit: %+v", recs["web"])
	}
	g.err = nil
	if rep, err := f.sync(); err != nil || results(rep) != "db=unchanged web=applied" {
		t.Errorf("next cycle: %s, %v", results(rep), err)
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }
