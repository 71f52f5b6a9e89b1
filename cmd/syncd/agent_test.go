package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
	"github.com/syncd-dev/syncd/internal/status"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// lockedBuffer collects an in-process agent's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// gitRemote makes the fleet's repository a Git work tree pushing to a
// bare repository on a loopback Git server that wants a token.
type gitRemote struct {
	server    *testenv.GitServer
	url       string
	tokenFile string
	signWith  []string // git -c options that sign commits, when set
}

func newGitRemote(t *testing.T, f *fleet) *gitRemote {
	t.Helper()
	g := &gitRemote{server: testenv.NewGitServer(t)}
	g.server.Token = "tok-Git-9d8f7a6s5d4f"
	g.server.Maintainer = "dev"
	g.url = g.server.InitBare(t, "fleet")
	g.tokenFile = filepath.Join(t.TempDir(), "token")
	os.WriteFile(g.tokenFile, []byte(g.server.Token+"\n"), 0o600)
	testenv.Git(t, f.repo, "init", "-q", "-b", "main")
	return g
}

// push commits the fleet's files and pushes; it returns the commit.
func (g *gitRemote) push(t *testing.T, f *fleet, msg string, force bool) string {
	t.Helper()
	testenv.Git(t, f.repo, "add", "-A")
	testenv.Git(t, f.repo, append(append([]string{}, g.signWith...), "commit", "-q", "--allow-empty", "-m", msg)...)
	auth := strings.Replace(g.url, "http://", "http://dev:"+g.server.Token+"@", 1)
	args := []string{"push", "-q", auth, "HEAD:main"}
	if force {
		args = append(args, "--force")
	}
	testenv.Git(t, f.repo, args...)
	return testenv.Git(t, f.repo, "rev-parse", "HEAD")
}

// agentProcess is `syncd agent` running in-process.
type agentProcess struct {
	cancel context.CancelFunc
	done   chan int
	log    *lockedBuffer
	addr   string
}

func startAgent(t *testing.T, f *fleet, repo string, extra ...string) *agentProcess {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	a := &agentProcess{cancel: cancel, done: make(chan int, 1), log: &lockedBuffer{}, addr: addr}
	// An empty settings file: the host's /etc/syncd/syncd.yaml stays out.
	config := filepath.Join(t.TempDir(), "syncd.yaml")
	os.WriteFile(config, nil, 0o600)
	args := append([]string{"agent", "--repo", repo, "--host", f.host, "--age-key", f.key, "--state-dir", f.state,
		"--listen", addr, "--drift", "1h", "--config", config}, extra...)
	go func() { a.done <- run(ctx, args, os.Getenv, a.log, a.log) }()
	t.Cleanup(func() { a.stop(t) })
	return a
}

func (a *agentProcess) stop(t *testing.T) int {
	a.cancel()
	select {
	case code := <-a.done:
		a.done <- code
		return code
	case <-time.After(2 * time.Minute):
		t.Fatalf("agent did not stop:\n%s", a.log)
		return -1
	}
}

// waitStatus waits until the host's local status satisfies ok; the agent
// writes it after every cycle that is not a quiet poll.
func waitStatus(t *testing.T, f *fleet, a *agentProcess, what string, ok func(status.Host) bool) status.Host {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if h, err := status.ReadLocal(f.state); err == nil && ok(h) {
			return h
		}
		select {
		case code := <-a.done:
			t.Fatalf("agent exited %d while waiting for %s:\n%s", code, what, a.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	h, err := status.ReadLocal(f.state)
	t.Fatalf("timed out waiting for %s; status %+v (%v)\nlog:\n%s", what, h, err, a.log)
	return h
}

func applied(commit string) func(status.Host) bool {
	return func(h status.Host) bool { return h.AppliedCommit == commit && h.State == status.Converged }
}

func TestAgentE2EGitPollForcePushOutageAndStatusBranch(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	app := f.app()
	f.commit()
	g := newGitRemote(t, f)
	c1 := g.push(t, f, "first", false)
	a := startAgent(t, f, g.url, "--poll", "200ms", "--token-file", g.tokenFile)
	waitStatus(t, f, a, "the first commit", applied(c1))
	first := containers(t, app)

	// A commit pushed while the agent runs is found by the poll.
	f.vars["WORKER_MSG"] = "polled"
	f.commit()
	c2 := g.push(t, f, "second", false)
	waitStatus(t, f, a, "the pushed commit", applied(c2))
	if now := containers(t, app); now[app+"/web"] != first[app+"/web"] || now[app+"/worker"] == first[app+"/worker"] {
		t.Errorf("the pushed change recreated the wrong services:\n%v\n%v", first, now)
	}

	// A force-push to an unrelated history.
	testenv.Git(t, f.repo, "checkout", "-q", "--orphan", "rewritten")
	f.vars["WORKER_MSG"] = "rewritten"
	f.commit()
	c3 := g.push(t, f, "rewritten history", true)
	waitStatus(t, f, a, "the force-pushed commit", applied(c3))

	// The remote goes away: the host keeps running and says so; then recovers.
	before := containers(t, app)
	g.server.Down.Store(true)
	waitStatus(t, f, a, "the outage reported", func(h status.Host) bool { return h.State == status.Unreachable })
	if now := containers(t, app); fmt.Sprint(now) != fmt.Sprint(before) {
		t.Errorf("an unreachable remote changed what runs:\n%v\n%v", before, now)
	}
	g.server.Down.Store(false)
	// Back, with no new commit: the next poll replaces the outage's status
	// (it used to stay "unreachable" until the next drift cycle, an hour
	// here, while /healthz already said ok).
	waitStatus(t, f, a, "the status after the outage, without a new commit", func(h status.Host) bool {
		return h.State == status.Converged && h.DesiredCommit == c3 && h.AppliedCommit == c3
	})
	f.vars["MSG"] = "after the outage"
	f.commit()
	c4 := g.push(t, f, "after the outage", false)
	waitStatus(t, f, a, "recovery", applied(c4))

	// The status branch holds this host's file, without a secret value. The
	// push follows the local status, so wait for it.
	bare := filepath.Join(g.server.Root, "fleet.git")
	var doc string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if out, err := exec.Command("git", "-C", bare, "show", "syncd/status-"+f.host+":hosts/"+f.host+".yaml").Output(); err == nil {
			if doc = string(out); strings.Contains(doc, "applied_commit: "+c4) {
				break
			}
		}
	}
	if !strings.Contains(doc, "applied_commit: "+c4) || !strings.Contains(doc, "name: "+app) {
		t.Errorf("status file on the branch:\n%s\nlog:\n%s", doc, a.log)
	}
	secretstest.AssertNoLeak(t, "the status file", doc, append(f.values(), g.server.Token)...)
	secretstest.AssertNoLeak(t, "the agent's log", a.log.String(), append(f.values(), g.server.Token)...)

	// The fleet view reads it back.
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"status", "--fleet", "--repo", g.url, "--token-file", g.tokenFile}, os.Getenv, &out, &errOut); code != 0 || !strings.Contains(out.String(), f.host) || !strings.Contains(out.String(), c4[:12]) {
		t.Errorf("status --fleet: exit %d\n%s%s", code, out.String(), errOut.String())
	}

	// A second agent on the same state directory is refused.
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"agent", "--repo", g.url, "--host", f.host, "--state-dir", f.state, "--listen", ""}, os.Getenv, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "another syncd") {
		t.Errorf("second agent: exit %d\n%s", code, errOut.String())
	}
	if code := a.stop(t); code != 0 {
		t.Errorf("agent exit %d after SIGTERM-like stop:\n%s", code, a.log)
	}
}

func TestAgentE2EWebhookSignalAndSocket(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	app := f.app()
	f.commit()
	g := newGitRemote(t, f)
	c1 := g.push(t, f, "first", false)
	secretFile := filepath.Join(t.TempDir(), "hook")
	os.WriteFile(secretFile, []byte("hook-Secret-55aa\n"), 0o600)
	// This host may read but not push: its status stays local.
	g.server.ReadOnly.Store(true)
	// Polls far apart: only a trigger can bring a new commit in.
	a := startAgent(t, f, g.url, "--poll", "1h", "--token-file", g.tokenFile, "--webhook-secret-file", secretFile)
	waitStatus(t, f, a, "the first commit", applied(c1))

	f.vars["MSG"] = "hooked"
	f.commit()
	c2 := g.push(t, f, "second", false)
	body := []byte(`{"ref":"refs/heads/main"}`)
	post := func(sig string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.addr+"/webhook", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("sha256=" + strings.Repeat("0", 64)); code != http.StatusUnauthorized {
		t.Errorf("badly signed webhook: %d, want 401", code)
	}
	mac := hmac.New(sha256.New, []byte("hook-Secret-55aa"))
	mac.Write(body)
	if code := post("sha256=" + hex.EncodeToString(mac.Sum(nil))); code != http.StatusAccepted {
		t.Fatalf("signed webhook: %d, want 202", code)
	}
	waitStatus(t, f, a, "the commit the webhook announced", applied(c2))

	// `syncd sync` while the agent runs asks it over the socket.
	f.vars["MSG"] = "synced"
	f.commit()
	c3 := g.push(t, f, "third", false)
	code, out := f.syncd("sync", "--repo", g.url)
	if code != 0 || !strings.Contains(out, "cycle run by the agent") || !strings.Contains(out, c3) {
		t.Errorf("sync beside the agent: exit %d\n%s", code, out)
	}
	// Asked for another repository than the agent's, it is refused, not
	// silently run with the agent's.
	if code, out := f.syncd("sync"); code != exitUsage || !strings.Contains(out, "the running agent has other settings") || !strings.Contains(out, "--repo "+f.repo) {
		t.Errorf("sync beside the agent with another --repo: exit %d, want 2\n%s", code, out)
	}
	if h, _ := status.ReadLocal(f.state); h.AppliedCommit != c3 {
		t.Errorf("applied %s after sync through the agent, want %s", h.AppliedCommit, c3)
	}

	// SIGHUP asks for a cycle (this test binary's agent has it registered).
	f.vars["MSG"] = "hung up"
	f.commit()
	c4 := g.push(t, f, "fourth", false)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, f, a, "the commit SIGHUP brought in", applied(c4))

	// Metrics and health.
	resp, err := http.Get("http://" + a.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"syncd_cycle_duration_seconds", "syncd_last_success_timestamp_seconds", `syncd_projects{state="applied"}`} {
		if !strings.Contains(metrics.String(), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if resp, err := http.Get("http://" + a.addr + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz: %v %v", resp, err)
	}
	if n := strings.Count(a.log.String(), "refuses this host's pushes"); n != 1 {
		t.Errorf("read-only remote warned %d times over four cycles, want once:\n%s", n, a.log)
	}
	if out, err := exec.Command("git", "-C", filepath.Join(g.server.Root, "fleet.git"), "branch", "--list", "syncd/status*").Output(); err != nil || len(out) != 0 {
		t.Errorf("a read-only remote got a status branch: %q %v", out, err)
	}
	_ = app
}

func TestAgentE2ESignedCommitsOnly(t *testing.T) {
	t.Parallel()
	keygen := testenv.Tool(t, "ssh-keygen")
	newKey := func(name string) (string, string) {
		p := filepath.Join(t.TempDir(), name)
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		pub, _ := os.ReadFile(p + ".pub")
		return p, strings.TrimSpace(string(pub))
	}
	trusted, trustedPub := newKey("release")
	other, _ := newKey("stranger")
	signers := filepath.Join(t.TempDir(), "allowed_signers")
	os.WriteFile(signers, []byte("release@syncd.invalid "+trustedPub+"\n"), 0o644)
	signWith := func(key string) []string {
		return []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + key, "-c", "commit.gpgsign=true"}
	}

	f := newFleet(t)
	app := f.app()
	f.commit()
	g := newGitRemote(t, f)
	g.signWith = signWith(trusted)
	c1 := g.push(t, f, "signed", false)
	a := startAgent(t, f, g.url, "--poll", "200ms", "--token-file", g.tokenFile, "--allowed-signers", signers)
	waitStatus(t, f, a, "the signed commit", applied(c1))
	before := containers(t, app)

	for _, c := range []struct {
		name, want string
		sign       []string
	}{
		{"unsigned", "not signed", nil},
		{"signed by a stranger", "SHA256:", signWith(other)},
	} {
		f.vars["MSG"] = c.name
		f.commit()
		g.signWith = c.sign
		bad := g.push(t, f, c.name, false)
		h := waitStatus(t, f, a, c.name+" refused", func(h status.Host) bool {
			return h.DesiredCommit == bad && h.LastCycle.Error != ""
		})
		if h.AppliedCommit != c1 || !strings.Contains(h.LastCycle.Error, bad) || !strings.Contains(h.LastCycle.Error, c.want) {
			t.Errorf("%s: applied %s, error %q; want %s kept and an error naming %s and %q", c.name, h.AppliedCommit, h.LastCycle.Error, c1, bad, c.want)
		}
		if now := containers(t, app); fmt.Sprint(now) != fmt.Sprint(before) {
			t.Errorf("%s commit changed what runs", c.name)
		}
	}

	f.vars["MSG"] = "signed again"
	f.commit()
	g.signWith = signWith(trusted)
	c4 := g.push(t, f, "signed again", false)
	waitStatus(t, f, a, "the next signed commit", applied(c4))
}
