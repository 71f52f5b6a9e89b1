package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
	"github.com/syncd-dev/syncd/internal/status"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestScanGateAndCommand, end to end with the real engine and the real
// trivy offline: `syncd sync` refuses a vulnerable image and says which
// finding and which fix; `syncd plan` shows the commit held with it; an
// ignore entry lets it deploy; `syncd scan` prints the table and exits 1
// once the entry is gone, 0 while it holds.
func TestScanGateAndCommand(t *testing.T) {
	trivy, cache := testenv.Trivy(t, testenv.CriticalAdvisory)
	image := testenv.VulnerableDemoImage(t, "syncd-scantest:vulnerable")
	for _, kv := range testenv.TrivyEnv(cache) {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "TRIVY_") {
			t.Setenv(k, v)
		}
	}
	var b [3]byte
	rand.Read(b[:])
	host := "s" + hex.EncodeToString(b[:])
	app := testenv.ProjectName(t)
	repo, stateDir := t.TempDir(), t.TempDir()
	put := func(p, s string) {
		t.Helper()
		full := filepath.Join(repo, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put("syncd.yaml", "defaults:\n  soak: 0s\n")
	put("apps/"+app+"/compose.yaml", "services:\n  web:\n    image: "+image+"\n")
	put("hosts/"+host+"/host.yaml", "apps: ["+app+"]\nscan:\n  refuse_severity: CRITICAL\n")
	syncd := func(args ...string) (int, string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args = append(args, "--repo", repo, "--host", host, "--state-dir", stateDir, "--trivy", trivy)
		code := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	ignore := "scan:\n  ignore:\n    - id: CVE-2099-0001\n      until: " + time.Now().AddDate(0, 0, 30).Format(time.DateOnly) + "\n      reason: not reachable from the network\n"

	code, out, errOut := syncd("sync", "--status-branch", "")
	t.Logf("syncd sync:\n%s%s", out, errOut)
	if code != exitFailure {
		t.Fatalf("sync of a vulnerable image: exit %d\n%s%s", code, out, errOut)
	}
	for _, w := range []string{"image refused", "image syncd-scantest:vulnerable (", "CVE-2099-0001 (CRITICAL) in github.com/docker/go-units v0.5.0, fixed in 0.5.1"} {
		if !strings.Contains(out+errOut, w) {
			t.Errorf("sync output lacks %q:\n%s%s", w, out, errOut)
		}
	}
	if ids := testenv.DockerCLI(t, "ps", "-aq", "--filter", "label=com.docker.compose.project="+app); ids != "" {
		t.Errorf("containers exist from the refused image: %s", ids)
	}
	if code, out, errOut := syncd("plan"); code != exitOK || !strings.Contains(out, "CVE-2099-0001") || !strings.Contains(out, "waiting for a newer commit") {
		t.Errorf("plan after the refusal: exit %d\n%s%s", code, out, errOut)
	}

	put("apps/"+app+"/app.yaml", ignore)
	if code, out, errOut := syncd("sync", "--status-branch", ""); code != exitOK {
		t.Fatalf("sync with an ignore entry: exit %d\n%s%s", code, out, errOut)
	}
	doc, err := status.ReadLocal(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Projects) != 1 || len(doc.Projects[0].Scan) != 1 {
		t.Fatalf("status without a scan summary: %+v", doc.Projects)
	}
	if sum := doc.Projects[0].Scan[0]; sum.Counts["CRITICAL"] != 1 || len(sum.Refused) != 0 || sum.DB != time.Now().UTC().Add(-time.Hour).Format(time.DateOnly) || sum.ID == "" || sum.Ref != image {
		t.Errorf("scan summary %+v: want 1 CRITICAL, none refused (ignored), the DB's date", sum)
	}
	code, out, errOut = syncd("scan")
	if code != exitOK || !strings.Contains(out, "PROJECT") || !strings.Contains(out, app) {
		t.Errorf("scan with the ignore entry: exit %d\n%s%s", code, out, errOut)
	}
	if row := rowOf(out, app); !strings.Contains(row, "syncd-scantest:vulnerable (") || len(strings.Fields(row)) < 8 || strings.Fields(row)[3] != "1" {
		t.Errorf("row %q: want the image, 1 CRITICAL, not refused", row)
	}

	os.Remove(filepath.Join(repo, "apps", app, "app.yaml"))
	code, out, errOut = syncd("scan", "--app", app)
	t.Logf("syncd scan:\n%s%s", out, errOut)
	if code != exitFailure || !strings.Contains(rowOf(out, app), "yes: CVE-2099-0001") || !strings.Contains(out, "fixed in 0.5.1") {
		t.Errorf("scan without the ignore entry: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := syncd("scan", "--app", "nosuchapp"); code != exitFailure || !strings.Contains(errOut, `does not run app "nosuchapp"`) {
		t.Errorf("scan of an app the host does not run: exit %d: %s", code, errOut)
	}
}

func rowOf(out, word string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, word) {
			return l
		}
	}
	return ""
}

// TestAgentE2EScheduledScanNewFindings: an image deployed under an ignore
// entry runs on; once the entry is gone, the agent's scheduled scan finds
// its CRITICAL finding in the running image: the scan job fails in the
// status, and one new_findings notification names the finding and its fix,
// once, however often the scan runs. The schedule is every minute, the
// most often validate allows a scan (the first passing scan is the one
// after the first deploy).
func TestAgentE2EScheduledScanNewFindings(t *testing.T) {
	trivy, cache := testenv.Trivy(t, testenv.CriticalAdvisory)
	image := testenv.VulnerableDemoImage(t, "syncd-scantest:vulnerable")
	for _, kv := range testenv.TrivyEnv(cache) {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "TRIVY_") {
			t.Setenv(k, v)
		}
	}
	var mu sync.Mutex
	var got []string
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	}))
	defer sink.Close()
	f := newFleetOf(t)
	app := testenv.ProjectName(t)
	f.write("apps/"+app+"/compose.yaml", "services:\n  web:\n    image: "+image+"\n")
	f.apps = append(f.apps, app)
	f.secrets["notify_url"] = "generic://" + strings.TrimPrefix(sink.URL, "http://") + "/hook?template=json&disabletls=yes"
	f.extraCfg = "notify:\n  - url_secret: notify_url\n    events: [new_findings]\n"
	until := time.Now().AddDate(0, 0, 30).Format(time.DateOnly)
	f.hostCfg = "scan:\n  schedule: \"* * * * *\"\n  refuse_severity: CRITICAL\n  ignore:\n    - {id: CVE-2099-0001, until: " + until + ", reason: accepted until the fix ships}\n"
	f.commit()
	a := startAgent(t, f, f.repo, "--trivy", trivy)
	scanJob := func(result string) func(status.Host) bool {
		return func(h status.Host) bool {
			for _, j := range h.Jobs {
				if j.Name == "scan" && j.Result == result {
					return true
				}
			}
			return false
		}
	}
	waitStatus(t, f, a, "a passing scheduled scan", scanJob("ok"))

	// The accepted risk is withdrawn: the running image now violates.
	f.hostCfg = "scan:\n  schedule: \"* * * * *\"\n  refuse_severity: CRITICAL\n"
	f.commit()
	h := waitStatus(t, f, a, "the scheduled scan failing on the running image", scanJob("failed"))
	var first time.Time
	for _, j := range h.Jobs {
		if j.Name == "scan" {
			first = j.At
			if !strings.Contains(j.Error, "1 running images have findings") {
				t.Errorf("scan job error = %q", j.Error)
			}
		}
	}
	// Another scan runs; the finding stays news of the first only.
	waitStatus(t, f, a, "another scan", func(h status.Host) bool {
		for _, j := range h.Jobs {
			if j.Name == "scan" && j.At.After(first.Add(3*time.Second)) {
				return true
			}
		}
		return false
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || !strings.Contains(got[0], "CVE-2099-0001") || !strings.Contains(got[0], "fixed in") {
		t.Errorf("notifications = %q, want one new_findings naming CVE-2099-0001 and its fix", got)
	}
	secretstest.AssertNoLeak(t, "notifications", strings.Join(got, "\n"), f.secrets["api_token"], f.secrets["db_password"])
}

// TestScanImageMadeOfASecretIsRedacted: `syncd scan` shows an image whose
// reference is made of a host secret redacted with the host's key, and as
// its image ID alone without it; the value shows in neither.
func TestScanImageMadeOfASecretIsRedacted(t *testing.T) {
	trivy, cache := testenv.Trivy(t)
	for _, kv := range testenv.TrivyEnv(cache) {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "TRIVY_") {
			t.Setenv(k, v)
		}
	}
	f := newFleet(t)
	private := testenv.DemoImage(t, "x9s-private/scan-image:2.7.1", false)
	f.secrets["web_image"] = private
	app := testenv.ProjectName(t)
	f.apps = append(f.apps, app)
	f.write("apps/"+app+"/app.yaml", "deviations:\n  - rule: secret-in-env\n    reason: the image path is private\n")
	f.write("apps/"+app+"/compose.yaml", "services:\n  web:\n    image: ${web_image}\n"+healthy)
	f.commit()
	f.mustSync()
	// f.syncd fails the test on any output that holds a secret value.
	code, out := f.syncd("scan", "--trivy", trivy)
	if code != 0 || !strings.Contains(out, "<redacted> (") {
		t.Errorf("scan with the host's key: exit %d\n%s", code, out)
	}
	code, out = f.syncd("scan", "--trivy", trivy, "--age-key", filepath.Join(t.TempDir(), "none"))
	if code != 0 || strings.Contains(out, "x9s-private") || !strings.Contains(out, app) {
		t.Errorf("scan without a key: exit %d\n%s", code, out)
	}
}
