package runtime

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/agent"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/state"
	"github.com/syncd-dev/syncd/internal/status"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// trustFleet is a canary (wave 0), the client host under test (wave 1)
// and mallory (wave 1), a host whose deploy key may push the status
// branch as every host's may, on one real Git server. The client is a
// whole runtime; the canary's and mallory's documents are written by
// their status writers, with their own keys, as the test says.
type trustFleet struct {
	t       *testing.T
	server  *testenv.GitServer
	url     string
	work    string
	clock   *simClock
	keys    map[string]*status.Key
	canary  *status.Writer
	client  *simHost
	release int
}

func newTrustFleet(t *testing.T) *trustFleet {
	f := &trustFleet{t: t, server: testenv.NewGitServer(t), work: t.TempDir(), keys: map[string]*status.Key{},
		clock: newSimClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))}
	f.url = f.server.InitBare(t, "fleet")
	testenv.Git(t, f.work, "init", "-q", "-b", "main")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, wave := range map[string]int{"canary": 0, "client": 1, "mallory": 1} {
		key, _, err := status.OpenKey(t.TempDir(), name)
		if err != nil {
			t.Fatal(err)
		}
		f.keys[name] = key
		f.write("hosts/"+name+"/host.yaml", fmt.Sprintf("apps: [web]\nwave: %d\nstatus_key: %s\n", wave, key.Public()))
	}
	f.canary = f.writer("canary", f.keys["canary"])
	dir := t.TempDir()
	store, err := state.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	eng := &standIn{projects: map[string]*plan.ObservedProject{}}
	src := &source.Git{URL: f.url, Dir: store.Dir()}
	b := &source.StatusBranches{Git: src}
	w := &status.Writer{Publisher: b, Branches: b, Dir: filepath.Join(store.Dir(), "status-repo"), StateDir: store.Dir(), Host: "client", Now: f.clock.Now, Key: f.keys["client"]}
	rec := &reconcile.Reconciler{Host: "client", Engine: eng, Store: store, Logger: quiet, Now: f.clock.Now}
	f.client = &simHost{name: "client", wave: 1, eng: eng, run: New(Deps{Host: "client", Source: src, Reconciler: rec, Engine: eng, Status: w,
		History: src, Now: f.clock.Now, Log: quiet})}
	return f
}

func (f *trustFleet) write(rel, content string) {
	p := filepath.Join(f.work, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// writer writes host's documents signed with key (nil: unsigned).
func (f *trustFleet) writer(host string, key *status.Key) *status.Writer {
	b := &source.StatusBranches{Git: &source.Git{URL: f.url}}
	return &status.Writer{Publisher: b, Branches: b, Dir: filepath.Join(f.t.TempDir(), "status-repo"), Host: host, Now: f.clock.Now, Key: key}
}

// commit pushes a new release of web and returns its commit and image.
func (f *trustFleet) commit() (string, string) {
	f.release++
	image := fmt.Sprintf("registry.invalid/web:%d", f.release)
	f.write("syncd.yaml", "defaults:\n  soak: 0s\nwaves:\n  bake_time: 10m\n")
	f.write("apps/web/compose.yaml", "services:\n  web:\n    image: "+image+"\n")
	testenv.Git(f.t, f.work, "add", "-A")
	testenv.Git(f.t, f.work, "commit", "-q", "-m", "release")
	testenv.Git(f.t, f.work, "push", "-q", f.url, "HEAD:main")
	return testenv.Git(f.t, f.work, "rev-parse", "HEAD"), image
}

// report writes a document of the canary with w: it runs commit, in
// state, converged since since.
func (f *trustFleet) report(w *status.Writer, commit string, st status.State, since time.Time, failed string) {
	f.t.Helper()
	doc := status.Host{Host: "canary", Wave: 0, DesiredCommit: commit, AppliedCommit: commit, State: st, FailedCommit: failed}
	if st == status.Converged {
		doc.ConvergedSince = since
		// The canary attests its bake (10m, commit's) once it has ended.
		if end := since.Add(10 * time.Minute); !end.After(f.clock.Now()) {
			doc.BakedCommit, doc.BakedAt = commit, end
		}
	}
	if failed != "" {
		doc.FailedError = "web: rolled back"
	}
	if _, err := w.Write(context.Background(), doc); err != nil {
		f.t.Fatal(err)
	}
}

// poll runs one of the client's polls and returns what it printed.
func (f *trustFleet) poll() string {
	f.t.Helper()
	res, err := f.client.run.Cycle(context.Background(), agent.ReasonPoll)
	if err != nil {
		f.t.Fatalf("client's cycle: %v", err)
	}
	return res.Output
}

// TestForgedCanaryDocumentDoesNotAdvance: mallory pushes a document in
// the canary's name saying it runs C, converged for an hour, signed with
// mallory's own key: the client does not apply C. The canary's own
// document saying the same lets it through.
func TestForgedCanaryDocumentDoesNotAdvance(t *testing.T) {
	f := newTrustFleet(t)
	c, image := f.commit()
	forger := f.writer("canary", f.keys["mallory"])
	f.report(forger, c, status.Converged, f.clock.Now().Add(-time.Hour), "")
	out := f.poll()
	if f.client.eng.ran(image) || f.client.run.rollout != agent.RolloutWaiting {
		t.Fatalf("the client applied %s on a forged canary document (rollout %q):\n%s", abbrev.Commit(c), f.client.run.rollout, out)
	}
	want := "canary (wave 0): its status document does not count: does not verify against the status_key of hosts/canary/host.yaml (" +
		f.keys["canary"].Fingerprint() + "): signed by key " + f.keys["mallory"].Fingerprint()
	if !strings.Contains(out, want) {
		t.Errorf("the client's gate does not say why:\n%s\nwant %q", out, want)
	}
	// Unsigned, in the canary's name: no better.
	f.clock.Add(time.Minute)
	f.report(f.writer("canary", nil), c, status.Converged, f.clock.Now().Add(-2*time.Hour), "")
	if out := f.poll(); f.client.eng.ran(image) || !strings.Contains(out, "not signed") {
		t.Fatalf("the client applied %s on an unsigned canary document:\n%s", abbrev.Commit(c), out)
	}

	f.clock.Add(time.Minute)
	f.report(f.canary, c, status.Converged, f.clock.Now().Add(-time.Hour), "")
	if out := f.poll(); !f.client.eng.ran(image) || !f.client.runs(c) {
		t.Fatalf("the canary's own document did not let %s through:\n%s", abbrev.Commit(c), out)
	}
}

// TestForgedFailureDoesNotHalt: the canary runs C converged; mallory
// pushes a document in its name that says C failed there: the client's
// rollout is not halted by it.
func TestForgedFailureDoesNotHalt(t *testing.T) {
	f := newTrustFleet(t)
	c, _ := f.commit()
	f.report(f.canary, c, status.Converged, f.clock.Now().Add(-time.Hour), "")
	f.report(f.writer("canary", f.keys["mallory"]), c, status.Failed, time.Time{}, c)
	out := f.poll()
	if f.client.run.rollout == agent.RolloutHalted || strings.Contains(out, "halted") {
		t.Fatalf("a forged failed_commit halted the rollout:\n%s", out)
	}
	if !strings.Contains(out, "does not count") {
		t.Errorf("the client does not say the document does not count:\n%s", out)
	}
	// The canary's genuine failure does halt it.
	f.clock.Add(time.Minute)
	f.report(f.canary, c, status.Failed, time.Time{}, c)
	if out := f.poll(); f.client.run.rollout != agent.RolloutHalted {
		t.Errorf("the canary's own failure did not halt the rollout:\n%s", out)
	}
}

// TestReplayedCanaryDocumentIsIgnored: the canary reported C converged,
// then degraded; its older genuine document pushed again (still fresh, its
// bake time past) would let C through: it is a replay, and the client
// waits and says so.
func TestReplayedCanaryDocumentIsIgnored(t *testing.T) {
	f := newTrustFleet(t)
	c, image := f.commit()
	f.report(f.canary, c, status.Converged, f.clock.Now(), "")
	bare := filepath.Join(f.server.Root, "fleet.git")
	doc := testenv.Git(t, bare, "show", status.DefaultBranch+"-canary:hosts/canary.yaml") + "\n"
	sig := testenv.Git(t, bare, "show", status.DefaultBranch+"-canary:hosts/canary.yaml.sig") + "\n"
	if out := f.poll(); !strings.Contains(out, "baking until") {
		t.Fatalf("the client should wait for the bake time:\n%s", out)
	}
	f.clock.Add(time.Minute)
	f.report(f.canary, c, status.Degraded, time.Time{}, "")
	if out := f.poll(); !strings.Contains(out, "not converged") {
		t.Fatalf("the client should wait for the degraded canary:\n%s", out)
	}
	// The bake time has passed since the first document; mallory pushes
	// it again, byte for byte with its signature.
	f.clock.Add(15 * time.Minute)
	work := filepath.Join(t.TempDir(), "mallory")
	testenv.Git(t, "", "clone", "-q", "-b", status.DefaultBranch+"-canary", f.url, work)
	os.WriteFile(filepath.Join(work, "hosts", "canary.yaml"), []byte(doc), 0o644)
	os.WriteFile(filepath.Join(work, "hosts", "canary.yaml.sig"), []byte(sig), 0o644)
	testenv.Git(t, work, "commit", "-qam", "status: canary converged")
	testenv.Git(t, work, "push", "-q", "origin", status.DefaultBranch+"-canary")
	out := f.poll()
	if f.client.eng.ran(image) {
		t.Fatalf("the client applied %s on a replayed document:\n%s", abbrev.Commit(c), out)
	}
	if !strings.Contains(out, "canary (wave 0): its status document does not count: a replay: written 2026-12-01T00:00:00Z (sequence 1), older than its document of 2026-12-01T00:01:00Z (sequence 2) already seen") {
		t.Errorf("the client does not say it is a replay:\n%s", out)
	}
}

// TestCanaryDocumentFromTheFuture: the canary's document dated 3 days
// ahead (its own key, its clock wrong, or a copy signed then) is not
// fresh: the client waits and says why.
func TestCanaryDocumentFromTheFuture(t *testing.T) {
	f := newTrustFleet(t)
	c, image := f.commit()
	ahead := f.writer("canary", f.keys["canary"])
	ahead.Now = func() time.Time { return f.clock.Now().Add(72 * time.Hour) }
	f.report(ahead, c, status.Converged, f.clock.Now().Add(-time.Hour), "")
	out := f.poll()
	if f.client.eng.ran(image) || !strings.Contains(out, "canary (wave 0): its report is dated 2026-12-04T00:00:00Z, 72h0m0s ahead of this host's clock (more than the 5m0s allowed): not fresh") {
		t.Fatalf("a document 3 days ahead:\n%s", out)
	}
}
