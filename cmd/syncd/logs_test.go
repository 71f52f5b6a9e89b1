package main

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// logLine makes the main process of project/service write line to its
// stdout (fd 1) or stderr (fd 2), as if the app had logged it.
func logLine(t *testing.T, project, service, fd, line string) {
	t.Helper()
	dexec(t, project, service, []byte(line), "write", "/proc/1/fd/"+fd)
}

// TestLogsE2ERedactedEscapedFiltered: `syncd logs --app A` shows what the
// app's containers wrote, prefixed as docker compose logs prefixes it,
// with the host's secret values redacted and control characters escaped;
// --service, --tail and --since filter; an unknown app is refused naming
// host.yaml's apps; -f shows a line written after it started.
func TestLogsE2ERedactedEscapedFiltered(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	app := testenv.ProjectName(t)
	// Root, as the test's docker exec is: only then may it write to the
	// main process's stdout (/proc/1/fd).
	f.write("apps/"+app+"/compose.yaml", `services:
  web:
    image: `+demoImage+`
    user: "0:0"
    secrets: [api_token]
`+healthy+`  worker:
    image: `+demoImage+`
    user: "0:0"
`+healthy)
	f.apps = append(f.apps, app)
	f.commit()
	f.mustSync()
	token := f.secrets["api_token"]

	logLine(t, app, "web", "1", "the token is "+token+" and \x1b[31mred\n")
	logLine(t, app, "worker", "2", "worker says hello\n")
	time.Sleep(500 * time.Millisecond) // the engine stamps a line when it reads it
	mark := time.Now()
	time.Sleep(50 * time.Millisecond)
	logLine(t, app, "web", "1", "a later line\n")

	code, out := f.syncd("logs", "--app", app)
	if code != 0 {
		t.Fatalf("logs --app: exit %d\n%s", code, out)
	}
	if !hasLine(out, "web-1", " | the token is <redacted> and \\x1b[31mred") || strings.Contains(out, "\x1b") {
		t.Errorf("logs --app: no web-1 line with the secret redacted and ESC escaped:\n%q", out)
	}
	if !hasLine(out, "worker-1", " | worker says hello") {
		t.Errorf("logs --app: no worker-1 line (its stderr):\n%s", out)
	}
	// Interleaved by time: the worker's line came between the web's two.
	if i, j, k := strings.Index(out, "the token is"), strings.Index(out, "worker says hello"), strings.Index(out, "a later line"); !(i < j && j < k) {
		t.Errorf("logs --app: the lines are not in time order (%d, %d, %d):\n%s", i, j, k, out)
	}

	if code, out := f.syncd("logs", "--app", app, "--service", "worker"); code != 0 || !strings.Contains(out, "worker says hello") || strings.Contains(out, "web-1") {
		t.Errorf("logs --service worker: exit %d, want only the worker's lines:\n%s", code, out)
	}
	code, out = f.syncd("logs", "--app", app, "--service", "web", "--tail", "1")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 1 || !strings.Contains(lines[0], "a later line") {
		t.Errorf("logs --service web --tail 1: exit %d, want the one last line:\n%s", code, out)
	}
	code, out = f.syncd("logs", "--app", app, "--since", mark.Format(time.RFC3339Nano))
	if code != 0 || !strings.Contains(out, "a later line") || strings.Contains(out, "the token is") || strings.Contains(out, "worker says") {
		t.Errorf("logs --since %s: exit %d, want only the later line:\n%s", mark.Format(time.RFC3339Nano), code, out)
	}
	if code, out := f.syncd("logs", "--app", app, "--since", "1h"); code != 0 || !strings.Contains(out, "worker says hello") {
		t.Errorf("logs --since 1h: exit %d, want every line:\n%s", code, out)
	}
	if code, out := f.syncd("logs", "--app", app, "--since", "yesterday"); code != exitUsage || !strings.Contains(out, "--since") {
		t.Errorf("logs --since yesterday: exit %d, want %d:\n%s", code, exitUsage, out)
	}
	if code, out := f.syncd("logs", "--app", "nope"); code != exitFailure || !strings.Contains(out, "apps: ["+app+"]") {
		t.Errorf("logs --app nope: exit %d, want 1 naming host.yaml's apps:\n%s", code, out)
	}
	if code, out := f.syncd("logs", "--app", app, "--service", "db"); code != exitFailure || !strings.Contains(out, "services: [web, worker]") {
		t.Errorf("logs --service db: exit %d, want 1 naming the services:\n%s", code, out)
	}
	// Without --app: every app, prefixed with its name.
	if code, out := f.syncd("logs", "--service", "worker"); code != 0 || !hasLine(out, app+"/worker-1", "worker says hello") {
		t.Errorf("logs without --app: exit %d, want %s/worker-1 lines:\n%s", code, app, out)
	}

	// -f: the binary, killed once it showed a line written after it
	// started.
	bin := buildSyncd(t)
	cmd := exec.Command(bin, "logs", "--repo", f.repo, "--host", f.host, "--age-key", f.key, "--state-dir", f.state, "--app", app, "-f")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var seen []string
	wait := func(want string) bool {
		deadline := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					return false
				}
				seen = append(seen, l)
				if strings.Contains(l, want) {
					return true
				}
			case <-deadline:
				return false
			}
		}
	}
	if !wait("a later line") {
		t.Fatalf("logs -f did not show what was written before it started:\n%s\n%s", strings.Join(seen, "\n"), stderr.String())
	}
	logLine(t, app, "web", "1", "written while following "+token+"\n")
	if !wait("written while following <redacted>") {
		t.Errorf("logs -f did not show the line written after it started, redacted:\n%s\n%s", strings.Join(seen, "\n"), stderr.String())
	}
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { io.Copy(io.Discard, stdout); done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("logs -f after an interrupt: %v (want exit 0)\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Errorf("logs -f did not end on an interrupt")
	}
	secretstest.AssertNoLeak(t, "syncd logs -f output", strings.Join(seen, "\n")+stderr.String(), f.values()...)
}
