package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
	"github.com/syncd-dev/syncd/internal/testenv"
)

func git(t testing.TB, dir string, args ...string) { testenv.Git(t, dir, args...) }

// TestDiffNeverLeaks commits a harmless app, then each compose file of the
// leak scenarios (and rotated values) as head, and diffs the two in every
// format, with and without the key: no planted value, nor 8 bytes of one,
// in any output, and nothing written into the repository.
func TestDiffNeverLeaks(t *testing.T) {
	t.Setenv("DOCKER_HOST", "tcp://127.0.0.1:1") // no engine is needed
	const base = "services:\n  web:\n    image: nginx:1.27.3\n"
	for name, compose := range leakScenarios() {
		t.Run(name, func(t *testing.T) {
			repo, key := leakRepo(t, base, nil)
			git(t, repo, "init", "-q", "-b", "main")
			git(t, repo, "add", "-A")
			git(t, repo, "commit", "-q", "-m", "base")
			writeFile(t, filepath.Join(repo, "apps/web/compose.yaml"), compose)
			git(t, repo, "commit", "-q", "-a", "-m", "head")
			var runs [][]string
			for _, format := range []string{"text", "markdown", "json"} {
				runs = append(runs,
					[]string{"diff", "--repo", repo, "--base", "HEAD~1", "--format", format},
					[]string{"diff", "--repo", repo, "--base", "HEAD~1", "--format", format, "--age-key", key})
			}
			checkRuns(t, repo, runs, plantedValues...)
		})
	}
}

// TestDiffRotatedValuesNeverLeak rotates every planted value at head.
func TestDiffRotatedValuesNeverLeak(t *testing.T) {
	const compose = "services:\n  web:\n    image: nginx:1.27.3\n    secrets: [TOKEN]\n    environment:\n      A: ${QUOTED}\n    command: \"serve --token ${TOKEN}\"\n    configs: [c]\nconfigs:\n  c:\n    content: |\n      token=${TOKEN}\n      mode=1\n"
	repo, key := leakRepo(t, compose, nil)
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "base")
	id, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	recipient := recipientOf(t, string(id))
	rotated := []string{"s3cr3t-Rotated-Value-52", `s3cr3t"Rotated\Value-53`}
	plain := "TOKEN: " + rotated[0] + "\nQUOTED: '" + rotated[1] + "'\nMULTI: x\nOTHER: an0ther-Secret-Value\n"
	writeFile(t, filepath.Join(repo, "hosts/alpha/secrets.sops.yaml"), string(secretstest.EncryptBytes(t, recipient, "yaml", []byte(plain))))
	git(t, repo, "commit", "-q", "-a", "-m", "rotate")
	code, out, errOut := syncd(t, "diff", "--repo", repo, "--base", "HEAD~1", "--age-key", key, "--detailed-exitcode")
	if code != 2 || !strings.Contains(out, "values changed: MULTI, QUOTED, TOKEN") || !strings.Contains(out, "web: recreate (configuration changed; secret rotated: QUOTED, TOKEN; content changed: config c)") {
		t.Errorf("exit %d:\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "config c content changed (a secret value in it)") {
		t.Errorf("a config whose secret changed is not named:\n%s", out)
	}
	checkRuns(t, repo, [][]string{
		{"diff", "--repo", repo, "--base", "HEAD~1", "--age-key", key, "--format", "json"},
		{"diff", "--repo", repo, "--base", "HEAD~1", "--age-key", key, "--format", "markdown"},
		{"diff", "--repo", repo, "--base", "HEAD~1"},
	}, append(slices.Clone(plantedValues), rotated...)...)
}

func recipientOf(t *testing.T, identityFile string) string {
	t.Helper()
	for l := range strings.Lines(identityFile) {
		if r, ok := strings.CutPrefix(strings.TrimSpace(l), "# public key: "); ok {
			return r
		}
	}
	t.Fatal("no public key line in the identity file")
	return ""
}

// TestWorkflows: the example repository's workflows run pr-check --comment
// on every pull request, with the history the diff needs.
func TestWorkflows(t *testing.T) {
	repo, _ := exampleDirs(t)
	for _, f := range []string{".github/workflows/syncd.yml", ".forgejo/workflows/syncd.yml"} {
		data, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			t.Fatal(err)
		}
		var wf struct {
			On   map[string]any `yaml:"on"`
			Jobs map[string]struct {
				Steps []struct {
					Uses string            `yaml:"uses"`
					With map[string]any    `yaml:"with"`
					Run  string            `yaml:"run"`
					Env  map[string]string `yaml:"env"`
				} `yaml:"steps"`
			} `yaml:"jobs"`
		}
		if err := yaml.Unmarshal(data, &wf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, ok := wf.On["pull_request"]; !ok {
			t.Errorf("%s does not run on pull_request", f)
		}
		var fetchAll, comment, token bool
		for _, j := range wf.Jobs {
			for _, s := range j.Steps {
				if strings.Contains(s.Uses, "actions/checkout") && s.With["fetch-depth"] == 0 {
					fetchAll = true
				}
				if strings.Contains(s.Run, `"$PR_CHECK" --comment`) {
					comment = true
					token = s.Env["GITHUB_TOKEN"] != "" || s.Env["FORGEJO_TOKEN"] != ""
				}
			}
		}
		if !fetchAll || !comment || !token {
			t.Errorf("%s: checkout with fetch-depth 0 %v, pr-check --comment %v, with a token %v", f, fetchAll, comment, token)
		}
	}
}

// TestDiffUsageHeadOptional: diff's usage shows --head as optional, as it
// is (it defaults to HEAD) and as the README's command table shows it.
func TestDiffUsageHeadOptional(t *testing.T) {
	t.Parallel()
	code, _, stderr := runWith(nil, "diff", "-h")
	if usage, _, _ := strings.Cut(stderr, "\n"); code != 0 || !strings.Contains(usage, "--base REV [--head REV] ") {
		t.Errorf("syncd diff -h: exit %d, usage %q", code, usage)
	}
}
