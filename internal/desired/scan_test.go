package desired

import (
	"strings"
	"testing"
	"time"
)

// TestScanProblems: each bad scan block is an error naming the file, the
// line and the field.
func TestScanProblems(t *testing.T) {
	cases := []struct {
		name    string
		changes map[string]string
		want    []string
	}{
		{"unknown severity in app.yaml", map[string]string{"apps/web/app.yaml": "scan:\n  refuse_severity: SEVERE\n"},
			[]string{`apps/web/app.yaml:2: error: scan.refuse_severity: "SEVERE" is not a severity; use one of UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL`}},
		{"lowercase severity, with a hint", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nscan:\n  refuse_severity: high\n"},
			[]string{`hosts/beta/host.yaml:3: error: scan.refuse_severity: "high" is not a severity`, `(did you mean "HIGH"?)`}},
		{"ignore without until", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nscan:\n  ignore:\n    - id: CVE-2024-1\n      reason: no exposure\n"},
			[]string{`hosts/beta/host.yaml:4: error: scan.ignore[0] (CVE-2024-1): until is required`}},
		{"ignore without reason", map[string]string{"apps/web/app.yaml": "scan:\n  ignore:\n    - id: CVE-2024-1\n      until: 2027-03-31\n"},
			[]string{`apps/web/app.yaml:3: error: scan.ignore[0] (CVE-2024-1): reason is required`}},
		{"ignore without id", map[string]string{"apps/web/app.yaml": "scan:\n  ignore:\n    - until: 2027-03-31\n      reason: r\n"},
			[]string{`apps/web/app.yaml:3: error: scan.ignore[0]: id is required`}},
		{"until not a date", map[string]string{"apps/web/app.yaml": "scan:\n  ignore:\n    - id: CVE-2024-1\n      until: next spring\n      reason: r\n"},
			[]string{`apps/web/app.yaml:4: error: scan.ignore[0] (CVE-2024-1): until: "next spring" is not a date; write YYYY-MM-DD`}},
		{"unknown on_error", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nscan:\n  on_error: block\n"},
			[]string{`hosts/beta/host.yaml:3: error: scan.on_error: "block" is not a policy; use allow`}},
		{"unknown field in an ignore entry", map[string]string{"apps/web/app.yaml": "scan:\n  ignore:\n    - id: CVE-2024-1\n      untill: 2027-03-31\n      reason: r\n"},
			[]string{`apps/web/app.yaml:4: error: unknown field "untill" in scan.ignore[0] (did you mean "until"?)`}},
		{"ignore_unfixed not a bool", map[string]string{"apps/web/app.yaml": "scan:\n  ignore_unfixed: sometimes\n"},
			[]string{`apps/web/app.yaml:2: error: scan.ignore_unfixed: expected true or false`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, ps := Load(writeRepo(t, with(baseRepo, c.changes)))
			text := ps.Error()
			for _, w := range c.want {
				if !strings.Contains(text, w) {
					t.Errorf("problems lack %q:\n%s", w, text)
				}
			}
			if !ps.HasErrors() {
				t.Errorf("no error:\n%s", text)
			}
		})
	}
}

// TestScanPolicyOf: the app's ignore entries add to the host's, its other
// fields override; an entry runs out at the end of its until day.
func TestScanPolicyOf(t *testing.T) {
	r := mustLoad(t, with(baseRepo, map[string]string{
		"hosts/alpha/host.yaml": "apps: [web, proxy]\nscan:\n  refuse_severity: CRITICAL\n  on_error: refuse\n  ignore:\n    - {id: CVE-1, until: 2027-03-31, reason: host-wide}\n",
		"apps/web/app.yaml":     "scan:\n  refuse_severity: HIGH\n  ignore_unfixed: true\n  ignore:\n    - id: CVE-2\n      until: \"2027-01-01\"\n      reason: web only\n",
	}))
	h := r.Hosts["alpha"]
	web, proxy := r.ScanPolicyOf(h, "web"), r.ScanPolicyOf(h, "proxy")
	if web.RefuseSeverity != "HIGH" || !web.IgnoreUnfixed || web.OnError != ScanOnErrorRefuse || len(web.Ignore) != 2 {
		t.Errorf("web policy = %+v", web)
	}
	if proxy.RefuseSeverity != "CRITICAL" || proxy.IgnoreUnfixed || len(proxy.Ignore) != 1 {
		t.Errorf("proxy policy = %+v", proxy)
	}
	if e := web.Ignore[1]; e.File != "apps/web/app.yaml" || e.Line != 5 || e.Until != "2027-01-01" {
		t.Errorf("web's own entry = %+v", e)
	}
	if e := web.Ignore[0]; e.File != "hosts/alpha/host.yaml" || e.Line != 6 {
		t.Errorf("host entry = %+v", e)
	}
	e := web.Ignore[0]
	if !e.Active(time.Date(2027, 3, 31, 23, 59, 0, 0, time.UTC)) || e.Active(time.Date(2027, 4, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("entry until 2027-03-31 must hold through that day and no longer")
	}
	if r := r.ScanPolicyOf(r.Hosts["beta"], "web"); r.OnError != ScanOnErrorAllow {
		t.Errorf("default on_error = %q, want allow", r.OnError)
	}
}
