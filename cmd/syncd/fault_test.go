package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
)

// TestSyncE2EKill9 kills `syncd sync` at several points of a cycle that has
// work to do; each time the next cycle must converge with one container per
// service, no orphans, and a valid state directory.
func TestSyncE2EKill9(t *testing.T) {
	f := newFleet(t)
	apps := []string{f.app(), f.app(), f.app()}
	f.commit()
	bin := buildSyncd(t)
	// Points from "still rendering" to "in the middle of the health wait".
	for i, after := range []time.Duration{50 * time.Millisecond, 400 * time.Millisecond, 900 * time.Millisecond, 1500 * time.Millisecond, 2500 * time.Millisecond} {
		f.vars["MSG"] = "round " + after.String()
		f.commit()
		cmd := exec.Command(bin, "sync", "--repo", f.repo, "--host", f.host, "--age-key", f.key, "--state-dir", f.state)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		timer := time.AfterFunc(after, func() { cmd.Process.Signal(syscall.SIGKILL) })
		cmd.Wait()
		timer.Stop()
		secretstest.AssertNoLeak(t, "killed sync output", out.String(), f.values()...)

		code, text := f.syncd("sync")
		if code != 0 {
			t.Fatalf("round %d (killed after %v): the next cycle failed, exit %d:\n%s", i, after, code, text)
		}
		got := containers(t, apps...)
		if len(got) != 2*len(apps) {
			t.Errorf("round %d: %d containers, want %d (orphans or missing): %v", i, len(got), 2*len(apps), got)
		}
		for k, v := range got {
			if !strings.HasSuffix(v, " running") {
				t.Errorf("round %d: %s is %s", i, k, v)
			}
		}
		st := stateFile(t, f.state)
		if len(st) != len(apps) {
			t.Errorf("round %d: state records %d projects, want %d", i, len(st), len(apps))
		}
		if code, text := f.syncd("plan", "--detailed-exitcode"); code != 0 {
			t.Errorf("round %d: not converged after the recovery cycle, exit %d:\n%s", i, code, text)
		}
	}
}

// cutProxy stands between syncd and the Docker engine on a unix socket and
// can drop every connection, as an engine restart does.
type cutProxy struct {
	path, target string
	cutOn        string // a request path fragment that triggers the cut
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
	cut          chan struct{}
}

func newCutProxy(t *testing.T, target, cutOn string) *cutProxy {
	p := &cutProxy{path: filepath.Join(t.TempDir(), "docker.sock"), target: target, cutOn: cutOn, cut: make(chan struct{})}
	p.listen(t)
	t.Cleanup(p.stop)
	return p
}

func (p *cutProxy) listen(t *testing.T) {
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
}

func (p *cutProxy) serve(c net.Conn) {
	up, err := net.Dial("unix", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	go io.Copy(c, up)
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if p.cutOn != "" && bytes.Contains(buf[:n], []byte(p.cutOn)) {
				p.stop()
				return
			}
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			up.Close()
			return
		}
	}
}

// stop closes the listener and every connection: the engine is gone.
func (p *cutProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
		os.Remove(p.path)
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	select {
	case <-p.cut:
	default:
		close(p.cut)
	}
}

// TestSyncE2EEngineLostMidApply drops the engine's connections when the
// first container is started; the cycle fails without blaming the commit,
// and once the engine answers again the next cycle completes.
func TestSyncE2EEngineLostMidApply(t *testing.T) {
	f := newFleet(t)
	app := f.app()
	f.commit()
	proxy := newCutProxy(t, "/var/run/docker.sock", "/start")
	t.Setenv("DOCKER_HOST", "unix://"+proxy.path)

	code, out := f.syncd("sync")
	if code != 1 {
		t.Fatalf("sync through a dropped engine: exit %d\n%s", code, out)
	}
	select {
	case <-proxy.cut:
	default:
		t.Fatalf("the engine was never cut (no container start seen):\n%s", out)
	}
	if strings.Contains(out, "rolled back") || strings.Contains(out, "taken down") {
		t.Errorf("the release was blamed for the engine:\n%s", out)
	}
	if st := readFile(t, filepath.Join(f.state, "projects.json")); strings.Contains(st, "failed_commit") {
		t.Errorf("commit marked failed for an engine fault:\n%s", st)
	}

	proxy.cutOn = ""
	proxy.listen(t)
	if out := f.mustSync(); !strings.Contains(out, "converged") {
		t.Errorf("recovery cycle:\n%s", out)
	}
	got := containers(t, app)
	if len(got) != 2 || !strings.HasSuffix(got[app+"/web"], "running") || !strings.HasSuffix(got[app+"/worker"], "running") {
		t.Errorf("after recovery: %v", got)
	}
}
