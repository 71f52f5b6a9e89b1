package scan

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// The scan tests' images: built FROM scratch from this repository's demo
// app; the vulnerable one also links testenv.VulnerableModule.
const (
	cleanTag      = "syncd-scantest:clean"
	vulnerableTag = "syncd-scantest:vulnerable"
)

// critical is the test DB's advisory against the vulnerable image.
var critical = testenv.CriticalAdvisory

// realScanner is a Scanner running the real trivy offline against a DB
// holding advs.
func realScanner(t *testing.T, advs ...testenv.Advisory) (*Scanner, string) {
	t.Helper()
	bin, cache := testenv.Trivy(t, advs...)
	testenv.Docker(t)
	return &Scanner{Trivy: bin, Env: testenv.TrivyEnv(cache), StateDir: t.TempDir(), Timeout: 2 * time.Minute}, cache
}

func imageOf(t *testing.T, tag string) Image {
	t.Helper()
	return Image{Ref: tag, ID: testenv.DockerCLI(t, "image", "inspect", "--format", "{{.ID}}", tag)}
}

func TestScanWithRealTrivy(t *testing.T) {
	s, _ := realScanner(t, critical)
	vuln := imageOf(t, testenv.VulnerableDemoImage(t, vulnerableTag))
	clean := imageOf(t, testenv.DemoImage(t, cleanTag, false))

	rep, err := s.Scan(context.Background(), vuln)
	if err != nil {
		t.Fatal(err)
	}
	want := Finding{ID: "CVE-2099-0001", Package: testenv.VulnerableModule, Installed: testenv.VulnerableVersion, Fixed: "0.5.1", Severity: "CRITICAL"}
	if !slices.Contains(rep.Findings, want) || rep.Cached {
		t.Errorf("vulnerable image: %+v", rep)
	}
	if rep.DB.UpdatedAt.IsZero() || len(rep.Warnings) != 0 {
		t.Errorf("DB %+v, warnings %q", rep.DB, rep.Warnings)
	}
	rep, err = s.Scan(context.Background(), clean)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 {
		t.Errorf("clean image: %+v", rep.Findings)
	}
}

// TestCacheByImageAndDB: an unchanged image and DB are not scanned again
// (a broken trivy in its place is never run), also by a new Scanner on
// the same state directory; a new DB scans again.
func TestCacheByImageAndDB(t *testing.T) {
	s, cache := realScanner(t, critical)
	vuln := imageOf(t, testenv.VulnerableDemoImage(t, vulnerableTag))
	if _, err := s.Scan(context.Background(), vuln); err != nil {
		t.Fatal(err)
	}
	// A trivy that fails if run: the cached result must come without it
	// (no timing asked: the broken binary is the proof).
	broken := &Scanner{Trivy: fakeTrivy(t, "exit 7"), Env: s.Env, StateDir: s.StateDir}
	rep, err := broken.Scan(context.Background(), vuln)
	if err != nil {
		t.Fatalf("the cached result was not used: %v", err)
	}
	if !rep.Cached || len(rep.Findings) != 1 {
		t.Errorf("cached scan: cached=%v findings=%v", rep.Cached, rep.Findings)
	}
	testenv.WriteTrivyDB(t, cache, time.Now().UTC(), critical)
	if _, err := broken.Scan(context.Background(), vuln); err == nil || !strings.Contains(err.Error(), "exit status 7") {
		t.Errorf("a new DB must scan again: %v", err)
	}
	rep, err = s.Scan(context.Background(), vuln)
	if err != nil || rep.Cached {
		t.Errorf("after a new DB: cached=%v err=%v", rep.Cached, err)
	}
	if _, err := os.Stat(filepath.Join(s.StateDir, "scans.json")); err != nil {
		t.Error(err)
	}
}

// TestAdmitWithRealTrivy: the gate refuses the vulnerable image naming the
// finding and its fix; an ignore entry lets it pass; one that ran out
// refuses again; the clean image passes.
func TestAdmitWithRealTrivy(t *testing.T) {
	s, _ := realScanner(t, critical)
	vuln := imageOf(t, testenv.VulnerableDemoImage(t, vulnerableTag))
	clean := imageOf(t, testenv.DemoImage(t, cleanTag, false))
	now := time.Now().UTC()
	ignore := func(until time.Time) []desired.ScanIgnore {
		return []desired.ScanIgnore{{ID: "CVE-2099-0001", Until: until.Format(time.DateOnly), Reason: "not reachable", File: "apps/web/app.yaml", Line: 4}}
	}
	policy := desired.ScanPolicy{RefuseSeverity: "CRITICAL", OnError: desired.ScanOnErrorAllow}
	images := map[string]string{vuln.Ref: vuln.ID}
	ctx := context.Background()

	err := s.Admit(ctx, "web", policy, images)
	var refused *RefusedError
	if !errors.As(err, &refused) || len(refused.Images) != 1 {
		t.Fatalf("vulnerable image: %v", err)
	}
	for _, w := range []string{"image syncd-scantest:vulnerable (", "refused: 1 finding(s) at or above CRITICAL", "CVE-2099-0001 (CRITICAL) in github.com/docker/go-units v0.5.0, fixed in 0.5.1", "scan.ignore"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("refusal lacks %q: %v", w, err)
		}
	}
	withIgnore := policy
	withIgnore.Ignore = ignore(now.AddDate(0, 1, 0))
	if err := s.Admit(ctx, "web", withIgnore, images); err != nil {
		t.Errorf("with an ignore entry: %v", err)
	}
	expired := policy
	expired.Ignore = ignore(now.AddDate(0, 0, -2))
	err = s.Admit(ctx, "web", expired, images)
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "the ignore entry for CVE-2099-0001 in apps/web/app.yaml:4 ran out on ") {
		t.Errorf("expired ignore entry: %v", err)
	}
	high := policy
	high.RefuseSeverity = "HIGH"
	if err := s.Admit(ctx, "web", high, map[string]string{clean.Ref: clean.ID}); err != nil {
		t.Errorf("clean image: %v", err)
	}
}

// TestScanRunningNewFindings: a finding is news once per image; a new DB
// with another advisory brings only that one.
func TestScanRunningNewFindings(t *testing.T) {
	s, cache := realScanner(t, critical)
	vuln := imageOf(t, testenv.VulnerableDemoImage(t, vulnerableTag))
	policy := desired.ScanPolicy{RefuseSeverity: "HIGH"}
	running := []Running{{Project: "web", Image: vuln, Policy: policy}, {Project: "web2", Image: vuln, Policy: policy}}
	ctx := context.Background()
	res := s.ScanRunning(ctx, running)
	if len(res) != 2 || res[0].Err != nil || !slices.Equal(IDs(res[0].New), []string{"CVE-2099-0001"}) || len(res[1].New) != 0 || !res[1].Verdict.Refused() {
		t.Fatalf("first: %+v", res)
	}
	if res := s.ScanRunning(ctx, running); len(res[0].New) != 0 || !res[0].Report.Cached {
		t.Errorf("second: new %v, cached %v", res[0].New, res[0].Report.Cached)
	}
	testenv.WriteTrivyDB(t, cache, time.Now().UTC(), critical,
		testenv.Advisory{ID: "CVE-2099-0002", Module: testenv.VulnerableModule, Fixed: "0.6.0", Severity: "HIGH"})
	res = s.ScanRunning(ctx, running)
	if !slices.Equal(IDs(res[0].New), []string{"CVE-2099-0002"}) || res[0].Report.Cached {
		t.Errorf("after a new advisory: new %v", IDs(res[0].New))
	}
	sum := Summarise(res)["web"]
	if len(sum) != 1 || sum[0].Counts["CRITICAL"] != 1 || sum[0].Counts["HIGH"] != 1 || !slices.Equal(sum[0].Refusing, []string{"CVE-2099-0001", "CVE-2099-0002"}) {
		t.Errorf("summary: %+v", sum)
	}
}

// TestCollector: the findings of the running images by severity, once per
// image, and how many violate their policy.
func TestCollector(t *testing.T) {
	s, _ := realScanner(t, critical)
	vuln := imageOf(t, testenv.VulnerableDemoImage(t, vulnerableTag))
	clean := imageOf(t, testenv.DemoImage(t, cleanTag, false))
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	policy := desired.ScanPolicy{RefuseSeverity: "CRITICAL"}
	s.ScanRunning(context.Background(), []Running{{Project: "a", Image: vuln, Policy: policy}, {Project: "b", Image: vuln, Policy: policy}, {Project: "c", Image: clean, Policy: policy}})
	want := `
# HELP syncd_scan_findings Vulnerabilities trivy found in the images that run, by severity (before the scan policy).
# TYPE syncd_scan_findings gauge
syncd_scan_findings{severity="CRITICAL"} 1
syncd_scan_findings{severity="HIGH"} 0
syncd_scan_findings{severity="LOW"} 0
syncd_scan_findings{severity="MEDIUM"} 0
syncd_scan_findings{severity="UNKNOWN"} 0
# HELP syncd_scan_refused_images Images that run that violate the scan policy of the project running them (an image counts once per project).
# TYPE syncd_scan_refused_images gauge
syncd_scan_refused_images 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "syncd_scan_findings", "syncd_scan_refused_images"); err != nil {
		t.Error(err)
	}
}
