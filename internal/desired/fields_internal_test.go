package desired

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// fieldsOf renders a project whose settings hold s (as its loaded model
// holds it) and returns its service's fields.
func fieldsOf(t *testing.T, s string) plan.Fields {
	t.Helper()
	e := strings.ReplaceAll(s, "$", "$$")
	doc, _ := json.Marshal(map[string]any{"services": map[string]any{"app": map[string]any{
		"image":       "busybox:1.37.0",
		"environment": map[string]any{"X": e},
		"labels":      map[string]any{"l": e},
		"command":     []any{"sh", "-c", e},
		"healthcheck": map[string]any{"test": []any{"CMD", e}},
	}}})
	dir := t.TempDir()
	for p, content := range map[string]string{"apps/app/compose.yaml": string(doc), "hosts/h/host.yaml": "apps: [app]\n"} {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, ps := Load(dir)
	if ps.HasErrors() {
		t.Fatalf("Load: %v", ps)
	}
	r.ProjectsDir = filepath.Join(t.TempDir(), "projects")
	projects, ps := r.Render(context.Background(), "h", nil)
	if ps.HasErrors() {
		t.Fatalf("%q: Render: %v", s, ps)
	}
	if got := *projects[0].Compose.Services["app"].Environment["X"]; got != s {
		t.Fatalf("%q: loaded as %q", s, got)
	}
	fields, err := projects[0].Fields(nil, []byte("k"))
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return fields["app"]
}

// settingPaths are where fieldsOf puts the string.
var settingPaths = []string{"environment.X", "labels.l", "command.2", "healthcheck.test.1"}

// TestFieldsHoldEveryString: the fields `syncd diff` compares read each
// string of the loaded project back exactly (shown as render shows it,
// $ as $$), and two different strings never compare equal.
func TestFieldsHoldEveryString(t *testing.T) {
	f := flattener{key: []byte("k")}
	seen := map[plan.Field]string{}
	var prev plan.Fields
	prevS := ""
	strs := testenv.YAMLStrings(21, 150)
	strs = append(strs, "\njobmanager.rpc.address: jobmanager\n", `\njobmanager.rpc.address: jobmanager\n`, "a\nb", `a\nb`, "a\r\nb", "a\nb\n", "a\nb")
	for i, s := range strs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			fields := fieldsOf(t, s)
			want := f.field(strings.ReplaceAll(s, "$", "$$"))
			for _, p := range settingPaths {
				if got, ok := fields[p]; !ok || got != want {
					t.Errorf("%q: field %s = %+v, want %+v", s, p, got, want)
				}
			}
			if other, dup := seen[fields["environment.X"]]; dup && other != s {
				t.Errorf("%q and %q compare as the same setting %+v", s, other, fields["environment.X"])
			}
			seen[fields["environment.X"]] = s
			// And the plan's comparison sees the change from the last one.
			if prev != nil && prevS != s && !slices.ContainsFunc(plan.Compare(prev, fields), func(c plan.FieldChange) bool { return c.Path == "environment.X" }) {
				t.Errorf("%q → %q: no change of environment.X in %v", prevS, s, plan.Compare(prev, fields))
			}
			prev, prevS = fields, s
		})
	}
}
