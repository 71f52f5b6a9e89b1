package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
	"github.com/syncd-dev/syncd/internal/status"
	"github.com/syncd-dev/syncd/internal/testenv"
)

const (
	restUser     = "syncd"
	restPassword = "rest-Pass-4Hq9Zx2"
	resticPass   = "restic-Pw-Lm83Kd0q"
)

// restFleet is a fleet whose app db (a demoweb holding /data, standing
// in for a database) and web (depends on db) are backed up to a rest-server
// on loopback with htpasswd credentials in the repository URL.
func restFleet(t *testing.T, appYAML string) (*fleet, string) {
	t.Helper()
	f := newFleet(t)
	f.secrets["restic_repo"] = testenv.RestServer(t, restUser, restPassword)
	f.secrets["restic_pw"] = resticPass
	f.hostCfg = "backup:\n  repository_secret: restic_repo\n  password_secret: restic_pw\n"
	app := testenv.ProjectName(t)
	f.write("apps/"+app+"/compose.yaml", dbAndWeb)
	f.write("apps/"+app+"/app.yaml", appYAML)
	f.apps = append(f.apps, app)
	f.commit()
	return f, app
}

// dbAndWeb is the compose file of the backup tests' app: db (root, so it
// can write its volume) holds the data, web depends on it.
const dbAndWeb = `services:
  db:
    image: ` + demoImage + `
    user: "0:0"
    volumes: [data:/data]
` + healthy + `  web:
    image: ` + demoImage + `
    depends_on: [db]
` + healthy + `volumes:
  data: {}
`

const dumpAndVolume = `backup:
  volumes: [data]
  dumps:
    - service: db
      command: ["/demoweb", "dump", "/data"]
      filename: data.dump
      restore_command: ["/demoweb", "restore", "/data"]
`

// dexec runs the demo binary in the container of project/service, as root,
// with stdin.
func dexec(t *testing.T, project, service string, stdin []byte, args ...string) string {
	t.Helper()
	id := strings.Fields(containers(t, project)[project+"/"+service])
	if len(id) == 0 {
		t.Fatalf("no container for %s/%s", project, service)
	}
	cmd := exec.Command("docker", append([]string{"exec", "-i", "-u", "0", id[0], "/demoweb"}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker exec %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestBackupE2ERoundTrip backs up a volume and a streamed dump, changes the
// data, restores, and finds the bytes as they were; the restore saved what
// it replaced first; a failed dump saves no snapshot; no credential shows
// in a command line, the output or the state directory.
func TestBackupE2ERoundTrip(t *testing.T) {
	testenv.Docker(t)
	f, app := restFleet(t, dumpAndVolume)
	restic := testenv.Tool(t, "restic")
	f.mustSync()

	original := random(t, 3<<20)
	dexec(t, app, "db", original, "write", "/data/blob")
	dexec(t, app, "db", []byte("v1"), "write", "/data/conf/settings")

	stop := testenv.WatchCmdlines(t, f.values())
	code, out := f.syncd("backup", "--restic", restic)
	if code != 0 {
		t.Fatalf("backup exit %d:\n%s", code, out)
	}
	for _, want := range []string{"volume:data", "dump:data.dump"} {
		if !strings.Contains(out, want) {
			t.Errorf("backup output lacks %s:\n%s", want, out)
		}
	}

	// Change the data: new bytes, a new file, a file gone.
	changed := random(t, 1<<20)
	dexec(t, app, "db", changed, "write", "/data/blob")
	dexec(t, app, "db", []byte("new"), "write", "/data/added")
	code, out = f.syncd("restore", "--app", app, "--restic", restic)
	if code != 0 {
		t.Fatalf("restore exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "saved what was there first: run ") {
		t.Errorf("restore output does not name its pre-restore run:\n%s", out)
	}
	if got := dexec(t, app, "db", nil, "cat", "/data/blob"); got != string(original) {
		t.Errorf("restored blob: %d bytes, not the %d backed up", len(got), len(original))
	}
	if got := dexec(t, app, "db", nil, "cat", "/data/conf/settings"); got != "v1" {
		t.Errorf("restored settings = %q, want v1", got)
	}
	cmd := exec.Command("docker", "exec", strings.Fields(containers(t, app)[app+"/db"])[0], "/demoweb", "cat", "/data/added")
	if err := cmd.Run(); err == nil {
		t.Error("a file the backup did not have survived the restore")
	}
	for svc, st := range containers(t, app) {
		if !strings.HasSuffix(st, "running") {
			t.Errorf("%s is %s after the restore", svc, st)
		}
	}

	// The pre-restore run holds what the restore replaced.
	code, out = f.syncd("backup", "--list", "--restic", restic)
	if code != 0 || !strings.Contains(out, "pre-restore") {
		t.Fatalf("backup --list (exit %d) shows no pre-restore run:\n%s", code, out)
	}

	// A dump that fails half way saves no snapshot of it, and the run is
	// not complete.
	dexec(t, app, "db", nil, "write", "/data/.dump-fails")
	code, out = f.syncd("backup", "--restic", restic)
	if code == 0 || !strings.Contains(out, "no snapshot was saved") || !strings.Contains(out, "incomplete") {
		t.Fatalf("failing dump: exit %d:\n%s", code, out)
	}
	_, list := f.syncd("backup", "--list", "--restic", restic)
	runs := map[string][]string{}
	for _, line := range strings.Split(list, "\n") {
		if fs := strings.Fields(line); len(fs) >= 6 && fs[0] == app {
			runs[fs[1]] = append(runs[fs[1]], fs[4]+"/"+fs[5])
		}
	}
	incomplete := 0
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " NO ") {
			incomplete++
			if strings.Contains(line, "dump:") {
				t.Errorf("an incomplete run has a dump snapshot: %s", line)
			}
		}
	}
	if incomplete != 1 || len(runs) != 3 {
		t.Errorf("want 3 runs (backup, pre-restore, failed) with one incomplete, got %d runs, %d incomplete:\n%s", len(runs), incomplete, list)
	}

	// --to extracts the newest complete run, the pre-restore one, without
	// touching the app: it holds the data the restore replaced.
	before := containers(t, app)
	dir := t.TempDir()
	dexec(t, app, "db", nil, "write", "/data/.dump-fails") // still failing: restore must not need a dump now
	// A file of the user's in DIR is not theirs to lose to an extraction.
	mine := filepath.Join(dir, "volumes", "data", "notes.txt")
	os.MkdirAll(filepath.Dir(mine), 0o755)
	os.WriteFile(mine, []byte("mine"), 0o600)
	code, out = f.syncd("restore", "--app", app, "--to", dir, "--restic", restic)
	if code != 0 {
		t.Fatalf("restore --to exit %d:\n%s", code, out)
	}
	if b, err := os.ReadFile(mine); err != nil || string(b) != "mine" {
		t.Errorf("restore --to deleted a file that was in DIR: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "volumes", "data", "blob")); err != nil || !bytes.Equal(b, changed) {
		t.Errorf("extracted volume blob: %d bytes, err %v", len(b), err)
	}
	if st, err := os.Stat(filepath.Join(dir, "dumps", "data.dump")); err != nil || st.Size() < int64(len(changed)) {
		t.Errorf("extracted dump: %v", err)
	}
	if after := containers(t, app); !equalMaps(before, after) {
		t.Errorf("restore --to touched the app: %v → %v", before, after)
	}

	if seen := stop(); seen == 0 {
		t.Error("no restic command line was seen: the watcher proved nothing")
	}
	// The next cycle's status carries the job's last result.
	f.mustSync()
	h, err := status.ReadLocal(f.state)
	if err != nil {
		t.Fatal(err)
	}
	var job *status.Job
	for i := range h.Jobs {
		if h.Jobs[i].Name == "backup/"+app {
			job = &h.Jobs[i]
		}
	}
	if job == nil || job.Result != "failed" || !strings.Contains(job.Error, "data.dump") || job.LastSuccess.IsZero() {
		t.Errorf("status job = %+v, want the failed dump with a last success", job)
	}
	assertNoLeakInDir(t, f.state, f.values()...)
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestBackupE2EStopStartsAgainWhatRan backs up with stop: true: the app's
// services stop for the volume (web before db) and exactly those that ran
// start again; one stopped by hand stays stopped.
func TestBackupE2EStopStartsAgainWhatRan(t *testing.T) {
	testenv.Docker(t)
	f, app := restFleet(t, "backup:\n  volumes: [data]\n  stop: true\n")
	restic := testenv.Tool(t, "restic")
	f.mustSync()
	started := func(svc string) string {
		id := strings.Fields(containers(t, app)[app+"/"+svc])[0]
		return testenv.DockerCLI(t, "inspect", "--format", "{{.State.StartedAt}}", id)
	}
	before := started("db")
	code, out := f.syncd("backup", "--restic", restic)
	if code != 0 {
		t.Fatalf("backup exit %d:\n%s", code, out)
	}
	if started("db") == before {
		t.Error("db was not stopped for the backup (same start time)")
	}
	for svc, st := range containers(t, app) {
		if !strings.HasSuffix(st, "running") {
			t.Errorf("%s is %s after the backup", svc, st)
		}
	}

	// web stopped by hand: the backup leaves it stopped.
	testenv.DockerCLI(t, "stop", strings.Fields(containers(t, app)[app+"/web"])[0])
	if code, out := f.syncd("backup", "--restic", restic); code != 0 {
		t.Fatalf("backup exit %d:\n%s", code, out)
	}
	st := containers(t, app)
	if !strings.HasSuffix(st[app+"/db"], "running") || strings.HasSuffix(st[app+"/web"], "running") {
		t.Errorf("after a backup with web stopped by hand: %v; want db running, web still stopped", st)
	}
}

// TestBackupE2EBeforeUpgrade: a new image for an app with dumps is deployed
// only after a backup tagged pre-upgrade; when that backup fails, the app
// keeps its image, the status says why, and the next good cycle upgrades.
func TestBackupE2EBeforeUpgrade(t *testing.T) {
	testenv.Docker(t)
	f, app := restFleet(t, dumpAndVolume)
	restic := testenv.Tool(t, "restic")
	f.mustSync()
	dexec(t, app, "db", []byte("precious"), "write", "/data/rows")
	next := "syncd-demoweb:upgrade-" + app
	testenv.DockerCLI(t, "tag", demoImage, next)
	t.Cleanup(func() { exec.Command("docker", "rmi", next).Run() })
	compose := filepath.Join(f.repo, "apps", app, "compose.yaml")
	b, err := os.ReadFile(compose)
	if err != nil {
		t.Fatal(err)
	}
	f.write("apps/"+app+"/compose.yaml", strings.Replace(string(b), "image: "+demoImage, "image: "+next, 1))

	// The dump fails: the upgrade waits.
	dexec(t, app, "db", nil, "write", "/data/.dump-fails")
	code, out := f.syncd("sync", "--restic", restic)
	if code != exitFailure || !strings.Contains(out, "waiting: ") || !strings.Contains(out, "backup before its upgrade failed") {
		t.Errorf("sync (exit %d) does not say the upgrade waits:\n%s", code, out)
	}
	image := func() string {
		id := strings.Fields(containers(t, app)[app+"/db"])[0]
		return testenv.DockerCLI(t, "inspect", "--format", "{{.Config.Image}}", id)
	}
	if got := image(); got != demoImage {
		t.Errorf("db runs %s after a failed backup before its upgrade, want %s", got, demoImage)
	}
	h, err := status.ReadLocal(f.state)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range h.Projects {
		if p.Name == app && (p.State != status.Waiting || !strings.Contains(p.LastError, "backup before its upgrade failed")) {
			t.Errorf("status of %s: %s %q, want waiting for its backup", app, p.State, p.LastError)
		}
	}

	// The dump works again: the next cycle backs up, then upgrades.
	removeDumpFails(t, app)
	if code, out := f.syncd("sync", "--restic", restic); code != 0 {
		t.Fatalf("sync exit %d:\n%s", code, out)
	}
	if got := image(); got != next {
		t.Errorf("db runs %s, want the upgrade %s", got, next)
	}
	_, list := f.syncd("backup", "--list", "--restic", restic)
	if !strings.Contains(list, "pre-upgrade") {
		t.Errorf("no pre-upgrade run:\n%s", list)
	}
}

// removeDumpFails deletes /data/.dump-fails from app's volume, where the
// engine keeps it (the image has no rm).
func removeDumpFails(t *testing.T, app string) {
	t.Helper()
	mount := strings.TrimSpace(testenv.DockerCLI(t, "volume", "inspect", "--format", "{{.Mountpoint}}", app+"_data"))
	if err := os.Remove(filepath.Join(mount, ".dump-fails")); err != nil {
		t.Fatal(err)
	}
}

// TestBackupE2EThroughTheAgent: with an agent up, `syncd backup` is run by
// the agent (its jobs, its locks); the result reaches the status document
// between cycles and /metrics.
func TestBackupE2EThroughTheAgent(t *testing.T) {
	testenv.Docker(t)
	f, app := restFleet(t, dumpAndVolume)
	restic := testenv.Tool(t, "restic")
	a := startAgent(t, f, f.repo, "--restic", restic)
	waitStatus(t, f, a, "converged", func(h status.Host) bool { return h.State == status.Converged })

	// An empty dump is a failure, never an empty snapshot.
	code, out := f.syncd("backup", "--app", app, "--restic", "/nonexistent/restic")
	if code == 0 || !strings.Contains(out, "wrote nothing") {
		t.Errorf("backup of an empty dump (exit %d):\n%s", code, out)
	}
	dexec(t, app, "db", []byte("rows"), "write", "/data/table")
	code, out = f.syncd("backup", "--app", app, "--restic", "/nonexistent/restic")
	if code != 0 || !strings.Contains(out, "volume:data") {
		t.Fatalf("backup through the agent (exit %d; a restic of its own would not exist):\n%s\nagent log:\n%s", code, out, a.log)
	}
	h := waitStatus(t, f, a, "the backup's result", func(h status.Host) bool {
		for _, j := range h.Jobs {
			if j.Name == "backup/"+app && j.Result == "ok" && strings.Contains(j.Detail, "2 of 2 snapshots") {
				return true
			}
		}
		return false
	})
	secretstest.AssertNoLeak(t, "status", fmt.Sprint(h), f.values()...)
	resp, err := http.Get("http://" + a.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if want := `syncd_job_success{app="` + app + `",kind="backup"} 1`; !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s", want)
	}
	// The repository URL is a secret too, but its host (127.0.0.1) is
	// also the agent's listen address: its credentials are what must not show.
	secretstest.AssertNoLeak(t, "agent log", a.log.String(), restPassword, resticPass, f.secrets["api_token"], f.secrets["db_password"])
}
