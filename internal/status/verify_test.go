package status

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/testenv"
)

func key(t *testing.T, host string) *Key {
	t.Helper()
	k, made, err := OpenKey(t.TempDir(), host)
	if err != nil || !made {
		t.Fatalf("OpenKey: %v (made %v)", err, made)
	}
	return k
}

// tamper clones host's status branch, lets edit change the working copy,
// and pushes the result as another host's deploy key could: the
// attacker's move, with the real git.
func (f *fleet) tamper(t *testing.T, host string, edit func(dir string)) {
	t.Helper()
	work := filepath.Join(t.TempDir(), "attacker")
	testenv.Git(t, "", "clone", "-q", "-b", branch(host), f.pushURL(), work)
	edit(work)
	testenv.Git(t, work, "add", "-A")
	testenv.Git(t, work, "commit", "-qm", "status: "+host+" converged", "--allow-empty")
	testenv.Git(t, work, "push", "-q", "origin", branch(host))
}

func (f *fleet) reader(now func() time.Time, memory string) *Reader {
	return &Reader{Branches: f.branches(), Memory: memory, Now: now}
}

func judged(t *testing.T, r *Reader, keys Keys) map[string]Host {
	t.Helper()
	hosts, err := r.Read(context.Background(), keys)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	out := map[string]Host{}
	for _, h := range hosts {
		out[h.Host] = h
	}
	return out
}

// TestSignedDocumentVerifies: a host with a key pushes its document and
// the signature beside it (one ssh-keygen verifies too); it verifies
// against its key; a host main enrols no key for is unsigned and counts
// as before; a host main does not know does not count.
func TestSignedDocumentVerifies(t *testing.T) {
	f := newFleet(t)
	c := &clock{t: t0}
	alphaKey := key(t, "alpha")
	w := f.writer(t, "alpha", c.Now)
	w.Key = alphaKey
	write(t, w, sample("alpha"))
	write(t, f.writer(t, "beta", c.Now), sample("beta"))
	write(t, f.writer(t, "gamma", c.Now), sample("gamma"))
	if files := testenv.Git(t, f.bare, "ls-tree", "-r", "--name-only", branch("alpha")); files != "hosts/alpha.yaml\nhosts/alpha.yaml.sig" {
		t.Fatalf("alpha's branch holds %q", files)
	}
	if files := testenv.Git(t, f.bare, "ls-tree", "-r", "--name-only", branch("beta")); files != "hosts/beta.yaml" {
		t.Fatalf("beta's branch holds %q", files)
	}
	doc := f.file(t, "alpha", "hosts/alpha.yaml") + "\n"
	if !strings.Contains(doc, "status_key: "+alphaKey.Public()+"\n") || !strings.Contains(doc, "sequence: 1\n") {
		t.Errorf("alpha's document:\n%s", doc)
	}
	// The signature is a plain SSHSIG over the file's bytes.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sig"), []byte(f.file(t, "alpha", "hosts/alpha.yaml.sig")+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "allowed"), []byte("alpha "+alphaKey.Public()+"\n"), 0o600)
	cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", filepath.Join(dir, "allowed"), "-I", "alpha", "-n", Namespace, "-s", filepath.Join(dir, "sig"))
	cmd.Stdin = bytes.NewReader([]byte(doc))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("ssh-keygen -Y verify: %v\n%s", err, out)
	}

	got := judged(t, f.reader(c.Now, ""), Keys{"alpha": alphaKey.Public(), "beta": ""})
	if a := got["alpha"]; a.Trust != Verified || !a.Counts() {
		t.Errorf("alpha: %s %s", a.Trust, a.Why)
	}
	if b := got["beta"]; b.Trust != Unsigned || !b.Counts() {
		t.Errorf("beta: %s %s", b.Trust, b.Why)
	}
	if g := got["gamma"]; g.Trust != Unverified || g.Counts() || !strings.Contains(g.Why, "not in the repository") {
		t.Errorf("gamma: %s %s", g.Trust, g.Why)
	}

	// A second write signs again, one sequence on.
	c.Add(time.Minute)
	h := sample("alpha")
	h.State = Degraded
	write(t, w, h)
	if doc := f.file(t, "alpha", "hosts/alpha.yaml"); !strings.Contains(doc, "sequence: 2") {
		t.Errorf("second document:\n%s", doc)
	}
	if a := judged(t, f.reader(c.Now, ""), Keys{"alpha": alphaKey.Public()})["alpha"]; a.Trust != Verified {
		t.Errorf("alpha's second document: %s %s", a.Trust, a.Why)
	}
}

// TestForgedDocumentsDoNotCount: what another host's deploy key can push
// in alpha's name does not verify against alpha's key, and says why.
func TestForgedDocumentsDoNotCount(t *testing.T) {
	f := newFleet(t)
	c := &clock{t: t0}
	alphaKey, betaKey := key(t, "alpha"), key(t, "beta")
	keys := Keys{"alpha": alphaKey.Public(), "beta": betaKey.Public()}
	w := f.writer(t, "alpha", c.Now)
	w.Key = alphaKey
	write(t, w, sample("alpha"))

	// beta signs a document of alpha with its own key.
	forger := f.writer(t, "alpha", c.Now)
	forger.Key = betaKey
	forged := sample("alpha")
	forged.FailedCommit, forged.FailedError = "c0ffee0123456789c0ffee0123456789c0ffee01", "forged"
	write(t, forger, forged)
	a := judged(t, f.reader(c.Now, ""), keys)["alpha"]
	if a.Trust != Unverified || !strings.Contains(a.Why, "signed by key "+betaKey.Fingerprint()+", not by "+alphaKey.Fingerprint()) {
		t.Errorf("signed by beta's key: %s %s", a.Trust, a.Why)
	}

	// alpha's genuine document, edited by hand under its signature.
	degraded := sample("alpha")
	degraded.State = Degraded
	write(t, w, degraded)
	f.tamper(t, "alpha", func(dir string) {
		p := filepath.Join(dir, "hosts", "alpha.yaml")
		data, _ := os.ReadFile(p)
		os.WriteFile(p, bytes.Replace(data, []byte("state: degraded"), []byte("state: converged"), 1), 0o644)
	})
	if a := judged(t, f.reader(c.Now, ""), keys)["alpha"]; a.Trust != Unverified || !strings.Contains(a.Why, "bad signature by key "+alphaKey.Fingerprint()) {
		t.Errorf("edited: %s %s", a.Trust, a.Why)
	}

	// No signature at all.
	f.tamper(t, "alpha", func(dir string) { os.Remove(filepath.Join(dir, "hosts", "alpha.yaml.sig")) })
	if a := judged(t, f.reader(c.Now, ""), keys)["alpha"]; a.Trust != Unverified || !strings.Contains(a.Why, "not signed") {
		t.Errorf("unsigned: %s %s", a.Trust, a.Why)
	}

	// beta's own genuine document and signature copied under alpha's
	// name: it names beta, so it is no document of alpha's.
	wb := f.writer(t, "beta", c.Now)
	wb.Key = betaKey
	write(t, wb, sample("beta"))
	f.tamper(t, "alpha", func(dir string) {
		for _, ext := range []string{".yaml", ".yaml.sig"} {
			os.WriteFile(filepath.Join(dir, "hosts", "alpha"+ext), []byte(f.file(t, "beta", "hosts/beta"+ext)+"\n"), 0o644)
		}
	})
	hosts, err := f.reader(c.Now, "").Read(context.Background(), keys)
	if err == nil || !strings.Contains(err.Error(), `hosts/alpha.yaml: names host "beta", not "alpha"`) {
		t.Errorf("beta's document as alpha's: %v", err)
	}
	for _, h := range hosts {
		if h.Host == "alpha" {
			t.Errorf("a document of alpha was read: %+v", h)
		}
	}
}

// TestReplayIsRecognised: alpha's older genuine document pushed again
// verifies, but is older than the one the reader saw: a replay, also for
// a reader that restarted with the same memory.
func TestReplayIsRecognised(t *testing.T) {
	f := newFleet(t)
	c := &clock{t: t0}
	alphaKey := key(t, "alpha")
	keys := Keys{"alpha": alphaKey.Public()}
	w := f.writer(t, "alpha", c.Now)
	w.Key = alphaKey
	write(t, w, sample("alpha"))
	oldDoc, oldSig := f.file(t, "alpha", "hosts/alpha.yaml")+"\n", f.file(t, "alpha", "hosts/alpha.yaml.sig")+"\n"
	memory := filepath.Join(t.TempDir(), "seen.json")
	r := f.reader(c.Now, memory)
	if a := judged(t, r, keys)["alpha"]; a.Trust != Verified {
		t.Fatalf("first document: %s %s", a.Trust, a.Why)
	}
	c.Add(10 * time.Minute)
	h := sample("alpha")
	h.State = Degraded
	write(t, w, h)
	if a := judged(t, r, keys)["alpha"]; a.Trust != Verified || a.State != Degraded {
		t.Fatalf("second document: %s %s", a.Trust, a.Why)
	}
	f.tamper(t, "alpha", func(dir string) {
		os.WriteFile(filepath.Join(dir, "hosts", "alpha.yaml"), []byte(oldDoc), 0o644)
		os.WriteFile(filepath.Join(dir, "hosts", "alpha.yaml.sig"), []byte(oldSig), 0o644)
	})
	for name, rd := range map[string]*Reader{"the same reader": r, "a restarted reader": f.reader(c.Now, memory)} {
		a := judged(t, rd, keys)["alpha"]
		if a.Trust != Unverified || a.Counts() || !strings.Contains(a.Why, "a replay: written 2025-03-14T09:26:53Z (sequence 1), older than its document of 2025-03-14T09:36:53Z (sequence 2) already seen") {
			t.Errorf("%s: the replayed document is %s: %s", name, a.Trust, a.Why)
		}
	}
	if st, err := os.Stat(memory); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("memory %s: %v", memory, err)
	}
}

// TestDocumentFromTheFuture: a verified document dated 3 days ahead is
// not fresh and is said to be so; it does not become the newest seen, so
// the host's next document, dated right, is no replay.
func TestDocumentFromTheFuture(t *testing.T) {
	f := newFleet(t)
	alphaKey := key(t, "alpha")
	keys := Keys{"alpha": alphaKey.Public()}
	w := f.writer(t, "alpha", func() time.Time { return t0.Add(72 * time.Hour) })
	w.Key = alphaKey
	write(t, w, sample("alpha"))
	now := func() time.Time { return t0 }
	r := f.reader(now, filepath.Join(t.TempDir(), "seen.json"))
	hosts, err := r.Read(context.Background(), keys)
	if err != nil || len(hosts) != 1 || hosts[0].Trust != Verified || !hosts[0].Ahead(t0) {
		t.Fatalf("%+v %v", hosts, err)
	}
	var b strings.Builder
	Table(&b, hosts, t0)
	View(hosts, t0).Write(&b, t0)
	for _, want := range []string{"  +3d  verified\n", "! alpha: dated 72h0m0s ahead of this clock (more than 5m0s): not fresh",
		"alpha: its document is dated 2025-03-17T09:26:53Z, 72h0m0s ahead of this clock (more than 5m0s): not fresh"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
	w.Now = func() time.Time { return t0.Add(time.Minute) }
	h := sample("alpha")
	h.State = Degraded
	write(t, w, h)
	if a := judged(t, r, keys)["alpha"]; a.Trust != Verified || a.Ahead(t0) {
		t.Errorf("the next document, dated right: %s %s", a.Trust, a.Why)
	}
}

func TestOpenKeyKeepsItsKey(t *testing.T) {
	dir := t.TempDir()
	k, made, err := OpenKey(dir, "alpha")
	if err != nil || !made {
		t.Fatal(err, made)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	again, made, err := OpenKey(dir, "alpha")
	if err != nil || made || again.Public() != k.Public() || !strings.HasPrefix(k.Public(), "ssh-ed25519 AAAA") {
		t.Errorf("second open: %v made %v, %s vs %s", err, made, again.Public(), k.Public())
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o644)
	if _, _, err := OpenKey(dir, "alpha"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a readable key: %v", err)
	}
}

// TestViewShowsSuspensions: status --fleet says which apps of which host
// are suspended, by whom, until when and why.
func TestViewShowsSuspensions(t *testing.T) {
	h := sample("alpha")
	h.Trust = Verified
	h.Projects = append(h.Projects, Project{Name: "db", State: Suspended,
		Suspended: &Suspension{By: "alice on the host", Reason: "incident 42", Until: t0.Add(2 * time.Hour)}})
	var b strings.Builder
	View([]Host{h}, t0).Write(&b, t0)
	if want := "  alpha: db suspended by alice on the host until 2025-03-14T11:26:53Z: incident 42\n"; !strings.Contains(b.String(), want) {
		t.Errorf("the view lacks %q:\n%s", want, b.String())
	}
}
