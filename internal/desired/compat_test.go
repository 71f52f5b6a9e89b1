package desired

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// renderApp loads files (a repository with the single host h), renders h
// and returns the project of app, failing on any error.
func renderApp(t *testing.T, files map[string]string, app string) (*Project, string) {
	t.Helper()
	dir := writeRepo(t, files)
	r, ps := Load(dir)
	if ps.HasErrors() {
		t.Fatalf("Load: %v", ps)
	}
	r.ProjectsDir = filepath.Join(t.TempDir(), "projects")
	projects, ps := r.Render(context.Background(), "h", nil)
	if ps.HasErrors() {
		t.Fatalf("Render: %v", ps)
	}
	for _, p := range projects {
		if p.Name() == app {
			return p, dir
		}
	}
	t.Fatalf("no project %s", app)
	return nil, ""
}

// TestFileSecretOfTwoServices: a file secret two services use (the nginx +
// backend + postgres samples' db-password) is placed once, for both, as
// the CLI reads it.
func TestFileSecretOfTwoServices(t *testing.T) {
	compose := `services:
  a:
    image: nginx:1.27.3
    secrets: [pw]
  b:
    image: postgres:16.4
    secrets: [pw]
    configs: [conf]
  c:
    image: busybox:1.37.0
    configs: [conf]
secrets:
  pw:
    file: ./pw.txt
configs:
  conf:
    file: ./app.conf
`
	files := map[string]string{
		"apps/app/compose.yaml": compose,
		"apps/app/pw.txt":       "not-a-real-password\n",
		"apps/app/app.conf":     "x = 1\n",
		"hosts/h/host.yaml":     "apps: [app]\n",
	}
	p, repo := renderApp(t, files, "app")
	if got, want := p.Compose.Secrets["pw"].File, filepath.Join(p.Dir, "pw.txt"); got != want {
		t.Errorf("secret pw file = %q, want %q", got, want)
	}
	if got, want := p.Compose.Configs["conf"].File, filepath.Join(p.Dir, "app.conf"); got != want {
		t.Errorf("config conf file = %q, want %q", got, want)
	}
	users := map[string][]string{}
	for _, m := range p.Mounts {
		users[m.Rel] = m.Services
	}
	if got := users["apps/app/pw.txt"]; !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("pw.txt used by %v, want [a b]", got)
	}
	if got := users["apps/app/app.conf"]; !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("app.conf used by %v, want [b c]", got)
	}
	cli := composeCLI(t, repo, "app", p.Dir, []string{"apps/app/compose.yaml"}, nil)
	ours := modelOf(t, p)
	for _, keys := range [][]any{{"secrets"}, {"configs"}, {"services", "a", "secrets"}, {"services", "b", "secrets"}, {"services", "b", "configs"}, {"services", "c", "configs"}} {
		if g, w := toJSON(at(ours, keys...)), toJSON(at(cli, keys...)); g != w {
			t.Errorf("%v:\n syncd   %s\n compose %s", keys, g, w)
		}
	}
}

// TestFileSecretProblemIsStable: a problem with a file secret is cited
// at its definition, the same on every render.
func TestFileSecretProblemIsStable(t *testing.T) {
	compose := `services:
  a:
    image: nginx:1.27.3
    secrets: [pw]
  b:
    image: postgres:16.4
    secrets: [pw]
  c:
    image: busybox:1.37.0
    secrets: [pw]
secrets:
  pw:
    file: ./missing.txt
`
	r := mustLoad(t, map[string]string{"apps/app/compose.yaml": compose, "hosts/h/host.yaml": "apps: [app]\n"})
	want := "apps/app/compose.yaml:13: error: secret pw reads apps/app/missing.txt, which the repository does not have; add the file or fix the path"
	for range 20 {
		_, ps := r.Render(context.Background(), "h", nil)
		if ps.Error() != want {
			t.Fatalf("problems:\n%v\nwant\n%s", ps, want)
		}
	}
}

// TestOverridePathsResolveInTheAppDirectory: Compose resolves the relative
// paths of every -f file against the project directory, the first file's:
// a host override's ./x is the app's ./x, as the CLI reads it.
func TestOverridePathsResolveInTheAppDirectory(t *testing.T) {
	files := map[string]string{
		"apps/app/compose.yaml": `include:
  - path: ./lib/compose.yaml
    project_directory: ./libdir
services:
  web:
    image: nginx:1.27.3
`,
		"apps/app/lib/compose.yaml": "services:\n  lib:\n    image: busybox:1.37.0\n    env_file: ./lib.env\n    volumes: [./lib-data:/lib]\n",
		"apps/app/libdir/lib.env":   "FROM_LIBDIR=yes\n",
		"hosts/h/app.override.yaml": `include:
  - ./inc/compose.yaml
services:
  web:
    env_file:
      - ./override.env
      - path: ./optional.env
        required: false
    volumes:
      - ./conf:/etc/conf:ro
      - ./data:/data
    configs: [oc]
    secrets: [os]
  extra:
    extends:
      file: ./base.yaml
      service: base
    build:
      context: ./ctx
configs:
  oc:
    file: ./override.conf
secrets:
  os:
    file: ./override.secret
`,
		"apps/app/override.env":     "FROM_OVERRIDE_ENV=yes\n",
		"apps/app/conf/x.conf":      "x\n",
		"apps/app/override.conf":    "c\n",
		"apps/app/override.secret":  "s\n",
		"apps/app/base.yaml":        "services:\n  base:\n    image: busybox:1.37.0\n    env_file: [base.env]\n    volumes: [./base-data:/base]\n",
		"apps/app/base.env":         "FROM_BASE_ENV=yes\n",
		"apps/app/ctx/Dockerfile":   "FROM scratch\n",
		"apps/app/inc/compose.yaml": "services:\n  inc:\n    image: busybox:1.37.0\n    env_file: ./inc.env\n    volumes: [./inc-data:/inc]\n",
		"apps/app/inc/inc.env":      "FROM_INCLUDED_ENV=yes\n",
		"hosts/h/host.yaml":         "apps: [app]\n",
	}
	p, repo := renderApp(t, files, "app")
	cli := composeCLI(t, repo, "app", p.Dir, p.Files, nil)
	ours := modelOf(t, p)
	for _, keys := range [][]any{
		{"services", "web", "environment"}, {"services", "web", "volumes"}, {"configs"}, {"secrets"},
		{"services", "extra", "environment"}, {"services", "extra", "volumes"}, {"services", "extra", "image"},
		{"services", "inc", "environment"}, {"services", "inc", "volumes"},
		{"services", "lib", "environment"}, {"services", "lib", "volumes"},
	} {
		if g, w := toJSON(at(ours, keys...)), toJSON(at(cli, keys...)); g != w {
			t.Errorf("%v:\n syncd   %s\n compose %s", keys, g, w)
		}
	}
	// syncd does not build (an image is deployed, not built), so the
	// context stays in the checkout; it must be the app's directory's.
	if g, w := toJSON(at(ours, "services", "extra", "build", "context")), filepath.Join(repo, "apps", "app", "ctx"); g != toJSON(w) {
		t.Errorf("build context = %s, want %q", g, w)
	}
}

// TestPWDIsTheProjectDirectory: the CLI fills an unset PWD with its working
// directory; syncd's is the project's directory, so ${PWD}/state (Tailscale's
// examples) is ./state, as the CLI run in the app's directory reads it.
func TestPWDIsTheProjectDirectory(t *testing.T) {
	files := map[string]string{
		"apps/app/compose.yaml": `services:
  tailscale:
    image: tailscale/tailscale:v1.80.3
    hostname: app
    environment:
      - TS_STATE_DIR=/var/lib/tailscale
      - TS_SERVE_CONFIG=/config/serve.json
      - WHERE=${PWD}
    volumes:
      - ${PWD}/tailscale/state:/var/lib/tailscale
      - ${PWD}/config:/config:ro
    devices:
      - /dev/net/tun:/dev/net/tun
    cap_add: [net_admin]
  web:
    image: nginx:1.27.3
    network_mode: service:tailscale
    depends_on: [tailscale]
`,
		"apps/app/config/serve.json": "{}\n",
		"hosts/h/host.yaml":          "apps: [app]\n",
	}
	p, repo := renderApp(t, files, "app")
	cli := composeCLI(t, repo, "app", p.Dir, p.Files, nil)
	ours := modelOf(t, p)
	for _, keys := range [][]any{{"services", "tailscale", "volumes"}, {"services", "tailscale", "environment"}} {
		if g, w := toJSON(at(ours, keys...)), toJSON(at(cli, keys...)); g != w {
			t.Errorf("%v:\n syncd   %s\n compose %s", keys, g, w)
		}
	}
	// And they are the project's paths: data, and repository content.
	kinds := map[string]bool{}
	for _, m := range p.Mounts {
		kinds[m.Rel] = m.Data()
	}
	if data, ok := kinds["apps/app/tailscale/state"]; !ok || !data {
		t.Errorf("${PWD}/tailscale/state is not the project's data: %+v", p.Mounts)
	}
	if data, ok := kinds["apps/app/config"]; !ok || data {
		t.Errorf("${PWD}/config is not the repository's config directory: %+v", p.Mounts)
	}
}

// TestRenderGoesOnPastUndefinedVariables: an undefined variable or a
// missing secret does not hide what else is wrong in the file; Render
// returns nothing, Inspect the project, with stand-ins, for checks.
func TestRenderGoesOnPastUndefinedVariables(t *testing.T) {
	r := mustLoad(t, map[string]string{
		"apps/app/compose.yaml": `x-base: &base
  restart: always
  image: nginx:latest
services:
  web:
    <<: *base
    environment:
      URL: https://${DOMAIN}/
    secrets: [missing]
    ports: ["${PORT}:80"]
    mem_limit: lots
`,
		"hosts/h/app.override.yaml": "services:\n  web:\n    labels: {a: b}\n",
		"hosts/h/host.yaml":         "apps: [app]\n",
	})
	want := []string{
		`apps/app/compose.yaml:8: error: variable ${DOMAIN} is not defined`,
		`apps/app/compose.yaml:9: error: service "web" uses secret "missing", which is neither defined in the compose file nor a key of hosts/h/secrets.sops.yaml`,
		`apps/app/compose.yaml:10: error: variable ${PORT} is not defined`,
		`apps/app/compose.yaml:11: error: the Compose loader rejects this file: 'services[web].mem_limit' invalid size: 'lots' (checked with the undefined variables: DOMAIN, PORT stood in as 1)`,
	}
	projects, ps := r.Render(context.Background(), "h", nil)
	if projects != nil {
		t.Errorf("Render returned projects despite errors")
	}
	for _, w := range want {
		if !strings.Contains(ps.Error(), w) {
			t.Errorf("problems lack %q:\n%v", w, ps)
		}
	}

	// Without the loader's error the project loads, for checks only.
	r = mustLoad(t, map[string]string{
		"apps/app/compose.yaml":     strings.Replace(string(mustRead(t, r, "apps/app/compose.yaml")), "    mem_limit: lots\n", "", 1),
		"hosts/h/app.override.yaml": "services:\n  web:\n    labels: {a: b}\n",
		"hosts/h/host.yaml":         "apps: [app]\n",
	})
	if projects, _ := r.Render(context.Background(), "h", nil); projects != nil {
		t.Errorf("Render returned projects despite errors")
	}
	projects, ps = r.Inspect(context.Background(), "h", nil)
	if len(projects) != 1 || !ps.HasErrors() {
		t.Fatalf("Inspect: %d projects, %v", len(projects), ps)
	}
	p := projects[0]
	if !p.Unresolved("web", "environment") || !p.Unresolved("web", "ports") || p.Unresolved("web", "image") {
		t.Errorf("unresolved settings: %v", p.unresolved)
	}
	// The image is set through a merge key, in the file the override does
	// not change.
	if l := p.Location("web", "image"); l != (Location{Path: "apps/app/compose.yaml", Line: 3}) {
		t.Errorf("image at %+v", l)
	}
	if l := p.Location("web", "labels"); l != (Location{Path: "hosts/h/app.override.yaml", Line: 3}) {
		t.Errorf("labels at %+v", l)
	}
}

func mustRead(t *testing.T, r *Repo, p string) []byte {
	t.Helper()
	data, err := r.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestEnvFilesAreResolvedAsTheCLIDoes: every command of the CLI merges
// env_file's variables into environment and drops the list (so the
// config hash holds no path of the checkout); syncd's model is the same.
func TestEnvFilesAreResolvedAsTheCLIDoes(t *testing.T) {
	files := map[string]string{
		"apps/app/compose.yaml": `services:
  web:
    image: nginx:1.27.3
    env_file:
      - app.env
      - path: optional.env
        required: false
    environment:
      OWN: set here
`,
		"apps/app/app.env":  "FROM_FILE=yes\nOWN=from the file\n",
		"hosts/h/host.yaml": "apps: [app]\n",
	}
	p, repo := renderApp(t, files, "app")
	cli := composeCLI(t, repo, "app", p.Dir, p.Files, nil)
	ours := modelOf(t, p)
	for _, keys := range [][]any{{"services", "web", "environment"}, {"services", "web", "env_file"}} {
		if g, w := toJSON(at(ours, keys...)), toJSON(at(cli, keys...)); g != w {
			t.Errorf("%v:\n syncd   %s\n compose %s", keys, g, w)
		}
	}
	out, err := p.YAML(nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), repo) {
		t.Errorf("render names the checkout:\n%s", out)
	}
}

// TestUnusedResourcesAreLeftOut: the CLI creates no network, volume,
// config or secret that no service uses; syncd's model holds none either.
func TestUnusedResourcesAreLeftOut(t *testing.T) {
	files := map[string]string{
		"apps/app/compose.yaml": `services:
  web:
    image: nginx:1.27.3
    networks: [front]
    volumes: [data:/data]
    configs: [used]
networks:
  front: {}
  spare:
    ipam:
      config:
        - subnet: 172.28.0.0/16
volumes:
  data: {}
  spare: {}
configs:
  used:
    content: used
  spare:
    content: spare
secrets:
  spare:
    file: ./spare.txt
`,
		"apps/app/spare.txt": "x\n",
		"hosts/h/host.yaml":  "apps: [app]\n",
	}
	p, repo := renderApp(t, files, "app")
	cli := composeCLI(t, repo, "app", p.Dir, p.Files, nil)
	ours := modelOf(t, p)
	for _, k := range []string{"networks", "volumes", "configs", "secrets"} {
		if g, w := toJSON(at(ours, k)), toJSON(at(cli, k)); g != w {
			t.Errorf("%s:\n syncd   %s\n compose %s", k, g, w)
		}
	}
}
