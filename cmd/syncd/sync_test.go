package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
	"github.com/syncd-dev/syncd/internal/status"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// fleet is a desired-state repository in a temp dir for one host of its
// own, so tests running side by side never see each other's projects.
type fleet struct {
	t        *testing.T
	repo     string
	state    string
	key      string
	recip    string
	host     string
	apps     []string
	vars     map[string]string
	secrets  map[string]string
	extraCfg string
	// hostCfg is more of host.yaml (backup:, ...).
	hostCfg string
	wave    int
	// now, when set, is the clock of the commands run (the wave gate's
	// bake time).
	now func() time.Time
}

const demoImage = "syncd-demoweb:1.0.0"

// healthy is the healthcheck of every fixture service: fast, so a cycle
// waits about a second for health.
const healthy = `    healthcheck:
      test: ["CMD", "/demoweb", "healthcheck"]
      interval: 1s
      timeout: 2s
      retries: 2
`

func newFleet(t *testing.T) *fleet {
	t.Helper()
	testenv.DemoImage(t, demoImage, false)
	return newFleetOf(t)
}

// newFleetOf is newFleet for a test that builds the images it runs.
func newFleetOf(t *testing.T) *fleet {
	t.Helper()
	var b [3]byte
	rand.Read(b[:])
	f := &fleet{
		t:       t,
		repo:    t.TempDir(),
		state:   t.TempDir(),
		host:    "h" + hex.EncodeToString(b[:]),
		vars:    map[string]string{"MSG": "hello", "WORKER_MSG": "working", "UNHEALTHY": "0"},
		secrets: map[string]string{"api_token": "tok-Alpha-7f3kQ9zLm2", "db_password": "pw-Bravo-Xc81nVq0Tr"},
	}
	f.key, f.recip = secretstest.NewKey(t)
	return f
}

// app adds an app with services web (uses api_token, MSG) and worker (uses
// db_password, WORKER_MSG) and returns its project name.
func (f *fleet) app() string {
	name := testenv.ProjectName(f.t)
	f.write("apps/"+name+"/compose.yaml", `services:
  web:
    image: `+demoImage+`
    environment:
      DEMO_MESSAGE: ${MSG}
      DEMO_UNHEALTHY: ${UNHEALTHY}
      DEMO_SECRET: api_token
    secrets: [api_token]
    volumes: [data:/data]
`+healthy+`  worker:
    image: `+demoImage+`
    environment:
      DEMO_MESSAGE: ${WORKER_MSG}
    secrets: [db_password]
`+healthy+`volumes:
  data: {}
`)
	f.apps = append(f.apps, name)
	return name
}

func (f *fleet) write(p, content string) {
	f.t.Helper()
	full := filepath.Join(f.repo, p)
	os.MkdirAll(filepath.Dir(full), 0o755)
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// commit writes syncd.yaml, host.yaml and the secrets file from the fields.
func (f *fleet) commit() {
	f.t.Helper()
	// A short soak: every apply of the suite goes through it, quickly.
	f.write("syncd.yaml", "defaults:\n  soak: 1s\n"+f.extraCfg)
	var vars strings.Builder
	for k, v := range f.vars {
		fmt.Fprintf(&vars, "  %s: %q\n", k, v)
	}
	f.write("hosts/"+f.host+"/host.yaml", fmt.Sprintf("apps: [%s]\nwave: %d\nvars:\n%s%s", strings.Join(f.apps, ", "), f.wave, vars.String(), f.hostCfg))
	var plain strings.Builder
	for k, v := range f.secrets {
		fmt.Fprintf(&plain, "%s: %s\n", k, v)
	}
	secretstest.WriteFile(f.t, filepath.Join(f.repo, "hosts", f.host, "secrets.sops.yaml"), f.recip, []byte(plain.String()))
}

// syncd runs a command in-process with the fleet's flags and returns its
// exit code and output, checked for secret values.
func (f *fleet) syncd(cmd string, extra ...string) (int, string) {
	f.t.Helper()
	args := append([]string{cmd, "--repo", f.repo, "--host", f.host, "--age-key", f.key, "--state-dir", f.state}, extra...)
	var out, errOut bytes.Buffer
	now := f.now
	if now == nil {
		now = time.Now
	}
	code := runAt(context.Background(), args, os.Getenv, now, &out, &errOut)
	text := out.String() + errOut.String()
	secretstest.AssertNoLeak(f.t, "syncd "+cmd+" output", text, f.values()...)
	return code, text
}

func (f *fleet) mustSync() string {
	f.t.Helper()
	code, out := f.syncd("sync")
	if code != 0 {
		f.t.Fatalf("sync exit %d:\n%s", code, out)
	}
	return out
}

func (f *fleet) values() []string {
	var vs []string
	for _, v := range f.secrets {
		vs = append(vs, v)
	}
	return vs
}

// containers maps "project/service" to "id state" for the fleet's projects.
func containers(t *testing.T, projects ...string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, p := range projects {
		out := testenv.DockerCLI(t, "ps", "-a", "--filter", "label=com.docker.compose.project="+p,
			"--format", `{{.Label "com.docker.compose.service"}} {{.ID}} {{.State}}`)
		for _, line := range strings.Split(out, "\n") {
			if fields := strings.Fields(line); len(fields) == 3 {
				got[p+"/"+fields[0]] = fields[1] + " " + fields[2]
			}
		}
	}
	return got
}

func TestSyncE2EConvergeNoOpVariableAndSecretRotation(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	app := f.app()
	f.commit()

	out := f.mustSync()
	if !strings.Contains(out, app+": applied") {
		t.Fatalf("first sync did not apply %s:\n%s", app, out)
	}
	first := containers(t, app)
	for _, s := range []string{"web", "worker"} {
		if !strings.HasSuffix(first[app+"/"+s], " running") {
			t.Fatalf("%s not running after the first sync: %v", s, first)
		}
	}

	// No-op: nothing recreated, and plan says so with exit 0.
	f.mustSync()
	if again := containers(t, app); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Errorf("no-op sync recreated containers:\n%v\n%v", first, again)
	}
	if code, out := f.syncd("plan", "--detailed-exitcode"); code != 0 || !strings.Contains(out, "nothing to do") {
		t.Errorf("plan after no-op: exit %d\n%s", code, out)
	}

	// A variable only worker uses: only worker is recreated.
	f.vars["WORKER_MSG"] = "working harder"
	f.commit()
	if code, out := f.syncd("plan", "--detailed-exitcode"); code != 2 || !strings.Contains(out, "worker: recreate (configuration changed)") {
		t.Errorf("plan of a variable change: exit %d\n%s", code, out)
	}
	f.mustSync()
	after := containers(t, app)
	if after[app+"/web"] != first[app+"/web"] {
		t.Errorf("web recreated by a variable it does not use")
	}
	if after[app+"/worker"] == first[app+"/worker"] {
		t.Errorf("worker not recreated by its variable change")
	}

	// Rotating api_token recreates only web, and web gets the new value.
	f.secrets["api_token"] = "tok-Charlie-Zq7wPp3Ls9"
	f.commit()
	code, out := f.syncd("plan", "--detailed-exitcode")
	if code != 2 || !strings.Contains(out, "web: recreate (secret rotated: api_token)") || strings.Contains(out, "worker:") {
		t.Errorf("plan of a secret rotation: exit %d\n%s", code, out)
	}
	f.mustSync()
	rotated := containers(t, app)
	if rotated[app+"/web"] == after[app+"/web"] {
		t.Error("web not recreated by its secret's rotation")
	}
	if rotated[app+"/worker"] != after[app+"/worker"] {
		t.Error("worker recreated by a secret it does not use")
	}
	webID := strings.Fields(rotated[app+"/web"])[0]
	if got := testenv.DockerCLI(t, "cp", webID+":/run/secrets/api_token", "-"); !strings.Contains(got, "tok-Charlie-Zq7wPp3Ls9") {
		t.Errorf("/run/secrets/api_token does not hold the rotated value")
	}

	// The values are nowhere syncd or Docker shows them.
	for _, id := range []string{webID, strings.Fields(rotated[app+"/worker"])[0]} {
		secretstest.AssertNoLeak(t, "docker inspect", testenv.DockerCLI(t, "inspect", id), append(f.values(), "tok-Alpha-7f3kQ9zLm2")...)
	}
	assertNoLeakInDir(t, f.state, append(f.values(), "tok-Alpha-7f3kQ9zLm2")...)
}

func assertNoLeakInDir(t *testing.T, dir string, values ...string) {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Error(err)
			return nil
		}
		n++
		secretstest.AssertNoLeak(t, p, string(data), values...)
		return nil
	})
	if n == 0 {
		t.Errorf("no file in %s to check", dir)
	}
}

func TestSyncE2EDriftHealedOrReported(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	app := f.app()
	reported := f.app()
	f.write("apps/"+reported+"/app.yaml", "drift: report\n")
	f.commit()
	f.mustSync()
	before := containers(t, app, reported)
	id := func(p, s string) string { return strings.Fields(before[p+"/"+s])[0] }

	testenv.DockerCLI(t, "stop", id(app, "web"))
	testenv.DockerCLI(t, "rm", "-f", id(app, "worker"))
	testenv.DockerCLI(t, "stop", id(reported, "web"))

	out := f.mustSync()
	for _, want := range []string{"web: start (container " + app + "-web-1 exited) [drift]", "worker: create (container removed by hand) [drift]", "web: report (container " + reported + "-web-1 exited) [drift]"} {
		if !strings.Contains(out, want) {
			t.Errorf("sync output lacks %q:\n%s", want, out)
		}
	}
	now := containers(t, app, reported)
	if !strings.HasSuffix(now[app+"/web"], "running") || !strings.HasSuffix(now[app+"/worker"], "running") {
		t.Errorf("drift not healed: %v", now)
	}
	if !strings.HasSuffix(now[reported+"/web"], "exited") {
		t.Errorf("drift: report healed anyway: %v", now)
	}
}

func TestSyncE2EPruneKeepsVolumesAndGuardsMassRemoval(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	a, b, c := f.app(), f.app(), f.app()
	f.commit()
	f.mustSync()

	// Two of three: refused, nothing removed.
	f.apps = []string{a}
	f.commit()
	code, out := f.syncd("sync")
	if code != 1 || !strings.Contains(out, "allow_mass_removal") {
		t.Fatalf("guard: exit %d\n%s", code, out)
	}
	if n := len(containers(t, b, c)); n != 4 {
		t.Fatalf("guard let containers go: %d left", n)
	}

	// One of three: removed, its volume kept.
	f.apps = []string{a, b}
	f.commit()
	f.mustSync()
	if left := containers(t, c); len(left) != 0 {
		t.Errorf("pruned project still has containers: %v", left)
	}
	if vols := testenv.DockerCLI(t, "volume", "ls", "-q", "--filter", "label=com.docker.compose.project="+c); vols == "" {
		t.Error("prune removed the project's volume")
	}

	// Allowed explicitly: all the host's projects go (a new one comes).
	d := f.app()
	f.apps = []string{d}
	f.extraCfg = "prune:\n  allow_mass_removal: true\n"
	f.commit()
	f.mustSync()
	if left := containers(t, a, b); len(left) != 0 {
		t.Errorf("allowed mass removal left %v", left)
	}
}

func TestSyncE2EUnhealthyReleaseRollsBackAndIsHeld(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	app := f.app()
	f.commit()
	f.mustSync()
	good := containers(t, app)
	first, err := status.ReadLocal(f.state)
	if err != nil || first.AppliedCommit == "" {
		t.Fatalf("status after the first sync: %+v %v", first, err)
	}

	bad := testenv.DemoImage(t, "syncdtest-demoweb:2.0.0-unhealthy", true)
	f.write("apps/"+app+"/compose.yaml", strings.Replace(readFile(t, filepath.Join(f.repo, "apps", app, "compose.yaml")), demoImage, bad, 1))
	f.vars["UNHEALTHY"] = "1" // the fixture's environment would override the image's
	f.commit()
	code, out := f.syncd("sync")
	if code != 1 || !strings.Contains(out, app+": rolled back") {
		t.Fatalf("unhealthy release: exit %d\n%s", code, out)
	}
	now := containers(t, app)
	webID := strings.Fields(now[app+"/web"])[0]
	if img := testenv.DockerCLI(t, "inspect", "--format", "{{.Config.Image}}", webID); img != demoImage {
		t.Errorf("web runs %s after rollback, want %s", img, demoImage)
	}
	if now[app+"/worker"] != good[app+"/worker"] {
		t.Errorf("rollback recreated worker, which the release did not change: %v → %v", good, now)
	}

	// The failed commit is held: not retried, and said so (exit 3, never
	// "converged to" the failed commit). The status says what runs.
	code, out = f.syncd("sync")
	if code != exitHeld || !strings.Contains(out, app+": hold") || !strings.Contains(out, "held at their last good release") || strings.Contains(out, "converged") {
		t.Errorf("held commit: exit %d\n%s", code, out)
	}
	if again := containers(t, app); fmt.Sprint(again) != fmt.Sprint(now) {
		t.Errorf("held commit touched containers")
	}
	h, err := status.ReadLocal(f.state)
	if err != nil || h.State != status.Held || h.AppliedCommit != first.AppliedCommit || h.DesiredCommit == first.AppliedCommit {
		t.Errorf("status after a rollback: state %s, applied %s (want %s, what runs), desired %s", h.State, h.AppliedCommit, first.AppliedCommit, h.DesiredCommit)
	}

	// A newer commit is applied.
	f.write("apps/"+app+"/compose.yaml", strings.Replace(readFile(t, filepath.Join(f.repo, "apps", app, "compose.yaml")), bad, demoImage, 1))
	f.vars["UNHEALTHY"] = "0"
	f.vars["MSG"] = "fixed"
	f.commit()
	if out := f.mustSync(); !strings.Contains(out, app+": applied") {
		t.Errorf("newer commit not applied:\n%s", out)
	}
}

func TestSyncE2EUnmanagedContainersUntouched(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	app := f.app()
	// Someone else's Compose project, and one using the name of an app.
	other := testenv.ProjectName(t)
	collide := testenv.ProjectName(t)
	for _, p := range []string{other, collide} {
		testenv.DockerCLI(t, "run", "-d", "--label", "com.docker.compose.project="+p, "--label", "com.docker.compose.service=x", demoImage)
	}
	f.apps = append(f.apps, collide)
	f.write("apps/"+collide+"/compose.yaml", "services:\n  x:\n    image: "+demoImage+"\n")
	f.commit()
	before := containers(t, other, collide)
	// plan shows the refusal with its reason, and --detailed-exitcode fails
	// as sync will: a CI check must not pass a plan that does not converge.
	if code, out := f.syncd("plan", "--detailed-exitcode"); code != 1 || !strings.Contains(out, collide+": refuse (a Compose project named") ||
		!strings.Contains(out, "1 project(s) held, refused or guarded") {
		t.Errorf("plan of a name collision: exit %d, want 1 with the refusal\n%s", code, out)
	}
	code, out := f.syncd("sync")
	if code != 1 || !strings.Contains(out, "syncd did not create it") {
		t.Errorf("name collision: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, app+": applied") {
		t.Errorf("the managed app was not applied beside the collision:\n%s", out)
	}
	if after := containers(t, other, collide); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("unmanaged containers touched:\n%v\n%v", before, after)
	}
}

func TestSyncE2EBadInputChangesNothing(t *testing.T) {
	f := newFleet(t)
	app := f.app()
	f.commit()
	f.mustSync()
	before := containers(t, app)

	f.write("apps/"+app+"/compose.yaml", strings.Replace(readFile(t, filepath.Join(f.repo, "apps", app, "compose.yaml")), "${MSG}", "${NOT_DEFINED_ANYWHERE}", 1))
	code, out := f.syncd("sync")
	if code != 1 || !strings.Contains(out, "NOT_DEFINED_ANYWHERE") || !strings.Contains(out, "compose.yaml") {
		t.Errorf("undefined variable: exit %d\n%s", code, out)
	}
	if after := containers(t, app); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("a broken repository changed containers")
	}

	f.write("apps/"+app+"/compose.yaml", strings.Replace(readFile(t, filepath.Join(f.repo, "apps", app, "compose.yaml")), "${NOT_DEFINED_ANYWHERE}", "${MSG}", 1))
	f.vars["MSG"] = "x"
	f.commit()
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	code, out = f.syncd("sync")
	if code != 1 || !strings.Contains(strings.ToLower(out), "docker") {
		t.Errorf("unreachable engine: exit %d\n%s", code, out)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// stateFile reads projects.json and fails unless it is valid.
func stateFile(t *testing.T, dir string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "projects.json"))), &m); err != nil {
		t.Fatalf("projects.json: %v", err)
	}
	return m
}
