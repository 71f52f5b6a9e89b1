package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/jobs/backup"
	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
	"github.com/syncd-dev/syncd/internal/status"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// The faults of issue 14 end to end: real Docker, real restic, a real
// rest-server; each ends with what ran running again and no secret shown.

// backupApp adds an app whose db service (root, so it can write its
// volume) holds the volume data and web depends on db; app.yaml backs up
// the volume and a dump of db, with the app stopped for the volume.
func (f *fleet) faultApp() string {
	name := testenv.ProjectName(f.t)
	f.write("apps/"+name+"/compose.yaml", dbAndWeb)
	f.write("apps/"+name+"/app.yaml", `backup:
  stop: true
  volumes: [data]
  dumps:
    - service: db
      command: ["/demoweb", "dump", "/data"]
      filename: db.dump
      restore_command: ["/demoweb", "restore", "/data"]
`)
	f.apps = append(f.apps, name)
	return name
}

// faultFleet is a fleet with one backupApp, its restic repository and
// password as host secrets, synced.
func faultFleet(t *testing.T, repo, password string) (*fleet, string) {
	t.Helper()
	f := newFleet(t)
	app := f.faultApp()
	f.secrets["restic_repo"] = repo
	f.secrets["restic_pw"] = password
	// A schedule that never comes during a test: only the test backs up.
	f.hostCfg = "backup:\n  repository_secret: restic_repo\n  password_secret: restic_pw\n  schedule: \"0 3 1 1 *\"\n"
	f.commit()
	f.mustSync()
	return f, app
}

// faultRepo is a directory repository's path, away from the test's temp
// directories (their names would share fragments with it, and output
// naming them would be redacted).
func faultRepo(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "repo")
}

func faultCtr(t *testing.T, app, service string) string {
	t.Helper()
	c := containers(t, app)[app+"/"+service]
	if c == "" {
		t.Fatalf("no container of %s/%s", app, service)
	}
	return strings.Fields(c)[0]
}

func faultWrite(t *testing.T, ctr, file string, data []byte) {
	t.Helper()
	cmd := exec.Command("docker", "exec", "-i", "-u", "0", ctr, "/demoweb", "write", file)
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("write %s in %s: %v\n%s", file, ctr, err, out)
	}
}

func faultCat(t *testing.T, ctr, file string) string {
	t.Helper()
	return testenv.DockerCLI(t, "exec", ctr, "/demoweb", "cat", file)
}

// faultVolumeDir is where the engine keeps the app's data volume.
func faultVolumeDir(t *testing.T, app string) string {
	t.Helper()
	return testenv.DockerCLI(t, "volume", "inspect", "--format", "{{.Mountpoint}}", app+"_data")
}

// faultRunning fails unless every service of before runs again (the same
// containers: started again, not recreated).
func faultRunning(t *testing.T, app string, before map[string]string) {
	t.Helper()
	now := containers(t, app)
	for k, v := range before {
		if now[k] != strings.Fields(v)[0]+" running" {
			t.Errorf("%s is %q after the fault, want %s running", k, now[k], strings.Fields(v)[0])
		}
	}
}

// faultSnapshots lists the repository with restic itself.
func faultSnapshots(t *testing.T, repo, password string) []backup.Snapshot {
	t.Helper()
	out := faultRestic(t, repo, password, "snapshots", "--json")
	var ss []backup.Snapshot
	if err := json.Unmarshal([]byte(out), &ss); err != nil {
		t.Fatalf("restic snapshots: %v\n%s", err, out)
	}
	return ss
}

func faultRestic(t *testing.T, repo, password string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testenv.Tool(t, "restic"), args...)
	cmd.Env = append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD="+password, "RESTIC_CACHE_DIR="+t.TempDir())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("restic %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// faultRunOf returns the run ID of app in `syncd backup`'s table.
func faultRunOf(t *testing.T, out, app string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if fs := strings.Fields(line); len(fs) > 2 && fs[0] == app {
			return fs[1]
		}
	}
	t.Fatalf("no run of %s in:\n%s", app, out)
	return ""
}

// TestBackupFaultWrongPassword: a repository made with another password.
// The backup fails once, says why once, is not retried, and the app runs.
func TestBackupFaultWrongPassword(t *testing.T) {
	t.Parallel()
	restic := testenv.Tool(t, "restic")
	repo := testenv.RestServer(t, "bk-user", "rs-Pass-Wq83Lz0pXv")
	faultRestic(t, repo, "pw-Other-Ee41Kd9sQa", "init")
	f, app := faultFleet(t, repo, "pw-Right-Mn27Hb5cYt")
	f.secrets["rest_pw"] = "rs-Pass-Wq83Lz0pXv" // so no output shows it alone either
	before := containers(t, app)

	// Every restic invocation is logged by a wrapper (its arguments never
	// carry a secret: credentials reach restic by its environment).
	calls := filepath.Join(t.TempDir(), "calls")
	wrapper := filepath.Join(t.TempDir(), "restic")
	os.WriteFile(wrapper, []byte("#!/bin/sh\necho \"$*\" >> "+calls+"\nexec "+restic+" \"$@\"\n"), 0o755)
	code, out := f.syncd("backup", "--restic", wrapper)
	final := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "syncd backup: ") {
			final += line
		}
	}
	if code != 1 || strings.Count(final, "wrong password") != 1 || strings.Count(out, `msg="restic failed"`) != 1 {
		t.Errorf("backup with a wrong password: exit %d, want 1, one restic failure and an error saying \"wrong password\" once:\n%s", code, out)
	}
	log := readFile(t, calls)
	backups := 0
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if strings.Contains(" "+line+" ", " backup ") {
			backups++
		}
	}
	if backups > 2 || strings.Count(log, "cat config") != 1 || strings.Contains(log, "unlock") {
		t.Errorf("restic retried a wrong password (%d backups, want at most one per part, and one probe):\n%s", backups, log)
	}
	secretstest.AssertNoLeak(t, "restic's command lines", log, f.values()...)
	faultRunning(t, app, before)
}

// TestBackupFaultRepositoryUnreachable: nothing answers at the
// repository's address. The backup fails in seconds (restic alone retries
// for 15 minutes), says the repository is unreachable without its
// credentials, and leaves nothing stopped.
func TestBackupFaultRepositoryUnreachable(t *testing.T) {
	t.Parallel()
	restic := testenv.Tool(t, "restic")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f, app := faultFleet(t, "rest:http://bk-user:rs-Pass-Tt62Ny4mKe@"+addr+"/", "pw-Unr-Gh58Pw2zLs")
	f.secrets["rest_pw"] = "rs-Pass-Tt62Ny4mKe"
	before := containers(t, app)
	code, out := f.syncd("backup", "--restic", restic)
	if code != 1 || !strings.Contains(out, "repository unreachable") || !strings.Contains(out, "connection refused") {
		t.Errorf("backup to a closed port: exit %d, want 1 and the repository said unreachable (connection refused):\n%s", code, out)
	}
	if strings.Contains(out, "bk-user") {
		t.Errorf("the error shows the URL's user:\n%s", out)
	}
	faultRunning(t, app, before)
}

// TestBackupFaultDumpFails: a dump that fails half way leaves no snapshot,
// its run shows incomplete, and restore's latest is the complete run
// before it.
func TestBackupFaultDumpFails(t *testing.T) {
	t.Parallel()
	restic := testenv.Tool(t, "restic")
	repo, pw := faultRepo(t), "pw-Dump-Ry73Vc1nBq"
	f, app := faultFleet(t, repo, pw)
	db := faultCtr(t, app, "db")
	faultWrite(t, db, "/data/x", []byte("v1"))
	code, out := f.syncd("backup", "--restic", restic)
	if code != 0 {
		t.Fatalf("first backup: exit %d\n%s", code, out)
	}
	good := faultRunOf(t, out, app)

	faultWrite(t, db, "/data/x", []byte("v2"))
	faultWrite(t, db, "/data/.dump-fails", nil)
	before := containers(t, app)
	code, out = f.syncd("backup", "--restic", restic)
	if code != 1 || !strings.Contains(out, "1 of 2 parts saved: incomplete") || !strings.Contains(out, "dump db.dump") {
		t.Fatalf("backup with a failing dump: exit %d, want 1, the run incomplete and the dump named:\n%s", code, out)
	}
	failed := faultRunOf(t, out, app)
	faultRunning(t, app, before)

	var failedKinds []string
	for _, s := range faultSnapshots(t, repo, pw) {
		if s.Tag("run") == failed {
			failedKinds = append(failedKinds, s.Kind())
		}
	}
	if strings.Join(failedKinds, ",") != "volume:data" {
		t.Errorf("the failed run's snapshots are %v, want only volume:data (no snapshot of the failed dump)", failedKinds)
	}
	code, out = f.syncd("backup", "--restic", restic, "--list")
	if code != 0 || !strings.Contains(out, failed) {
		t.Fatalf("backup --list: exit %d\n%s", code, out)
	}
	for _, line := range strings.Split(out, "\n") {
		fs := strings.Fields(line)
		if len(fs) > 4 && fs[1] == failed && fs[4] != "NO" || len(fs) > 4 && fs[1] == good && fs[4] != "yes" {
			t.Errorf("backup --list shows the wrong completeness: %q\n%s", line, out)
		}
	}

	// Extracting latest gives the complete run, not the newer failed one.
	dir := t.TempDir()
	code, out = f.syncd("restore", "--restic", restic, "--app", app, "--to", dir)
	if code != 0 || !strings.Contains(out, "run "+good+" of "+app+" extracted") {
		t.Fatalf("restore --to: exit %d, want run %s:\n%s", code, good, out)
	}
	if got := readFile(t, filepath.Join(dir, "volumes", "data", "x")); got != "v1" {
		t.Errorf("extracted x is %q, want v1", got)
	}
	if got := readFile(t, filepath.Join(dir, "dumps", "db.dump")); got != "x\n2\nv1" {
		t.Errorf("extracted dump is %q", got)
	}

	// In place, while the dump still fails: the safety backup fails, so
	// nothing is changed.
	code, out = f.syncd("restore", "--restic", restic, "--app", app)
	if code != 1 || !strings.Contains(out, "nothing was changed") {
		t.Errorf("restore while the dump fails: exit %d\n%s", code, out)
	}
	if got := faultCat(t, db, "/data/x"); got != "v2" {
		t.Errorf("x is %q after a refused restore, want v2 (untouched)", got)
	}
	// The database works again: latest is restored in place.
	if err := os.Remove(filepath.Join(faultVolumeDir(t, app), ".dump-fails")); err != nil {
		t.Fatal(err)
	}
	code, out = f.syncd("restore", "--restic", restic, "--app", app)
	if code != 0 || !strings.Contains(out, "restored "+app+" from run "+good) {
		t.Fatalf("restore latest: exit %d, want run %s:\n%s", code, good, out)
	}
	if got := faultCat(t, faultCtr(t, app, "db"), "/data/x"); got != "v1" {
		t.Errorf("x is %q after the restore, want v1", got)
	}
	for k, v := range containers(t, app) {
		if !strings.HasSuffix(v, " running") {
			t.Errorf("%s is %s after the restore", k, v)
		}
	}
}

// TestBackupFaultDiskFull: the repository's file system fills up. The
// backup fails saying so, the app runs, and once there is room the next
// backup works.
func TestBackupFaultDiskFull(t *testing.T) {
	t.Parallel()
	restic := testenv.Tool(t, "restic")
	mnt, err := os.MkdirTemp("", "rr-full-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt).CombinedOutput(); err != nil {
		testenv.Missing(t, "mount a small tmpfs for the repository: %v: %s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("umount", mnt).Run()
		os.RemoveAll(mnt)
	})
	repo, pw := filepath.Join(mnt, "repo"), "pw-Full-Jk92Sd6fAo"
	f, app := faultFleet(t, repo, pw)
	db := faultCtr(t, app, "db")
	big := make([]byte, 6<<20) // random: restic cannot compress it below 2 MiB
	rand.Read(big)
	faultWrite(t, db, "/data/big", big)
	before := containers(t, app)
	code, out := f.syncd("backup", "--restic", restic)
	if code != 1 || !strings.Contains(out, "no space left on device") {
		t.Errorf("backup into a full file system: exit %d, want 1 and \"no space left on device\":\n%s", code, out)
	}
	faultRunning(t, app, before)

	if out, err := exec.Command("mount", "-o", "remount,size=64m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	}
	code, out = f.syncd("backup", "--restic", restic)
	if code != 0 {
		t.Fatalf("backup once there is room: exit %d\n%s", code, out)
	}
	run := faultRunOf(t, out, app)
	n := 0
	for _, s := range faultSnapshots(t, repo, pw) {
		if s.Tag("run") == run {
			n++
		}
	}
	if n != 2 {
		t.Errorf("the backup after the disk was freed saved %d snapshots, want 2", n)
	}
	faultRunning(t, app, before)
}

// TestBackupFaultKill9MidBackup kills `syncd backup` (-9) while restic
// saves the volume, with the app stopped for it. restic dies with syncd;
// the next syncd to start (a sync here) starts again what the killed job
// noted it had stopped, before its cycle: so a `drift: report` app, which
// no cycle would heal, comes back too; the next backup works despite the
// lock the killed restic left.
func TestBackupFaultKill9MidBackup(t *testing.T) {
	t.Parallel()
	restic := testenv.Tool(t, "restic")
	repo, pw := testenv.RestServer(t, "bk-user", "rs-Pass-Kz51Xm8qUw"), "pw-Kill-Bn64Tr2yHe"
	f, app := faultFleet(t, repo, pw)
	b, err := os.ReadFile(filepath.Join(f.repo, "apps", app, "app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f.write("apps/"+app+"/app.yaml", string(b)+"drift: report\n")
	f.commit()
	f.mustSync()
	bin := buildSyncd(t)
	big := make([]byte, 200<<20)
	rand.Read(big)
	faultWrite(t, faultCtr(t, app, "db"), "/data/big", big)
	big = nil
	before := containers(t, app)

	cmd := exec.Command(bin, "backup", "--repo", f.repo, "--host", f.host, "--age-key", f.key, "--state-dir", f.state, "--restic", restic)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	// The restic saving the volume (after the dump, with the app stopped).
	pid := 0
	for deadline := time.Now().Add(2 * time.Minute); pid == 0 && time.Now().Before(deadline); {
		pid = faultChildRestic(cmd.Process.Pid, "volume:data")
		select {
		case <-exited:
			t.Fatalf("syncd backup ended before restic saved the volume:\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if pid == 0 {
		t.Fatalf("no restic saving the volume appeared:\n%s", out.String())
	}
	// Killed once it holds its lock in the repository.
	for deadline := time.Now().Add(time.Minute); len(strings.Fields(faultRestic(t, repo, pw, "list", "locks", "--no-lock"))) == 0; {
		if time.Now().After(deadline) || !faultAlive(pid) {
			t.Fatalf("restic saving the volume took no lock:\n%s", out.String())
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	secretstest.AssertNoLeak(t, "killed backup output", out.String(), f.values()...)

	// Pdeathsig: restic is gone (or a zombie nobody reaps) at once.
	for deadline := time.Now().Add(10 * time.Second); faultAlive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("restic %d still runs after syncd was killed", pid)
		}
	}
	stopped := 0
	for k, v := range containers(t, app) {
		t.Logf("after kill -9: %s is %s", k, v)
		if !strings.HasSuffix(v, " running") {
			stopped++
		}
	}
	if stopped == 0 {
		t.Errorf("no service was stopped at the kill: the kill did not come while the volume was saved with stop: true")
	}
	if _, err := os.Stat(filepath.Join(f.state, "stopped-"+app+".json")); err != nil {
		t.Errorf("the killed job left no note of what it stopped: %v", err)
	}
	if out := f.mustSync(); strings.Contains(out, "[drift]") {
		t.Errorf("sync after the kill found drift: the stopped services were not started before its cycle:\n%s", out)
	}
	faultRunning(t, app, before)
	if _, err := os.Stat(filepath.Join(f.state, "stopped-"+app+".json")); err == nil {
		t.Error("the note of what the killed job stopped is still there after they were started")
	}

	if locks := strings.Fields(faultRestic(t, repo, pw, "list", "locks", "--no-lock")); len(locks) == 0 {
		t.Errorf("the killed restic left no lock: the test did not kill it mid-backup")
	}
	code, text := f.syncd("backup", "--restic", restic)
	if code != 0 {
		t.Fatalf("backup after the kill: exit %d\n%s", code, text)
	}
	if left := strings.Fields(faultRestic(t, repo, pw, "list", "locks", "--no-lock")); len(left) != 0 {
		t.Errorf("the killed run's lock is still in the repository after the next backup: %v", left)
	}
	faultRunning(t, app, before)
}

// faultChildRestic returns the PID of a restic child of parent whose command
// line contains want, or 0.
func faultChildRestic(parent int, want string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || faultPPID(pid) != parent {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(d, "cmdline"))
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && filepath.Base(args[0]) == "restic" && strings.Contains(string(b), want) {
			return pid
		}
	}
	return 0
}

// stat returns /proc/pid/stat's fields after the command name.
func faultStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		return strings.Fields(s[i+1:])
	}
	return nil
}

func faultPPID(pid int) int {
	if f := faultStat(pid); len(f) > 1 {
		n, _ := strconv.Atoi(f[1])
		return n
	}
	return -1
}

// alive: the process exists and is not a zombie.
func faultAlive(pid int) bool {
	f := faultStat(pid)
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// TestBackupFaultRestoreNoSuchSnapshot: a snapshot that does not exist is
// refused before anything is stopped or saved.
func TestBackupFaultRestoreNoSuchSnapshot(t *testing.T) {
	t.Parallel()
	restic := testenv.Tool(t, "restic")
	repo, pw := faultRepo(t), "pw-None-Lp38Wq7eZr"
	f, app := faultFleet(t, repo, pw)
	db := faultCtr(t, app, "db")
	faultWrite(t, db, "/data/x", []byte("v1"))
	if code, out := f.syncd("backup", "--restic", restic); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	faultWrite(t, db, "/data/x", []byte("v2"))
	snaps := len(faultSnapshots(t, repo, pw))
	before := containers(t, app)

	code, out := f.syncd("restore", "--restic", restic, "--app", app, "--snapshot", "deadbeefcafe")
	if code != 1 || !strings.Contains(out, `"deadbeefcafe" is neither a run nor a snapshot`) || !strings.Contains(out, "syncd backup --list --app "+app) {
		t.Errorf("restore of a snapshot that does not exist: exit %d, want 1, the reason and how to list them:\n%s", code, out)
	}
	if now := containers(t, app); len(now) != len(before) || now[app+"/db"] != before[app+"/db"] || now[app+"/web"] != before[app+"/web"] {
		t.Errorf("a refused restore touched the app:\n%v\n%v", before, now)
	}
	if got := faultCat(t, db, "/data/x"); got != "v2" {
		t.Errorf("x is %q after a refused restore, want v2", got)
	}
	if n := len(faultSnapshots(t, repo, pw)); n != snaps {
		t.Errorf("a refused restore made %d snapshots", n-snaps)
	}
}

// faultSink is a loopback webhook: it records each message, answers 500
// while fail > 0, and blocks while hang is set.
type faultSink struct {
	token string
	mu    sync.Mutex
	fail  int
	hang  chan struct{} // non-nil: block until closed
	hung  chan struct{} // a request is blocked
	got   []string
	seen  chan string
}

func (h *faultSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	if h.hang != nil {
		hang, hung := h.hang, h.hung
		h.mu.Unlock()
		select {
		case hung <- struct{}{}:
		default:
		}
		<-hang
		h.mu.Lock()
		if r.Context().Err() != nil {
			h.mu.Unlock()
			return // the sender gave up on this one and tries again
		}
	}
	defer h.mu.Unlock()
	if r.URL.Query().Get("token") != h.token {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	if h.fail > 0 {
		h.fail--
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	var m map[string]string
	_ = json.Unmarshal(body, &m)
	msg := m["title"] + ": " + m["message"]
	h.got = append(h.got, msg)
	h.seen <- msg
}

func (h *faultSink) next(t *testing.T, what string) string {
	t.Helper()
	select {
	case m := <-h.seen:
		return m
	case <-time.After(time.Minute):
		t.Fatalf("no notification for %s; got %q", what, h.got)
		return ""
	}
}

// TestNotifyBackupFailedRecoveredE2E: backups run by the agent (asked by
// `syncd backup` over its socket) notify a loopback webhook: one message
// per failure, none for the same failure again, one recovery, none lost
// while the sink answers 500, no secret in any; a hanging sink delays no
// backup and no cycle.
func TestNotifyBackupFailedRecoveredE2E(t *testing.T) {
	t.Parallel()
	restic := testenv.Tool(t, "restic")
	h := &faultSink{token: "tk-Notify-Zu84Qe1rFj", seen: make(chan string, 16), hung: make(chan struct{}, 1)}
	srv := httptest.NewServer(h)
	defer srv.Close()
	f := newFleet(t)
	app := f.faultApp()
	f.secrets["restic_repo"] = faultRepo(t)
	f.secrets["restic_pw"] = "pw-Notify-Ka27Mx5vPo"
	f.secrets["notify_url"] = "generic://" + strings.TrimPrefix(srv.URL, "http://") + "/hook?template=json&disabletls=yes&token=" + h.token
	f.secrets["notify_token"] = h.token
	f.hostCfg = "backup:\n  repository_secret: restic_repo\n  password_secret: restic_pw\n  schedule: \"0 3 1 1 *\"\n"
	f.extraCfg = "notify:\n  - url_secret: notify_url\n    events: [backup_failed, backup_recovered]\n"
	f.commit()
	a := startAgent(t, f, f.repo, "--restic", restic, "--poll", "1h")
	waitStatus(t, f, a, "the first cycle", func(h status.Host) bool { return h.State == status.Converged })
	db := faultCtr(t, app, "db")
	faultWrite(t, db, "/data/x", []byte("v1"))
	failing := filepath.Join(faultVolumeDir(t, app), ".dump-fails")
	backupNow := func(want int) string {
		t.Helper()
		code, out := f.syncd("backup", "--restic", restic)
		if code != want {
			t.Fatalf("syncd backup: exit %d, want %d\n%s\nagent log:\n%s", code, want, out, a.log)
		}
		if !strings.Contains(out, "by the running agent") && want != 0 {
			t.Errorf("the backup was not run by the agent:\n%s", out)
		}
		return out
	}

	os.WriteFile(failing, nil, 0o644)
	backupNow(1)
	if m := h.next(t, "the failed backup"); !strings.Contains(m, ": backup of app "+app+" on host "+f.host+" failed: ") {
		t.Errorf("first message %q, want the failure of backup %s", m, app)
	}
	// The same failure again: deduplicated. The sender sends in order, so
	// the recovery arriving next shows nothing was sent between them.
	backupNow(1)
	os.Remove(failing)
	backupNow(0)
	if m := h.next(t, "the recovery"); !strings.Contains(m, ": backup of app "+app+" on host "+f.host+" works again: ") {
		t.Errorf("message after a repeated failure and a good backup: %q, want only the recovery", m)
	}

	// The sink answers 500 for a while: the next failure arrives later.
	h.mu.Lock()
	h.fail = 2
	h.mu.Unlock()
	os.WriteFile(failing, nil, 0o644)
	backupNow(1)
	if m := h.next(t, "the failure sent while the sink answered 500"); !strings.Contains(m, ": backup of app "+app+" on host "+f.host+" failed: ") {
		t.Errorf("message after the sink's outage %q", m)
	}
	h.mu.Lock()
	if h.fail != 0 {
		t.Errorf("the sink was not retried through its 500s (%d left)", h.fail)
	}
	// The sink hangs: backups and cycles still complete.
	hang := make(chan struct{})
	h.hang = hang
	h.mu.Unlock()
	os.Remove(failing)
	backupNow(0) // queues the recovery, which the sink holds
	select {
	case <-h.hung:
	case <-time.After(time.Minute):
		t.Fatalf("the recovery never reached the hanging sink")
	}
	backupNow(0)
	if code, out := f.syncd("sync"); code != 0 {
		t.Errorf("sync while the sink hangs: exit %d\n%s", code, out)
	}
	h.mu.Lock()
	h.hang = nil
	h.mu.Unlock()
	close(hang)
	if m := h.next(t, "the recovery held by the hanging sink"); !strings.Contains(m, ": backup of app "+app+" on host "+f.host+" works again") {
		t.Errorf("message after the hang %q", m)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range h.got {
		secretstest.AssertNoLeak(t, "a notification", b, f.values()...)
	}
	// The log names the sink as scheme://host:port, by design; the URL
	// itself, its token and the other secrets never show.
	var values []string
	for k, v := range f.secrets {
		if k != "notify_url" {
			values = append(values, v)
		}
	}
	secretstest.AssertNoLeak(t, "the agent's log", a.log.String(), values...)
	if strings.Contains(a.log.String(), f.secrets["notify_url"]) || strings.Contains(a.log.String(), "/hook") {
		t.Errorf("the agent's log shows the sink's URL")
	}
	if len(h.got) != 4 {
		t.Errorf("the sink got %d messages, want 4: %q", len(h.got), h.got)
	}
}

// TestRestoreToShowsTheUsersDirectory: a directory the user names is
// printed as given, even when it shares a long prefix with a secret (here
// the restic repository, a directory beside it): issue 18 item 10, where
// `restore --to` printed "extracted into <redacted>drill7".
func TestRestoreToShowsTheUsersDirectory(t *testing.T) {
	t.Parallel()
	restic := testenv.Tool(t, "restic")
	parent := t.TempDir()
	repo := filepath.Join(parent, "restic-repo-Quebec")
	f, app := faultFleet(t, repo, "pw-Drill-Ux81Nq3Lzv")
	faultWrite(t, faultCtr(t, app, "db"), "/data/x", []byte("v1"))
	if code, out := f.syncd("backup", "--restic", restic); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	dir := filepath.Join(parent, "drill7")
	var out, errOut bytes.Buffer
	// Not f.syncd: its check refuses any 8 bytes of a value, and the
	// directory shares its prefix with the repository's path by design.
	code := run(context.Background(), []string{"restore", "--repo", f.repo, "--host", f.host, "--age-key", f.key, "--state-dir", f.state,
		"--restic", restic, "--app", app, "--to", dir}, os.Getenv, &out, &errOut)
	text := out.String() + errOut.String()
	if code != 0 || !strings.Contains(text, "extracted into "+dir+";") {
		t.Errorf("restore --to: exit %d, want the directory as given (%s):\n%s", code, dir, text)
	}
	if strings.Contains(text, "Quebec") || strings.Contains(text, "Ux81Nq3Lzv") {
		t.Errorf("restore --to shows a secret:\n%s", text)
	}
}
