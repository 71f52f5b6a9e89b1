package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
	"github.com/syncd-dev/syncd/internal/state"
	"github.com/syncd-dev/syncd/internal/status"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestPlanAndARefusedSyncLeaveARunningSyncAlone: while one syncd holds the
// state directory (here, the test holds its lock, with a half-written
// snapshot as a running sync would have), neither `syncd plan` nor a second
// `syncd sync` (refused) may remove or swap anything of it.
func TestPlanAndARefusedSyncLeaveARunningSyncAlone(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	f.app()
	f.commit()
	f.mustSync()
	store, err := state.Open(f.state)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := store.Lock()
	if err != nil {
		t.Fatal(err)
	}
	half := filepath.Join(f.state, "snapshots", "c9.syncd-tmp", "apps", "x", "compose.yaml")
	os.MkdirAll(filepath.Dir(half), 0o700)
	os.WriteFile(half, []byte("half"), 0o600)
	before := snapshotOf(t, f.state)

	if code, out := f.syncd("plan"); code != 0 {
		t.Fatalf("plan beside a running sync: exit %d\n%s", code, out)
	}
	if code, out := f.syncd("sync"); code != 1 || !strings.Contains(out, "another syncd holds the state directory") {
		t.Fatalf("a second sync: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(half); err != nil {
		t.Fatalf("the running sync's half-written snapshot was removed: %v", err)
	}
	if after := snapshotOf(t, f.state); after != before {
		t.Errorf("the state directory changed:\nbefore %s\nafter  %s", before, after)
	}

	unlock()
	// plan needs no state directory at all, and creates none.
	absent := filepath.Join(t.TempDir(), "no-state")
	if code, out := f.syncd("plan", "--state-dir", absent); code != 0 && code != 2 {
		t.Fatalf("plan with no state directory: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(absent); !os.IsNotExist(err) {
		t.Error("plan created a state directory")
	}
}

// snapshotOf lists every file of dir with its size and modification time.
func snapshotOf(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && fi.Mode()&os.ModeSocket == 0 {
			rel, _ := filepath.Rel(dir, p)
			b.WriteString(rel + " " + fi.ModTime().String() + "\n")
		}
		return nil
	})
	return b.String()
}

// TestSyncE2ESymlinkedEnvFileRollsBack: an env_file that is a symlink to a
// shared file of the repository is in the snapshot as what it points to, so a
// failed release rolls back instead of being taken down.
func TestSyncE2ESymlinkedEnvFileRollsBack(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	app := testenv.ProjectName(t)
	f.apps = append(f.apps, app)
	f.write("shared/common.env", "DEMO_MESSAGE=from the shared file\n")
	if err := os.Symlink("../../shared/common.env", filepath.Join(f.repo, "apps", app, "app.env")); err != nil {
		os.MkdirAll(filepath.Join(f.repo, "apps", app), 0o755)
		if err := os.Symlink("../../shared/common.env", filepath.Join(f.repo, "apps", app, "app.env")); err != nil {
			t.Fatal(err)
		}
	}
	compose := func(unhealthy string) string {
		return `services:
  web:
    image: ` + demoImage + `
    env_file: [app.env]
    environment:
      DEMO_UNHEALTHY: "` + unhealthy + `"
` + healthy
	}
	f.write("apps/"+app+"/compose.yaml", compose("0"))
	f.commit()
	f.mustSync()
	f.write("apps/"+app+"/compose.yaml", compose("1"))
	f.commit()
	code, out := f.syncd("sync")
	if code != 1 || !strings.Contains(out, app+": rolled back") {
		t.Fatalf("a failed release with a symlinked env_file: exit %d, want rolled back (not taken down)\n%s", code, out)
	}
	id := webID(t, app)
	if env := testenv.DockerCLI(t, "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", id); !strings.Contains(env, "DEMO_MESSAGE=from the shared file") || !strings.Contains(env, "DEMO_UNHEALTHY=0") {
		t.Errorf("after the rollback web's environment is not the good release's:\n%s", env)
	}
}

// TestSyncE2EReleaseThatTurnsUnhealthyDuringItsSoakRollsBack: a release
// healthy at first and unhealthy a few seconds later is not recorded as
// applied: its soak catches it, and it never becomes the rollback target.
func TestSyncE2EReleaseThatTurnsUnhealthyDuringItsSoakRollsBack(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	app := testenv.ProjectName(t)
	f.apps = append(f.apps, app)
	f.write("apps/"+app+"/app.yaml", "soak: 10s\n")
	// An image of its own: DEMO_UNHEALTHY_AFTER is new in demoweb.
	img := testenv.DemoImage(t, "syncdtest-demoweb:soak", false)
	compose := func(after string) string {
		return `services:
  web:
    image: ` + img + `
    environment:
      DEMO_MESSAGE: release ` + after + `
      DEMO_UNHEALTHY_AFTER: "` + after + `"
` + healthy
	}
	f.write("apps/"+app+"/compose.yaml", compose("24h"))
	f.commit()
	f.mustSync()
	good, _ := status.ReadLocal(f.state)

	f.write("apps/"+app+"/compose.yaml", compose("3s"))
	f.commit()
	start := time.Now()
	code, out := f.syncd("sync")
	if code != 1 || !strings.Contains(out, app+": rolled back") || !strings.Contains(out, "soak") {
		t.Fatalf("a release that turns unhealthy 3 s in: exit %d after %v, want rolled back by the soak\n%s", code, time.Since(start), out)
	}
	env := testenv.DockerCLI(t, "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", webID(t, app))
	if !strings.Contains(env, "DEMO_UNHEALTHY_AFTER=24h") {
		t.Errorf("web does not run the good release after the rollback:\n%s", env)
	}
	recs, err := state.OpenReadOnly(f.state).Projects()
	if rec := recs[app]; err != nil || rec == nil || rec.LastGood != good.AppliedCommit {
		t.Errorf("the rollback target is %+v (%v), want the good release %s", rec, err, good.AppliedCommit)
	}
}

// TestSyncE2EPublishedConfigHashConfirmsNoGuess: Compose's config hash of a
// service covers the secret values it reads as ${KEY}; the hash published in
// the status must not be it, or anyone who can read the status branch could
// test a guessed password offline (the container's label is that hash of the
// right guess).
func TestSyncE2EPublishedConfigHashConfirmsNoGuess(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	app := testenv.ProjectName(t)
	f.apps = append(f.apps, app)
	f.write("apps/"+app+"/app.yaml", "deviations:\n  - rule: secret-in-env\n    reason: the test image reads only its environment\n")
	f.write("apps/"+app+"/compose.yaml", `services:
  web:
    image: `+demoImage+`
    environment:
      DEMO_MESSAGE: ${db_password}
`+healthy)
	f.commit()
	f.mustSync()
	label := testenv.DockerCLI(t, "inspect", "--format", `{{index .Config.Labels "com.docker.compose.config-hash"}}`, webID(t, app))
	h, err := status.ReadLocal(f.state)
	if err != nil {
		t.Fatal(err)
	}
	published := readFile(t, filepath.Join(f.state, "status.json"))
	for _, p := range h.Projects {
		if p.Name == app && p.ConfigHash["web"] == "" {
			t.Errorf("no config hash published for web: %+v", p)
		}
	}
	if label == "" || strings.Contains(published, label) {
		t.Errorf("the status publishes Compose's unkeyed config hash %q, which confirms a guess of db_password", label)
	}
}

// TestValidateRefusesPathsOutOfTheRepositoryAndSpecialFiles: a compose file
// that reads /etc/shadow, follows a symlink out, or reads a FIFO or
// /dev/zero is refused at once, with the file and field, by validate and by
// sync, and nothing of it reaches the output.
func TestValidateRefusesPathsOutOfTheRepositoryAndSpecialFiles(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		files   map[string]string
		setup   func(dir string)
		message string
	}{
		"env_file absolute": {files: map[string]string{"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    env_file: [/etc/shadow]\n"},
			message: `apps/web/compose.yaml:4: error: env_file: "/etc/shadow" is an absolute path`},
		"env_file symlink out": {files: map[string]string{"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    env_file: [x.env]\n"},
			setup:   func(dir string) { os.Symlink("/etc/shadow", filepath.Join(dir, "apps/web/x.env")) },
			message: `apps/web/compose.yaml:4: error: env_file: x.env: cannot read: path escapes from parent`},
		"env_file /dev/zero": {files: map[string]string{"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    env_file: [../../../../../../dev/zero]\n"},
			message: `leads out of the repository`},
		"env_file FIFO": {files: map[string]string{"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    env_file: [fifo.env]\n"},
			setup:   func(dir string) { syscall.Mkfifo(filepath.Join(dir, "apps/web/fifo.env"), 0o644) },
			message: `apps/web/compose.yaml:4: error: env_file: fifo.env: is a named pipe, not a regular file`},
		"config absolute": {files: map[string]string{"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    configs: [c]\nconfigs:\n  c:\n    file: /dev/zero\n"},
			message: `apps/web/compose.yaml:7: error: config c reads /dev/zero, outside the repository`},
		"config FIFO": {files: map[string]string{"apps/web/compose.yaml": "services:\n  web:\n    image: nginx:1.27.3\n    configs: [c]\nconfigs:\n  c:\n    file: ./c.conf\n"},
			setup:   func(dir string) { syscall.Mkfifo(filepath.Join(dir, "apps/web/c.conf"), 0o644) },
			message: `apps/web/compose.yaml:7: error: config c apps/web/c.conf is a named pipe in the repository`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			c.files["hosts/h/host.yaml"] = "apps: [web]\n"
			for p, content := range c.files {
				os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
				os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644)
			}
			if c.setup != nil {
				c.setup(dir)
			}
			done := make(chan struct{})
			var code int
			var out string
			go func() {
				defer close(done)
				var stdout, stderr strings.Builder
				code = run(t.Context(), []string{"validate", "--repo", dir}, os.Getenv, &stdout, &stderr)
				out = stdout.String() + stderr.String()
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("validate hangs")
			}
			if code != 1 || !strings.Contains(out, c.message) {
				t.Errorf("exit %d, want 1 and %q:\n%s", code, c.message, out)
			}
			if strings.Contains(out, "root:") {
				t.Errorf("a host file's content reached the output:\n%s", out)
			}
		})
	}
}

// TestSyncE2ETwoSyncdsForOneHostRefused: a second syncd for the same host
// with another state directory sees the first's containers on the engine
// and refuses while the first runs, naming its state directory; once the
// first has stopped, its projects are taken over.
func TestSyncE2ETwoSyncdsForOneHostRefused(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	app := f.app()
	f.commit()
	f.mustSync()
	before := containers(t, app)
	first, err := state.Open(f.state)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := first.Lock() // the first syncd, running
	if err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	f.vars["MSG"] = "the second syncd's idea"
	f.commit()
	code, out := f.syncd("sync", "--state-dir", other)
	if code != 1 || !strings.Contains(out, "another syncd manages this host's projects") || !strings.Contains(out, f.state) {
		t.Fatalf("a second syncd for the host: exit %d, want a refusal naming %s\n%s", code, f.state, out)
	}
	if after := containers(t, app); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the refused syncd changed containers: %v → %v", before, after)
	}
	unlock()
	if code, out := f.syncd("sync", "--state-dir", other); code != 0 {
		t.Fatalf("taking over from a stopped syncd: exit %d\n%s", code, out)
	}
}

// TestBadFlagsAreUsageErrors: a host name that is a path, and a poll that
// would hammer the Git server or is negative, are bad flags (exit 64),
// before anything is read.
func TestBadFlagsAreUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"sync", "--host", "../x", "--repo", t.TempDir(), "--state-dir", t.TempDir()},
		{"plan", "--host", "../x", "--repo", t.TempDir(), "--state-dir", t.TempDir()},
		{"agent", "--host", "h", "--poll", "1ms", "--config", "/dev/null", "--repo", t.TempDir(), "--state-dir", t.TempDir()},
		{"agent", "--host", "h", "--poll", "-1m", "--config", "/dev/null", "--repo", t.TempDir(), "--state-dir", t.TempDir()},
	} {
		var out strings.Builder
		if code := run(t.Context(), args, os.Getenv, &out, &out); code != exitUsage {
			t.Errorf("syncd %s: exit %d, want 2\n%s", strings.Join(args, " "), code, out.String())
		}
	}
}

// TestInvalidRepositorySaysNoEmptyPlan: a cycle stopped by an invalid
// repository says why, not "nothing to do at " with no commit.
func TestInvalidRepositorySaysNoEmptyPlan(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	f.app()
	f.commit()
	f.write("hosts/"+f.host+"/host.yaml", "apps: [nosuchapp]\n")
	code, out := f.syncd("sync")
	if code != 1 || strings.Contains(out, "nothing to do") || !strings.Contains(out, "unknown app") {
		t.Errorf("sync of an invalid repository: exit %d\n%s", code, out)
	}
}

// TestStressConcurrentInvocations races two syncs, a plan and an agent on
// one state directory for 20 rounds, each round with a new commit: nothing
// of it may corrupt the state (projects.json, the rollback snapshots), and
// the host converges with one container per service at the end.
func TestStressConcurrentInvocations(t *testing.T) {
	f := newFleet(t)
	app := f.app()
	f.commit()
	bin := buildSyncd(t)
	a := startAgent(t, f, f.repo, "--poll", "100ms")
	waitStatus(t, f, a, "the first cycle", func(h status.Host) bool { return h.State == status.Converged })
	cmd := func(args ...string) *exec.Cmd {
		c := exec.Command(bin, append(args, "--repo", f.repo, "--host", f.host, "--age-key", f.key, "--state-dir", f.state)...)
		c.Env = append(os.Environ(), "SYNCD_TEST=1")
		return c
	}
	for round := range 20 {
		f.vars["MSG"] = fmt.Sprintf("round %d", round)
		f.commit()
		var wg sync.WaitGroup
		outs := make([]string, 3)
		for i, args := range [][]string{{"sync"}, {"sync"}, {"plan"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := cmd(args...).CombinedOutput()
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				}
				// A sync goes through the agent (0), or finds a cycle that
				// failed on a race of the engine (1); plan sees changes (2)
				// or none (0). Nothing else.
				if code != 0 && code != 1 && !(args[0] == "plan" && code == 2) {
					outs[i] = fmt.Sprintf("%s: exit %d\n%s", args[0], code, out)
				}
				secretstest.AssertNoLeak(t, args[0]+" output", string(out), f.values()...)
			}()
		}
		wg.Wait()
		for _, o := range outs {
			if o != "" {
				t.Errorf("round %d: %s", round, o)
			}
		}
		recs, err := state.OpenReadOnly(f.state).Projects()
		if err != nil {
			t.Fatalf("round %d: projects.json: %v", round, err)
		}
		for name, rec := range recs {
			if rec.LastGood == "" {
				continue
			}
			if _, err := os.Stat(filepath.Join(f.state, "snapshots", rec.LastGood, "hosts", f.host, "host.yaml")); err != nil {
				t.Fatalf("round %d: %s's rollback snapshot %s is incomplete: %v", round, name, rec.LastGood, err)
			}
		}
	}
	// The last commit is applied, once, and nothing is left over.
	code, out := f.syncd("sync")
	if code != 0 {
		t.Fatalf("final sync: exit %d\n%s", code, out)
	}
	got := containers(t, app)
	if len(got) != 2 {
		t.Errorf("containers after the stress: %v, want web and worker once each", got)
	}
	for k, v := range got {
		if !strings.HasSuffix(v, " running") {
			t.Errorf("%s is %s", k, v)
		}
	}
	if code, out := f.syncd("plan", "--detailed-exitcode"); code != 0 {
		t.Errorf("not converged after the stress: exit %d\n%s", code, out)
	}
}

// TestSyncE2EImageMadeOfASecretIsRedactedInThePlan: an image reference that
// comes from a secret (a private registry's path) is not printed by plan,
// sync or their logs ("image changed a → b" quotes it).
func TestSyncE2EImageMadeOfASecretIsRedactedInThePlan(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	private := testenv.DemoImage(t, "x7q-private/dw-image:3.1.4", false)
	f.secrets["web_image"] = private
	app := testenv.ProjectName(t)
	f.apps = append(f.apps, app)
	f.write("apps/"+app+"/app.yaml", "deviations:\n  - rule: secret-in-env\n    reason: the image path is private\n")
	f.write("apps/"+app+"/compose.yaml", "services:\n  web:\n    image: "+demoImage+"\n"+healthy)
	f.commit()
	f.mustSync()
	f.write("apps/"+app+"/compose.yaml", "services:\n  web:\n    image: ${web_image}\n"+healthy)
	f.commit()
	// f.syncd fails the test on any output that holds a secret value.
	code, out := f.syncd("plan", "--detailed-exitcode")
	if code != 2 || !strings.Contains(out, "image changed") || !strings.Contains(out, "<redacted>") {
		t.Errorf("plan of an image made of a secret: exit %d\n%s", code, out)
	}
	if code, out := f.syncd("sync"); code != 0 || !strings.Contains(out, app+": applied") {
		t.Errorf("sync: exit %d\n%s", code, out)
	}
	// The status (what the status branch gets) lists the running image,
	// redacted.
	st := readFile(t, filepath.Join(f.state, "status.json"))
	secretstest.AssertNoLeak(t, "status.json", st, private)
	if !strings.Contains(st, `"ref": "\u003credacted\u003e"`) {
		t.Errorf("status.json does not show the running image as redacted:\n%s", st)
	}
}
