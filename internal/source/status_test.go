package source

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// pushBranch pushes a branch of one commit holding files to url with the
// real git, as any host's credentials can.
func pushBranch(t *testing.T, url, branch string, files map[string]string) {
	t.Helper()
	w := newWorkRepo(t)
	testenv.Git(t, w.dir, "checkout", "-q", "--orphan", "x")
	w.commit("status", files, "-c", "user.name=mallory", "-c", "user.email=mallory@example.org")
	testenv.Git(t, w.dir, "push", "-q", "-f", url, "HEAD:refs/heads/"+branch)
}

func publish(t *testing.T, b *StatusBranches, host, doc string) bool {
	t.Helper()
	committed, err := b.Publish(context.Background(), host, []byte(doc), []byte("sig of "+host), "status: "+host, time.Now())
	if err != nil {
		t.Fatalf("publish %s: %v", host, err)
	}
	return committed
}

func readAll(t *testing.T, b *StatusBranches) (map[string]StatusFile, error) {
	t.Helper()
	files, err := b.Read(context.Background())
	out := map[string]StatusFile{}
	for _, f := range files {
		out[f.Host] = f
	}
	return out, err
}

// Two hosts, each on its own branch: no push is ever rejected, an
// unchanged document commits nothing, and a reader gets both.
func TestStatusBranchesNoContention(t *testing.T) {
	url := bareRepo(t)
	alpha, beta := &StatusBranches{Git: &Git{URL: url}}, &StatusBranches{Git: &Git{URL: url}}
	if _, err := alpha.Read(context.Background()); !errors.Is(err, ErrNoStatus) {
		t.Fatalf("read before any document: %v, want ErrNoStatus", err)
	}
	if !publish(t, alpha, "alpha", "host: alpha\n") || !publish(t, beta, "beta", "host: beta\n") {
		t.Fatal("a first document committed nothing")
	}
	if publish(t, alpha, "alpha", "host: alpha\n") {
		t.Error("the same document committed again")
	}
	if !publish(t, alpha, "alpha", "host: alpha\nstate: converged\n") {
		t.Error("a new document committed nothing")
	}
	got, err := readAll(t, &StatusBranches{Git: &Git{URL: url}})
	if err != nil || string(got["alpha"].Doc) != "host: alpha\nstate: converged\n" || string(got["beta"].Sig) != "sig of beta" ||
		got["alpha"].Branch != "syncd/status-alpha" || got["alpha"].Legacy {
		t.Errorf("read: %v %+v", err, got)
	}
	if n := alpha.Rejected.Load() + beta.Rejected.Load(); n != 0 {
		t.Errorf("%d pushes rejected with no one else writing the branches", n)
	}
}

// A host of an older syncd still on the single branch is read from it;
// a host with a branch of its own is read from that one only.
func TestStatusBranchesLegacyAndOwn(t *testing.T) {
	url := bareRepo(t)
	pushBranch(t, url, DefaultStatusBranch, map[string]string{"hosts/alpha.yaml": "host: alpha\nold: true\n", "hosts/gamma.yaml": "host: gamma\n"})
	publish(t, &StatusBranches{Git: &Git{URL: url}}, "alpha", "host: alpha\n")
	got, err := readAll(t, &StatusBranches{Git: &Git{URL: url}})
	if err != nil || len(got) != 2 || string(got["alpha"].Doc) != "host: alpha\n" || got["alpha"].Legacy || !got["gamma"].Legacy {
		t.Errorf("read: %v %+v", err, got)
	}
}

// A branch named for one host holds only that host's document: another
// host's file on it, a link or a name that is no host name is not read.
func TestStatusBranchesHostileBranch(t *testing.T) {
	url := bareRepo(t)
	publish(t, &StatusBranches{Git: &Git{URL: url}}, "alpha", "host: alpha\n")
	pushBranch(t, url, DefaultStatusBranch+"-mallory", map[string]string{"hosts/alpha.yaml": "host: alpha\nforged: true\n", "hosts/mallory.yaml": "host: mallory\n"})
	pushBranch(t, url, DefaultStatusBranch+"-.hidden", map[string]string{"hosts/.hidden.yaml": "host: hidden\n"})
	got, err := readAll(t, &StatusBranches{Git: &Git{URL: url}})
	if err != nil || len(got) != 2 || string(got["alpha"].Doc) != "host: alpha\n" || string(got["mallory"].Doc) != "host: mallory\n" {
		t.Errorf("read: %v %+v", err, got)
	}
}

// bomb is a file of n zero bytes: it compresses about a thousand times.
func bomb(t *testing.T, n int64) string {
	p := filepath.Join(t.TempDir(), "bomb")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(n); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// pushBomb pushes branch with hosts/<host>.yaml the file at path.
func pushBomb(t *testing.T, url, branch, host, path string) {
	t.Helper()
	w := newWorkRepo(t)
	testenv.Git(t, w.dir, "checkout", "-q", "--orphan", "x")
	os.MkdirAll(filepath.Join(w.dir, "hosts"), 0o755)
	if err := os.Rename(path, filepath.Join(w.dir, "hosts", host+".yaml")); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, w.dir, "add", "-A")
	testenv.Git(t, w.dir, "-c", "user.name=mallory", "-c", "user.email=mallory@example.org", "commit", "-q", "-m", "bomb")
	testenv.Git(t, w.dir, "push", "-q", "-f", url, "HEAD:refs/heads/"+branch)
}

// Mallory pushes its own branch with a document of 256 MiB of zeros
// (a pack of about 256 KiB), and another host's key a branch with a pack
// over the pack limit: the reader skips both, names them, reads the
// others' documents, and never inflates the bomb.
func TestStatusBranchesBombedBranch(t *testing.T) {
	url := bareRepo(t)
	publish(t, &StatusBranches{Git: &Git{URL: url}}, "alpha", "host: alpha\n")
	pushBomb(t, url, DefaultStatusBranch+"-mallory", "mallory", bomb(t, 256<<20))
	noise := make([]byte, 900<<10) // incompressible, under the object limit
	rand.Read(noise)
	pushBranch(t, url, DefaultStatusBranch+"-trudy", map[string]string{"hosts/trudy.yaml": string(noise)})

	b := &StatusBranches{Git: &Git{URL: url}, Limits: Limits{Pack: 512 << 10}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got, err := readAll(t, b)
	runtime.ReadMemStats(&after)
	if len(got) != 1 || string(got["alpha"].Doc) != "host: alpha\n" {
		t.Errorf("the other hosts' documents: %d read, want alpha's only", len(got))
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	for _, want := range []string{
		"status branch syncd/status-mallory skipped: it holds an object of 268435456 bytes, more than the 1048576 allowed",
		"status branch syncd/status-trudy skipped: its pack is larger than the 524288 bytes allowed",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say %q:\n%s", want, msg)
		}
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("reading the branches allocated %d MiB: the bomb was inflated", alloc>>20)
	}
	t.Logf("read with a 256 MiB bomb on one branch: %d KiB allocated", (after.TotalAlloc-before.TotalAlloc)>>10)
}

// Someone bombs alpha's own branch: alpha's next publication replaces
// it, and its document is read again.
func TestStatusBranchesPublishOverBombedOwnBranch(t *testing.T) {
	url := bareRepo(t)
	alpha := &StatusBranches{Git: &Git{URL: url}}
	publish(t, alpha, "alpha", "host: alpha\n")
	pushBomb(t, url, DefaultStatusBranch+"-alpha", "alpha", bomb(t, 16<<20))
	if _, err := readAll(t, alpha); err == nil || !strings.Contains(err.Error(), "syncd/status-alpha skipped") {
		t.Fatalf("read of the bombed branch: %v", err)
	}
	if !publish(t, alpha, "alpha", "host: alpha\nstate: converged\n") {
		t.Fatal("the publication over the bombed branch committed nothing")
	}
	got, err := readAll(t, alpha)
	if err != nil || string(got["alpha"].Doc) != "host: alpha\nstate: converged\n" {
		t.Errorf("read after the publication: %v %+v", err, got)
	}
}

// Credentials that may fetch but not push: the publication says
// ErrReadOnly; reading works.
func TestStatusBranchesReadOnlyCredentials(t *testing.T) {
	server := testenv.NewGitServer(t)
	url := server.InitBare(t, "fleet")
	publish(t, &StatusBranches{Git: &Git{URL: url}}, "alpha", "host: alpha\n")
	server.ReadOnly.Store(true)
	_, err := (&StatusBranches{Git: &Git{URL: url}}).Publish(context.Background(), "beta", []byte("host: beta\n"), nil, "status: beta", time.Now())
	if !errors.Is(err, ErrReadOnly) {
		t.Errorf("publish with read-only credentials: %v, want ErrReadOnly", err)
	}
	if got, err := readAll(t, &StatusBranches{Git: &Git{URL: url}}); err != nil || len(got) != 1 {
		t.Errorf("read with read-only credentials: %v %+v", err, got)
	}
}
