package desired

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// renderOne loads files, renders host and returns its project of app.
func renderOne(t *testing.T, files map[string]string, host, app string, secrets Secrets) *Project {
	t.Helper()
	r := mustLoad(t, files)
	projects, ps := r.Render(context.Background(), host, secrets)
	if ps.HasErrors() {
		t.Fatalf("Render: %v", ps)
	}
	for _, p := range projects {
		if p.Name() == app {
			return p
		}
	}
	t.Fatalf("host %s renders no project %s", host, app)
	return nil
}

func env(t *testing.T, p *Project, service, key string) string {
	t.Helper()
	s, ok := p.Compose.Services[service]
	if !ok {
		t.Fatalf("project %s has no service %s", p.Name(), service)
	}
	v, ok := s.Environment[key]
	if !ok || v == nil {
		t.Fatalf("service %s has no environment %s: %v", service, key, s.Environment)
	}
	return *v
}

func TestRenderVariables(t *testing.T) {
	alpha := renderOne(t, baseRepo, "alpha", "web", nil)
	beta := renderOne(t, baseRepo, "beta", "web", nil)
	if got := env(t, alpha, "web", "TZ"); got != "Europe/Berlin" {
		t.Errorf("alpha TZ = %q, want the host var Europe/Berlin over the fleet default", got)
	}
	if got := env(t, beta, "web", "TZ"); got != "UTC" {
		t.Errorf("beta TZ = %q, want the fleet default UTC", got)
	}
	if got := env(t, alpha, "web", "GREETING"); got != "hello" {
		t.Errorf("alpha GREETING = %q, want the fleet default", got)
	}
	if alpha.Compose.Name != "web" || !slices.Equal(alpha.Files, []string{"apps/web/compose.yaml"}) {
		t.Errorf("project name %q, files %v", alpha.Compose.Name, alpha.Files)
	}
}

func TestRenderInterpolationForms(t *testing.T) {
	compose := `services:
  web:
    image: nginx:1.27.3
    environment:
      HOST: ${SYNCD_HOST}
      APP: $SYNCD_APP
      DEFAULTED: ${UNSET:-fallback}
      DASH: ${UNSET-dash}
      EMPTY_DEFAULT: ${EMPTY:-used}
      EMPTY_KEPT: ${EMPTY-unused}
      ALT: ${SET:+alternative}
      NO_ALT: ${UNSET:+alternative}
      NESTED: ${UNSET:-${SET}}
      ESCAPED: $$UNSET and $${UNSET}
      REQUIRED: ${SET:?SET must be set}
`
	files := with(baseRepo, map[string]string{
		"apps/web/compose.yaml": compose,
		"hosts/beta/host.yaml":  "apps: [web]\nvars:\n  SET: value\n  EMPTY: \"\"\n",
	})
	p := renderOne(t, files, "beta", "web", nil)
	want := map[string]string{
		"HOST": "beta", "APP": "web", "DEFAULTED": "fallback", "DASH": "dash",
		"EMPTY_DEFAULT": "used", "EMPTY_KEPT": "", "ALT": "alternative", "NO_ALT": "",
		"NESTED": "value", "ESCAPED": "$UNSET and ${UNSET}", "REQUIRED": "value",
	}
	for k, v := range want {
		if got := env(t, p, "web", k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

// TestRenderUndefinedVariables: a name defined nowhere is an error naming
// the file, the line and the variable, never an empty string.
func TestRenderUndefinedVariables(t *testing.T) {
	cases := []struct {
		name  string
		value string
		vars  string // host vars, YAML flow mapping
		want  []string
	}{
		{"braced", "${NOPE}", "{}", []string{"NOPE"}},
		{"bare", "x-$NOPE-y", "{}", []string{"NOPE"}},
		{"required with message", "${NOPE?set NOPE}", "{}", []string{"NOPE"}},
		{"required non-empty", "${NOPE:?}", "{}", []string{"NOPE"}},
		{"in the default of an unset name", "${UNSET:-${NOPE}}", "{}", []string{"NOPE"}},
		{"deeply nested default", "${UNSET:-${UNSET2:-${NOPE}}}", "{}", []string{"NOPE"}},
		{"in the default of an empty name", "${EMPTY:-${NOPE}}", "{EMPTY: ''}", []string{"NOPE"}},
		{"in the alternative of a set name", "${SET:+${NOPE}}", "{SET: x}", []string{"NOPE"}},
		{"in the alternative of a set name, hard form", "${SET+${NOPE}}", "{SET: x}", []string{"NOPE"}},
		{"two on one line", "${NOPE}${NOPE2}", "{}", []string{"NOPE", "NOPE2"}},
		{"defined on another host only", "${ONLY_ALPHA}", "{}", []string{"ONLY_ALPHA"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := with(baseRepo, map[string]string{
				"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    environment:\n      X: \"" + c.value + "\"\n",
				"hosts/beta/host.yaml":  "apps: [web]\nvars: " + c.vars + "\n",
				"hosts/alpha/host.yaml": "apps: [web]\nvars: {ONLY_ALPHA: here}\n",
			})
			r := mustLoad(t, files)
			projects, ps := r.Render(context.Background(), "beta", nil)
			if projects != nil {
				t.Errorf("Render returned projects with errors")
			}
			text := ps.Error()
			for _, name := range c.want {
				w := `apps/web/compose.yaml:5: error: variable ${` + name + `} is not defined for host "beta"; define it under vars in hosts/beta/host.yaml, under defaults.vars in syncd.yaml, or as a key of the host's secrets file`
				if !strings.Contains(text, w) {
					t.Errorf("problems lack %q:\n%s", w, text)
				}
			}
		})
	}
	// And the forms that are not errors when the name is unset.
	for _, value := range []string{"${NOPE:-x}", "${NOPE-}", "${NOPE:+${NOPE2}}", "${NOPE+${NOPE2}}", "$$NOPE", "$${NOPE}", "${SET-${NOPE}}", "${SET:-${NOPE}}"} {
		files := with(baseRepo, map[string]string{
			"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    environment:\n      X: \"" + value + "\"\n",
			"hosts/beta/host.yaml":  "apps: [web]\nvars: {SET: x}\n",
		})
		if _, ps := mustLoad(t, files).Render(context.Background(), "beta", nil); ps.HasErrors() {
			t.Errorf("%s: %v", value, ps)
		}
	}
}

func TestRenderOverride(t *testing.T) {
	files := with(baseRepo, map[string]string{
		"apps/web/compose.yaml": `services:
  web:
    image: nginx:1.27.3
    environment:
      TZ: ${TZ}
      LIMIT: 2G
    mem_limit: 256m
    labels:
      tier: front
`,
		"hosts/beta/web.override.yaml": `services:
  web:
    environment:
      LIMIT: 16G
      EXTRA: ${SYNCD_HOST}
    mem_limit: 1g
  sidecar:
    image: busybox:1.37.0
`,
	})
	beta := renderOne(t, files, "beta", "web", nil)
	alpha := renderOne(t, files, "alpha", "web", nil)
	if !slices.Equal(beta.Files, []string{"apps/web/compose.yaml", "hosts/beta/web.override.yaml"}) {
		t.Errorf("beta files = %v", beta.Files)
	}
	if got := env(t, beta, "web", "LIMIT"); got != "16G" {
		t.Errorf("beta LIMIT = %q, want the override's 16G", got)
	}
	if got := env(t, beta, "web", "EXTRA"); got != "beta" {
		t.Errorf("beta EXTRA = %q (the override is interpolated too)", got)
	}
	if got := env(t, beta, "web", "TZ"); got != "UTC" {
		t.Errorf("beta TZ = %q, want the base file's, kept", got)
	}
	if got := beta.Compose.Services["web"].Labels["tier"]; got != "front" {
		t.Errorf("beta label tier = %q, want the base file's, kept", got)
	}
	if got := beta.Compose.Services["web"].MemLimit; got != 1<<30 {
		t.Errorf("beta mem_limit = %d, want 1g", got)
	}
	if _, ok := beta.Compose.Services["sidecar"]; !ok {
		t.Error("beta lacks the override's new service")
	}
	if got := env(t, alpha, "web", "LIMIT"); got != "2G" {
		t.Errorf("alpha LIMIT = %q: another host's override leaked in", got)
	}
	if _, ok := alpha.Compose.Services["sidecar"]; ok || len(alpha.Files) != 1 {
		t.Errorf("alpha has beta's override: files %v", alpha.Files)
	}
	if loc := beta.ServiceLocation("sidecar"); loc.Path != "hosts/beta/web.override.yaml" || loc.Line != 7 {
		t.Errorf("sidecar location = %+v", loc)
	}
	if loc := beta.ServiceLocation("web"); loc.Path != "apps/web/compose.yaml" || loc.Line != 2 {
		t.Errorf("web location = %+v", loc)
	}
}

func TestRenderSecrets(t *testing.T) {
	files := with(baseRepo, map[string]string{
		"apps/web/compose.yaml": `services:
  web:
    image: nginx:1.27.3
    secrets: [db_password, {source: api_token, target: token}]
    environment:
      TOKEN_IN_ENV: ${api_token}
  worker:
    image: busybox:1.37.0
    secrets: [own]
secrets:
  own:
    environment: db_password
`,
		"hosts/beta/secrets.sops.yaml": "placeholder: the test hands values in\n",
	})
	r := mustLoad(t, files)
	secrets := Secrets{"db_password": "Pa55-w0rd-Value", "api_token": "tok-123456789", "unused": "nobody-uses-this"}
	projects, ps := r.Render(context.Background(), "beta", secrets)
	if ps.HasErrors() {
		t.Fatalf("Render: %v", ps)
	}
	p := projects[0]
	if got := p.SecretKeys["web"]; !slices.Equal(got, []string{"api_token", "db_password"}) {
		t.Errorf("web uses %v", got)
	}
	if got := p.SecretKeys["worker"]; !slices.Equal(got, []string{"db_password"}) {
		t.Errorf("worker uses %v", got)
	}
	for _, name := range []string{"db_password", "api_token"} {
		s, ok := p.Compose.Secrets[name]
		if !ok || s.Environment != name {
			t.Errorf("secret %s = %+v, want an environment source", name, s)
		}
	}
	if got := env(t, p, "web", "TOKEN_IN_ENV"); got != "tok-123456789" {
		t.Errorf("TOKEN_IN_ENV = %q", got)
	}
	warn := `apps/web/compose.yaml:6: warning[secret-in-env]: service "web" puts secret "api_token" into its configuration as ${api_token}`
	if !strings.Contains(ps.Error(), warn) {
		t.Errorf("no secret-in-env warning:\n%v", ps)
	}
	out, err := p.YAML(secrets)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range secrets {
		if strings.Contains(string(out), v) {
			t.Errorf("YAML holds the value %q:\n%s", v, out)
		}
	}
	if !strings.Contains(string(out), Redacted("tok-123456789")) {
		t.Errorf("YAML does not show the redacted form:\n%s", out)
	}

	// A deviation silences the warning.
	files["apps/web/app.yaml"] = "after: [proxy]\ndeviations:\n  - rule: secret-in-env\n    service: web\n    reason: the image reads only its environment\n"
	_, ps = mustLoad(t, files).Render(context.Background(), "beta", secrets)
	if strings.Contains(ps.Error(), "secret-in-env") {
		t.Errorf("warning despite the deviation:\n%v", ps)
	}
}

func TestRenderProblems(t *testing.T) {
	cases := []struct {
		name    string
		changes map[string]string
		secrets Secrets
		want    []string
	}{
		{"secret defined nowhere", map[string]string{
			"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    secrets:\n      - db_pasword\n",
		}, Secrets{"db_password": "x"},
			[]string{`apps/web/compose.yaml:5: error: service "web" uses secret "db_pasword", which is neither defined in the compose file nor a key of hosts/beta/secrets.sops.yaml; add it with ` + "`sops edit hosts/beta/secrets.sops.yaml`"}},
		{"secret reads an undefined environment", map[string]string{
			"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    secrets: [s]\nsecrets:\n  s:\n    environment: missing_key\n",
		}, nil,
			[]string{`apps/web/compose.yaml:6: error: secret "s" reads environment "missing_key", which host "beta" does not define; add the key "missing_key" to hosts/beta/secrets.sops.yaml`}},
		{"secret and variable clash", map[string]string{
			"hosts/beta/host.yaml":         "apps: [web]\nvars: {TZ: UTC}\n",
			"hosts/beta/secrets.sops.yaml": "x: y\n",
		}, Secrets{"TZ": "secret-tz"},
			[]string{`hosts/beta/secrets.sops.yaml: error: "TZ" is both a secret key and a variable in hosts/beta/host.yaml vars; rename one`}},
		{"secret and fleet default clash", map[string]string{"hosts/beta/secrets.sops.yaml": "x: y\n"}, Secrets{"GREETING": "x"},
			[]string{`"GREETING" is both a secret key and a variable in syncd.yaml defaults.vars`}},
		{"compose file not a mapping", map[string]string{"apps/web/compose.yaml": "- web\n"}, nil,
			[]string{"apps/web/compose.yaml: error: a compose file must be a YAML mapping with a services: key"}},
		{"compose file bad YAML", map[string]string{"apps/web/compose.yaml": "services:\n  web:\n    image: [nginx\n"}, nil,
			[]string{"apps/web/compose.yaml:2: error: invalid YAML: did not find expected"}},
		{"loader rejects a port", map[string]string{
			"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    ports:\n      - \"80:80:80:80\"\n",
		}, nil, []string{"apps/web/compose.yaml: error: the Compose loader rejects this file: invalid IP address: 80:80"}},
		{"loader rejects a mem_limit", map[string]string{
			"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    mem_limit: lots\n",
		}, nil, []string{"apps/web/compose.yaml:4: error: the Compose loader rejects this file: 'services[web].mem_limit'"}},
		{"loader rejects an unknown key", map[string]string{
			"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    restart_policy: always\n",
		}, nil, []string{"apps/web/compose.yaml:4: error: the Compose loader rejects this file: services.web additional properties 'restart_policy' not allowed"}},
		{"loader rejects a dependency", map[string]string{
			"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    depends_on: [db]\n",
		}, nil, []string{`apps/web/compose.yaml:4: error: the Compose loader rejects this file: service "web" depends on undefined service "db"`}},
		{"loader rejects an override", map[string]string{
			"hosts/beta/web.override.yaml": "services:\n  web:\n    cpus: many\n",
		}, nil, []string{"hosts/beta/web.override.yaml:3: error: the Compose loader rejects this file:", "services.web.cpus"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, lps := Load(writeRepo(t, with(baseRepo, c.changes)))
			if lps.HasErrors() {
				t.Fatalf("Load: %v", lps)
			}
			projects, ps := r.Render(context.Background(), "beta", c.secrets)
			if !ps.HasErrors() || projects != nil {
				t.Fatalf("Render succeeded: %v", ps)
			}
			for _, w := range c.want {
				if !strings.Contains(ps.Error(), w) {
					t.Errorf("problems lack %q:\n%s", w, ps.Error())
				}
			}
		})
	}
}

func TestRenderUnknownHost(t *testing.T) {
	r := mustLoad(t, baseRepo)
	_, ps := r.Render(context.Background(), "alhpa", nil)
	if want := `hosts: error: unknown host "alhpa" (did you mean "alpha"?); hosts in this repository: alpha, beta`; ps.Error() != want {
		t.Errorf("got %q, want %q", ps.Error(), want)
	}
}

func TestRenderYAMLIsStable(t *testing.T) {
	p := renderOne(t, baseRepo, "alpha", "web", nil)
	a, err := p.YAML(nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		p := renderOne(t, baseRepo, "alpha", "web", nil)
		b, err := p.YAML(nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(a) != string(b) {
			t.Fatalf("two renders differ:\n%s\n---\n%s", a, b)
		}
	}
	for _, want := range []string{"name: web\n", "image: nginx:1.27.3\n", "TZ: Europe/Berlin\n"} {
		if !strings.Contains(string(a), want) {
			t.Errorf("YAML lacks %q:\n%s", want, a)
		}
	}
}

// TestRenderStandIns: without the host's key a secret is a placeholder,
// which Compose refuses where it wants a number; the file is checked with a
// stand-in instead of being refused for it.
func TestRenderStandIns(t *testing.T) {
	port := "services:\n  web:\n    image: nginx:1.27.3\n    ports: [\"${PORT}:80\"]\n    environment:\n      KEY: ${API_KEY}\n"
	files := with(baseRepo, map[string]string{
		"apps/web/compose.yaml":        port,
		"hosts/beta/secrets.sops.yaml": "x: y\n",
	})
	r := mustLoad(t, files)
	placeholders := Placeholders([]string{"PORT", "API_KEY", "UNUSED"})
	projects, ps := r.Render(context.Background(), "beta", placeholders)
	if ps.HasErrors() {
		t.Fatalf("placeholders refused: %v", ps)
	}
	p := projects[0]
	if !slices.Equal(p.StandIns, []string{"API_KEY", "PORT"}) {
		t.Errorf("StandIns = %v, want the secrets used as ${NAME}", p.StandIns)
	}
	if got := p.Compose.Services["web"].Ports[0].Published; got != "1" {
		t.Errorf("published port = %q, want the stand-in", got)
	}

	// With values, no stand-in: the real value is what is checked.
	projects, ps = r.Render(context.Background(), "beta", Secrets{"PORT": "8080", "API_KEY": "k-123456789"})
	if ps.HasErrors() || len(projects[0].StandIns) != 0 {
		t.Fatalf("with values: %v, stand-ins %v", ps, projects[0].StandIns)
	}
	_, ps = r.Render(context.Background(), "beta", Secrets{"PORT": "eighty", "API_KEY": "k-123456789"})
	if !strings.Contains(ps.Error(), "the Compose loader rejects this file") || strings.Contains(ps.Error(), "stood in") {
		t.Errorf("a bad real value: %v", ps)
	}

	// A real error beside the placeholder is reported, not the placeholder's.
	files["apps/web/compose.yaml"] = port + "    mem_limit: lots\n"
	_, ps = mustLoad(t, files).Render(context.Background(), "beta", placeholders)
	want := "apps/web/compose.yaml:7: error: the Compose loader rejects this file: 'services[web].mem_limit' invalid size: 'lots' (checked without the host's key: API_KEY, PORT stood in as 1)"
	if ps.Error() == "" || !strings.Contains(ps.Error(), want) || strings.Contains(ps.Error(), "<secret") {
		t.Errorf("problems:\n%v\nwant %s", ps, want)
	}
}
