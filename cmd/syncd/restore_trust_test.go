package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// The restic repository is untrusted input (issue 18): every host that
// shares it holds its password and can add snapshots with any tags and
// paths. These tests make the attacker's move with restic itself, as a
// second host would, and run `syncd restore` as a person would.

// attacker adds one snapshot to repo as host, with tags, of paths (or of
// stdin, named by its first path, when stdin is set), and returns its ID.
func attacker(t *testing.T, repo, password, host string, stdin []byte, tags []string, paths ...string) string {
	t.Helper()
	args := []string{"backup", "--json", "--host", host}
	for _, tag := range tags {
		args = append(args, "--tag", tag)
	}
	if stdin != nil {
		args = append(args, "--stdin", "--stdin-filename", paths[0])
	} else {
		args = append(args, paths...)
	}
	cmd := exec.Command(testenv.Tool(t, "restic"), args...)
	cmd.Env = append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD="+password, "RESTIC_CACHE_DIR="+t.TempDir())
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("the attacker's restic %v: %v\n%s", args, err, errOut.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		var m struct {
			Type string `json:"message_type"`
			ID   string `json:"snapshot_id"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Type == "summary" && m.ID != "" {
			return m.ID
		}
	}
	t.Fatalf("the attacker's restic saved no snapshot:\n%s", out.String())
	return ""
}

// runTags are the tags of one part of a run as syncd writes them.
func runTags(host, app, run string, parts int, kind string) []string {
	return []string{"host:" + host, "app:" + app, "run:" + run, "parts:" + strconv.Itoa(parts), kind}
}

// victim is a directory outside every DIR a test extracts into, holding a
// file whose bytes and mtime must not change.
type victim struct {
	dir, file string
	data      []byte
	mtime     time.Time
	entries   []string
}

func newVictim(t *testing.T, data string) *victim {
	t.Helper()
	v := &victim{dir: t.TempDir(), data: []byte(data), mtime: time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)}
	v.file = filepath.Join(v.dir, "precious")
	if err := os.WriteFile(v.file, v.data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(v.file, v.mtime, v.mtime); err != nil {
		t.Fatal(err)
	}
	v.entries = v.list(t)
	return v
}

func (v *victim) list(t *testing.T) []string {
	t.Helper()
	es, err := os.ReadDir(v.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// intact fails unless nothing in the victim's directory was created,
// written, truncated or deleted.
func (v *victim) intact(t *testing.T, after string) {
	t.Helper()
	b, err := os.ReadFile(v.file)
	st, serr := os.Stat(v.file)
	switch {
	case err != nil || serr != nil:
		t.Errorf("after %s: the file outside DIR is gone: %v", after, err)
	case !bytes.Equal(b, v.data):
		t.Errorf("after %s: the file outside DIR holds %q, want %q", after, b, v.data)
	case !st.ModTime().Equal(v.mtime):
		t.Errorf("after %s: the file outside DIR was written (mtime %s, want %s)", after, st.ModTime(), v.mtime)
	}
	if got := v.list(t); !slices.Equal(got, v.entries) {
		t.Errorf("after %s: the directory outside DIR holds %v, want %v", after, got, v.entries)
	}
}

func isEmptyDir(t *testing.T, dir string) bool {
	t.Helper()
	es, err := os.ReadDir(dir)
	return err == nil && len(es) == 0
}

// TestRestoreE2EUntrustedRepository: snapshots another holder of the
// password crafted (tags that climb out of DIR, a run with a path app.yaml
// does not list, another host's runs) and symlinks planted in DIR never
// make `syncd restore` write, truncate or delete anything outside DIR, or
// anything app.yaml does not list in place.
func TestRestoreE2EUntrustedRepository(t *testing.T) {
	t.Parallel()
	testenv.Docker(t)
	restic := testenv.Tool(t, "restic")
	repo, pw := faultRepo(t), "pw-Trust-Hz72Lq0Vw"
	f := newFleet(t)
	app := testenv.ProjectName(t)
	f.write("apps/"+app+"/compose.yaml", dbAndWeb)
	f.write("apps/"+app+"/app.yaml", dumpAndVolume)
	f.apps = append(f.apps, app)
	f.secrets["restic_repo"], f.secrets["restic_pw"] = repo, pw
	f.hostCfg = "backup:\n  repository_secret: restic_repo\n  password_secret: restic_pw\n  schedule: \"0 3 1 1 *\"\n"
	f.commit()
	f.mustSync()
	dexec(t, app, "db", []byte("v1"), "write", "/data/conf/settings")
	code, out := f.syncd("backup", "--restic", restic)
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	legit := faultRunOf(t, out, app)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "planted"), []byte("attacker"), 0o644); err != nil {
		t.Fatal(err)
	}
	count := func() int { return len(faultSnapshots(t, repo, pw)) }

	// A well-formed run that also holds a path app.yaml does not list: in
	// place it is refused, naming the path, before anything is saved or
	// changed; --to extracts it.
	v := newVictim(t, "what the attacker saved")
	attacker(t, repo, pw, f.host, nil, runTags(f.host, app, "evil-paths", 2, "volume:data"), src)
	attacker(t, repo, pw, f.host, nil, runTags(f.host, app, "evil-paths", 2, "paths"), v.dir)
	os.WriteFile(v.file, []byte("precious now"), 0o600)
	os.Chtimes(v.file, v.mtime, v.mtime)
	os.WriteFile(filepath.Join(v.dir, "later"), []byte("made since"), 0o600)
	v.data, v.entries = []byte("precious now"), v.list(t)
	n := count()
	code, out = f.syncd("restore", "--restic", restic, "--app", app, "--snapshot", "evil-paths")
	if code != exitFailure || !strings.Contains(out, "path "+v.dir) || !strings.Contains(out, "does not list now") {
		t.Errorf("in-place restore of a run with a path app.yaml does not list: exit %d, want 1 naming %s:\n%s", code, v.dir, out)
	}
	v.intact(t, "the refused in-place restore")
	if got := count(); got != n {
		t.Errorf("the refused restore saved %d snapshots", got-n)
	}
	dir := t.TempDir()
	code, out = f.syncd("restore", "--restic", restic, "--app", app, "--snapshot", "evil-paths", "--to", dir)
	if b, err := os.ReadFile(filepath.Join(dir, "paths", v.file)); code != 0 || err != nil || string(b) != "what the attacker saved" {
		t.Errorf("restore --to of that run: exit %d, extracted %q %v:\n%s", code, b, err, out)
	}
	v.intact(t, "restore --to of a run with another path")

	// Another host's runs are no candidates without --from-host.
	other := attacker(t, repo, pw, "other", nil, runTags("other", app, "other-run", 1, "volume:data"), src)
	if code, out := f.syncd("backup", "--restic", restic, "--list", "--app", app); code != 0 || strings.Contains(out, "other-run") {
		t.Errorf("backup --list shows another host's run (exit %d):\n%s", code, out)
	}
	dir = t.TempDir()
	for _, sel := range []string{"other-run", other[:8]} {
		if code, out := f.syncd("restore", "--restic", restic, "--app", app, "--snapshot", sel, "--to", dir); code != exitFailure || !strings.Contains(out, "is neither a run nor a snapshot") {
			t.Errorf("restore --snapshot %s of another host's run: exit %d, want 1:\n%s", sel, code, out)
		}
	}
	if code, out := f.syncd("backup", "--restic", restic, "--list", "--app", app, "--from-host", "other"); code != 0 || !strings.Contains(out, "other-run") || strings.Contains(out, legit) {
		t.Errorf("backup --list --from-host other (exit %d) lists not just the other host's run:\n%s", code, out)
	}
	code, out = f.syncd("restore", "--restic", restic, "--app", app, "--snapshot", "other-run", "--to", dir, "--from-host", "other")
	if b, err := os.ReadFile(filepath.Join(dir, "volumes", "data", "planted")); code != 0 || err != nil || string(b) != "attacker" || !strings.Contains(out, "of host other") {
		t.Errorf("restore --from-host other --to: exit %d, %q %v:\n%s", code, b, err, out)
	}

	// A run tagged with the start of another run's snapshot ID would shadow
	// it: `restore --snapshot <that ID>` restored the attacker's run. The
	// tag is refused (a run ID is never only hex), the snapshot named.
	var legitSnap string
	for _, s := range faultSnapshots(t, repo, pw) {
		if s.Tag("run") == legit {
			legitSnap = s.ID
		}
	}
	shadow := attacker(t, repo, pw, f.host, nil, runTags(f.host, app, legitSnap[:8], 1, "volume:data"), src)
	dir = t.TempDir()
	code, out = f.syncd("restore", "--restic", restic, "--app", app, "--snapshot", legitSnap[:8], "--to", dir)
	if code != exitFailure || !strings.Contains(out, "refused snapshot "+shadow[:8]) || !strings.Contains(out, "not only hex digits") {
		t.Errorf("restore --snapshot %s with a run tagged %s in the repository: exit %d, want 1 refusing snapshot %s:\n%s", legitSnap[:8], legitSnap[:8], code, shadow[:8], out)
	}
	if _, err := os.Stat(filepath.Join(dir, "volumes", "data", "planted")); err == nil {
		t.Errorf("restore --snapshot %s extracted the attacker's run that shadows it", legitSnap[:8])
	}
	faultRestic(t, repo, pw, "forget", shadow)

	// Tags that climb out of DIR: refused, the snapshot named, nothing
	// outside DIR created, opened or deleted.
	v = newVictim(t, "precious")
	dir = t.TempDir()
	up, err := filepath.Rel(filepath.Join(dir, "volumes"), v.dir)
	if err != nil || !strings.HasPrefix(up, "../") {
		t.Fatalf("rel: %q %v", up, err)
	}
	evil := attacker(t, repo, pw, f.host, nil, runTags(f.host, app, "evil-volume", 1, "volume:"+up), src)
	code, out = f.syncd("restore", "--restic", restic, "--app", app, "--snapshot", "evil-volume", "--to", dir)
	if code != exitFailure || !strings.Contains(out, "refused snapshot "+evil[:8]) || !strings.Contains(out, "volume:"+up) {
		t.Errorf("restore --to of volume:%s: exit %d, want 1 naming snapshot %s:\n%s", up, code, evil[:8], out)
	}
	v.intact(t, "restore --to of a volume tag that climbs out")
	if code, out := f.syncd("restore", "--restic", restic, "--app", app); code != exitFailure || !strings.Contains(out, evil[:8]) {
		t.Errorf("in-place restore with the crafted snapshot in the repository: exit %d, want 1 naming it:\n%s", code, out)
	}
	faultRestic(t, repo, pw, "forget", evil)

	up, _ = filepath.Rel(filepath.Join(dir, "dumps"), v.file)
	evil = attacker(t, repo, pw, f.host, []byte("dump"), runTags(f.host, app, "evil-dump", 1, "dump:"+up), "x")
	code, out = f.syncd("restore", "--restic", restic, "--app", app, "--snapshot", "evil-dump", "--to", dir)
	if code != exitFailure || !strings.Contains(out, "refused snapshot "+evil[:8]) {
		t.Errorf("restore --to of dump:%s: exit %d, want 1 naming snapshot %s:\n%s", up, code, evil[:8], out)
	}
	v.intact(t, "restore --to of a dump tag that climbs out")
	faultRestic(t, repo, pw, "forget", evil)
	if !isEmptyDir(t, dir) {
		t.Errorf("the refused extractions wrote into DIR")
	}

	// Symlinks planted in DIR are never followed out of it.
	outside := t.TempDir()
	dir = t.TempDir()
	os.Symlink(outside, filepath.Join(dir, "volumes"))
	code, out = f.syncd("restore", "--restic", restic, "--app", app, "--snapshot", legit, "--to", dir)
	if code != exitFailure || !strings.Contains(out, "is a symlink") || !isEmptyDir(t, outside) {
		t.Errorf("restore --to a DIR whose volumes is a symlink out: exit %d, outside empty %v:\n%s", code, isEmptyDir(t, outside), out)
	}
	dir = t.TempDir()
	os.Mkdir(filepath.Join(dir, "dumps"), 0o700)
	os.Symlink(v.file, filepath.Join(dir, "dumps", "data.dump"))
	code, out = f.syncd("restore", "--restic", restic, "--app", app, "--snapshot", legit, "--to", dir)
	if code != exitFailure || !strings.Contains(out, "not a regular file") {
		t.Errorf("restore --to a DIR whose dump file is a symlink out: exit %d:\n%s", code, out)
	}
	v.intact(t, "restore --to through a planted dump symlink")
	// Inside a volume's directory restic replaces a symlink where the
	// snapshot has a directory; it does not write through it.
	dir = t.TempDir()
	os.MkdirAll(filepath.Join(dir, "volumes", "data"), 0o700)
	os.Symlink(outside, filepath.Join(dir, "volumes", "data", "conf"))
	code, out = f.syncd("restore", "--restic", restic, "--app", app, "--snapshot", legit, "--to", dir)
	if b, err := os.ReadFile(filepath.Join(dir, "volumes", "data", "conf", "settings")); code != 0 || err != nil || string(b) != "v1" || !isEmptyDir(t, outside) {
		t.Errorf("restore --to over a planted symlink in a volume: exit %d, settings %q %v, outside empty %v:\n%s", code, b, err, isEmptyDir(t, outside), out)
	}

	// An in-place restore of a run holding only the volume saves exactly
	// the volume first (not the dump it does not overwrite).
	attacker(t, repo, pw, f.host, nil, runTags(f.host, app, "volume-only", 1, "volume:data"), src)
	code, out = f.syncd("restore", "--restic", restic, "--app", app, "--snapshot", "volume-only")
	if code != 0 {
		t.Fatalf("in-place restore of a volume-only run: exit %d\n%s", code, out)
	}
	var kinds []string
	for _, s := range faultSnapshots(t, repo, pw) {
		if s.HasTag("pre-restore") {
			kinds = append(kinds, s.Kind())
		}
	}
	if !slices.Equal(kinds, []string{"volume:data"}) {
		t.Errorf("the pre-restore run saved %v, want exactly what the restore overwrote: [volume:data]", kinds)
	}
	if got := dexec(t, app, "db", nil, "cat", "/data/planted"); got != "attacker" {
		t.Errorf("the volume holds %q after the restore, want the run's", got)
	}
}
