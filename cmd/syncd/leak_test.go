package main

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
)

// The planted secrets: one plain, and two that error messages quote
// differently from how they are (escaped quotes and backslashes, lines).
const (
	planted       = "s3cr3t-Planted-Value-42"
	plantedQuoted = `s3cr3t"Planted\Value-43`
	plantedLines  = "s3cr3t-Planted-Line-44\nsecond-Planted-Line-45"
)

var plantedValues = []string{planted, plantedQuoted, plantedLines}

// leakRepo writes a repository whose host alpha runs app web with compose
// as its compose file, and whose secrets file holds the planted values,
// encrypted to a new key. It returns the repository and the key file.
func leakRepo(t *testing.T, compose string, extra map[string]string) (repo, key string) {
	t.Helper()
	key, recipient := secretstest.NewKey(t)
	repo = t.TempDir()
	plain := "TOKEN: " + planted + "\nQUOTED: '" + plantedQuoted + "'\nMULTI: |-\n  s3cr3t-Planted-Line-44\n  second-Planted-Line-45\nOTHER: an0ther-Secret-Value\n"
	files := map[string]string{
		"syncd.yaml":                    "defaults:\n  vars:\n    TZ: UTC\n",
		"apps/web/compose.yaml":         compose,
		"hosts/alpha/host.yaml":         "apps: [web]\nvars:\n  DOMAIN: alpha.example.org\n",
		"hosts/alpha/secrets.sops.yaml": string(secretstest.EncryptBytes(t, recipient, "yaml", []byte(plain))),
	}
	maps.Copy(files, extra)
	for p, c := range files {
		full := filepath.Join(repo, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return repo, key
}

// tree returns every file below dir with its content.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		out[p] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkRuns runs each command line and fails on any planted value, or 8
// bytes of one, in its output, and on any file it writes in the repository.
func checkRuns(t *testing.T, repo string, runs [][]string, values ...string) {
	t.Helper()
	before := tree(t, repo)
	for _, args := range runs {
		code, out, errOut := syncd(t, args...)
		where := "syncd " + strings.Join(args[:1], " ")
		secretstest.AssertNoLeak(t, where+" stdout", out, values...)
		secretstest.AssertNoLeak(t, where+" stderr", errOut, values...)
		if code != 0 && errOut == "" {
			t.Errorf("%v exited %d and said nothing", args, code)
		}
	}
	after := tree(t, repo)
	if !slices.Equal(slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after))) {
		t.Errorf("syncd wrote into the repository: before %v, after %v", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
	}
	for p, c := range after {
		if before[p] != c {
			t.Errorf("syncd changed %s", p)
		}
	}
}

// TestSecretsNeverLeak puts the planted secrets where Compose accepts them
// and where its loader rejects them, and runs render and validate, with
// and without the key, through every failure it can think of.
func TestSecretsNeverLeak(t *testing.T) {
	scenarios := leakScenarios()
	for name, compose := range scenarios {
		t.Run(name, func(t *testing.T) {
			repo, key := leakRepo(t, compose, nil)
			state := t.TempDir()
			checkRuns(t, repo, [][]string{
				{"render", "--repo", repo, "--host", "alpha", "--age-key", key},
				{"render", "--repo", repo, "--host", "alpha", "--age-key", key, "--project", "web"},
				{"render", "--repo", repo, "--host", "alpha"},
				{"validate", "--repo", repo, "--age-key", key},
				{"validate", "--repo", repo, "--strict", "--age-key", key},
				{"validate", "--repo", repo},
				// plan and sync on the real engine: its errors and the
				// logs pass the host's one redaction too (issue 20: an
				// image made of a secret reached sync's output through the
				// engine's "No such image").
				{"plan", "--repo", repo, "--host", "alpha", "--age-key", key, "--state-dir", state},
				{"sync", "--repo", repo, "--host", "alpha", "--age-key", key, "--state-dir", state, "--status-branch", ""},
				{"status", "--state-dir", state, "--json"},
			}, plantedValues...)
			assertNoLeakInDir(t, state, plantedValues...)
		})
	}
}

// leakScenarios are compose files that put the planted secrets where
// Compose accepts them and where its loader rejects them.
func leakScenarios() map[string]string {
	const svc = "services:\n  web:\n    image: nginx:1.27.3\n"
	return map[string]string{
		"as a Compose secret":         svc + "    secrets: [TOKEN, QUOTED, MULTI]\n    environment:\n      TOKEN_FILE: /run/secrets/TOKEN\n",
		"in the environment":          svc + "    environment:\n      A: ${TOKEN}\n      B: ${QUOTED}\n      C: ${MULTI}\n",
		"next to an undefined name":   svc + "    environment:\n      A: ${TOKEN}\n      B: ${UNDEFINED_NAME}\n      C: ${QUOTED}-${MULTI}\n",
		"undefined in an alternative": svc + "    environment:\n      A: ${TOKEN:+${UNDEFINED_NAME}}\n",
		"as a port":                   svc + "    ports:\n      - \"${TOKEN}:80\"\n      - \"${QUOTED}:81\"\n      - \"${MULTI}:82\"\n",
		"as a port number":            svc + "    ports:\n      - target: ${TOKEN}\n",
		"as a mem_limit":              svc + "    mem_limit: ${TOKEN}\n",
		"as a quoted mem_limit":       svc + "    mem_limit: ${QUOTED}\n",
		"as a multi-line mem_limit":   svc + "    mem_limit: ${MULTI}\n",
		"as cpus":                     svc + "    cpus: ${QUOTED}\n",
		"as a boolean":                svc + "    privileged: ${MULTI}\n",
		"as a duration":               svc + "    stop_grace_period: ${MULTI}\n",
		"as a healthcheck interval":   svc + "    healthcheck:\n      test: [CMD, \"true\"]\n      interval: ${TOKEN}\n",
		"as a service it depends on":  svc + "    depends_on: [\"${QUOTED}\"]\n",
		"as a container name":         svc + "    container_name: ${TOKEN}\n",
		"as a network":                svc + "    networks: [\"${MULTI}\"]\n",
		"as a network name":           svc + "    networks: [n]\nnetworks:\n  n:\n    name: ${TOKEN}\n",
		"as a volume":                 svc + "    volumes: [\"${QUOTED}:/data\"]\n",
		"as a service to extend":      svc + "    extends: ${TOKEN}\n",
		"as a pull policy":            svc + "    pull_policy: ${MULTI}\n",
		"as an extra host":            svc + "    extra_hosts: [\"${TOKEN}\"]\n",
		"as the image":                "services:\n  web:\n    image: ${TOKEN}\n",
		"as a quoted image":           "services:\n  web:\n    image: ${QUOTED}\n",
		"as the image tag":            "services:\n  web:\n    image: syncdtest-absent:${TOKEN}\n    pull_policy: never\n",
		"in command words":            svc + "    command: \"serve --token ${TOKEN} --verbose\"\n",
		"in entrypoint words":         svc + "    entrypoint: \"/app ${QUOTED}\"\n",
		"in a label":                  svc + "    labels:\n      auth: \"Bearer ${TOKEN}\"\n",
		"in config content":           svc + "    configs: [c]\nconfigs:\n  c:\n    content: \"token=${MULTI}\"\n",
	}
}

// TestSecretsNeverLeakFromBrokenFiles breaks the secrets file itself.
func TestSecretsNeverLeakFromBrokenFiles(t *testing.T) {
	const compose = "services:\n  web:\n    image: nginx:1.27.3\n    secrets: [TOKEN]\n"
	file := "hosts/alpha/secrets.sops.yaml"
	cases := []struct {
		name   string
		change func(t *testing.T, repo, key string) // breaks the repository
		key    func(t *testing.T, key string) string
	}{
		{"values swapped", func(t *testing.T, repo, _ string) {
			edit(t, filepath.Join(repo, file), `(?m)^TOKEN:`, "TMP:")
			edit(t, filepath.Join(repo, file), `(?m)^OTHER:`, "TOKEN:")
			edit(t, filepath.Join(repo, file), `(?m)^TMP:`, "OTHER:")
		}, nil},
		{"value pasted in plaintext", func(t *testing.T, repo, _ string) {
			edit(t, filepath.Join(repo, file), `(?m)^OTHER: ENC\[[^\]]*\]`, "OTHER: "+planted)
		}, nil},
		{"line pasted without a key", func(t *testing.T, repo, _ string) {
			edit(t, filepath.Join(repo, file), `(?m)^OTHER:`, "  "+planted+"\nOTHER:")
		}, nil},
		{"key removed (MAC mismatch)", func(t *testing.T, repo, _ string) {
			edit(t, filepath.Join(repo, file), `(?m)^OTHER: .*\n`, "")
		}, nil},
		{"plaintext dotenv file", func(t *testing.T, repo, _ string) {
			if err := os.Remove(filepath.Join(repo, file)); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(repo, "hosts/alpha/secrets.sops.env"), "TOKEN="+planted+"\n"+planted+"\n")
		}, nil},
		{"plaintext secrets beside", func(t *testing.T, repo, _ string) {
			writeFile(t, filepath.Join(repo, "hosts/alpha/secrets.yaml"), "TOKEN: "+planted+"\n")
		}, nil},
		{"wrong key", nil, func(t *testing.T, _ string) string { k, _ := secretstest.NewKey(t); return k }},
		{"world-readable key", nil, func(t *testing.T, key string) string {
			if err := os.Chmod(key, 0o644); err != nil {
				t.Fatal(err)
			}
			return key
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo, key := leakRepo(t, compose, nil)
			if c.change != nil {
				c.change(t, repo, key)
			}
			if c.key != nil {
				key = c.key(t, key)
			}
			checkRuns(t, repo, [][]string{
				{"render", "--repo", repo, "--host", "alpha", "--age-key", key},
				{"render", "--repo", repo, "--host", "alpha"},
				{"validate", "--repo", repo, "--age-key", key},
				{"validate", "--repo", repo},
			}, plantedValues...)
			// A broken file is refused by render with the key, whatever
			// validate without a key can tell.
			if code, _, _ := syncd(t, "render", "--repo", repo, "--host", "alpha", "--age-key", key); code != 1 {
				t.Errorf("render with the key exited %d, want 1", code)
			}
		})
	}
}

func edit(t *testing.T, file, re, repl string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	r := regexp.MustCompile(re)
	if !r.Match(data) {
		t.Fatalf("%s does not match %s", file, re)
	}
	writeFile(t, file, r.ReplaceAllString(string(data), repl))
}

func writeFile(t *testing.T, file, content string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
