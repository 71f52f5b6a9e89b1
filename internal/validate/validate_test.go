package validate_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/secrets"
	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
	"github.com/syncd-dev/syncd/internal/validate"
)

const exampleRepo = "../../repo-layout"

// copyKey copies a demo age key of testdata/age to a 0600 file: Git does
// not keep modes, and a readable key is refused.
func copyKey(t *testing.T, host string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("../../testdata/age", host+".agekey"))
	if err != nil {
		t.Fatalf("demo key of %s: %v", host, err)
	}
	p := filepath.Join(t.TempDir(), host+".agekey")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func decrypter(t *testing.T, keyFile string) secrets.Decrypter {
	t.Helper()
	id, err := secrets.LoadIdentity(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return secrets.Decrypter{Identity: id}
}

func TestCheckExampleRepository(t *testing.T) {
	if _, err := os.Stat(exampleRepo); err != nil {
		t.Fatalf("the example repository: %v", err)
	}
	ctx := context.Background()
	ps := validate.Check(ctx, exampleRepo, secrets.Inspector{}, validate.Options{NotRecipient: secrets.ErrNotRecipient})
	if ps.HasErrors() {
		t.Fatalf("repo-layout is invalid:\n%v", ps)
	}
	// The example documents a deviation for every rule it does not meet.
	if ps := validate.Check(ctx, exampleRepo, secrets.Inspector{}, validate.Options{Strict: true, NotRecipient: secrets.ErrNotRecipient}); len(ps) > 0 {
		t.Errorf("repo-layout is not clean under --strict:\n%v", ps)
	}
	// With each host's key, its secrets are decrypted (so MAC-verified)
	// and the other hosts' files are skipped, not reported.
	for _, host := range []string{"demo", "alpha", "beta"} {
		ps := validate.Check(ctx, exampleRepo, secrets.Inspector{}, validate.Options{
			Decrypter: decrypter(t, copyKey(t, host)), NotRecipient: secrets.ErrNotRecipient})
		if ps.HasErrors() {
			t.Errorf("with %s's key:\n%v", host, ps)
		}
	}
}

const composeWithSecret = `services:
  web:
    image: nginx:1.27.3
    secrets: [db_password]
    security_opt: ["no-new-privileges:true"]
    cap_drop: [ALL]
    pids_limit: 64
    mem_limit: 64m
    healthcheck:
      test: [CMD, "true"]
`

// repo writes a small repository whose host h has a secrets file made for
// recipient with values, plus changes; "" removes a file.
func repo(t *testing.T, recipient string, values string, changes map[string]string) string {
	t.Helper()
	files := map[string]string{
		"apps/web/compose.yaml": composeWithSecret,
		"apps/web/app.yaml":     "deviations:\n  - rule: read-only\n    reason: Compose writes the secret into the container\n",
		"hosts/h/host.yaml":     "apps: [web]\nstatus_key: " + statusKey + "\n",
	}
	if values != "" {
		files["hosts/h/secrets.sops.yaml"] = string(secretstest.EncryptBytes(t, recipient, "yaml", []byte(values)))
	}
	maps.Copy(files, changes)
	dir := t.TempDir()
	for p, c := range files {
		if c == "" {
			continue
		}
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckProblems(t *testing.T) {
	keyFile, recipient := secretstest.NewKey(t)
	otherKey, _ := secretstest.NewKey(t)
	const planted = "s3cr3t-Planted-Value-42"
	values := "db_password: " + planted + "\n"
	good := secretstest.EncryptBytes(t, recipient, "yaml", []byte(values))
	tampered := strings.Replace(string(good), "db_password: ENC[", "other: x\ndb_password: ENC[", 1)
	cases := []struct {
		name    string
		values  string
		changes map[string]string
		key     string
		want    []string // substrings of the problems, in order of appearance not required
	}{
		{"valid without a key", values, nil, "", nil},
		{"valid with the key", values, nil, keyFile, nil},
		{"another host's key", values, nil, otherKey, nil},
		{"plaintext secrets file", "", map[string]string{"hosts/h/secrets.sops.yaml": values}, "",
			[]string{"hosts/h/secrets.sops.yaml: error: hosts/h/secrets.sops.yaml is not encrypted with sops"}},
		{"plaintext value pasted in", "", map[string]string{"hosts/h/secrets.sops.yaml": tampered}, "",
			[]string{`hosts/h/secrets.sops.yaml: error: key "other" holds a plaintext value in an encrypted file`}},
		{"tampered, with the key", "", map[string]string{"hosts/h/secrets.sops.yaml": strings.Replace(string(good), "db_password: ENC[", "removed: ENC[", 1)}, keyFile,
			[]string{"hosts/h/secrets.sops.yaml: error: ", "does not belong to this file"}},
		{"secret the file lacks", "other: x\n", nil, "",
			[]string{`apps/web/compose.yaml:4: error: service "web" uses secret "db_password", which is neither defined in the compose file nor a key of hosts/h/secrets.sops.yaml`}},
		{"backup names a missing key", values, map[string]string{"hosts/h/host.yaml": "apps: [web]\nbackup:\n  repository_secret: restic_repository\n  password_secret: db_password\n"}, "",
			[]string{`hosts/h/host.yaml:3: error: backup.repository_secret names "restic_repository", which is not a key of hosts/h/secrets.sops.yaml`}},
		{"backup volume not defined", values, map[string]string{"apps/web/app.yaml": "backup:\n  volumes: [data]\n"}, "",
			[]string{`apps/web/app.yaml:2: error: backup.volumes[0]: "data" is not a named volume of apps/web/compose.yaml; it has none`}},
		{"dump service not defined", values, map[string]string{"apps/web/app.yaml": "backup:\n  dumps:\n    - service: db\n      command: [pg_dump]\n      filename: x.sql\n"}, "",
			[]string{`apps/web/app.yaml:3: error: backup.dumps[0].service: "db" is not a service of apps/web/compose.yaml`}},
		{"probe service not defined", values, map[string]string{"apps/web/app.yaml": "probes:\n  - name: p\n    container:\n      service: api\n"}, "",
			[]string{`apps/web/app.yaml: error: probes (p): service "api" is not defined in apps/web/compose.yaml`}},
		{"unpinned image", values, map[string]string{"apps/web/compose.yaml": strings.Replace(composeWithSecret, "nginx:1.27.3", "nginx", 1)}, "",
			[]string{`apps/web/compose.yaml:3: error: service "web": image "nginx" is not pinned`}},
		{"hardening warning", values, map[string]string{"apps/web/compose.yaml": strings.Replace(composeWithSecret, "    pids_limit: 64\n", "", 1)}, "",
			[]string{`apps/web/compose.yaml:2: warning[pids-limit]: service "web": set pids_limit`}},
		{"scan ignore without until", values, map[string]string{"apps/web/app.yaml": "scan:\n  ignore:\n    - id: CVE-2024-1\n      reason: r\n"}, "",
			[]string{`apps/web/app.yaml:3: error: scan.ignore[0] (CVE-2024-1): until is required`}},
		{"scan severity unknown", values, map[string]string{"hosts/h/host.yaml": "apps: [web]\nscan:\n  refuse_severity: SEVERE\n"}, "",
			[]string{`hosts/h/host.yaml:3: error: scan.refuse_severity: "SEVERE" is not a severity`}},
		{"scan ignore that ran out", values, map[string]string{"hosts/h/host.yaml": "apps: [web]\nscan:\n  ignore:\n    - {id: CVE-2024-1, until: 2020-01-31, reason: r}\n"}, "",
			[]string{`hosts/h/host.yaml:4: warning[scan-ignore-expired]: scan.ignore CVE-2024-1 ran out on 2020-01-31: the finding counts again`}},
		{"scan ignore for good", values, map[string]string{"hosts/h/host.yaml": "apps: [web]\nscan:\n  ignore:\n    - {id: CVE-2024-1, until: 9999-12-31, reason: r}\n"}, "",
			[]string{`hosts/h/host.yaml:4: warning[scan-ignore-far]: scan.ignore CVE-2024-1: until 9999-12-31 is more than a year away`}},
		{"scan schedule that never fires", values, map[string]string{"hosts/h/host.yaml": "apps: [web]\nscan:\n  schedule: \"0 0 30 2 *\"\n"}, "",
			[]string{`hosts/h/host.yaml:3: error: scan.schedule: invalid schedule "0 0 30 2 *": it never fires`}},
		{"backup schedule more often than a minute", values, map[string]string{"apps/web/app.yaml": "backup:\n  schedule: \"@every 1ms\"\n"}, "",
			[]string{`apps/web/app.yaml:2: error: backup.schedule: invalid schedule "@every 1ms": it runs more often than once every 1m0s`}},
		{"probe timeout longer than its interval", values, map[string]string{"apps/web/app.yaml": "probes:\n  - name: p\n    schedule: \"@every 30s\"\n    timeout: 45s\n    tcp: {address: \"web:80\"}\n"}, "",
			[]string{`apps/web/app.yaml:4: warning: probes[0] (p): timeout 45s is longer than the probe's interval (30s, schedule "@every 30s")`}},
		{"secret as the image, with the key", values, map[string]string{"apps/web/compose.yaml": strings.Replace(composeWithSecret, "nginx:1.27.3", "${db_password}", 1)}, keyFile,
			[]string{`apps/web/compose.yaml:3: error: service "web": image "<redacted>`}},
		{"secret as a port, with the key", values, map[string]string{"apps/web/compose.yaml": composeWithSecret + "    ports: [\"${db_password}:80\"]\n"}, keyFile,
			[]string{"apps/web/compose.yaml: error: the Compose loader rejects this file: invalid hostPort: <redacted>"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := repo(t, recipient, c.values, c.changes)
			opts := validate.Options{NotRecipient: secrets.ErrNotRecipient}
			if c.key != "" {
				opts.Decrypter = decrypter(t, c.key)
			}
			ps := validate.Check(context.Background(), dir, secrets.Inspector{}, opts)
			text := ps.Error()
			secretstest.AssertNoLeak(t, "the problems", text, planted)
			if c.want == nil {
				if ps.HasErrors() {
					t.Fatalf("problems:\n%s", text)
				}
				return
			}
			for _, w := range c.want {
				if !strings.Contains(text, w) {
					t.Errorf("problems lack %q:\n%s", w, text)
				}
			}
		})
	}
}

func TestCheckStrict(t *testing.T) {
	_, recipient := secretstest.NewKey(t)
	dir := repo(t, recipient, "db_password: x\n", map[string]string{
		"apps/web/compose.yaml": strings.Replace(composeWithSecret, "    pids_limit: 64\n", "", 1),
	})
	ps := validate.Check(context.Background(), dir, secrets.Inspector{}, validate.Options{})
	if ps.HasErrors() || len(ps) != 1 {
		t.Fatalf("want one warning, got:\n%v", ps)
	}
	ps = validate.Check(context.Background(), dir, secrets.Inspector{}, validate.Options{Strict: true})
	if !ps.HasErrors() || ps[0].Severity != desired.Error || ps[0].Rule != "pids-limit" {
		t.Fatalf("--strict did not make the warning an error:\n%v", ps)
	}
}

// statusKey is a host's status key (an ed25519 public key).
const statusKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAztXuRTRUlJbUgIbMlAPiWzfHcrFTUbJAjd1bBQb6wo"

// TestCheckWarnsUnsignedStatus: a host without a status_key is a warning
// naming it (its documents are unsigned), an error under --strict; a bad
// key is an error.
func TestCheckWarnsUnsignedStatus(t *testing.T) {
	_, recipient := secretstest.NewKey(t)
	dir := repo(t, recipient, "db_password: x\n", map[string]string{"hosts/h/host.yaml": "apps: [web]\n"})
	ps := validate.Check(context.Background(), dir, secrets.Inspector{}, validate.Options{})
	if ps.HasErrors() || len(ps) != 1 || ps[0].Rule != "status-unsigned" || ps[0].Path != "hosts/h/host.yaml" || !strings.Contains(ps[0].Msg, "host h has no status_key") {
		t.Fatalf("want the status-unsigned warning about h, got:\n%v", ps)
	}
	if ps := validate.Check(context.Background(), dir, secrets.Inspector{}, validate.Options{Strict: true}); !ps.HasErrors() {
		t.Errorf("--strict: %v", ps)
	}
	dir = repo(t, recipient, "db_password: x\n", map[string]string{"hosts/h/host.yaml": "apps: [web]\nstatus_key: ssh-ed25519 AAAA\n"})
	if ps := validate.Check(context.Background(), dir, secrets.Inspector{}, validate.Options{}); !ps.HasErrors() || !strings.Contains(ps.Error(), "hosts/h/host.yaml:2: error: status_key:") {
		t.Errorf("a bad key: %v", ps)
	}
}

func TestCheckSkipsSopsConfig(t *testing.T) {
	_, recipient := secretstest.NewKey(t)
	dir := repo(t, recipient, "db_password: x\n", map[string]string{
		".sops.yaml": "creation_rules:\n  - path_regex: ^hosts/h/\n    age: " + recipient + "\n",
	})
	if ps := validate.Check(context.Background(), dir, secrets.Inspector{}, validate.Options{}); len(ps) > 0 {
		t.Errorf(".sops.yaml was checked as a secrets file:\n%v", ps)
	}
}

// TestCheckListsEveryProblemInOneRun: an undefined variable does not hide
// the images that move (issue 20: they showed only on a second run), in
// the same file, in an extended file, or in another app of the host; each
// image error names the image: line; an image made of the undefined
// variable is reported as that, not as unpinned too.
func TestCheckListsEveryProblemInOneRun(t *testing.T) {
	_, recipient := secretstest.NewKey(t)
	dir := repo(t, recipient, "db_password: x\n", map[string]string{
		"apps/web/compose.yaml": `services:
  web:
    environment:
      URL: https://${DOMAIN}/
    image: nginx:latest
  worker:
    extends:
      file: base.yaml
      service: base
  tagged:
    image: redis:${REDIS_TAG}
    mem_limit: ${MEM}
`,
		"apps/web/base.yaml":      "services:\n  base:\n    labels: {a: b}\n    image: busybox:stable\n",
		"apps/other/compose.yaml": "services:\n  other:\n\n    image: traefik\n",
		"hosts/h/host.yaml":       "apps: [web, other]\n",
	})
	ps := validate.Check(context.Background(), dir, secrets.Inspector{}, validate.Options{NotRecipient: secrets.ErrNotRecipient})
	var errs []string
	for _, p := range ps {
		if p.Severity == desired.Error {
			errs = append(errs, p.String())
		}
	}
	want := []string{
		`apps/other/compose.yaml:4: error: service "other": image "traefik" is not pinned; name a version tag (traefik:1.2.3) or a digest`,
		`apps/web/base.yaml:4: error: service "worker": image "busybox:stable" uses the moving tag "stable" (it names no version); pin a version tag (busybox:1.2.3) or a digest`,
		`apps/web/compose.yaml:4: error: variable ${DOMAIN} is not defined for host "h"; define it under vars in hosts/h/host.yaml, under defaults.vars in syncd.yaml, or as a key of the host's secrets file (or write ${DOMAIN:-default})`,
		`apps/web/compose.yaml:5: error: service "web": image "nginx:latest" uses the moving tag "latest" (it names no version); pin a version tag (nginx:1.2.3) or a digest`,
		`apps/web/compose.yaml:11: error: variable ${REDIS_TAG} is not defined for host "h"; define it under vars in hosts/h/host.yaml, under defaults.vars in syncd.yaml, or as a key of the host's secrets file (or write ${REDIS_TAG:-default})`,
		`apps/web/compose.yaml:12: error: variable ${MEM} is not defined for host "h"; define it under vars in hosts/h/host.yaml, under defaults.vars in syncd.yaml, or as a key of the host's secrets file (or write ${MEM:-default})`,
	}
	if got := strings.Join(errs, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s\nall problems:\n%v", got, strings.Join(want, "\n"), ps)
	}
}
