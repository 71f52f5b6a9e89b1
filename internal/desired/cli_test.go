package desired

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// composeCLI runs the pinned Compose CLI's `config --format json` on an
// app of the repository at repo, as syncd loads it: the app's directory is
// the project directory and the working directory (so ${PWD} is it too),
// files are the -f files (repository-relative or absolute, the app's
// compose file first), env the whole environment besides PATH and HOME. It returns the
// model with every path of the app's directory rewritten into projectDir,
// where syncd resolves them, and every path of the repository's other
// directories as syncd places them (projectDir/_repo/...).
func composeCLI(t *testing.T, repo, app, projectDir string, files []string, env map[string]string) map[string]any {
	t.Helper()
	cli := testenv.Tool(t, "docker-compose")
	appDir := filepath.Join(repo, "apps", app)
	args := []string{"--project-directory", appDir, "-p", app}
	for _, f := range files {
		if !filepath.IsAbs(f) {
			f = filepath.Join(repo, filepath.FromSlash(f))
		}
		args = append(args, "-f", f)
	}
	cmd := exec.Command(cli, append(args, "config", "--format", "json")...)
	cmd.Dir = appDir
	// HOME is a directory of the test's, as syncd's process has its own.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DOCKER_HOST=unix:///nonexistent.sock"}
	if _, ok := env["HOME"]; !ok {
		cmd.Env = append(cmd.Env, "HOME="+t.TempDir())
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker compose config: %v\n%s", err, stderr.String())
	}
	// Where the CLI resolves ./x in the checkout, syncd resolves it in
	// the project's directory (README, "The desired-state repository").
	out = bytes.ReplaceAll(out, []byte(jsonString(appDir)), []byte(jsonString(projectDir)))
	out = bytes.ReplaceAll(out, []byte(jsonString(repo)+"/"), []byte(jsonString(filepath.Join(projectDir, "_repo"))+"/"))
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return m
}

// jsonString is s as it appears inside a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return strings.Trim(string(b), `"`)
}

// modelOf is the project as JSON would show it: the form composeCLI
// returns, to compare them.
func modelOf(t *testing.T, p *Project) map[string]any {
	t.Helper()
	// compose-go's own JSON, as the CLI prints: with the extensions.
	b, err := p.Compose.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// at follows keys (map keys, or list indexes as numbers) into a decoded
// JSON value; nil when a key is missing.
func at(v any, keys ...any) any {
	for _, k := range keys {
		switch x := v.(type) {
		case map[string]any:
			v = x[k.(string)]
		case []any:
			i := k.(int)
			if i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
