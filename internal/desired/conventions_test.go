package desired

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRenderComposeConventions(t *testing.T) {
	files := map[string]string{
		"syncd.yaml": "defaults:\n  vars:\n    FROM_FLEET: fleet\n",
		"apps/web/compose.yaml": `services:
  web:
    image: ghcr.io/example/web:${WEB_VERSION:-release}
    container_name: ${COMPOSE_PROJECT_NAME}-web
    environment:
      A: ${FROM_DOTENV}
      B: ${FROM_FLEET}
      C: ${FROM_HOST}
      DB_PASSWORD:
    volumes:
      - ./data:/data
      - ./conf:/conf:ro
      - /srv/shared:/shared
  cron:
    image: ghcr.io/example/web:1.2.3
    profiles: [cron]
  debug:
    image: ghcr.io/example/web:1.2.3
    profiles: [debug]
`,
		"apps/web/.env":          "WEB_VERSION=v1.135.3\nFROM_DOTENV=dotenv\nFROM_FLEET=dotenv-loses\nFROM_HOST=dotenv-loses\n",
		"apps/web/conf/app.conf": "x\n",
		"hosts/h/host.yaml":      "apps: [web]\nvars:\n  FROM_HOST: host\nprofiles:\n  web: [cron]\n",
	}
	r := mustLoad(t, files)
	r.ProjectsDir = "/state/projects"
	projects, ps := r.Render(context.Background(), "h", Secrets{"DB_PASSWORD": "pw-Secret-1234"})
	if ps.HasErrors() || len(projects) != 1 {
		t.Fatalf("Render: %v", ps)
	}
	p := projects[0]
	web := p.Compose.Services["web"]
	if web.Image != "ghcr.io/example/web:v1.135.3" {
		t.Errorf("image %q: .env's WEB_VERSION was not used", web.Image)
	}
	if web.ContainerName != "web-web" {
		t.Errorf("container_name %q: COMPOSE_PROJECT_NAME is the app", web.ContainerName)
	}
	for k, want := range map[string]string{"A": "dotenv", "B": "fleet", "C": "host", "DB_PASSWORD": "pw-Secret-1234"} {
		if got := env(t, p, "web", k); got != want {
			t.Errorf("%s = %q, want %q (host vars, then fleet defaults, then .env)", k, got, want)
		}
	}
	// The bare name DB_PASSWORD is a secret in the environment: tracked, so
	// rotating it recreates web, and warned about.
	if !slices.Contains(p.SecretKeys["web"], "DB_PASSWORD") {
		t.Errorf("secret keys of web: %v", p.SecretKeys["web"])
	}
	if !slices.ContainsFunc(ps, func(pr Problem) bool { return pr.Rule == "secret-in-env" && pr.Line == 9 }) {
		t.Errorf("no secret-in-env warning at line 9 for the bare name: %v", ps)
	}
	if _, ok := p.Compose.Services["cron"]; !ok {
		t.Error("profile cron, enabled in host.yaml, left cron out")
	}
	if _, ok := p.Compose.Services["debug"]; ok {
		t.Error("profile debug is not enabled but debug is deployed")
	}
	if !slices.ContainsFunc(ps, func(pr Problem) bool {
		return pr.Severity == Warning && strings.Contains(pr.Msg, `"debug" is not deployed`)
	}) {
		t.Errorf("no warning for the service an inactive profile leaves out: %v", ps)
	}
	// Relative bind mounts resolve in the project's directory; the host's
	// own paths stay.
	var sources []string
	for _, v := range web.Volumes {
		sources = append(sources, v.Source)
	}
	want := []string{"/state/projects/web/data", "/state/projects/web/conf", "/srv/shared"}
	if !slices.Equal(sources, want) {
		t.Errorf("bind sources %v, want %v", sources, want)
	}
	if p.Dir != "/state/projects/web" || p.Compose.WorkingDir != p.Dir {
		t.Errorf("project dir %q, working dir %q", p.Dir, p.Compose.WorkingDir)
	}
	if len(p.Mounts) != 2 {
		t.Fatalf("mounts: %+v", p.Mounts)
	}
	conf, data := p.Mounts[0], p.Mounts[1]
	if conf.Data() || !conf.Dir || conf.Writable || conf.Source != filepath.Join(r.Root, "apps/web/conf") || conf.Rel != "apps/web/conf" {
		t.Errorf("conf mount: %+v", conf)
	}
	if !data.Data() || !data.Writable || !slices.Equal(data.Services, []string{"web"}) {
		t.Errorf("data mount: %+v", data)
	}
	// render's YAML keeps $ escaped and shows no secret.
	out, err := p.YAML(Secrets{"DB_PASSWORD": "pw-Secret-1234"})
	if err != nil || strings.Contains(string(out), "pw-Secret") {
		t.Fatalf("YAML: %v\n%s", err, out)
	}
}

func TestRenderProfilesAndPaths(t *testing.T) {
	cases := map[string]struct {
		files map[string]string
		want  string // a problem's "path:line: severity: message" prefix
	}{
		"every service behind a profile": {map[string]string{
			"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    profiles: [x]\n",
		}, "apps/web/compose.yaml: error: deploys nothing on host \"h\""},
		"profiles for an app the host does not run": {map[string]string{
			"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n",
			"hosts/h/host.yaml":     "apps: [web]\nprofiles:\n  other: [x]\n",
		}, "hosts/h/host.yaml:3: error: profiles: host \"h\" does not run app \"other\""},
		"include of an absolute path": {map[string]string{
			"apps/web/compose.yaml": "include: [/etc/compose.yaml]\nservices:\n  web:\n    image: nginx:1.27.3\n",
		}, "apps/web/compose.yaml:1: error: include: \"/etc/compose.yaml\" is an absolute path"},
		"include out of the repository": {map[string]string{
			"apps/web/compose.yaml": "include: [../../../x.yaml]\nservices:\n  web:\n    image: nginx:1.27.3\n",
		}, "apps/web/compose.yaml:1: error: include: \"../../../x.yaml\" leads out of the repository"},
		"a config file the repository lacks": {map[string]string{
			"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    configs: [c]\nconfigs:\n  c:\n    file: ./missing.conf\n",
		}, "apps/web/compose.yaml:7: error: config c reads apps/web/missing.conf, which the repository does not have"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, ok := c.files["hosts/h/host.yaml"]; !ok {
				c.files["hosts/h/host.yaml"] = "apps: [web]\n"
			}
			r, ps := Load(writeRepo(t, c.files))
			if !ps.HasErrors() {
				_, ps = r.Render(context.Background(), "h", nil)
			}
			if !slices.ContainsFunc(ps, func(p Problem) bool { return strings.HasPrefix(p.String(), c.want) }) {
				t.Errorf("want a problem %q, got:\n%v", c.want, ps)
			}
		})
	}
}

func TestRenderClashes(t *testing.T) {
	files := map[string]string{
		"apps/a/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    ports: [\"127.0.0.1:8080:80\", \"9000-9002:9000-9002\"]\n",
		"apps/b/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    ports: [\"127.0.0.2:8080:80\", \"9002:80/udp\"]\n",
		"apps/c/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    ports: [\"9001:80\"]\n",
		"hosts/h/host.yaml":   "apps: [a, b, c]\n",
	}
	_, ps := mustLoad(t, files).Render(context.Background(), "h", nil)
	var errs []string
	for _, p := range ps {
		if p.Severity == Error {
			errs = append(errs, p.String())
		}
	}
	// 8080 on two addresses and 9002/udp against 9002/tcp do not clash;
	// 9001 inside a's range does.
	if len(errs) != 1 || !strings.Contains(errs[0], "apps/c/compose.yaml:2") || !strings.Contains(errs[0], "host port 9001/tcp") {
		t.Errorf("clashes: %v", errs)
	}
}

func TestDotEnvCannotReadSecrets(t *testing.T) {
	files := map[string]string{
		"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    environment:\n      URL: ${DB_URL}\n",
		"apps/web/.env":         "DB_URL=postgres://app:${db_password}@db/app\n",
		"hosts/h/host.yaml":     "apps: [web]\n",
	}
	p := renderOne(t, files, "h", "web", Secrets{"db_password": "pw-Never-Shown-77"})
	if got := env(t, p, "web", "URL"); strings.Contains(got, "pw-Never-Shown-77") {
		t.Errorf("a .env value took a secret, which nothing would redact: %q", got)
	}
}
