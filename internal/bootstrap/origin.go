package bootstrap

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// OriginURL reads the URL of the remote "origin" from the working copy's
// .git/config (enough for `syncd enroll` to find the status branch).
func OriginURL(repo string) (string, error) {
	p := filepath.Join(repo, ".git", "config")
	data, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("find the repository's origin: %w; pass --status-repo URL", err)
	}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			in = line == `[remote "origin"]`
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && in && strings.TrimSpace(k) == "url" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("%s has no remote \"origin\"; pass --status-repo URL", p)
}
