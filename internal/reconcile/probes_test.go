package reconcile

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
)

// fakeVerifier fails the releases whose web image is bad-probe.
type fakeVerifier struct{ calls []string }

func (v *fakeVerifier) Verify(_ context.Context, p *desired.Project, redact func(string) string, timeout time.Duration) error {
	v.calls = append(v.calls, p.Name()+" "+images(p.Compose)+" "+timeout.String()+" "+strings.Join(probeNames(p), ","))
	if strings.Contains(images(p.Compose), "bad-probe") {
		return errors.New("project web did not pass its probes within 30s: probe home: status 500, want 200")
	}
	return nil
}

func probeNames(p *desired.Project) []string {
	var out []string
	for _, pr := range p.Probes {
		out = append(out, pr.Name)
	}
	return out
}

// A release that Compose calls healthy but whose probes fail is rolled back
// exactly as an unhealthy one, and its commit is held.
func TestProbeGateRollsBack(t *testing.T) {
	f := newFixture(t)
	f.write("apps/web/app.yaml", "after: [db]\nhealth_timeout: 30s\nprobes:\n  - name: home\n    http: {url: \"http://127.0.0.1:8080/\", status: 200}\n")
	v := &fakeVerifier{}
	f.r.Probes = v
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"db postgres:16.6-alpine 3m0s ", "web demoweb:1.0.0 30s home"}; !slices.Equal(v.calls, want) {
		t.Errorf("verified %q, want %q", v.calls, want)
	}
	f.eng.takeCalls()
	f.host("bad-probe", "hello")
	rep, err := f.sync()
	if !errors.Is(err, ErrReleaseFailed) || !strings.Contains(err.Error(), "probe home: status 500") {
		t.Fatalf("err = %v", err)
	}
	if got := results(rep); got != "db=unchanged web=rolled back" {
		t.Errorf("outcomes %s", got)
	}
	if calls := f.eng.takeCalls(); !slices.Equal(calls, []string{"apply web demoweb:1.0.0", "apply web demoweb:bad-probe"}) {
		t.Errorf("calls %v, want the release and the rollback", calls)
	}
	if rep, err := f.sync(); err != nil || results(rep) != "db=unchanged web=held" {
		t.Errorf("the failed commit again: %s %v", results(rep), err)
	}
}
