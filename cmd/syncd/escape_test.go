package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/syncd-dev/syncd/internal/status"
)

// hostileText is what a peer's failed_error or a container's output may
// hold: a window title (OSC 0 … BEL), a screen clear (CSI 2J), a carriage
// return that hides what came before it, a C1 CSI and a bidi override.
const hostileText = "boom\x1b]0;pwned\x07\x1b[2J\rhidden\u009b31m\u202e"

// assertNoControl fails when out holds a control character a terminal acts
// on; newlines and tabs are syncd's own layout.
func assertNoControl(t *testing.T, what, out string) {
	t.Helper()
	for _, r := range out {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0x202e {
			t.Errorf("%s holds control character %U:\n%q", what, r, out)
			return
		}
	}
	if !strings.Contains(out, `boom\x1b]0;pwned\x07\x1b[2J\rhidden`) {
		t.Errorf("%s does not show the hostile text escaped:\n%q", what, out)
	}
}

// TestTerminalOutputEscaped: a peer pushes a status document whose
// failed_error holds terminal escapes (every host's key can push the status
// branch), and this host's own document carries a container's text; neither
// reaches the terminal raw, through `status --fleet` (text and JSON) and
// `status`.
func TestTerminalOutputEscaped(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed")
	}
	dir := t.TempDir()
	bare := filepath.Join(dir, "fleet.git")
	work := filepath.Join(dir, "work")
	gitRun := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=peer", "GIT_AUTHOR_EMAIL=peer@example.org", "GIT_COMMITTER_NAME=peer", "GIT_COMMITTER_EMAIL=peer@example.org")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	gitRun(dir, "init", "-q", "--bare", bare)
	// main says who the hosts are: peer, without a status_key, so its
	// document counts (unsigned), as the readers judge it.
	mainWork := filepath.Join(dir, "main")
	gitRun(dir, "init", "-q", "-b", "main", mainWork)
	os.MkdirAll(filepath.Join(mainWork, "hosts", "peer"), 0o755)
	os.MkdirAll(filepath.Join(mainWork, "apps", "web"), 0o755)
	os.WriteFile(filepath.Join(mainWork, "hosts", "peer", "host.yaml"), []byte("apps: [web]\nwave: 1\n"), 0o644)
	os.WriteFile(filepath.Join(mainWork, "apps", "web", "compose.yaml"), []byte("services:\n  web:\n    image: nginx:1.27.3\n"), 0o644)
	gitRun(mainWork, "add", ".")
	gitRun(mainWork, "commit", "-qm", "fleet")
	gitRun(mainWork, "push", "-q", bare, "main")
	gitRun(dir, "init", "-q", "-b", "syncd/status", work)
	peer := status.Host{Host: "peer", Wave: 1, State: status.Failed, AppliedCommit: strings.Repeat("a", 40),
		FailedCommit: strings.Repeat("b", 40), FailedError: hostileText, UpdatedAt: time.Now(),
		Rollout: &status.Rollout{State: "halted", Commit: strings.Repeat("b", 40), Hosts: []status.RolloutHost{{Host: "canary", Wave: 0, Reason: hostileText}}}}
	data, err := yaml.Marshal(peer)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(work, "hosts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "hosts", "peer.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(work, "add", ".")
	gitRun(work, "commit", "-qm", "status: peer failed")
	gitRun(work, "push", "-q", bare, "syncd/status")

	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"status", "--fleet", "--repo", "file://" + bare}, os.Getenv, &out, &errOut); code != exitOK {
		t.Fatalf("status --fleet: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	assertNoControl(t, "status --fleet", out.String()+errOut.String())
	// JSON is read by tools (jq -r prints a string raw): the decoded text
	// holds no control character either.
	out.Reset()
	if code := run(context.Background(), []string{"status", "--fleet", "--json", "--repo", "file://" + bare}, os.Getenv, &out, &errOut); code != exitOK {
		t.Fatalf("status --fleet --json: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	var view status.FleetView
	if err := json.Unmarshal(out.Bytes(), &view); err != nil || len(view.Waves) != 1 || len(view.Waves[0].Hosts) != 1 || view.Waves[0].Hosts[0].Rollout == nil {
		t.Fatalf("status --fleet --json: %v\n%s", err, out.String())
	}
	assertNoControl(t, "status --fleet --json, decoded", view.Waves[0].Hosts[0].Rollout.Hosts[0].Reason)

	state := t.TempDir()
	own := status.Host{Host: "self", State: status.Failed, UpdatedAt: time.Now(),
		LastCycle: status.Cycle{Result: "failed", Error: "exec in web: " + hostileText},
		Projects:  []status.Project{{Name: "web", State: "failed", LastError: hostileText}}}
	if err := status.WriteLocal(state, own); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run(context.Background(), []string{"status", "--state-dir", state}, os.Getenv, &out, &errOut); code != exitOK {
		t.Fatalf("status: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	assertNoControl(t, "status", out.String())
}
