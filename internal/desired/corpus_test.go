package desired

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// shapes are compose files in the shapes the official setups of widely
// used self-hosted projects have, written for syncd; upstream below are
// upstream files themselves. Each is rendered by syncd and by the Compose
// CLI (`docker compose config`, the pinned one from tools/) with the same
// variables, and the two must agree on the whole model.
var shapes = []struct {
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
	// No upstream file at hand uses these; the forms are the Compose
	// specification's (interpolation, and ~ for the home directory).
	{"required, alternative and nested defaults; ~ paths", map[string]string{
		"compose.yaml": `services:
  web:
    image: nginx:${NGINX_TAG:?set NGINX_TAG}
    environment:
      PROXY: ${PROXY_HOST:+http://${PROXY_HOST}:3128}
      NO_PROXY_SET: ${UNSET_PROXY:+yes}
      DB_URL: postgres://${DB_HOST:-${FALLBACK_HOST:-localhost}}:${DB_PORT:-5432}/app
    volumes:
      - ~/.config/app:/config:ro
      - ~/cache:/cache
`,
	}, map[string]string{"NGINX_TAG": "1.27.3", "PROXY_HOST": "proxy.internal", "FALLBACK_HOST": "db.internal"}},
}

// upstream are upstream Compose files, copied unchanged from the Go
// module cache into testdata/corpus/<dir>: app/ is the app's directory
// (its compose file renamed compose.yaml where upstream names it
// otherwise), override.yaml the host's override (the second -f file).
// Each source is module@version and path; "inline" ones are a YAML text
// of an upstream test, cut out unchanged.
var upstream = []struct {
	dir     string
	sources []string
	vars    map[string]string // host vars; the CLI gets them as its environment
	secrets Secrets           // the host's secrets; the CLI gets them as its environment
}{
	{"rekor", []string{
		"github.com/sigstore/rekor@v1.5.3 docker-compose.yml",
		"github.com/sigstore/rekor@v1.5.3 docker-compose.test.yml (override)",
	}, nil, nil},
	{"go-redis", []string{"github.com/redis/go-redis/v9@v9.22.0 docker-compose.yml"},
		map[string]string{"COMPOSE_PROFILES": "all"}, nil},
	{"lib-pq", []string{"github.com/lib/pq@v1.12.3 compose.yaml"},
		map[string]string{"COMPOSE_PROFILES": "pgbouncer,pg17"}, nil},
	{"buildkit", []string{"github.com/moby/buildkit@v0.33.0 hack/composefiles/{compose.yaml,buildkitd.toml,datasources.yaml,grafana.ini,otelcol.yaml,prometheus.yml}"},
		map[string]string{"COMPOSE_PROFILES": "metrics"}, nil},
	{"cli-otel", []string{"github.com/docker/cli@v29.7.2+incompatible contrib/otel/{compose.yaml,otelcol.yaml,prom.yaml}"}, nil, nil},
	{"rest-server-grafana", []string{"github.com/restic/rest-server@v0.14.0 examples/compose-with-grafana/{docker-compose.yml,grafana.ini,prometheus/,dashboards/}"}, nil, nil},
	{"stargz-demo", []string{"github.com/containerd/stargz-snapshotter@v0.18.2 script/demo/docker-compose.yml"},
		map[string]string{"GOPATH": "/home/dev/go", "NO_PROXY": "", "HTTP_PROXY": "", "HTTPS_PROXY": "", "http_proxy": "", "https_proxy": ""}, nil},
	{"in-toto", []string{"github.com/in-toto/in-toto-golang@v0.11.0 test-infra/docker-compose.yaml"}, nil, nil},
	{"compose-watch", []string{"github.com/docker/compose/v5@v5.5.1 pkg/e2e/fixtures/watch/{compose.yaml,config/,dat/,data/,data-logs/}"}, nil, nil},
	{"compose-config-hash", []string{"github.com/docker/compose/v5@v5.5.1 pkg/e2e/fixtures/config_hash/{compose.yaml,app.env}"}, nil, nil},
	{"compose-depends-on-restart", []string{"github.com/docker/compose/v5@v5.5.1 pkg/e2e/fixtures/restart-test/compose-depends-on.yaml"}, nil, nil},
	{"compose-network-mode", []string{"github.com/docker/compose/v5@v5.5.1 pkg/e2e/fixtures/network-test/compose.yaml"}, nil, nil},
	{"compose-volume-test", []string{"github.com/docker/compose/v5@v5.5.1 pkg/e2e/fixtures/volume-test/{compose.yaml,static/}"}, nil, nil},
	{"compose-bridge", []string{"github.com/docker/compose/v5@v5.5.1 pkg/e2e/fixtures/bridge/{compose.yaml,my-config.txt,not-so-secret.txt}"}, nil, nil},
	{"compose-dotenv", []string{"github.com/docker/compose/v5@v5.5.1 pkg/e2e/fixtures/dotenv/development/{compose.yaml,.env}"}, nil, nil},
	{"compose-publish-oci", []string{
		"github.com/docker/compose/v5@v5.5.1 pkg/e2e/fixtures/publish/oci/{compose.yaml,extends.yaml,test.env}",
		"github.com/docker/compose/v5@v5.5.1 pkg/e2e/fixtures/publish/oci/compose-override.yaml (override)",
	}, nil, nil},
	{"compose-build-dependencies", []string{"github.com/docker/compose/v5@v5.5.1 pkg/e2e/fixtures/build-dependencies/compose.yaml"}, nil, nil},
	{"cg-include", []string{"github.com/compose-spec/compose-go/v2@v2.15.0 loader/testdata/{compose-include.yaml,subdir/}"}, nil, nil},
	{"cg-extends-file", []string{"github.com/compose-spec/compose-go/v2@v2.15.0 loader/testdata/{compose-test-extends.yaml,subdir/}"}, nil, nil},
	{"cg-reset", []string{"github.com/compose-spec/compose-go/v2@v2.15.0 loader/testdata/extends/reset.yaml"}, nil, nil},
	{"cg-extends-service-refs", []string{"github.com/compose-spec/compose-go/v2@v2.15.0 loader/testdata/extends/depends_on.yaml"}, nil, nil},
	{"cg-extends-withdir", []string{"github.com/compose-spec/compose-go/v2@v2.15.0 loader/testdata/extends/withdir/{compose.yaml,dir/}"}, nil, nil},
	{"cg-include-extends", []string{"github.com/compose-spec/compose-go/v2@v2.15.0 loader/testdata/combined/{compose.yaml,dir/}"}, nil, nil},
	{"cg-env-files", []string{"github.com/compose-spec/compose-go/v2@v2.15.0 cli/testdata/env-file/{compose-with-env-files.yaml,.env,simple-env,second-env}"}, nil, nil},
	{"cg-merge-list", []string{"github.com/compose-spec/compose-go/v2@v2.15.0 loader/reset_test.go, inline: TestMergeKeyAliasTargets, case inline_sequence_of_mappings"}, nil, nil},
	{"cg-override-middle", []string{"github.com/compose-spec/compose-go/v2@v2.15.0 loader/override_test.go, inline: TestOverrideMiddle (base.yaml, override.yaml, compose.yaml)"}, nil, nil},
	{"cg-extends-override", []string{"github.com/compose-spec/compose-go/v2@v2.15.0 loader/extends_test.go, inline: TestLoadExtendsDependsOn"}, nil, nil},
	{"cg-gpus", []string{"github.com/compose-spec/compose-go/v2@v2.15.0 loader/tests/gpus_test.go, inline: TestGpus"}, nil, nil},
	{"cg-sysctls", []string{"github.com/compose-spec/compose-go/v2@v2.15.0 loader/tests/sysctls_test.go, inline: TestSysctls"}, nil, nil},
	// Its network is used by no service: the CLI (and syncd) leave it out.
	{"cg-ipam", []string{"github.com/compose-spec/compose-go/v2@v2.15.0 loader/tests/network_ipam_test.go, inline: TestNetworkIPAM"}, nil, nil},
	// syncd takes an environment: secret from the host's secrets file.
	{"cg-environment-sources", []string{"github.com/compose-spec/compose-go/v2@v2.15.0 loader/tests/secrets_test.go, inline: TestSecretEnvironmentResolution"},
		map[string]string{"GA": "ga-config-text"}, Secrets{"MEU": "meu-secret-value"}},
}

func TestCorpusRendersAsTheComposeCLI(t *testing.T) {
	for _, c := range shapes {
		t.Run(c.name, func(t *testing.T) {
			files := map[string]string{"hosts/h/host.yaml": hostYAML(c.vars)}
			for p, content := range c.files {
				files["apps/app/"+p] = content
			}
			compareWithCLI(t, writeRepo(t, files), c.vars, nil)
		})
	}
}

func TestUpstreamCorpusRendersAsTheComposeCLI(t *testing.T) {
	for _, c := range upstream {
		t.Run(c.dir, func(t *testing.T) {
			files := map[string]string{"hosts/h/host.yaml": hostYAML(c.vars)}
			if c.secrets != nil {
				files["hosts/h/secrets.sops.yaml"] = "the test hands the values in\n"
			}
			src := filepath.Join("testdata", "corpus", c.dir)
			err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(src, p)
				data, err := os.ReadFile(p)
				switch rel = filepath.ToSlash(rel); {
				case rel == "override.yaml":
					rel = "hosts/h/app.override.yaml"
				case strings.HasPrefix(rel, "app/"):
					rel = "apps/" + rel
				default:
					return fmt.Errorf("%s: not below app/", p)
				}
				files[rel] = string(data)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			env := maps.Clone(c.vars)
			if env == nil {
				env = map[string]string{}
			}
			maps.Copy(env, c.secrets)
			compareWithCLI(t, writeRepo(t, files), env, c.secrets)
		})
	}
	if len(upstream) < 20 {
		t.Errorf("the upstream corpus has %d files; keep at least 20", len(upstream))
	}
}

// compareWithCLI renders app on host h of the repository at repo and
// compares the whole model with the Compose CLI's, and the CLI's reading
// of syncd render's YAML with it too. env is the CLI's environment.
func compareWithCLI(t *testing.T, repo string, env map[string]string, secrets Secrets) {
	t.Helper()
	r, ps := Load(repo)
	if ps.HasErrors() {
		t.Fatalf("Load: %v", ps)
	}
	r.ProjectsDir = filepath.Join(t.TempDir(), "projects")
	projects, ps := r.Render(context.Background(), "h", secrets)
	if ps.HasErrors() || len(projects) != 1 {
		t.Fatalf("Render: %v", ps)
	}
	p := projects[0]
	// The CLI gets the same HOME as syncd's process has: ~ is its home.
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	env = maps.Clone(env)
	if env == nil {
		env = map[string]string{}
	}
	env["HOME"] = home
	want := normalise(composeCLI(t, repo, "app", p.Dir, p.Files, env), "", "", nil)
	got := normalise(modelOf(t, p), repo, p.Dir, secrets)
	diffModels(t, "syncd", got, want)

	// And syncd render's YAML, read by the CLI, is the same model.
	yml, err := p.YAML(nil)
	if err != nil {
		t.Fatal(err)
	}
	rendered := filepath.Join(t.TempDir(), "rendered.yaml")
	if err := os.WriteFile(rendered, yml, 0o644); err != nil {
		t.Fatal(err)
	}
	// Profiles were applied by the render: what it wrote all runs.
	back := normalise(composeCLI(t, repo, "app", p.Dir, []string{rendered}, map[string]string{"HOME": home, "COMPOSE_PROFILES": "*"}), "", "", nil)
	diffModels(t, "render read back", back, want)
	if t.Failed() {
		t.Logf("syncd render:\n%s", yml)
	}
}

// normalise makes the accepted differences between syncd's model and the
// CLI's vanish, each for the reason it gives. repo and projectDir are set
// for syncd's model, secrets are the values it holds.
func normalise(m map[string]any, repo, projectDir string, secrets Secrets) map[string]any {
	for name, v := range asMap(m["services"]) {
		svc := asMap(v)
		if repo != "" {
			// syncd deploys images, it does not build them nor watch
			// files: a build context and the paths develop.watch syncs
			// stay in the checkout, never materialised, where the CLI's
			// stand (rewritten by composeCLI) for the project directory.
			for _, k := range []string{"build", "develop"} {
				if svc[k] != nil {
					svc[k] = mapStrings(svc[k], func(s string) string { return placed(s, repo, projectDir) })
				}
			}
		}
		m["services"].(map[string]any)[name] = svc
	}
	if repo != "" {
		// The model holds values after interpolation; the CLI writes them
		// escaped again, as `syncd render` does.
		for k, v := range m {
			m[k] = mapStrings(v, func(s string) string { return strings.ReplaceAll(s, "$", "$$") })
		}
	}
	return m
}

// placed is where syncd's relocation puts a checkout path: the app's
// directory is the project's, the rest of the repository below _repo/.
func placed(s, repo, projectDir string) string {
	app := filepath.Join(repo, "apps", "app")
	switch {
	case s == app || strings.HasPrefix(s, app+"/"):
		return projectDir + strings.TrimPrefix(s, app)
	case strings.HasPrefix(s, repo+"/"):
		return filepath.Join(projectDir, "_repo", strings.TrimPrefix(s, repo+"/"))
	}
	return s
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// mapStrings applies f to every string value (not the keys) below v.
func mapStrings(v any, f func(string) string) any {
	switch x := v.(type) {
	case string:
		return f(x)
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = mapStrings(e, f)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = mapStrings(e, f)
		}
		return out
	}
	return v
}

// diffModels reports every difference between got and want, by path.
func diffModels(t *testing.T, who string, got, want any) {
	t.Helper()
	var walk func(path string, g, w any)
	walk = func(path string, g, w any) {
		gm, gok := g.(map[string]any)
		wm, wok := w.(map[string]any)
		if gok && wok {
			for _, k := range slices.Sorted(maps.Keys(union(gm, wm))) {
				walk(path+"."+k, gm[k], wm[k])
			}
			return
		}
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		if string(gj) != string(wj) {
			t.Errorf("%s:\n %-16s %s\n %-16s %s", path, who, gj, "compose", wj)
		}
	}
	walk("", got, want)
}

func union(a, b map[string]any) map[string]any {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

func hostYAML(vars map[string]string) string {
	var b strings.Builder
	b.WriteString("apps: [app]\n")
	if len(vars) > 0 {
		b.WriteString("vars:\n")
		for _, k := range slices.Sorted(maps.Keys(vars)) {
			v, _ := json.Marshal(strings.ReplaceAll(vars[k], "$", "$$"))
			b.WriteString("  " + k + ": " + string(v) + "\n")
		}
	}
	return b.String()
}
