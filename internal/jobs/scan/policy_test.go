package scan

import (
	"slices"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/plan"
)

func TestJudge(t *testing.T) {
	now := time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)
	findings := []Finding{
		{ID: "CVE-C", Package: "a", Installed: "1.0", Fixed: "1.1", Severity: "CRITICAL"},
		{ID: "CVE-H", Package: "b", Installed: "2.0", Fixed: "2.1", Severity: "HIGH"},
		{ID: "CVE-U", Package: "c", Installed: "3.0", Severity: "CRITICAL"}, // no fix
		{ID: "CVE-L", Package: "d", Installed: "4.0", Fixed: "4.1", Severity: "LOW"},
	}
	ignore := func(id, until string) desired.ScanIgnore {
		return desired.ScanIgnore{ID: id, Until: until, Reason: "r", File: "hosts/h/host.yaml", Line: 7}
	}
	cases := []struct {
		name     string
		policy   desired.ScanPolicy
		refusing []string
		ignored  []string
		expired  []string
	}{
		{"no refuse_severity refuses nothing", desired.ScanPolicy{}, nil, nil, nil},
		{"CRITICAL", desired.ScanPolicy{RefuseSeverity: "CRITICAL"}, []string{"CVE-C", "CVE-U"}, nil, nil},
		{"HIGH takes in CRITICAL", desired.ScanPolicy{RefuseSeverity: "HIGH"}, []string{"CVE-C", "CVE-H", "CVE-U"}, nil, nil},
		{"ignore_unfixed", desired.ScanPolicy{RefuseSeverity: "CRITICAL", IgnoreUnfixed: true}, []string{"CVE-C"}, nil, nil},
		{"an active ignore entry", desired.ScanPolicy{RefuseSeverity: "CRITICAL", Ignore: []desired.ScanIgnore{ignore("CVE-C", "2027-06-01")}},
			[]string{"CVE-U"}, []string{"CVE-C"}, nil},
		{"an expired entry counts again", desired.ScanPolicy{RefuseSeverity: "CRITICAL", Ignore: []desired.ScanIgnore{ignore("CVE-C", "2027-05-31")}},
			[]string{"CVE-C", "CVE-U"}, nil, []string{"CVE-C"}},
		{"ids match without case", desired.ScanPolicy{RefuseSeverity: "CRITICAL", IgnoreUnfixed: true, Ignore: []desired.ScanIgnore{ignore("cve-c", "2030-01-01")}},
			nil, []string{"CVE-C"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Judge(c.policy, findings, now)
			var expired []string
			for _, e := range v.Expired {
				expired = append(expired, e.ID)
			}
			if got := IDs(v.Refusing); !slices.Equal(got, c.refusing) {
				t.Errorf("refusing = %v, want %v", got, c.refusing)
			}
			if got := IDs(v.Ignored); !slices.Equal(got, c.ignored) {
				t.Errorf("ignored = %v, want %v", got, c.ignored)
			}
			if !slices.Equal(expired, c.expired) {
				t.Errorf("expired = %v, want %v", expired, c.expired)
			}
			if v.Counts["CRITICAL"] != 2 || v.Counts["HIGH"] != 1 || v.Counts["LOW"] != 1 {
				t.Errorf("counts = %v: all findings, before the policy", v.Counts)
			}
			if v.Refused() != (len(c.refusing) > 0) {
				t.Errorf("Refused() = %v", v.Refused())
			}
		})
	}
}

func TestRunningOf(t *testing.T) {
	obs := plan.Observed{Projects: map[string]*plan.ObservedProject{
		"web":   {Name: "web", Owned: true, Containers: []plan.Container{{Image: "app:1", ImageID: "sha256:a"}, {Image: "app:1", ImageID: "sha256:a"}, {Image: "redis:7", ImageID: "sha256:r"}}},
		"db":    {Name: "db", Owned: true, Containers: []plan.Container{{Image: "pg:16", ImageID: "sha256:p"}, {Image: "gone", ImageID: ""}}},
		"other": {Name: "other", Owned: false, Containers: []plan.Container{{Image: "x:1", ImageID: "sha256:x"}}},
	}}
	got := RunningOf(obs, func(p string) desired.ScanPolicy { return desired.ScanPolicy{RefuseSeverity: p} })
	var s []string
	for _, r := range got {
		s = append(s, r.Project+" "+r.Image.Ref+" "+r.Image.ID+" "+r.Policy.RefuseSeverity)
	}
	want := []string{"db pg:16 sha256:p db", "web app:1 sha256:a web", "web redis:7 sha256:r web"}
	if !slices.Equal(s, want) {
		t.Errorf("RunningOf = %q, want %q", s, want)
	}
}
