package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/secrets"
	"github.com/syncd-dev/syncd/internal/validate"
)

// readme is the project's README.md.
func readme(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestReadmeLinksStayInside: README.md links nothing outside the
// repository (a ../ link works in one checkout and nowhere else).
func TestReadmeLinksStayInside(t *testing.T) {
	for _, m := range regexp.MustCompile(`\]\(([^)]*)\)`).FindAllStringSubmatch(readme(t), -1) {
		if target := m[1]; strings.HasPrefix(target, "../") || strings.HasPrefix(target, "/") {
			t.Errorf("README.md links %s, outside the repository", target)
		}
	}
}

// TestReadmeAddHostExample: the host.yaml that "Add a host" shows is one
// the example repository takes (validate: no error).
func TestReadmeAddHostExample(t *testing.T) {
	m := regexp.MustCompile("(?s)```yaml\n   # hosts/web-03/host.yaml\n(.*?)   ```").FindStringSubmatch(readme(t))
	if m == nil {
		t.Fatal("README.md's Add a host shows no hosts/web-03/host.yaml")
	}
	hostYAML := regexp.MustCompile(`(?m)^   `).ReplaceAllString(m[1], "")
	repoLayout, _ := exampleDirs(t)
	dir := filepath.Join(t.TempDir(), "fleet")
	if err := os.CopyFS(dir, os.DirFS(repoLayout)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "hosts", "web-03"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts", "web-03", "host.yaml"), []byte(hostYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	quietLoaderLog()
	for _, p := range validate.Check(context.Background(), dir, secrets.Inspector{}, validate.Options{NotRecipient: secrets.ErrNotRecipient}) {
		if p.Severity == desired.Error {
			t.Errorf("README's host.yaml: %s", p)
		}
	}
}
