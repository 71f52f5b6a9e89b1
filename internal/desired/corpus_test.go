package desired

import (
	"bytes"
	"context"
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

// corpus are compose files in the shapes the official setups of widely
// used self-hosted projects have: each is rendered by syncd and by the
// Compose CLI (`docker compose config`, the pinned one from tools/) with
// the same variables, and the two must agree on what runs.
var corpus = []struct {
	name  string
	files map[string]string // below apps/app/
	vars  map[string]string // host vars; the CLI gets them as its environment
}{
	{"relative bind mounts (photo library, database in ./volumes)", map[string]string{
		"compose.yaml": `services:
  server:
    image: ghcr.io/example/photos-server:v1.135.3
    volumes:
      - ./library:/usr/src/app/upload
      - /etc/localtime:/etc/localtime:ro
    ports: ["2283:2283"]
  db:
    image: postgres:16.4-alpine
    volumes:
      - ./volumes/db/data:/var/lib/postgresql/data
      - type: bind
        source: ./initdb
        target: /docker-entrypoint-initdb.d
        read_only: true
`,
		"initdb/01.sql": "create table t();\n",
	}, nil},
	{".env as the lowest-precedence source", map[string]string{
		"compose.yaml": `services:
  server:
    image: ghcr.io/example/photos-server:${IMMICH_VERSION:-release}
    environment:
      DB_HOSTNAME: ${DB_HOSTNAME}
      UPLOAD: ${UPLOAD_LOCATION}
`,
		".env": "IMMICH_VERSION=v1.135.3\nDB_HOSTNAME=database\nUPLOAD_LOCATION=./library\n",
	}, map[string]string{"DB_HOSTNAME": "db.internal"}},
	{"profiles enabled by COMPOSE_PROFILES", map[string]string{
		"compose.yaml": `services:
  web:
    image: nginx:1.27.3
  cron:
    image: nextcloud:30.0.4-apache
    profiles: [cron]
  debug:
    image: busybox:1.37.0
    profiles: [debug]
`,
	}, map[string]string{"COMPOSE_PROFILES": "cron"}},
	{"include and extends with variables", map[string]string{
		"compose.yaml": `include:
  - db.yaml
services:
  web:
    extends:
      file: common.yaml
      service: base
    image: nginx:${NGINX_TAG}
`,
		"db.yaml": `services:
  db:
    image: postgres:${PG_TAG}
    environment:
      POSTGRES_DB: ${COMPOSE_PROJECT_NAME}
`,
		"common.yaml": `services:
  base:
    environment:
      TZ: ${TZ}
    healthcheck:
      test: ["CMD", "true"]
      interval: 10s
`,
	}, map[string]string{"NGINX_TAG": "1.27.3", "PG_TAG": "16.4", "TZ": "Europe/Berlin"}},
	{"$$ escapes, anchors and merge keys", map[string]string{
		"compose.yaml": `x-env: &env
  LOG_LEVEL: info
  HOME_DIR: $$HOME
services:
  web:
    image: nginx:1.27.3
    environment:
      <<: *env
      EXTRA: "a$${NOT_A_VAR}b"
    command: ["sh", "-c", "echo $$PATH"]
    container_name: ${COMPOSE_PROJECT_NAME}-web
`,
	}, nil},
}

func TestCorpusRendersAsTheComposeCLI(t *testing.T) {
	cli := testenv.Tool(t, "docker-compose")
	for _, c := range corpus {
		t.Run(c.name, func(t *testing.T) {
			files := map[string]string{"hosts/h/host.yaml": hostYAML(c.vars)}
			for p, content := range c.files {
				files["apps/app/"+p] = content
			}
			dir := writeRepo(t, files)
			r, ps := Load(dir)
			if ps.HasErrors() {
				t.Fatalf("Load: %v", ps)
			}
			r.ProjectsDir = filepath.Join(t.TempDir(), "projects")
			projects, ps := r.Render(context.Background(), "h", nil)
			if ps.HasErrors() || len(projects) != 1 {
				t.Fatalf("Render: %v", ps)
			}
			ours, err := json.Marshal(projects[0].Compose)
			if err != nil {
				t.Fatal(err)
			}
			// The model holds values after interpolation; the CLI prints
			// them escaped again, as render does.
			ours = bytes.ReplaceAll(ours, []byte("$"), []byte("$$"))
			appDir := filepath.Join(dir, "apps", "app")
			cmd := exec.Command(cli, "--project-directory", appDir, "-f", filepath.Join(appDir, "compose.yaml"), "-p", "app", "config", "--format", "json")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "DOCKER_HOST=unix:///nonexistent.sock"}
			for k, v := range c.vars {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			theirs, err := cmd.Output()
			if err != nil {
				t.Fatalf("docker compose config: %v\n%s", err, stderr.String())
			}
			// Where the CLI resolves ./x in the checkout, syncd resolves it
			// in the project's directory.
			theirs = bytes.ReplaceAll(theirs, []byte(appDir), []byte(projects[0].Dir))
			want, got := servicesOf(t, theirs), servicesOf(t, ours)
			if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
				t.Fatalf("services: syncd %v, compose %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
			}
			for name := range want {
				for _, field := range []string{"image", "ports", "volumes", "networks", "environment", "healthcheck", "command", "entrypoint", "container_name", "configs"} {
					w, g := canonical(want[name][field]), canonical(got[name][field])
					if w != g {
						t.Errorf("service %s %s:\n syncd   %s\n compose %s", name, field, g, w)
					}
				}
			}
			// And syncd render's YAML, fed back to the CLI, means the same.
			yml, err := projects[0].YAML(nil)
			if err != nil {
				t.Fatal(err)
			}
			again := filepath.Join(t.TempDir(), "rendered.yaml")
			os.WriteFile(again, yml, 0o644)
			cmd = exec.Command(cli, "-f", again, "-p", "app", "config", "--format", "json")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "DOCKER_HOST=unix:///nonexistent.sock", "COMPOSE_PROFILES=*"}
			cmd.Stderr = &stderr
			reread, err := cmd.Output()
			if err != nil {
				t.Fatalf("docker compose config of syncd render's output: %v\n%s\n%s", err, stderr.String(), yml)
			}
			back := servicesOf(t, reread)
			for name := range want {
				for _, field := range []string{"image", "environment", "command", "container_name"} {
					if w, g := canonical(want[name][field]), canonical(back[name][field]); w != g {
						t.Errorf("render output read back, service %s %s:\n read back %s\n compose   %s", name, field, g, w)
					}
				}
			}
		})
	}
}

func hostYAML(vars map[string]string) string {
	var b strings.Builder
	b.WriteString("apps: [app]\n")
	if len(vars) > 0 {
		b.WriteString("vars:\n")
		for _, k := range slices.Sorted(maps.Keys(vars)) {
			b.WriteString("  " + k + ": " + strings.ReplaceAll(vars[k], "$", "$$") + "\n")
		}
	}
	return b.String()
}

func servicesOf(t *testing.T, data []byte) map[string]map[string]any {
	t.Helper()
	var doc struct {
		Services map[string]map[string]any `json:"services"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	return doc.Services
}

// canonical drops what only one side spells out (an empty list, a null).
func canonical(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case []any:
		if len(x) == 0 {
			return "null"
		}
	case map[string]any:
		if len(x) == 0 {
			return "null"
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}
