package desired

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// flinkProperties is Flink's documented form: an environment list item
// whose block scalar's first line is KEY=, so the value starts with a
// newline (Rocket.Chat's and others' files have the same shape).
const flinkProperties = "\njobmanager.rpc.address: jobmanager\ntaskmanager.numberOfTaskSlots: 2\n"

// roundTripCompose is a compose file that holds s, as the loaded project
// must, in every kind of place a string goes: an environment value, a
// label, a command argument, a healthcheck argument, a config's content,
// an extension. JSON is YAML, and holds any string exactly.
func roundTripCompose(s string) string {
	e := strings.ReplaceAll(s, "$", "$$")
	content := e
	if content == "" {
		content = "-" // Compose omits an empty content, and refuses the config without it
	}
	doc := map[string]any{
		"services": map[string]any{
			"app": map[string]any{
				"image":       "busybox:1.37.0",
				"environment": map[string]any{"X": e},
				"labels":      map[string]any{"l": e},
				"command":     []any{"sh", "-c", e},
				"healthcheck": map[string]any{"test": []any{"CMD", e}},
				"configs":     []any{"c"},
				"x-note":      e,
			},
		},
		"configs": map[string]any{"c": map[string]any{"content": content}},
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

// checkRoundTrip renders a project holding s and reads `syncd render`'s
// YAML back as Compose reads a file: every value must be what was loaded.
func checkRoundTrip(t *testing.T, s string) {
	t.Helper()
	files := map[string]string{
		"apps/app/compose.yaml": roundTripCompose(s),
		"hosts/h/host.yaml":     "apps: [app]\n",
	}
	r := mustLoad(t, files)
	r.ProjectsDir = filepath.Join(t.TempDir(), "projects")
	projects, ps := r.Render(context.Background(), "h", nil)
	if ps.HasErrors() {
		t.Fatalf("%q: Render: %v", s, ps)
	}
	p := projects[0]
	if got := *p.Compose.Services["app"].Environment["X"]; got != s {
		t.Fatalf("%q: loaded as %q", s, got) // the input itself is wrong
	}
	out, err := p.YAML(nil)
	if err != nil {
		t.Fatalf("%q: YAML: %v", s, err)
	}
	back, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  p.Dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(p.Dir, "compose.yaml"), Content: out}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("app", true) })
	if err != nil {
		t.Fatalf("%q: render's YAML does not load: %v\n%s", s, err, out)
	}
	want, _ := json.Marshal(p.Compose)
	got, _ := json.Marshal(back)
	if string(got) != string(want) {
		t.Fatalf("%q: render's YAML reads back otherwise:\n loaded    %s\n read back %s\nYAML:\n%s", s, want, got, out)
	}
}

// TestRenderRoundTripsEveryString: every string of the loaded project is
// the same string read back from render, whatever its characters.
func TestRenderRoundTripsEveryString(t *testing.T) {
	t.Run("flink", func(t *testing.T) { checkRoundTrip(t, flinkProperties) })
	for i, s := range testenv.YAMLStrings(20, 300) {
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkRoundTrip(t, s) })
	}
}

// FuzzRenderRoundTrip is the same property over what the fuzzer finds
// (go test -fuzz FuzzRenderRoundTrip ./internal/desired).
func FuzzRenderRoundTrip(f *testing.F) {
	f.Add(flinkProperties)
	for _, s := range testenv.YAMLStrings(7, 50) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// YAML holds neither invalid UTF-8 nor most control characters.
		if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool {
			return r < 0x20 && r != '\n' && r != '\r' && r != '\t' || r == 0x7f || r == 0xfeff || r >= 0x80 && r < 0xa0
		}) {
			t.Skip()
		}
		checkRoundTrip(t, s)
	})
}

// TestBlockScalarsRenderAsTheCLIReadsThem: the CLI reads syncd render's
// YAML as it reads the file itself, for Flink's documented form (a block
// whose first line is KEY=), a folded command (Rocket.Chat's replica-set
// init) and a block whose first line is empty.
func TestBlockScalarsRenderAsTheCLIReadsThem(t *testing.T) {
	compose := `services:
  jobmanager:
    image: flink:1.20.0-scala_2.12-java17
    command: jobmanager
    environment:
      - |
        FLINK_PROPERTIES=
        jobmanager.rpc.address: jobmanager
        parallelism.default: 2
  taskmanager:
    image: flink:1.20.0-scala_2.12-java17
    command: taskmanager
    environment:
      - |
        FLINK_PROPERTIES=
        jobmanager.rpc.address: jobmanager
        taskmanager.numberOfTaskSlots: 2
  init:
    image: mongo:6.0.13
    command: >
      bash -c "sleep 10 &&
      mongosh mongo/rocketchat --eval \"rs.initiate({ _id: 'rs0', members: [ { _id: 0, host: 'mongo:27017' } ]})\""
    labels:
      note: |+

          indented first line, two trailing blanks	

`
	files := map[string]string{"apps/app/compose.yaml": compose, "hosts/h/host.yaml": "apps: [app]\n"}
	p, repo := renderApp(t, files, "app")
	out, err := p.YAML(nil)
	if err != nil {
		t.Fatal(err)
	}
	rendered := filepath.Join(t.TempDir(), "rendered.yaml")
	if err := os.WriteFile(rendered, out, 0o644); err != nil {
		t.Fatal(err)
	}
	want := composeCLI(t, repo, "app", p.Dir, p.Files, nil)
	got := composeCLI(t, repo, "app", p.Dir, []string{rendered}, nil)
	for _, keys := range [][]any{
		{"services", "jobmanager", "environment"}, {"services", "taskmanager", "environment"},
		{"services", "init", "command"}, {"services", "init", "labels"},
	} {
		if g, w := toJSON(at(got, keys...)), toJSON(at(want, keys...)); g != w {
			t.Errorf("%v:\n render read back %s\n the file        %s\n%s", keys, g, w, out)
		}
	}
	if v := at(want, "services", "jobmanager", "environment", "FLINK_PROPERTIES"); v != "\njobmanager.rpc.address: jobmanager\nparallelism.default: 2\n" {
		t.Errorf("the CLI reads FLINK_PROPERTIES as %q: the input is not Flink's form", v)
	}
}
