package status

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// fleet is a status repository on a real Git server (git http-backend on
// loopback).
type fleet struct {
	srv       *testenv.GitServer
	url       string
	bare      string
	tokenFile string
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	srv := testenv.NewGitServer(t)
	srv.Token = "status-test-token"
	url := srv.InitBare(t, "fleet")
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte(srv.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	return &fleet{srv: srv, url: url, bare: filepath.Join(srv.Root, "fleet.git"), tokenFile: tf}
}

// branches are the fleet's status branches, read and published as a host
// does.
func (f *fleet) branches() *source.StatusBranches {
	return &source.StatusBranches{Git: &source.Git{URL: f.url, TokenFile: f.tokenFile}}
}

// branch is host's status branch.
func branch(host string) string { return DefaultBranch + "-" + host }

// pushURL is the repository's URL with the token, for the git command.
func (f *fleet) pushURL() string {
	return "http://x:" + f.srv.Token + "@" + strings.TrimPrefix(f.url, "http://")
}

// clock is an injected time that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func (f *fleet) writer(t *testing.T, host string, now func() time.Time) *Writer {
	b := f.branches()
	return &Writer{
		Publisher: b,
		Branches:  b,
		Dir:       filepath.Join(t.TempDir(), "status-repo"),
		StateDir:  t.TempDir(),
		Host:      host,
		Now:       now,
	}
}

// commits counts the commits of host's status branch on the server.
func (f *fleet) commits(t *testing.T, host string) int {
	t.Helper()
	n, err := strconv.Atoi(testenv.Git(t, f.bare, "rev-list", "--count", branch(host)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// file is one file of host's status branch, as the server has it.
func (f *fleet) file(t *testing.T, host, name string) string {
	t.Helper()
	return testenv.Git(t, f.bare, "show", branch(host)+":"+name)
}

func (f *fleet) host(t *testing.T, name string) Host {
	t.Helper()
	h, err := unmarshal([]byte(f.file(t, name, "hosts/"+name+".yaml")))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func write(t *testing.T, w *Writer, h Host) bool {
	t.Helper()
	committed, err := w.Write(context.Background(), h)
	if err != nil {
		t.Fatalf("Write %s: %v", w.Host, err)
	}
	return committed
}

func TestFirstWriteCreatesTheBranch(t *testing.T) {
	f := newFleet(t)
	// The desired state is on main; the status branch is not there yet.
	work := filepath.Join(t.TempDir(), "w")
	testenv.Git(t, "", "init", "-q", "-b", "main", work)
	os.WriteFile(filepath.Join(work, "syncd.yaml"), []byte("waves: {}\n"), 0o644)
	testenv.Git(t, work, "add", ".")
	testenv.Git(t, work, "commit", "-qm", "fleet")
	testenv.Git(t, work, "push", "-q", f.pushURL(), "main")
	mainBefore := testenv.Git(t, f.bare, "rev-parse", "main")

	c := &clock{t: t0}
	w := f.writer(t, "alpha", c.Now)
	if !write(t, w, sample("alpha")) {
		t.Fatal("the first write made no commit")
	}
	if n := f.commits(t, "alpha"); n != 1 {
		t.Fatalf("%d commits, want 1", n)
	}
	if files := testenv.Git(t, f.bare, "ls-tree", "-r", "--name-only", branch("alpha")); files != "hosts/alpha.yaml" {
		t.Errorf("the branch holds %q, want only hosts/alpha.yaml", files)
	}
	if parents := testenv.Git(t, f.bare, "log", "-1", "--format=%P", branch("alpha")); parents != "" {
		t.Errorf("the first commit has parents %s, want an orphan", parents)
	}
	if msg := testenv.Git(t, f.bare, "log", "-1", "--format=%s", branch("alpha")); msg != "status: alpha converged at 0123456789ab" {
		t.Errorf("commit message %q", msg)
	}
	if main := testenv.Git(t, f.bare, "rev-parse", "main"); main != mainBefore {
		t.Errorf("main moved from %s to %s", mainBefore, main)
	}
	got := f.host(t, "alpha")
	if !Equal(got, sample("alpha")) || !got.UpdatedAt.Equal(t0) {
		t.Errorf("pushed %+v", got)
	}
	local, err := ReadLocal(w.StateDir)
	if err != nil || !Equal(local, got) {
		t.Errorf("local status %+v, %v", local, err)
	}
	testenv.Git(t, f.bare, "fsck", "--strict", "--no-dangling")
}

func TestUnchangedDocumentMakesNoCommit(t *testing.T) {
	f := newFleet(t)
	c := &clock{t: t0}
	w := f.writer(t, "alpha", c.Now)
	write(t, w, sample("alpha"))
	before := f.srv.Requests.Load()
	for range 3 {
		c.Add(10 * time.Minute)
		h := sample("alpha")
		h.LastCycle.At = c.Now() // a new poll, same outcome
		h.LastCycle.DurationMS = 17
		if write(t, w, h) {
			t.Fatal("an unchanged document made a commit")
		}
	}
	if n := f.commits(t, "alpha"); n != 1 {
		t.Errorf("%d commits, want 1", n)
	}
	if got := f.srv.Requests.Load() - before; got != 0 {
		t.Errorf("an unchanged document cost %d requests, want none", got)
	}
	// The local status still follows every poll.
	local, err := ReadLocal(w.StateDir)
	if err != nil || !local.UpdatedAt.Equal(t0.Add(30*time.Minute)) {
		t.Errorf("local status at %v (%v), want the last poll", local.UpdatedAt, err)
	}
}

func TestChangedDocumentMakesOneCommit(t *testing.T) {
	f := newFleet(t)
	c := &clock{t: t0}
	w := f.writer(t, "alpha", c.Now)
	write(t, w, sample("alpha"))
	c.Add(time.Minute)
	h := sample("alpha")
	h.State = Degraded
	h.Projects[0].Health = Unhealthy
	if !write(t, w, h) {
		t.Fatal("a changed document made no commit")
	}
	if n := f.commits(t, "alpha"); n != 2 {
		t.Errorf("%d commits, want 2", n)
	}
	if got := f.host(t, "alpha"); got.State != Degraded || !got.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("pushed state %s at %v", got.State, got.UpdatedAt)
	}
	if msg := testenv.Git(t, f.bare, "log", "-1", "--format=%s", branch("alpha")); msg != "status: alpha degraded at 0123456789ab" {
		t.Errorf("commit message %q", msg)
	}
}

func TestHeartbeatAfterTheInterval(t *testing.T) {
	f := newFleet(t)
	c := &clock{t: t0}
	w := f.writer(t, "alpha", c.Now)
	w.Heartbeat = 30 * time.Minute
	write(t, w, sample("alpha"))
	c.Add(29 * time.Minute)
	if write(t, w, sample("alpha")) {
		t.Fatal("a commit before the heartbeat was due")
	}
	c.Add(time.Minute)
	if !write(t, w, sample("alpha")) {
		t.Fatal("no heartbeat commit after the interval")
	}
	if n := f.commits(t, "alpha"); n != 2 {
		t.Errorf("%d commits, want 2", n)
	}
	if got := f.host(t, "alpha"); !got.UpdatedAt.Equal(t0.Add(30 * time.Minute)) {
		t.Errorf("heartbeat at %v", got.UpdatedAt)
	}
	// The interval counts from the heartbeat, not from the first commit.
	c.Add(29 * time.Minute)
	if write(t, w, sample("alpha")) {
		t.Error("a commit 29m after the heartbeat")
	}
}

// TestWritesAreLatestWins: one writer written from several goroutines at
// once (a cycle, a job's result, the probes) publishes the newest document
// last, and none of theirs waits on another's network for its own local
// status.
func TestWritesAreLatestWins(t *testing.T) {
	f := newFleet(t)
	w := f.writer(t, "alpha", nil)
	var wg sync.WaitGroup
	for round := 1; round <= 10; round++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := sample("alpha")
			h.Drift = round
			if _, err := w.Write(context.Background(), h); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Whatever order they ran in, the last document written is on the
	// branch and in the local status.
	local, err := ReadLocal(w.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.host(t, "alpha"); got.Drift != local.Drift {
		t.Errorf("the branch has round %d, the local status round %d: a stale document won", got.Drift, local.Drift)
	}
	if n := f.commits(t, "alpha"); n > 10 {
		t.Errorf("%d commits for 10 writes", n)
	}
}

func TestReadOnlyRemote(t *testing.T) {
	f := newFleet(t)
	f.srv.ReadOnly.Store(true)
	c := &clock{t: t0}
	w := f.writer(t, "alpha", c.Now)
	_, err := w.Write(context.Background(), sample("alpha"))
	if !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Write to a read-only remote: %v, want ErrReadOnly", err)
	}
	if strings.Contains(err.Error(), f.srv.Token) {
		t.Errorf("the error quotes the token: %v", err)
	}
	if local, err := ReadLocal(w.StateDir); err != nil || !Equal(local, sample("alpha")) {
		t.Errorf("no local status after a read-only push: %+v, %v", local, err)
	}
	if refs := testenv.Git(t, f.bare, "for-each-ref"); refs != "" {
		t.Errorf("the read-only server got refs: %s", refs)
	}
	// Within the hour, the writer does not try again: the status stays
	// local, and no request is made.
	before := f.srv.Requests.Load()
	if write(t, w, sample("alpha")) || f.srv.Requests.Load() != before {
		t.Error("a read-only remote was asked again within the hour")
	}
	// Once write access is granted, the same document is pushed at the
	// next try: a refused push was not remembered as done.
	f.srv.ReadOnly.Store(false)
	c.Add(61 * time.Minute)
	if !write(t, w, sample("alpha")) {
		t.Error("no commit once the remote accepts pushes")
	}

	// A branch that exists, and a remote that turns read-only.
	f.srv.ReadOnly.Store(true)
	h := sample("alpha")
	h.State = Failed
	if _, err := w.Write(context.Background(), h); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Write to a read-only remote with a branch: %v, want ErrReadOnly", err)
	}
	if n := f.commits(t, "alpha"); n != 1 {
		t.Errorf("%d commits, want 1", n)
	}
}

func TestBadHostName(t *testing.T) {
	none := &source.StatusBranches{Git: &source.Git{URL: "http://127.0.0.1:1/none.git"}}
	for _, name := range []string{"", "../x", "a/b", ".hidden", "a..b"} {
		w := &Writer{Publisher: none, Host: name, Dir: t.TempDir()}
		if _, err := w.Write(context.Background(), Host{}); err == nil {
			t.Errorf("host %q accepted", name)
		}
	}
	w := &Writer{Publisher: none, Host: "alpha", Dir: t.TempDir()}
	if _, err := w.Write(context.Background(), sample("beta")); err == nil {
		t.Error("the writer of alpha wrote beta's document")
	}
	w = &Writer{Publisher: none, Host: "alpha"}
	if _, err := w.Write(context.Background(), sample("alpha")); err == nil {
		t.Error("a writer without a directory wrote")
	}
}

// TestNoSecretInStatus: a document whose errors quote a secret value
// (testdata/secret-host.yaml) reaches neither the local status, nor the
// writer's directory, nor any object on the server: Writer.Redact blanks
// every error string first.
func TestNoSecretInStatus(t *testing.T) {
	const secret = "planted-Secret-4711"
	data, err := os.ReadFile("testdata/secret-host.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var h Host
	if err := yaml.Unmarshal(data, &h); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.LastCycle.Error+h.Projects[0].LastError+h.Jobs[0].Error, secret) {
		t.Fatal("the fixture lost its planted secret")
	}
	f := newFleet(t)
	w := f.writer(t, "leaky", (&clock{t: t0}).Now)
	w.Redact = func(s string) string { return strings.ReplaceAll(s, secret, "[redacted]") }
	write(t, w, h)

	got := f.host(t, "leaky")
	for _, s := range []string{got.LastCycle.Error, got.Projects[0].LastError, got.Jobs[0].Error} {
		if !strings.Contains(s, "[redacted]") {
			t.Errorf("error %q was not redacted", s)
		}
	}
	if h.Projects[0].LastError != "health check: login with "+secret+" failed" {
		t.Error("Write changed the caller's document")
	}
	check := func(where string, b []byte) {
		t.Helper()
		if strings.Contains(string(b), secret) {
			t.Errorf("%s holds the secret value", where)
		}
	}
	filepath.Walk(w.StateDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			check(p, b)
		}
		return nil
	})
	filepath.Walk(w.Dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			check(p, b)
		}
		return nil
	})
	// Every object the server stores, decompressed.
	cmd := exec.Command("git", "cat-file", "--batch-all-objects", "--batch")
	cmd.Dir = f.bare
	objects, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(objects), "[redacted]") {
		t.Fatal("cat-file shows no status document")
	}
	check("the server's objects", objects)

	// The same document from the local status, for `syncd status`.
	local, err := ReadLocal(w.StateDir)
	if err != nil || local.Projects[0].LastError != "health check: login with [redacted] failed" {
		t.Errorf("local: %q, %v", local.Projects[0].LastError, err)
	}
}
