package status

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/testenv"
)

func TestReadAllAndTable(t *testing.T) {
	f := newFleet(t)
	if _, err := ReadAll(context.Background(), f.branches()); !errors.Is(err, ErrNoBranch) {
		t.Fatalf("ReadAll of an empty repository: %v, want ErrNoBranch", err)
	}
	work := filepath.Join(t.TempDir(), "w")
	testenv.Git(t, "", "init", "-q", "-b", "main", work)
	os.WriteFile(filepath.Join(work, "syncd.yaml"), []byte("waves: {}\n"), 0o644)
	testenv.Git(t, work, "add", ".")
	testenv.Git(t, work, "commit", "-qm", "fleet")
	testenv.Git(t, work, "push", "-q", f.pushURL(), "main")
	if _, err := ReadAll(context.Background(), f.branches()); !errors.Is(err, ErrNoBranch) {
		t.Fatalf("ReadAll before any host reported: %v, want ErrNoBranch", err)
	}

	now := t0.Add(72 * time.Hour)
	const desired = "c0ffee0123456789c0ffee0123456789c0ffee01"
	for _, h := range []struct {
		name    string
		wave    int
		applied string
		state   State
		ago     time.Duration
	}{
		{"web-2", 1, desired, Converged, 42 * time.Second},
		{"canary", 0, desired, Converged, 5*time.Minute + 3*time.Second},
		{"web-10", 1, "0badc0de00112233445566778899aabbccddeeff", Failed, 3*time.Hour + 10*time.Minute},
		{"db-1", 2, "", Applying, 50 * time.Hour},
	} {
		doc := sample(h.name)
		doc.Wave, doc.DesiredCommit, doc.AppliedCommit, doc.State = h.wave, desired, h.applied, h.state
		write(t, f.writer(t, h.name, func() time.Time { return now.Add(-h.ago) }), doc)
	}
	// The single branch of an older syncd: a file broken by hand, one that
	// claims another host's name, and a document of a host that has a
	// branch of its own (which wins).
	work = filepath.Join(t.TempDir(), "w2")
	testenv.Git(t, "", "init", "-q", "-b", DefaultBranch, work)
	os.MkdirAll(filepath.Join(work, "hosts"), 0o755)
	os.WriteFile(filepath.Join(work, "hosts", "canary.yaml"), []byte("host: canary\nstate: failed\n"), 0o644)
	os.WriteFile(filepath.Join(work, "hosts", "broken.yaml"), []byte("host: broken\nwave: [\n"), 0o644)
	os.WriteFile(filepath.Join(work, "hosts", "impostor.yaml"), []byte("host: canary\nstate: failed\n"), 0o644)
	os.WriteFile(filepath.Join(work, "hosts", "README.md"), []byte("not a host\n"), 0o644)
	testenv.Git(t, work, "add", ".")
	testenv.Git(t, work, "commit", "-qm", "by hand")
	testenv.Git(t, work, "push", "-q", f.pushURL(), DefaultBranch)

	hosts, err := ReadAll(context.Background(), f.branches())
	if err == nil || !strings.Contains(err.Error(), "hosts/broken.yaml") || !strings.Contains(err.Error(), "hosts/impostor.yaml") {
		t.Errorf("ReadAll error %v, want one naming hosts/broken.yaml and hosts/impostor.yaml", err)
	}
	if strings.Contains(err.Error(), "README") {
		t.Errorf("a file that is not a document was read: %v", err)
	}
	var names []string
	for _, h := range hosts {
		names = append(names, h.Host)
	}
	if strings.Join(names, " ") != "canary db-1 web-10 web-2" {
		t.Fatalf("ReadAll hosts %v", names)
	}
	if !Equal(hosts[0], func() Host {
		h := sample("canary")
		h.Wave, h.DesiredCommit, h.AppliedCommit = 0, desired, desired
		return h
	}()) {
		t.Errorf("canary read back as %+v", hosts[0])
	}

	var b strings.Builder
	Table(&b, hosts, now)
	const want = `HOST    WAVE  APPLIED        STATE      AGE  SIGNATURE
canary  0     c0ffee012345   converged  5m   -
web-10  1     0badc0de0011*  failed     3h   -
web-2   1     c0ffee012345   converged  42s  -
db-1    2     -*             applying   2d   -
* applied commit differs from the desired commit
`
	if got := b.String(); got != want {
		t.Errorf("Table:\n%s\nwant:\n%s", got, want)
	}
}

func TestTableWithoutDifferences(t *testing.T) {
	var b strings.Builder
	Table(&b, []Host{sample("alpha")}, t0.Add(90*time.Second))
	const want = "HOST   WAVE  APPLIED       STATE      AGE  SIGNATURE\nalpha  1     0123456789ab  converged  1m   -\n"
	if got := b.String(); got != want {
		t.Errorf("Table:\n%q\nwant:\n%q", got, want)
	}
}

func TestAge(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{-5 * time.Second, "+5s"}, // a clock ahead of ours
		{-72 * time.Hour, "+3d"},
		{42 * time.Second, "42s"},
		{5*time.Minute + 59*time.Second, "5m"},
		{3*time.Hour + 59*time.Minute, "3h"},
		{49 * time.Hour, "2d"},
	} {
		if got := age(t0.Add(tc.d), t0); got != tc.want {
			t.Errorf("age(%v) = %s, want %s", tc.d, got, tc.want)
		}
	}
	if got := age(t0, time.Time{}); got != "-" {
		t.Errorf("age of no time = %s", got)
	}
}
