package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// pathFleet is a host whose app has a backup: and a local restic
// repository, with no container run: the runs its tests restore are made
// with restic itself, tagged as syncd tags them.
func pathFleet(t *testing.T) (f *fleet, app, repo, pw string) {
	t.Helper()
	testenv.Docker(t)
	repo, pw = faultRepo(t), "pw-Path-Kq71Zm0Xc"
	f = newFleet(t)
	app = testenv.ProjectName(t)
	f.write("apps/"+app+"/compose.yaml", dbAndWeb)
	f.write("apps/"+app+"/app.yaml", dumpAndVolume)
	f.apps = append(f.apps, app)
	f.secrets["restic_repo"], f.secrets["restic_pw"] = repo, pw
	f.hostCfg = "backup:\n  repository_secret: restic_repo\n  password_secret: restic_pw\n  schedule: \"0 3 1 1 *\"\n"
	f.commit()
	faultRestic(t, repo, pw, "init")
	return f, app, repo, pw
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBackupE2EListRunFilesAndRestorePath: `syncd backup --list --run`
// lists every file of a run's parts as restore --path names them (its
// control characters escaped, a huge run cut with what was left out
// counted), and `syncd restore --path P --to DIR` extracts exactly P
// where a whole extraction would put it; a path in no part is refused
// naming the parts, and --path without --to is a usage error.
func TestBackupE2EListRunFilesAndRestorePath(t *testing.T) {
	t.Parallel()
	f, app, repo, pw := pathFleet(t)
	restic := testenv.Tool(t, "restic")
	vol, paths := t.TempDir(), t.TempDir()
	writeFiles(t, vol, map[string]string{"conf/settings": "v1", "blob": "blob-bytes", "a*b": "star", "aXb": "not star", "deep/er/x": "x", "esc\x1b[31m": "red"})
	writeFiles(t, paths, map[string]string{"file.txt": "paths file", "other.txt": "other"})
	attacker(t, repo, pw, f.host, nil, runTags(f.host, app, "r1", 3, "volume:data"), vol)
	attacker(t, repo, pw, f.host, nil, runTags(f.host, app, "r1", 3, "paths"), paths)
	attacker(t, repo, pw, f.host, []byte("dump-bytes"), runTags(f.host, app, "r1", 3, "dump:data.dump"), "data.dump")

	code, out := f.syncd("backup", "--restic", restic, "--list", "--app", app, "--run", "r1")
	if code != 0 {
		t.Fatalf("backup --list --run r1: exit %d\n%s", code, out)
	}
	for _, want := range [][]string{{"volume:data", "file", "2 B", "volumes/data/conf/settings"}, {"volume:data", "dir", "volumes/data/deep/er"},
		{"volumes/data/a*b"}, {"paths", "10 B", "paths" + paths + "/file.txt"}, {"dump:data.dump", "file", "10 B", "dumps/data.dump"},
		{`volumes/data/esc\x1b[31m`}, {"run r1 of " + app + ": 14 entries, 53 B in files"}} {
		if !hasLine(out, want...) {
			t.Errorf("backup --list --run r1 has no line with %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("backup --list --run r1 wrote a raw ESC:\n%q", out)
	}

	restore := func(dir string, ps ...string) (int, string) {
		args := []string{"--restic", restic, "--app", app, "--snapshot", "r1", "--to", dir}
		for _, p := range ps {
			args = append(args, "--path", p)
		}
		return f.syncd("restore", args...)
	}
	has := func(dir, rel, want string) {
		t.Helper()
		if b, err := os.ReadFile(filepath.Join(dir, rel)); err != nil || string(b) != want {
			t.Errorf("%s holds %q %v, want %q", rel, b, err, want)
		}
	}
	lacks := func(dir string, rels ...string) {
		t.Helper()
		for _, rel := range rels {
			if _, err := os.Lstat(filepath.Join(dir, rel)); err == nil {
				t.Errorf("restore --path wrote %s, which it was not asked for", rel)
			}
		}
	}

	dir := t.TempDir()
	if code, out := restore(dir, "volumes/data/conf", "volumes/data/a*b", "paths"+paths+"/file.txt", "dumps/data.dump"); code != 0 {
		t.Fatalf("restore --path: exit %d\n%s", code, out)
	}
	has(dir, "volumes/data/conf/settings", "v1")
	has(dir, "volumes/data/a*b", "star")
	has(dir, "paths"+paths+"/file.txt", "paths file")
	has(dir, "dumps/data.dump", "dump-bytes")
	lacks(dir, "volumes/data/aXb", "volumes/data/blob", "volumes/data/deep", "paths"+paths+"/other.txt")

	// A whole part, by its name.
	dir = t.TempDir()
	if code, out := restore(dir, "volumes/data"); code != 0 {
		t.Fatalf("restore --path volumes/data: exit %d\n%s", code, out)
	}
	has(dir, "volumes/data/deep/er/x", "x")
	lacks(dir, "paths", "dumps")

	dir = t.TempDir()
	parts := "volumes/data, paths" + paths + ", dumps/data.dump"
	for _, p := range []string{"volumes/other/x", "dumps/data.dump/x", "paths/nowhere"} {
		if code, out := restore(dir, p); code != exitFailure || !strings.Contains(out, "is in no part of run r1") || !strings.Contains(out, parts) {
			t.Errorf("restore --path %s: exit %d, want 1 naming the parts %s:\n%s", p, code, parts, out)
		}
	}
	if code, out := restore(dir, "volumes/data/nope"); code != exitFailure || !strings.Contains(out, "has no such file") {
		t.Errorf("restore --path of a file the run lacks: exit %d, want 1:\n%s", code, out)
	}
	if !isEmptyDir(t, dir) {
		t.Errorf("the refused restores wrote into DIR")
	}

	if code, out := f.syncd("restore", "--restic", restic, "--app", app, "--path", "volumes/data"); code != exitUsage || !strings.Contains(out, "add --to DIR") {
		t.Errorf("restore --path in place: exit %d, want %d saying to use --to:\n%s", code, exitUsage, out)
	}
	if code, out := f.syncd("backup", "--restic", restic, "--list", "--run", "r1"); code != exitUsage || !strings.Contains(out, "--run needs --app") {
		t.Errorf("backup --list --run without --app: exit %d, want %d:\n%s", code, exitUsage, out)
	}

	// A huge run: the list stops at its cap and says what it left out.
	big := t.TempDir()
	for i := range 10050 {
		writeFiles(t, big, map[string]string{fmt.Sprintf("f%05d", i): "12345"})
	}
	attacker(t, repo, pw, f.host, nil, runTags(f.host, app, "big", 1, "volume:data"), big)
	code, out = f.syncd("backup", "--restic", restic, "--list", "--app", app, "--run", "big")
	if code != 0 || !strings.Contains(out, "10051 entries") || !strings.Contains(out, "51 more entries (255 B) not shown") || strings.Count(out, "\n") > 10010 {
		t.Errorf("backup --list --run of 10051 entries: exit %d, %d lines, tail:\n%s", code, strings.Count(out, "\n"), out[max(0, len(out)-500):])
	}
}

// TestRestoreE2EPathUntrusted: what another holder of the password put in
// a run (a symlink out of DIR, a name that climbs) and symlinks planted in
// DIR never make `syncd restore --path` write outside DIR.
func TestRestoreE2EPathUntrusted(t *testing.T) {
	t.Parallel()
	f, app, repo, pw := pathFleet(t)
	restic := testenv.Tool(t, "restic")
	v := newVictim(t, "precious")
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"conf/settings": "attacker"})
	if err := os.Symlink(v.dir, filepath.Join(src, "esc")); err != nil {
		t.Fatal(err)
	}
	attacker(t, repo, pw, f.host, nil, runTags(f.host, app, "evil", 1, "paths"), src)
	restore := func(dir, p string) (int, string) {
		return f.syncd("restore", "--restic", restic, "--app", app, "--snapshot", "evil", "--to", dir, "--path", p)
	}

	// Through the snapshot's symlink: no such file in the run.
	dir := t.TempDir()
	if code, out := restore(dir, "paths"+src+"/esc/precious"); code != exitFailure || !strings.Contains(out, "has no such file") {
		t.Errorf("restore --path through the run's symlink: exit %d, want 1:\n%s", code, out)
	}
	// The symlink itself is restored as a symlink, inside DIR.
	if code, out := restore(dir, "paths"+src+"/esc"); code != 0 {
		t.Errorf("restore --path of the run's symlink: exit %d\n%s", code, out)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "paths", src, "esc")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the run's symlink was not restored as one: %v %v", fi, err)
	}
	v.intact(t, "restore --path of a symlink out of DIR")

	// Names that climb out of DIR: refused, the run's parts named.
	dir = t.TempDir()
	up, _ := filepath.Rel(dir, v.file)
	for _, p := range []string{up, "paths/../" + up, "paths" + src + "/../../../" + up, v.file} {
		if code, out := restore(dir, p); code != exitFailure || !strings.Contains(out, "paths"+src) || !strings.Contains(out, "nothing was restored") {
			t.Errorf("restore --path %s: exit %d, want 1 naming the run's parts:\n%s", p, code, out)
		}
	}
	v.intact(t, "restore --path with ..")
	if !isEmptyDir(t, dir) {
		t.Errorf("the refused restores wrote into DIR")
	}

	// A symlink planted in DIR on the way is never followed.
	outside := t.TempDir()
	dir = t.TempDir()
	os.Symlink(outside, filepath.Join(dir, "paths"))
	if code, out := restore(dir, "paths"+src+"/conf"); code != exitFailure || !strings.Contains(out, "is a symlink") || !isEmptyDir(t, outside) {
		t.Errorf("restore --path into a DIR whose paths is a symlink out: exit %d, outside empty %v:\n%s", code, isEmptyDir(t, outside), out)
	}
}

// hasLine reports whether a line of out holds every one of parts.
func hasLine(out string, parts ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
