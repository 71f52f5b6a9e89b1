package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/secrets"
	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
)

var exampleHosts = []string{"demo", "alpha", "beta"}

// syncd runs the command line in-process and returns its exit code and
// output.
func syncd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
	return code, out.String(), errOut.String()
}

// demoKey copies the example host's demo age key to a 0600 file (Git does
// not keep modes; a readable key is refused).
func demoKey(t *testing.T, host string) string {
	t.Helper()
	_, ageDir := exampleDirs(t)
	data, err := os.ReadFile(filepath.Join(ageDir, host+".agekey"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), host+".agekey")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRenderGolden renders every host of the example fleet with its key and
// compares with testdata/render/<host>.golden. After an intended change:
// go test ./cmd/syncd -run Golden -update, and review the diff.
func TestRenderGolden(t *testing.T) {
	repo, _ := exampleDirs(t)
	for _, host := range exampleHosts {
		t.Run(host, func(t *testing.T) {
			code, out, errOut := syncd(t, "render", "--repo", repo, "--host", host, "--age-key", demoKey(t, host))
			if code != 0 || errOut != "" {
				t.Fatalf("render exited %d:\n%s", code, errOut)
			}
			golden := filepath.Join("testdata", "render", host+".golden")
			if update() {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if out != string(want) {
				t.Errorf("render of %s differs from %s (run with -update and review the diff):\n%s", host, golden, lineDiff(string(want), out))
			}
			// Rendering is deterministic: a second run prints the same.
			if _, again, _ := syncd(t, "render", "--repo", repo, "--host", host, "--age-key", demoKey(t, host)); again != out {
				t.Errorf("two renders of %s differ", host)
			}
		})
	}
}

// randomToken is what the example's passwords look like; only values of
// this shape are also checked for fragments, since a URL shares "https://"
// with any rendered URL.
var randomToken = regexp.MustCompile(`^[A-Za-z0-9]{16,}$`)

// TestGoldenFilesHoldNoSecret decrypts every example host's secrets and
// checks that no value is in any golden file (nor any 8 bytes of a random
// one), and that each file shows the redacted form of the values it uses
// in ${NAME} form, so the check is not vacuous.
func TestGoldenFilesHoldNoSecret(t *testing.T) {
	repo, _ := exampleDirs(t)
	goldens := map[string]string{}
	for _, host := range exampleHosts {
		data, err := os.ReadFile(filepath.Join("testdata", "render", host+".golden"))
		if err != nil {
			t.Fatalf("%v (run go test ./cmd/syncd -run Golden -update)", err)
		}
		goldens[host] = string(data)
	}
	total := 0
	for _, host := range exampleHosts {
		id, err := secrets.LoadIdentity(demoKey(t, host))
		if err != nil {
			t.Fatal(err)
		}
		matches, _ := filepath.Glob(filepath.Join(repo, "hosts", host, "secrets.sops.*"))
		if len(matches) != 1 {
			t.Fatalf("host %s: secrets files %v", host, matches)
		}
		data, err := os.ReadFile(matches[0])
		if err != nil {
			t.Fatal(err)
		}
		values, err := secrets.Decrypt(id, filepath.Base(matches[0]), data)
		if err != nil {
			t.Fatal(err)
		}
		for key, v := range values {
			total++
			for g, text := range goldens {
				if strings.Contains(text, v) {
					t.Errorf("%s.golden holds the value of %s's %s", g, host, key)
				}
				if randomToken.MatchString(v) {
					secretstest.AssertNoLeak(t, g+".golden", text, v)
				}
			}
		}
	}
	if total == 0 {
		t.Fatal("the example hosts have no secrets: the check is vacuous")
	}
	// alpha's keycloak reads two secrets as ${NAME}: their redacted forms show.
	if n := strings.Count(goldens["alpha"], "<redacted>"); n < 2 {
		t.Errorf("alpha.golden shows %d redacted values, want at least 2", n)
	}
}

// lineDiff shows the first lines where want and got differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  - %s\n  + %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}
