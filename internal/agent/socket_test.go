package agent

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/jobs"
)

type requestOut struct {
	res     Result
	err     error
	running bool
}

func goRequestSync(path string) chan requestOut {
	ch := make(chan requestOut, 1)
	go func() {
		res, err, running := RequestSync(context.Background(), path)
		ch <- requestOut{res, err, running}
	}()
	return ch
}

// serveSocket runs ServeSocket until the test ends and waits for the socket.
func serveSocket(t *testing.T, path string, a *Agent) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- ServeSocket(ctx, path, a) }()
	eventually(t, "the socket", func() bool {
		fi, err := os.Lstat(path)
		return err == nil && fi.Mode().Type() == fs.ModeSocket && fi.Mode().Perm() == 0o600
	})
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("ServeSocket did not return")
		}
	}
	t.Cleanup(func() { stop() })
	return stop
}

func TestSocketRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	h := newHarness(t, Config{Poll: time.Minute})
	h.run()
	h.expect("start").finish(Result{Commit: "c0"}, nil)
	stop := serveSocket(t, path, h.a)

	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}

	out := goRequestSync(path)
	h.expect("request").finish(Result{Commit: "c1", Changed: 2, Output: "web: recreated\ndb: unchanged\n"}, nil)
	o := <-out
	if o.err != nil || !o.running || o.res.Commit != "c1" || o.res.Changed != 2 || o.res.Output != "web: recreated\ndb: unchanged\n" {
		t.Errorf("RequestSync = %+v, %v, %v", o.res, o.err, o.running)
	}

	out = goRequestSync(path)
	h.expect("request").finish(Result{Commit: "c1", Output: "web: rolled back"}, errors.New("web: not healthy after 2m"))
	o = <-out
	if o.err == nil || o.err.Error() != "web: not healthy after 2m" || !o.running || o.res.Output != "web: rolled back" {
		t.Errorf("RequestSync of a failing cycle = %+v, %v, %v", o.res, o.err, o.running)
	}

	if err := stop(); err != nil {
		t.Errorf("ServeSocket = %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
	if _, err, running := RequestSync(context.Background(), path); running || err != nil {
		t.Errorf("after the agent stopped: running %v, err %v", running, err)
	}
}

// staleSocket leaves a socket file nobody listens on, as a killed agent does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
}

func TestRequestSyncWithoutAgent(t *testing.T) {
	dir := t.TempDir()
	t.Run("no file", func(t *testing.T) {
		res, err, running := RequestSync(context.Background(), filepath.Join(dir, "none.sock"))
		if running || err != nil || res.Commit != "" || res.Output != "" {
			t.Errorf("= %+v, %v, %v; want not running", res, err, running)
		}
	})
	t.Run("stale socket", func(t *testing.T) {
		path := filepath.Join(dir, "stale.sock")
		staleSocket(t, path)
		if _, err, running := RequestSync(context.Background(), path); running || err != nil {
			t.Errorf("running %v, err %v; want not running", running, err)
		}
	})
}

func TestServeSocketReplacesStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	staleSocket(t, path)
	h := newHarness(t, Config{Poll: time.Minute})
	h.run()
	h.expect("start").finish(Result{}, nil)
	serveSocket(t, path, h.a)
	out := goRequestSync(path)
	h.expect("request").finish(Result{Commit: "c1"}, nil)
	if o := <-out; o.err != nil || !o.running || o.res.Commit != "c1" {
		t.Errorf("RequestSync = %+v", o)
	}
}

func TestServeSocketRefuses(t *testing.T) {
	dir := t.TempDir()
	a := New(Config{Clock: newFakeClock()}, nil)

	live := filepath.Join(dir, "live.sock")
	ln, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := ServeSocket(context.Background(), live, a); err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Errorf("over a live socket: %v", err)
	}
	if _, err := os.Lstat(live); err != nil {
		t.Errorf("the live socket was removed: %v", err)
	}

	file := filepath.Join(dir, "not-a-socket")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ServeSocket(context.Background(), file, a); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("over a regular file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the file was touched: %q %v", b, err)
	}
}

func TestSocketAfterAgentStopped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	h := newHarness(t, Config{Poll: time.Minute})
	h.run()
	h.expect("start").finish(Result{}, nil)
	h.idle()
	h.cancel()
	if err := <-h.runErr; err != nil {
		t.Fatal(err)
	}
	h.runErr <- nil
	serveSocket(t, path, h.a)
	res, err, running := RequestSync(context.Background(), path)
	if !running || err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("= %+v, %v, %v; want running and an error saying the agent stopped", res, err, running)
	}
}

func TestRequestSyncCallerGivesUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	h := newHarness(t, Config{Poll: time.Minute})
	h.run()
	h.expect("start").finish(Result{}, nil)
	serveSocket(t, path, h.a)
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan requestOut, 1)
	go func() {
		res, err, running := RequestSync(ctx, path)
		out <- requestOut{res, err, running}
	}()
	c := h.expect("request")
	cancel()
	o := <-out
	if !errors.Is(o.err, context.Canceled) || !o.running {
		t.Errorf("= %+v; want context.Canceled, running", o)
	}
	c.finish(Result{}, nil)
	h.idle()
}

// TestSocketJobRequestIsTyped: a job request reaches the agent's Job as
// the typed request it was sent as (an app named check stays an app's
// backup), and one of an unknown kind, or of the old untyped form, is
// refused at the socket before anything runs.
func TestSocketJobRequestIsTyped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	var mu sync.Mutex
	var ran []jobs.Request
	got := func() []jobs.Request { mu.Lock(); defer mu.Unlock(); return slices.Clone(ran) }
	h := newHarness(t, Config{Poll: time.Minute, Job: func(_ context.Context, req jobs.Request) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		ran = append(ran, req)
		return "ran " + string(req.Kind) + "\n", nil
	}})
	serveSocket(t, path, h.a)

	want := jobs.Request{Kind: jobs.RequestRestore, App: "check", Snapshot: "latest", To: "/tmp/drill", Paths: []string{"volumes/data/a"}}
	out, err, running := RequestJob(context.Background(), path, nil, want)
	if g := got(); err != nil || !running || out != "ran restore\n" || len(g) != 1 || !reflect.DeepEqual(g[0], want) {
		t.Fatalf("RequestJob = %q, %v, %v; Job got %+v, want %+v", out, err, running, g, want)
	}
	_, err, running = RequestJob(context.Background(), path, nil, jobs.Request{Kind: "check", App: "web"})
	if err == nil || !running || !strings.Contains(err.Error(), `unknown request kind "check"`) {
		t.Errorf("a request of an unknown kind: %v, %v", err, running)
	}
	var reply syncReplyJSON
	if _, err, _ := post(context.Background(), path, "/job", map[string]any{"args": map[string]string{"job": "backup", "app": "web"}}, &reply); err != nil || reply.OK || !strings.Contains(reply.Error, "unknown request kind") {
		t.Errorf("the untyped form: %v, %+v", err, reply)
	}
	if g := got(); len(g) != 1 {
		t.Errorf("refused requests ran: %+v", g)
	}
}
