package review_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/review"
	"github.com/syncd-dev/syncd/internal/secrets"
	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
)

// update rewrites the golden files. gotest.tools, linked in through the
// Docker libraries, may already define -update: it is shared then.
var update = func() func() bool {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files")
	}
	return func() bool {
		v, _ := flag.Lookup("update").Value.(flag.Getter).Get().(bool)
		return v
	}
}()

// Planted secret values: they must appear in no output, nor 8 bytes of them.
const (
	plantedDB      = "Planted-Db-Passw0rd-e7f1"
	plantedDBNext  = "Planted-Db-Rotated-9c2a"
	plantedAdmin   = "Planted-Admin-Secret-55ab"
	plantedToken   = "Planted-Demo-Token-0b7d"
	baseCommit     = "ba5e000000000000000000000000000000000000"
	headCommit     = "4ead000000000000000000000000000000000000"
	repoLayoutPath = "../../repo-layout"
)

var planted = []string{plantedDB, plantedDBNext, plantedAdmin, plantedToken}

// fleet is a copy of repo-layout whose secrets files are encrypted to a
// key the test makes (the operator's), with planted values.
type fleet struct {
	dir, key, recipient string
}

// hostSecrets are the plaintext secrets files of the copy, by host.
func hostSecrets(db string) map[string]string {
	return map[string]string{
		"alpha": "keycloak_db_password: " + db + "\nkeycloak_admin_password: " + plantedAdmin +
			"\nnextcloud_db_password: nc-db-0000-aaaa\nnextcloud_admin_password: nc-admin-0000-bbbb\nheadscale_noise_key: hs-noise-0000-cccc\nrestic_repository: rest:http://backup/alpha\nrestic_password: restic-0000-dddd\n",
		"beta": "nextcloud_db_password=nc-db-1111-aaaa\nnextcloud_admin_password=nc-admin-1111-bbbb\ndemo_token=beta-token-1111\nrestic_repository=rest:http://backup/beta\nrestic_password=restic-1111-dddd\n",
		"demo": "demo_token: " + plantedToken + "\n",
	}
}

func newFleet(t *testing.T) fleet {
	t.Helper()
	key, recipient := secretstest.NewKey(t)
	f := fleet{dir: filepath.Join(t.TempDir(), "base"), key: key, recipient: recipient}
	copyDir(t, repoLayoutPath, f.dir)
	f.writeSecrets(t, f.dir, hostSecrets(plantedDB))
	return f
}

func (f fleet) writeSecrets(t *testing.T, dir string, plain map[string]string) {
	t.Helper()
	for host, text := range plain {
		matches, _ := filepath.Glob(filepath.Join(dir, "hosts", host, "secrets.sops.*"))
		if len(matches) != 1 {
			t.Fatalf("host %s: %d secrets files", host, len(matches))
		}
		secretstest.WriteFile(t, matches[0], f.recipient, []byte(text))
	}
}

// head copies base to a new directory, for a case to change.
func (f fleet) head(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "head")
	copyDir(t, f.dir, dir)
	return dir
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// edit replaces every match of re in dir/file; it must match.
func edit(t *testing.T, dir, file, re, repl string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(file))
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	rx := regexp.MustCompile(re)
	if !rx.Match(data) {
		t.Fatalf("%s does not match %s", file, re)
	}
	if err := os.WriteFile(p, rx.ReplaceAll(data, []byte(repl)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, dir, file, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(file))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func options(t *testing.T, key string) review.Options {
	opts := review.Options{Inspector: secrets.Inspector{}, NotRecipient: secrets.ErrNotRecipient}
	if key != "" {
		id, err := secrets.LoadIdentity(key)
		if err != nil {
			t.Fatal(err)
		}
		opts.Decrypter = secrets.Decrypter{Identity: id}
	}
	return opts
}

func diff(t *testing.T, base, head string, opts review.Options) *review.Report {
	t.Helper()
	rep, err := review.Diff(context.Background(),
		review.Side{Dir: base, Commit: baseCommit, Rev: "main"},
		review.Side{Dir: head, Commit: headCommit, Rev: "pr"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// outputs renders the report in every format, checked for planted values.
func outputs(t *testing.T, rep *review.Report) (text, md string) {
	t.Helper()
	var tb, mb, jb bytes.Buffer
	rep.WriteText(&tb)
	rep.WriteMarkdown(&mb, 0)
	if err := rep.WriteJSON(&jb); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"text": tb.String(), "markdown": mb.String(), "json": jb.String()} {
		secretstest.AssertNoLeak(t, name, out, planted...)
		if strings.Contains(out, os.TempDir()) {
			t.Errorf("%s names a temporary directory:\n%s", name, out)
		}
	}
	return tb.String(), mb.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if update() {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run `go test ./internal/review -run Golden -update`)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update if intended):\n--- got\n%s\n--- want\n%s", p, got, want)
	}
}

// TestGolden diffs copies of repo-layout, each changed one way, against
// testdata/<case>.txt (text) and .md (markdown).
func TestGolden(t *testing.T) {
	f := newFleet(t)
	cases := []struct {
		name   string
		key    bool
		change func(t *testing.T, head string)
		// hosts that must change, in wave order
		changed []string
	}{
		{"image_bump", false, func(t *testing.T, h string) {
			edit(t, h, "apps/keycloak/compose.yaml", `keycloak/keycloak:26\.1\.0`, "keycloak/keycloak:26.1.2")
		}, []string{"alpha"}},
		{"host_var", false, func(t *testing.T, h string) {
			edit(t, h, "hosts/beta/host.yaml", `DEMO_MESSAGE: Hello from beta`, "DEMO_MESSAGE: Hello again from beta")
		}, []string{"beta"}},
		{"app_added", false, func(t *testing.T, h string) {
			edit(t, h, "hosts/beta/host.yaml", `apps: \[traefik, nextcloud, demoweb\]`, "apps: [traefik, nextcloud, demoweb, headscale]")
		}, []string{"beta"}},
		{"app_removed", false, func(t *testing.T, h string) {
			edit(t, h, "hosts/alpha/host.yaml", `apps: \[traefik, keycloak, nextcloud, headscale\]`, "apps: [traefik, keycloak, nextcloud]")
		}, []string{"alpha"}},
		{"prune_guard", false, func(t *testing.T, h string) {
			edit(t, h, "hosts/alpha/host.yaml", `apps: \[traefik, keycloak, nextcloud, headscale\]`, "apps: [traefik]")
		}, []string{"alpha"}},
		{"secret_rotated_key", true, func(t *testing.T, h string) {
			f.writeSecrets(t, h, map[string]string{"alpha": hostSecrets(plantedDBNext)["alpha"]})
		}, []string{"alpha"}},
		{"secret_rotated_nokey", false, func(t *testing.T, h string) {
			f.writeSecrets(t, h, map[string]string{"alpha": hostSecrets(plantedDBNext)["alpha"]})
		}, []string{"alpha"}},
		{"secret_key_added", true, func(t *testing.T, h string) {
			f.writeSecrets(t, h, map[string]string{"demo": hostSecrets("")["demo"] + "extra_token: extra-0000-eeee\n"})
		}, []string{"demo"}},
		{"override_changed", false, func(t *testing.T, h string) {
			edit(t, h, "hosts/beta/nextcloud.override.yaml", `PHP_MEMORY_LIMIT: 1G`, "PHP_MEMORY_LIMIT: 2G\n      PHP_OPCACHE: \"on\"")
			edit(t, h, "hosts/beta/nextcloud.override.yaml", `memory: 3g`, "memory: 4g")
		}, []string{"beta"}},
		{"new_host", false, func(t *testing.T, h string) {
			write(t, h, "hosts/gamma/host.yaml", "apps: [traefik, demoweb]\nwave: 2\nvars:\n  DOMAIN: gamma.example.org\n  DEMO_PORT: \"8082\"\n  DEMO_MESSAGE: Hello from gamma\n")
			f.writeSecrets(t, h, nil)
			secretstest.WriteFile(t, filepath.Join(h, "hosts", "gamma", "secrets.sops.yaml"), f.recipient, []byte("demo_token: gamma-token-2222\n"))
		}, []string{"gamma"}},
		{"ports_labels_healthcheck_config", false, func(t *testing.T, h string) {
			edit(t, h, "apps/headscale/compose.yaml", `loadbalancer.server.port: "8080"`, `loadbalancer.server.port: "8081"`)
			edit(t, h, "apps/headscale/compose.yaml", `metrics_listen_addr: 127.0.0.1:9090`, "metrics_listen_addr: 127.0.0.1:9091")
			edit(t, h, "apps/traefik/compose.yaml", `retries: 3`, "retries: 5")
			edit(t, h, "apps/traefik/compose.yaml", `- "443:443"`, "- \"443:443\"\n      - \"443:443/udp\"")
		}, []string{"alpha", "beta"}},
		{"host_removed", false, func(t *testing.T, h string) {
			if err := os.RemoveAll(filepath.Join(h, "hosts", "demo")); err != nil {
				t.Fatal(err)
			}
		}, []string{"demo"}},
		{"wave_and_after", false, func(t *testing.T, h string) {
			edit(t, h, "hosts/demo/host.yaml", `wave: 0`, "wave: 2")
			edit(t, h, "apps/demoweb/app.yaml", `(?m)^health_timeout: 30s$`, "health_timeout: 5m\nafter: [traefik]")
		}, []string{"beta", "demo"}},
		{"service_renamed", false, func(t *testing.T, h string) {
			edit(t, h, "apps/demoweb/compose.yaml", `(?m)^  web:$`, "  site:")
			edit(t, h, "apps/demoweb/app.yaml", `service: web\b`, "service: site")
		}, []string{"demo", "beta"}},
		{"no_change", true, func(t *testing.T, h string) {
			// Re-encrypted with the same values: with the key, no change.
			f.writeSecrets(t, h, map[string]string{"demo": hostSecrets("")["demo"]})
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			head := f.head(t)
			c.change(t, head)
			key := ""
			if c.key {
				key = f.key
			}
			rep := diff(t, f.dir, head, options(t, key))
			text, md := outputs(t, rep)
			var changed []string
			for _, h := range rep.Hosts {
				if h.State != review.Unchanged {
					changed = append(changed, h.Name)
				}
			}
			if !slices.Equal(changed, c.changed) {
				t.Errorf("hosts that change: %v, want %v\n%s", changed, c.changed, text)
			}
			if rep.Failed() {
				t.Errorf("the diff failed:\n%s", text)
			}
			if rep.Changes() != (len(c.changed) > 0) {
				t.Errorf("Changes() = %v\n%s", rep.Changes(), text)
			}
			golden(t, c.name+".txt", text)
			golden(t, c.name+".md", md)
		})
	}
}

func TestGoldenHeadInvalid(t *testing.T) {
	f := newFleet(t)
	head := f.head(t)
	edit(t, head, "hosts/beta/host.yaml", `apps: \[traefik, nextcloud, demoweb\]`, "apps: [traefik, nextcloud, demoweb, mailcow]")
	edit(t, head, "apps/keycloak/compose.yaml", `keycloak/keycloak:26\.1\.0`, "keycloak/keycloak:26.1.2")
	rep := diff(t, f.dir, head, options(t, ""))
	text, _ := outputs(t, rep)
	if !rep.HeadInvalid || !rep.Failed() {
		t.Fatalf("head with an unknown app is not reported invalid:\n%s", text)
	}
	for _, want := range []string{
		`hosts/beta/host.yaml:4: error: unknown app "mailcow"`,
		"alpha (wave 0): 1 project(s) to change", // what it can still show
		"keycloak: recreate (image changed quay.io/keycloak/keycloak:26.1.0 → quay.io/keycloak/keycloak:26.1.2)",
		"head is INVALID",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	golden(t, "head_invalid.txt", text)
}

func TestDiffWrongKey(t *testing.T) {
	f := newFleet(t)
	head := f.head(t)
	f.writeSecrets(t, head, map[string]string{"alpha": hostSecrets(plantedDBNext)["alpha"]})
	other, _ := secretstest.NewKey(t)
	rep := diff(t, f.dir, head, options(t, other))
	text, _ := outputs(t, rep)
	if !rep.Failed() {
		t.Fatalf("a key that opens no file does not fail the diff:\n%s", text)
	}
	if !strings.Contains(text, "hosts/alpha/secrets.sops.yaml at base: the --age-key is not one of its recipients") {
		t.Errorf("the error does not name the file and what to do:\n%s", text)
	}
	// Still shown with key names only.
	if !strings.Contains(text, "values may have changed") {
		t.Errorf("the host is not shown without values:\n%s", text)
	}

	// A file whose MAC does not verify: named, with what to do.
	edit(t, head, "hosts/demo/secrets.sops.yaml", `mac: ENC\[AES256_GCM,data:[A-Za-z0-9+/=]{4}`, "mac: ENC[AES256_GCM,data:AAAA")
	rep = diff(t, f.dir, head, options(t, f.key))
	text, _ = outputs(t, rep)
	if !rep.Failed() || !strings.Contains(text, "hosts/demo/secrets.sops.yaml at head:") {
		t.Errorf("a tampered file is not reported:\n%s", text)
	}
}

// TestDiffManyHosts: 300 hosts, one app bumped: every host is there, the
// markdown fits a comment and says what it left out.
func TestDiffManyHosts(t *testing.T) {
	base := filepath.Join(t.TempDir(), "base")
	write(t, base, "syncd.yaml", "defaults:\n  vars:\n    TZ: UTC\n")
	write(t, base, "apps/web/compose.yaml", "services:\n  web:\n    image: nginx:1.27.3\n    environment:\n      SITE: ${SITE}\n")
	for i := range 300 {
		write(t, base, fmt.Sprintf("hosts/h%03d/host.yaml", i), fmt.Sprintf("apps: [web]\nwave: %d\nvars:\n  SITE: site-%d.example.org\n", i%3, i))
	}
	head := filepath.Join(t.TempDir(), "head")
	copyDir(t, base, head)
	edit(t, head, "apps/web/compose.yaml", `nginx:1\.27\.3`, "nginx:1.27.4")
	start := time.Now()
	rep := diff(t, base, head, options(t, ""))
	took := time.Since(start)
	if len(rep.Hosts) != 300 || !rep.Changes() || rep.Failed() {
		t.Fatalf("%d hosts, changes %v, failed %v", len(rep.Hosts), rep.Changes(), rep.Failed())
	}
	for i := 1; i < len(rep.Hosts); i++ {
		if rep.Hosts[i-1].Wave > rep.Hosts[i].Wave {
			t.Fatalf("hosts not in wave order: %s (wave %d) before %s (wave %d)", rep.Hosts[i-1].Name, rep.Hosts[i-1].Wave, rep.Hosts[i].Name, rep.Hosts[i].Wave)
		}
	}
	var md bytes.Buffer
	rep.WriteMarkdown(&md, 0)
	if md.Len() > review.MaxComment || strings.Count(md.String(), "####") != 1 || !strings.Contains(md.String(), "#### 300 hosts · 1 project(s) to change") {
		t.Errorf("the same change on 300 hosts is not one section of a comment (%d bytes):\n%s", md.Len(), md.String())
	}

	// Each host changed its own way: the details cannot all fit.
	edit(t, head, "apps/web/compose.yaml", `SITE: \$\{SITE\}`, "SITE: ${SITE}/v2")
	rep = diff(t, base, head, options(t, ""))
	var small bytes.Buffer
	rep.WriteMarkdown(&small, 8000)
	if small.Len() > 8000 || !strings.Contains(small.String(), "host(s) are left out: the comment would be too long") {
		t.Errorf("a short limit is not kept, or what is left out is not said (%d bytes):\n%s", small.Len(), small.String())
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	if n := strings.Count(text.String(), "environment.SITE: site-"); n != 300 {
		t.Errorf("the text names %d hosts' change, want all 300", n)
	}
	t.Logf("300 hosts diffed in %s", took)
}

func TestUnknownHost(t *testing.T) {
	f := newFleet(t)
	opts := options(t, "")
	opts.Hosts = []string{"alpha", "omega"}
	_, err := review.Diff(context.Background(), review.Side{Dir: f.dir}, review.Side{Dir: f.dir}, opts)
	if err == nil || !strings.Contains(err.Error(), "--host omega: unknown host") || !strings.Contains(err.Error(), "alpha, beta, demo") {
		t.Fatalf("err = %v", err)
	}
}

// A base that does not render for a host (the host still runs an older
// commit) and a head that fixes it: head is shown as on a host running
// nothing, and said so; the diff does not fail.
func TestBaseDoesNotRender(t *testing.T) {
	f := newFleet(t)
	edit(t, f.dir, "hosts/beta/host.yaml", `  DEMO_PORT: "8081"\n`, "")
	head := f.head(t)
	edit(t, head, "hosts/beta/host.yaml", `DOMAIN: beta.example.org`, "DOMAIN: beta.example.org\n  DEMO_PORT: \"8081\"")
	rep := diff(t, f.dir, head, options(t, ""))
	text, _ := outputs(t, rep)
	if rep.Failed() {
		t.Errorf("a head that fixes base fails the diff:\n%s", text)
	}
	for _, want := range []string{"note: base does not render for this host", "variable ${DEMO_PORT} is not defined", "web: create (new project)"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}

	// The other way round: a host.yaml that head breaks is that host's error.
	rep = diff(t, head, f.dir, options(t, ""))
	edit(t, head, "hosts/beta/host.yaml", `DOMAIN: beta.example.org`, "DOMAIN: [beta")
	rep = diff(t, f.dir, head, options(t, ""))
	text, _ = outputs(t, rep)
	beta := rep.Hosts[slices.IndexFunc(rep.Hosts, func(h review.Host) bool { return h.Name == "beta" })]
	if beta.State != review.Failed || len(beta.Errors) == 0 || !strings.Contains(beta.Errors[0], "hosts/beta/host.yaml") || !rep.Failed() {
		t.Errorf("a broken host.yaml is not the host's error:\n%s", text)
	}
}

// TestHostilePullRequest is a pull request from a fork written to break the
// comment: its values hold control characters (a window title, a screen
// clear), backtick runs and fences, table borders, an HTML tag that would
// close the comment's <details>, link and image syntax, and a mention. In
// the markdown none of it acts: no control character is left, every code
// span and block is closed only by syncd's own fence, table rows keep
// their three cells, and no link, tag or mention forms.
func TestHostilePullRequest(t *testing.T) {
	f := newFleet(t)
	head := f.head(t)
	hostile := "\\u009b31m\\u202e\\x7f x\\e]0;pwned\\a\\e[2J``` `|` </details><img src=x onerror=alert(1)> [click](https://evil.example/) ![p](https://evil.example/p.png) @admin \\u009b31m\\u202e"
	edit(t, head, "hosts/beta/host.yaml", `DEMO_MESSAGE: Hello from beta`, `DEMO_MESSAGE: "`+hostile+`\n`+"````\\n|a|b|\\n"+`"`)
	// An unknown app whose name is hostile too: head's problems quote it.
	edit(t, head, "hosts/beta/host.yaml", `apps: \[traefik, nextcloud, demoweb\]`, `apps: [traefik, nextcloud, demoweb, "evil|`+"`"+`x</details>"]`)
	rep := diff(t, f.dir, head, options(t, ""))
	_, md := outputs(t, rep)
	if !strings.Contains(md, "DEMO_MESSAGE") {
		t.Fatalf("the change is not shown:\n%s", md)
	}
	for _, r := range md {
		if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0x202e {
			t.Fatalf("the comment holds control character %U:\n%q", r, md)
		}
	}
	var jb bytes.Buffer
	if err := rep.WriteJSON(&jb); err != nil || !json.Valid(jb.Bytes()) {
		t.Fatalf("diff --json: %v, valid %v", err, json.Valid(jb.Bytes()))
	}
	for _, r := range jb.String() {
		if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0x202e {
			t.Fatalf("diff --json holds control character %U raw:\n%q", r, jb.String())
		}
	}
	// What is left once code spans and fenced blocks are taken out is
	// prose: no tag, link or mention of the pull request's may be there.
	var prose strings.Builder
	inTable, fence := false, ""
	for _, l := range strings.Split(md, "\n") {
		trimmed := strings.TrimLeft(l, " ")
		if fence != "" {
			if trimmed == fence {
				fence = ""
			} else if strings.HasPrefix(trimmed, fence) {
				t.Errorf("a line of the pull request closes syncd's fence %q: %q", fence, l)
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") {
			fence = strings.TrimRight(trimmed, "diff")
			continue
		}
		if strings.HasPrefix(l, "|") {
			inTable = true
			if n := unescapedPipes(l); n != 4 {
				t.Errorf("a table row has %d cell borders, want 4: %q", n, l)
			}
		} else if inTable {
			inTable = false
		}
		// Outside fenced blocks, pull-request text sits in code spans whose
		// fence it cannot hold, or is escaped.
		for i := 0; i < len(l); {
			j := strings.IndexByte(l[i:], '`')
			if j < 0 {
				prose.WriteString(l[i:])
				break
			}
			prose.WriteString(l[i : i+j])
			i += j
			if i > 0 && l[i-1] == '\\' {
				i++
				continue
			}
			n := 0
			for i+n < len(l) && l[i+n] == '`' {
				n++
			}
			end := strings.Index(l[i+n:], l[i:i+n])
			if end < 0 {
				t.Errorf("a code span opened with %d backtick(s) is not closed on its line: %q", n, l)
				break
			}
			i += n + end + n
		}
		prose.WriteString("\n")
	}
	if fence != "" {
		t.Errorf("a fenced block is never closed:\n%s", md)
	}
	if n := strings.Count(prose.String(), "</details>"); n != strings.Count(prose.String(), "<details>") {
		t.Errorf("a </details> came from the pull request (%d closing, %d opening):\n%s", n, strings.Count(md, "<details>"), prose.String())
	}
	for _, bad := range []string{"<img", "](https://evil", "@admin", "evil|"} {
		if strings.Contains(prose.String(), bad) {
			t.Errorf("the comment's prose holds %q from the pull request:\n%s", bad, prose.String())
		}
	}
}

// unescapedPipes counts the '|' of a markdown line not escaped by '\'.
func unescapedPipes(l string) int {
	n := 0
	for i := 0; i < len(l); i++ {
		if l[i] == '\\' {
			i++
			continue
		}
		if l[i] == '|' {
			n++
		}
	}
	return n
}

// TestCommentKeepsToItsSizeWithManyProblems: a pull request can make head
// fail validation as often and as verbosely as it likes (an app list of
// thousands of unknown names, each a page long). The comment still fits
// what the forge takes (over it, the forge refuses the whole comment and
// reviewers see nothing) and says what it left out.
func TestCommentKeepsToItsSizeWithManyProblems(t *testing.T) {
	rep := &review.Report{Base: strings.Repeat("a", 40), Head: strings.Repeat("b", 40), HeadInvalid: true}
	for i := range 5000 {
		rep.Problems = append(rep.Problems, review.Problem{Text: fmt.Sprintf("hosts/h/host.yaml:%d: unknown app %q", i, strings.Repeat("x`|<", 1000))})
	}
	var md bytes.Buffer
	rep.WriteMarkdown(&md, 0)
	if md.Len() > review.MaxComment || !strings.Contains(md.String(), "more: `syncd validate` at head lists them all") {
		t.Errorf("5000 long problems: a comment of %d bytes (limit %d), or what it left out unsaid:\n%.3000s", md.Len(), review.MaxComment, md.String())
	}
}
