package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestAttackRestoreLatestForgedInTheHostsName: any holder of the shared
// repository's password can make a complete, newer run in this host's name
// (restic backup --host <victim> with syncd's tags). A plain in-place
// `syncd restore --app A` took it as the latest and overwrote the app's
// data with the attacker's. The latest is now the newest run this host's
// syncd made (its state directory's record); the forged one is named, not
// taken, and backup --list marks it made elsewhere.
func TestAttackRestoreLatestForgedInTheHostsName(t *testing.T) {
	t.Parallel()
	testenv.Docker(t)
	restic := testenv.Tool(t, "restic")
	repo, pw := faultRepo(t), "pw-Forge-Kq81Zr0Lm"
	f := newFleet(t)
	app := testenv.ProjectName(t)
	f.write("apps/"+app+"/compose.yaml", dbAndWeb)
	f.write("apps/"+app+"/app.yaml", "backup:\n  volumes: [data]\n")
	f.apps = append(f.apps, app)
	f.secrets["restic_repo"], f.secrets["restic_pw"] = repo, pw
	f.hostCfg = "backup:\n  repository_secret: restic_repo\n  password_secret: restic_pw\n  schedule: \"0 3 1 1 *\"\n"
	f.commit()
	f.mustSync()
	dexec(t, app, "db", []byte("the host's own"), "write", "/data/conf/settings")
	code, out := f.syncd("backup", "--restic", restic)
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	legit := faultRunOf(t, out, app)

	// The attacker's complete run, in the host's name, newer.
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "conf", "settings"), []byte("the attacker's"), 0o644); err != nil {
		t.Fatal(err)
	}
	forged := "20991231T235959Z-f0f0f0"
	attacker(t, repo, pw, f.host, nil, runTags(f.host, app, forged, 1, "volume:data"), src)

	dexec(t, app, "db", []byte("changed since"), "write", "/data/conf/settings")
	code, out = f.syncd("restore", "--restic", restic, "--app", app)
	if got := dexec(t, app, "db", nil, "cat", "/data/conf/settings"); code != 0 || got != "the host's own" || !strings.Contains(out, "from run "+legit) {
		t.Fatalf("restore of latest with a newer run forged in the host's name: exit %d, the volume holds %q (want the host's own run %s):\n%s", code, got, legit, out)
	}
	if code, out := f.syncd("backup", "--restic", restic, "--list", "--app", app); code != 0 || !strings.Contains(out, "made-elsewhere") {
		t.Errorf("backup --list does not mark the forged run (exit %d):\n%s", code, out)
	}

	// With no run of its own on record, latest names the forged run and
	// restores nothing; --snapshot can still take it, by the user's choice.
	if err := os.WriteFile(filepath.Join(f.state, "backup-made.json"), []byte("[]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out = f.syncd("restore", "--restic", restic, "--app", app)
	if code != exitFailure || !strings.Contains(out, "made elsewhere, by a holder of the repository's password") || !strings.Contains(out, forged) {
		t.Errorf("restore of latest with no run of the host's own on record: exit %d, want 1 naming the forged run:\n%s", code, out)
	}
	if got := dexec(t, app, "db", nil, "cat", "/data/conf/settings"); got != "the host's own" {
		t.Errorf("the refused restore changed the volume: %q", got)
	}
}
