package desired

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeRepo writes files (repository-relative path -> content) into a new
// directory and returns it.
func writeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// with returns base with the given files added, replaced or (for "")
// removed.
func with(base map[string]string, changes map[string]string) map[string]string {
	out := maps.Clone(base)
	for p, c := range changes {
		if c == "" {
			delete(out, p)
		} else {
			out[p] = c
		}
	}
	return out
}

const webCompose = `services:
  web:
    image: nginx:1.27.3
    environment:
      TZ: ${TZ}
      GREETING: ${GREETING}
`

// baseRepo is a small valid repository: two apps, two hosts.
var baseRepo = map[string]string{
	"syncd.yaml":              "defaults:\n  vars:\n    TZ: UTC\n    GREETING: hello\n",
	"apps/web/compose.yaml":   webCompose,
	"apps/proxy/compose.yaml": "services:\n  proxy:\n    image: traefik:v3.3.4\n",
	"apps/proxy/app.yaml":     "drift: report\n",
	"apps/web/app.yaml":       "after: [proxy]\n",
	"hosts/alpha/host.yaml":   "apps: [web, proxy]\nvars:\n  TZ: Europe/Berlin\n",
	"hosts/beta/host.yaml":    "apps: [web]\nwave: 1\n",
}

func mustLoad(t *testing.T, files map[string]string) *Repo {
	t.Helper()
	r, ps := Load(writeRepo(t, files))
	if ps.HasErrors() {
		t.Fatalf("Load: %v", ps)
	}
	return r
}

func TestLoadValid(t *testing.T) {
	r, ps := Load(writeRepo(t, baseRepo))
	if len(ps) != 0 {
		t.Fatalf("Load of a valid repository: %v", ps)
	}
	if got := slices.Sorted(maps.Keys(r.Apps)); !slices.Equal(got, []string{"proxy", "web"}) {
		t.Errorf("apps = %v", got)
	}
	if got := slices.Sorted(maps.Keys(r.Hosts)); !slices.Equal(got, []string{"alpha", "beta"}) {
		t.Errorf("hosts = %v", got)
	}
	if r.Apps["proxy"].Drift != DriftReport || r.Apps["web"].Drift != DriftHeal {
		t.Errorf("drift: proxy %q, web %q; want report, heal (the default)", r.Apps["proxy"].Drift, r.Apps["web"].Drift)
	}
	if h := r.Hosts["beta"]; h.Wave != 1 || h.SecretsFile != "" {
		t.Errorf("beta: wave %d, secrets %q", h.Wave, h.SecretsFile)
	}
	if r.Apps["web"].ComposeFile != "apps/web/compose.yaml" {
		t.Errorf("web compose file = %q", r.Apps["web"].ComposeFile)
	}
}

// TestLoadProblems: each broken repository is refused with a problem that
// names the file, the line where known, and what to do.
func TestLoadProblems(t *testing.T) {
	cases := []struct {
		name    string
		changes map[string]string
		want    []string // each must be a substring of one problem
	}{
		{"bad YAML", map[string]string{"hosts/alpha/host.yaml": "apps: [web\nvars: {}\n"},
			[]string{"hosts/alpha/host.yaml:1: error: invalid YAML: did not find expected ',' or ']'"}},
		{"tab-indented YAML", map[string]string{"syncd.yaml": "defaults:\n\tvars: {}\n"},
			[]string{"syncd.yaml:2: error: invalid YAML: found character that cannot start any token"}},
		{"misspelt field", map[string]string{"hosts/alpha/host.yaml": "apps: [web]\nvar:\n  TZ: UTC\n"},
			[]string{`hosts/alpha/host.yaml:2: error: unknown field "var" (did you mean "vars"?); known fields: apps, wave, vars, backup, scan`}},
		{"misspelt nested field", map[string]string{"hosts/alpha/host.yaml": "apps: [web]\nscan:\n  schedul: \"@daily\"\n"},
			[]string{`hosts/alpha/host.yaml:3: error: unknown field "schedul" in scan (did you mean "schedule"?)`}},
		{"misspelt field in syncd.yaml", map[string]string{"syncd.yaml": "defaults:\n  vars: {}\nwave:\n  bake_time: 1h\n"},
			[]string{`syncd.yaml:3: error: unknown field "wave" (did you mean "waves"?)`}},
		{"unknown app", map[string]string{"hosts/beta/host.yaml": "apps:\n  - web\n  - prxy\n"},
			[]string{`hosts/beta/host.yaml:3: error: unknown app "prxy" (did you mean "proxy"?): there is no apps/prxy/compose.yaml; known apps: proxy, web`}},
		{"unknown app, no close name", map[string]string{"hosts/beta/host.yaml": "apps: [nextcloud]\n"},
			[]string{`hosts/beta/host.yaml:1: error: unknown app "nextcloud": there is no apps/nextcloud/compose.yaml`}},
		{"app listed twice", map[string]string{"hosts/beta/host.yaml": "apps: [web, web]\n"},
			[]string{`hosts/beta/host.yaml:1: error: app "web" is listed twice`}},
		{"no apps", map[string]string{"hosts/beta/host.yaml": "wave: 1\n"},
			[]string{"hosts/beta/host.yaml:1: error: apps: list the apps this host runs"}},
		{"empty host.yaml", map[string]string{"hosts/beta/host.yaml": "# nothing yet\n"},
			[]string{"hosts/beta/host.yaml: error: apps: list the apps this host runs"}},
		{"missing host.yaml", map[string]string{"hosts/beta/host.yaml": "", "hosts/beta/web.override.yaml": "services: {}\n"},
			[]string{"hosts/beta/host.yaml: error: missing; create it"}},
		{"wrong type", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nwave: first\n"},
			[]string{`hosts/beta/host.yaml:2: error: wave: expected a whole number, got "first"`}},
		{"waves.skip names no host", map[string]string{"syncd.yaml": "waves:\n  skip:\n    - alpha\n    - betta\n"},
			[]string{`syncd.yaml:4: error: waves.skip: unknown host "betta" (did you mean "beta"?): there is no hosts/betta/host.yaml`}},
		{"status_key not a key", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nstatus_key: AAAAC3NzaC1lZDI1NTE5\n"},
			[]string{"hosts/beta/host.yaml:2: error: status_key: not an SSH public key (ssh-ed25519 AAAA…)"}},
		{"status_key not ed25519", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nstatus_key: " + ecdsaKey + "\n"},
			[]string{"hosts/beta/host.yaml:2: error: status_key: a ecdsa-sha2-nistp256 key; a host signs its status with an ssh-ed25519 key"}},
		{"negative wave", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nwave: -1\n"},
			[]string{"hosts/beta/host.yaml:2: error: wave must be 0 (canaries) or more"}},
		{"bad duration", map[string]string{"apps/web/app.yaml": "health_timeout: soon\n"},
			[]string{`apps/web/app.yaml:1: error: health_timeout: expected a duration like 90s, 5m or 1h, got "soon"`}},
		{"vars not a mapping", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nvars: [TZ]\n"},
			[]string{"hosts/beta/host.yaml:2: error: vars: expected a mapping, got a list"}},
		{"invalid variable name", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nvars:\n  my-var: x\n"},
			[]string{`hosts/beta/host.yaml:3: error: variable name "my-var" is not valid`}},
		{"reserved variable", map[string]string{"syncd.yaml": "defaults:\n  vars:\n    SYNCD_HOST: x\n"},
			[]string{`syncd.yaml:3: error: variable "SYNCD_HOST": names starting with SYNCD_ are reserved`}},
		{"plaintext secrets file", map[string]string{"hosts/beta/secrets.yaml": "DB_PASSWORD: hunter2\n"},
			[]string{"hosts/beta/secrets.yaml: error: this looks like a plaintext secrets file; put secrets in hosts/beta/secrets.sops.yaml, encrypted with sops"}},
		{"plaintext .env", map[string]string{"hosts/beta/web.env": "DB_PASSWORD=hunter2\n"},
			[]string{"hosts/beta/web.env: error: this looks like a plaintext secrets file"}},
		{"two secrets files", map[string]string{"hosts/beta/secrets.sops.yaml": "a: b\n", "hosts/beta/secrets.sops.env": "a=b\n"},
			[]string{`host "beta" has two secrets files (secrets.sops.env and secrets.sops.yaml); keep one`}},
		{"override of an app the host does not run", map[string]string{"hosts/beta/proxy.override.yaml": "services: {}\n"},
			[]string{`hosts/beta/proxy.override.yaml: error: override for app "proxy", which host "beta" does not run; add "proxy" to apps in hosts/beta/host.yaml or remove the file`}},
		{"unused file", map[string]string{"hosts/beta/notes.txt": "hi\n"},
			[]string{"hosts/beta/notes.txt: warning: file is not used by syncd"}},
		{"invalid host name", map[string]string{"hosts/Gamma/host.yaml": "apps: [web]\n"},
			[]string{`hosts/Gamma: error: host name "Gamma" is not valid`}},
		{"invalid app name", map[string]string{"apps/My App/compose.yaml": "services: {}\n"},
			[]string{`apps/My App: error: app name "My App" is not valid`}},
		{"app without compose file", map[string]string{"apps/db/app.yaml": "drift: heal\n"},
			[]string{`apps/db: error: app "db" has no compose file; add apps/db/compose.yaml`}},
		{"bad drift", map[string]string{"apps/web/app.yaml": "drift: fix\n"},
			[]string{`apps/web/app.yaml:1: error: drift: "fix" is not a drift policy; use heal (default) or report`}},
		{"after an unknown app", map[string]string{"apps/web/app.yaml": "after:\n  - proxyy\n"},
			[]string{`apps/web/app.yaml:2: error: after: unknown app "proxyy" (did you mean "proxy"?)`}},
		{"after itself", map[string]string{"apps/web/app.yaml": "after: [web]\n"},
			[]string{`apps/web/app.yaml:1: error: after: app "web" cannot come after itself`}},
		{"after cycle", map[string]string{"apps/proxy/app.yaml": "after: [web]\n"},
			[]string{"error: after: cycle proxy → web → proxy; remove one of these dependencies"}},
		{"invalid schedule", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nscan:\n  schedule: every day\n"},
			[]string{`hosts/beta/host.yaml:3: error: scan.schedule: invalid schedule "every day"`, `use 5 cron fields`}},
		{"scan schedule that never fires", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nscan:\n  schedule: \"0 0 30 2 *\"\n"},
			[]string{`hosts/beta/host.yaml:3: error: scan.schedule: invalid schedule "0 0 30 2 *": it never fires`}},
		{"backup schedule that never fires", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nbackup:\n  repository_secret: r\n  password_secret: p\n  schedule: \"0 0 31 4 *\"\n"},
			[]string{`hosts/beta/host.yaml:5: error: backup.schedule: invalid schedule "0 0 31 4 *": it never fires`}},
		{"check schedule every millisecond", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nbackup:\n  repository_secret: r\n  password_secret: p\n  check_schedule: \"@every 1ms\"\n"},
			[]string{`hosts/beta/host.yaml:5: error: backup.check_schedule: invalid schedule "@every 1ms": it runs more often than once every 1m0s`, "at most once every 1m0s"}},
		{"scan schedule every 30 seconds", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nscan:\n  schedule: \"@every 30s\"\n"},
			[]string{`hosts/beta/host.yaml:3: error: scan.schedule: invalid schedule "@every 30s": it runs more often than once every 1m0s`}},
		{"app backup schedule that never fires", map[string]string{"apps/web/app.yaml": "backup:\n  schedule: \"0 0 30 2 *\"\n"},
			[]string{`apps/web/app.yaml:2: error: backup.schedule: invalid schedule "0 0 30 2 *": it never fires`}},
		{"probe schedule that never fires", map[string]string{"apps/web/app.yaml": "probes:\n  - name: home\n    schedule: \"0 0 30 2 *\"\n    tcp: {address: \"web:80\"}\n"},
			[]string{`apps/web/app.yaml:3: error: probes.0.schedule: invalid schedule "0 0 30 2 *": it never fires`}},
		{"invalid severity", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nscan:\n  refuse_severity: critical\n"},
			[]string{`hosts/beta/host.yaml:3: error: scan.refuse_severity: "critical" is not a severity; use one of UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL`}},
		{"backup without secrets file", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nbackup:\n  repository_secret: repo\n  password_secret: pw\n"},
			[]string{`hosts/beta/host.yaml:3: error: backup names secrets but host "beta" has no hosts/beta/secrets.sops.yaml`}},
		{"backup env not a variable name", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nbackup:\n  schedule: \"@daily\"\n  env:\n    aws-key: k\n"},
			[]string{`hosts/beta/host.yaml:5: error: backup.env: "aws-key" is not an environment variable name`}},
		{"backup without secret names", map[string]string{"hosts/beta/host.yaml": "apps: [web]\nbackup:\n  schedule: \"@daily\"\n"},
			[]string{"hosts/beta/host.yaml:3: error: backup: repository_secret and password_secret are required"}},
		{"probe with two kinds", map[string]string{"apps/web/app.yaml": "probes:\n  - name: home\n    http: {url: \"https://x\"}\n    tcp: {address: \"x:1\"}\n"},
			[]string{"apps/web/app.yaml:2: error: probes[0] (home): set exactly one of http, tcp or container"}},
		{"probe with no kind", map[string]string{"apps/web/app.yaml": "probes:\n  - name: home\n    timeout: 5s\n"},
			[]string{"apps/web/app.yaml:2: error: probes[0] (home): set exactly one of http, tcp or container (found 0)"}},
		{"probe with an invalid URL", map[string]string{"apps/web/app.yaml": "probes:\n  - name: home\n    http:\n      url: \"ftp://x/\"\n"},
			[]string{`apps/web/app.yaml:4: error: probes[0] (home): http.url: "ftp://x/" is not an http:// or https:// URL`}},
		{"probe URL without a host", map[string]string{"apps/web/app.yaml": "probes:\n  - name: home\n    http:\n      url: \"https:///path\"\n"},
			[]string{`apps/web/app.yaml:4: error: probes[0] (home): http.url: "https:///path" has no host`}},
		{"probe URL with a bad port", map[string]string{"apps/web/app.yaml": "probes:\n  - name: home\n    http:\n      url: \"http://${DOMAIN}:99999/\"\n"},
			[]string{`apps/web/app.yaml:4: error: probes[0] (home): http.url: "http://1:99999/": port 99999 is not 1 to 65535`}},
		{"probe thresholds", map[string]string{"apps/web/app.yaml": "probes:\n  - name: home\n    failure_threshold: 0\n    success_threshold: 21\n    timeout: -1s\n    tcp: {address: \"db:5432\"}\n"},
			[]string{"apps/web/app.yaml:3: error: probes[0] (home): failure_threshold must be between 1 and 20 (default 3)",
				"apps/web/app.yaml:4: error: probes[0] (home): success_threshold must be between 1 and 20 (default 2)",
				"apps/web/app.yaml:5: error: probes[0] (home): timeout must be positive"}},
		{"probe threshold not a number", map[string]string{"apps/web/app.yaml": "probes:\n  - name: home\n    failure_threshold: many\n    tcp: {address: \"db:5432\"}\n"},
			[]string{`apps/web/app.yaml:3: error: probes[0].failure_threshold: expected a whole number, got "many"`}},
		{"probe tcp without a port", map[string]string{"apps/web/app.yaml": "probes:\n  - name: db\n    tcp: {address: \"${DB_HOST}\"}\n"},
			[]string{`apps/web/app.yaml:3: error: probes[0] (db): tcp.address "${DB_HOST}" is not host:port`}},
		{"probe cert_days on http", map[string]string{"apps/web/app.yaml": "probes:\n  - name: home\n    http:\n      url: http://x/\n      cert_days: 14\n"},
			[]string{"apps/web/app.yaml:5: error: probes[0] (home): http.cert_days needs an https:// URL"}},
		{"probe bad status", map[string]string{"apps/web/app.yaml": "probes:\n  - name: home\n    http:\n      url: http://x/\n      status: 2000\n"},
			[]string{"apps/web/app.yaml:5: error: probes[0] (home): http.status 2000 is not an HTTP status code"}},
		{"probe unknown field", map[string]string{"apps/web/app.yaml": "probes:\n  - name: home\n    http:\n      url: http://x/\n      tls_skip_verfy: true\n"},
			[]string{`apps/web/app.yaml:5: error: unknown field "tls_skip_verfy" in probes[0].http (did you mean "tls_skip_verify"?)`}},
		{"probe skips TLS verification", map[string]string{"apps/web/app.yaml": "probes:\n  - name: home\n    http:\n      url: https://x/\n      tls_skip_verify: true\n"},
			[]string{"apps/web/app.yaml:5: warning: probes[0] (home): http.tls_skip_verify accepts any certificate"}},
		{"probe names twice", map[string]string{"apps/web/app.yaml": "probes:\n  - name: a\n    tcp: {address: \"x:1\"}\n  - name: a\n    tcp: {address: \"x:1\"}\n"},
			[]string{`apps/web/app.yaml:4: error: probes[1]: name "a" is used twice`}},
		{"unknown deviation rule", map[string]string{"apps/web/app.yaml": "deviations:\n  - rule: read-onyl\n    reason: it writes\n"},
			[]string{`apps/web/app.yaml:2: error: deviations[0]: unknown rule "read-onyl" (did you mean "read-only"?)`}},
		{"deviation without reason", map[string]string{"apps/web/app.yaml": "deviations:\n  - rule: read-only\n"},
			[]string{"apps/web/app.yaml:2: error: deviations[0] (read-only): reason is required"}},
		{"dump incomplete", map[string]string{"apps/web/app.yaml": "backup:\n  dumps:\n    - service: web\n"},
			[]string{"apps/web/app.yaml:3: error: backup.dumps[0]: service, command and filename are all required"}},
		{"drill check without command", map[string]string{"apps/web/app.yaml": "backup:\n  drill:\n    verify:\n      - service: web\n"},
			[]string{"apps/web/app.yaml:4: error: backup.drill.verify[0]: service and command are both required"}},
		{"drill check output not a pattern", map[string]string{"apps/web/app.yaml": "backup:\n  drill:\n    verify:\n      - service: web\n        command: [cat, /x]\n        output: \"a(\"\n"},
			[]string{`apps/web/app.yaml:6: error: backup.drill.verify[0].output: "a(" is not a regular expression`}},
		{"drill check exit out of range", map[string]string{"apps/web/app.yaml": "backup:\n  drill:\n    verify:\n      - service: web\n        command: [cat, /x]\n        exit: 300\n"},
			[]string{"apps/web/app.yaml:6: error: backup.drill.verify[0].exit: 300 is no exit code"}},
		{"drill schedule that never fires", map[string]string{"apps/web/app.yaml": "backup:\n  drill:\n    schedule: \"0 0 30 2 *\"\n"},
			[]string{`apps/web/app.yaml:3: error: backup.drill.schedule: invalid schedule "0 0 30 2 *": it never fires`}},
		{"drill schedule too often", map[string]string{"apps/web/app.yaml": "backup:\n  drill:\n    schedule: \"@every 10s\"\n"},
			[]string{`apps/web/app.yaml:3: error: backup.drill.schedule: invalid schedule "@every 10s": it runs more often than once every 1m0s`}},
		{"drill negative timeout", map[string]string{"apps/web/app.yaml": "backup:\n  drill:\n    timeout: -1m\n"},
			[]string{"apps/web/app.yaml:3: error: backup.drill.timeout must be positive"}},
		{"drill unknown field", map[string]string{"apps/web/app.yaml": "backup:\n  drill:\n    verify:\n      - service: web\n        command: [cat, /x]\n        outptu: x\n"},
			[]string{`apps/web/app.yaml:6: error: unknown field "outptu"`}},
		{"no apps directory", map[string]string{"apps/web/compose.yaml": "", "apps/web/app.yaml": "", "apps/proxy/compose.yaml": "", "apps/proxy/app.yaml": ""},
			[]string{"apps: error: the repository has no apps/ directory; add apps/<app>/compose.yaml for each app"}},
		{"file over the size cap", map[string]string{"hosts/beta/host.yaml": "apps: [web]\n" + strings.Repeat("# padding\n", maxFileSize/10+1)},
			[]string{"hosts/beta/host.yaml: error: file is", "syncd reads files of at most 4194304 bytes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, ps := Load(writeRepo(t, with(baseRepo, c.changes)))
			text := ps.Error()
			for _, w := range c.want {
				if !strings.Contains(text, w) {
					t.Errorf("problems lack %q:\n%s", w, text)
				}
			}
			wantErr := !strings.Contains(c.want[0], ": warning")
			if ps.HasErrors() != wantErr {
				t.Errorf("HasErrors() = %v, want %v:\n%s", ps.HasErrors(), wantErr, text)
			}
		})
	}
}

func TestLoadRefusesSymlinkOutOfTheRepository(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "host.yaml")
	if err := os.WriteFile(outside, []byte("apps: [web]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := writeRepo(t, with(baseRepo, map[string]string{"hosts/beta/host.yaml": ""}))
	if err := os.MkdirAll(filepath.Join(dir, "hosts/beta"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "hosts/beta/host.yaml")); err != nil {
		t.Fatal(err)
	}
	r, ps := Load(dir)
	if !ps.HasErrors() || !strings.Contains(ps.Error(), "hosts/beta/host.yaml: error: cannot read") {
		t.Errorf("a host.yaml that links out of the repository was read: %v", ps)
	}
	if _, err := r.ReadFile("hosts/beta/host.yaml"); err == nil {
		t.Error("ReadFile followed a symlink out of the repository")
	}
	if _, err := r.ReadFile("../" + filepath.Base(filepath.Dir(outside)) + "/host.yaml"); err == nil {
		t.Error("ReadFile read a path out of the repository")
	}
}

func TestLoadMissingRepository(t *testing.T) {
	r, ps := Load(filepath.Join(t.TempDir(), "nope"))
	if r != nil || !ps.HasErrors() || !strings.Contains(ps.Error(), "cannot open the repository") {
		t.Errorf("Load of a missing directory: %v, %v", r, ps)
	}
}

func TestProblemsSortedAndFormatted(t *testing.T) {
	ps := Problems{
		{Path: "b.yaml", Line: 2, Msg: "two"},
		{Path: "a.yaml", Line: 9, Msg: "nine"},
		{Path: "a.yaml", Line: 3, Severity: Warning, Rule: "pids-limit", Msg: "three"},
		{Path: "a.yaml", Line: 9, Msg: "nine"},
	}
	got := ps.Sorted().Error()
	want := "a.yaml:3: warning[pids-limit]: three\na.yaml:9: error: nine\nb.yaml:2: error: two"
	if got != want {
		t.Errorf("Sorted().Error() =\n%s\nwant\n%s", got, want)
	}
	warnOnly := Problems{{Path: "x", Severity: Warning, Msg: "w"}}
	if warnOnly.HasErrors() || warnOnly.Err() != nil {
		t.Error("warnings alone are an error")
	}
	if ps.Err() == nil {
		t.Error("errors are not an error")
	}
}

func TestApplyOrder(t *testing.T) {
	apps := map[string]string{
		"apps/a/compose.yaml": "services: {a: {image: x:1}}\n",
		"apps/b/compose.yaml": "services: {b: {image: x:1}}\n",
		"apps/c/compose.yaml": "services: {c: {image: x:1}}\n",
		"apps/d/compose.yaml": "services: {d: {image: x:1}}\n",
		"apps/e/compose.yaml": "services: {e: {image: x:1}}\n",
		// a after c and b; c after d; e after a (not run on every host).
		"apps/a/app.yaml": "after: [c, b]\n",
		"apps/c/app.yaml": "after: [d]\n",
		"apps/e/app.yaml": "after: [a]\n",
	}
	cases := []struct {
		hostApps string
		want     []string
	}{
		{"[a, b, c, d, e]", []string{"b", "d", "c", "a", "e"}},
		{"[e, d, c, b, a]", []string{"b", "d", "c", "a", "e"}},
		{"[a, e]", []string{"a", "e"}},
		{"[a, d]", []string{"a", "d"}}, // c is not run here: a does not wait on d through it
		{"[c, d]", []string{"d", "c"}},
		{"[b]", []string{"b"}},
	}
	for _, c := range cases {
		r := mustLoad(t, with(apps, map[string]string{"hosts/h/host.yaml": "apps: " + c.hostApps + "\n"}))
		if got := r.ApplyOrder(r.Hosts["h"]); !slices.Equal(got, c.want) {
			t.Errorf("ApplyOrder(%s) = %v, want %v", c.hostApps, got, c.want)
		}
		projects, ps := r.Render(context.Background(), "h", nil)
		if ps.HasErrors() {
			t.Fatalf("Render: %v", ps)
		}
		var names []string
		for _, p := range projects {
			names = append(names, p.Name())
		}
		if !slices.Equal(names, c.want) {
			t.Errorf("Render(%s) order = %v, want %v", c.hostApps, names, c.want)
		}
	}
}

func TestFindCycle(t *testing.T) {
	app := func(after ...string) *App { return &App{After: after} }
	cases := []struct {
		name string
		apps map[string]*App
		want []string
	}{
		{"none", map[string]*App{"a": app("b"), "b": app()}, nil},
		{"diamond", map[string]*App{"a": app("b", "c"), "b": app("d"), "c": app("d"), "d": app()}, nil},
		{"two", map[string]*App{"a": app("b"), "b": app("a")}, []string{"a", "b", "a"}},
		{"three", map[string]*App{"a": app("b"), "b": app("c"), "c": app("a")}, []string{"a", "b", "c", "a"}},
		{"tail into a cycle", map[string]*App{"a": app("b"), "b": app("c"), "c": app("b")}, []string{"b", "c", "b"}},
		{"self and unknown are reported elsewhere", map[string]*App{"a": app("a", "zz")}, nil},
	}
	for _, c := range cases {
		if got := findCycle(c.apps); !slices.Equal(got, c.want) {
			t.Errorf("%s: findCycle = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"traefik", "keycloak", "nextcloud"}
	for got, want := range map[string]string{
		"trafik":     ` (did you mean "traefik"?)`,
		"nextclod":   ` (did you mean "nextcloud"?)`,
		"keycloack":  ` (did you mean "keycloak"?)`,
		"mailcow":    "",
		"postgresql": "",
	} {
		if s := suggest(got, known); s != want {
			t.Errorf("suggest(%q) = %q, want %q", got, s, want)
		}
	}
}

func TestHealthTimeoutOr(t *testing.T) {
	r := mustLoad(t, with(baseRepo, map[string]string{
		"syncd.yaml":        "defaults:\n  vars: {TZ: UTC, GREETING: hi}\n  health_timeout: 2m\n",
		"apps/web/app.yaml": "health_timeout: 45s\n",
	}))
	if got := r.Apps["web"].HealthTimeoutOr(r.Fleet).String(); got != "45s" {
		t.Errorf("web: %s, want 45s (its own)", got)
	}
	if got := r.Apps["proxy"].HealthTimeoutOr(r.Fleet).String(); got != "2m0s" {
		t.Errorf("proxy: %s, want 2m0s (the fleet default)", got)
	}
	if got := r.Apps["proxy"].HealthTimeoutOr(Fleet{}); got != DefaultHealthTimeout {
		t.Errorf("no setting: %s, want %s", got, DefaultHealthTimeout)
	}
}

// ecdsaKey is an SSH public key of a type a status key may not be.
const ecdsaKey = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg="
