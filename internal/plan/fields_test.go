package plan

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// A host converged on a desired state has nothing to do for that state:
// what syncd diff builds on.
func TestConvergedIsNoChange(t *testing.T) {
	files, _ := filepath.Glob("testdata/cases/*.json")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c goldenCase
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatal(err)
		}
		o, mem := Converged(c.Desired)
		if p := Make(c.Desired, o, mem); p.Changes() || p.Drift() > 0 {
			t.Errorf("%s: converged on its own desired state, the plan still changes:\n%s", f, p)
		}
	}
}

func TestFieldChangeString(t *testing.T) {
	for _, tc := range []struct {
		c    FieldChange
		want string
	}{
		{FieldChange{Path: "environment.A", Before: "1", After: "2", Kind: "changed"}, "environment.A: 1 → 2"},
		{FieldChange{Path: "environment.S", Before: "<secret:S>", After: "<secret:S>", Kind: "changed"}, "environment.S: <secret:S> changed"},
		{FieldChange{Path: "ports[80:80/tcp]", After: "80:80/tcp", Kind: "added"}, "ports[80:80/tcp] added"},
		{FieldChange{Path: "volumes[volume data:/data]", Before: "volume data:/data", Kind: "removed"}, "volumes[volume data:/data] removed"},
		{FieldChange{Path: "user", Before: "1000", Kind: "removed"}, "user removed (was 1000)"},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.c, got, tc.want)
		}
	}
}
