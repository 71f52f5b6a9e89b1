package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/status"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// drillLeft is what carries the drill label of app on the engine:
// containers, volumes and networks, one per line.
func drillLeft(t *testing.T, app string) string {
	t.Helper()
	var out []string
	for _, kind := range [][]string{{"ps", "-a"}, {"volume", "ls"}, {"network", "ls"}} {
		args := append(kind, "-q", "--filter", "label=dev.syncd.drill="+app)
		if got := strings.TrimSpace(testenv.DockerCLI(t, args...)); got != "" {
			out = append(out, kind[0]+": "+got)
		}
	}
	return strings.Join(out, "\n")
}

// lastDrill is app's last_drill as the state directory keeps it.
func lastDrill(t *testing.T, f *fleet, app string) *status.Drill {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(f.state, "jobs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var list []status.Job
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatal(err)
	}
	for _, j := range list {
		if j.Name == "backup/"+app {
			return j.LastDrill
		}
	}
	return nil
}

// TestDrillE2EPasses backs up a volume and a dump, then drills the run: the
// drill project gets both, is healthy, and its verify check reads the
// restored file; the app's containers and its volume are as they were,
// and nothing of the drill is left, neither what it made nor what a
// killed drill had left.
func TestDrillE2EPasses(t *testing.T) {
	testenv.Docker(t)
	f, app := restFleet(t, dumpAndVolume+`  drill:
    timeout: 5m
    verify:
      - service: db
        command: ["/demoweb", "cat", "/data/marker"]
        output: "^marker-v1 [0-9a-f]{16}$"
      - service: web
        command: ["/demoweb", "healthcheck"]
`)
	restic := testenv.Tool(t, "restic")
	f.mustSync()
	marker := "marker-v1 " + strings.Repeat("0123456789abcdef", 1)
	dexec(t, app, "db", []byte(marker), "write", "/data/marker")
	dexec(t, app, "db", random(t, 1<<20), "write", "/data/blob")
	code, out := f.syncd("backup", "--restic", restic)
	if code != 0 {
		t.Fatalf("backup exit %d:\n%s", code, out)
	}
	var run string
	for _, line := range strings.Split(out, "\n") {
		if fs := strings.Fields(line); len(fs) > 2 && fs[0] == app {
			run = fs[1]
		}
	}

	// What a killed drill of this run left: its container (which holds
	// the drill's name: not removed first, it would make the drill refuse
	// to start), a volume and a network with its label, a file in its
	// directory.
	drill := app + "-drill-" + run[strings.LastIndexByte(run, '-')+1:]
	testenv.DockerCLI(t, "run", "-d", "--label", "dev.syncd.drill="+app, "--label", "com.docker.compose.project="+drill,
		"--label", "com.docker.compose.service=db", "--label", "com.docker.compose.oneoff=False", demoImage)
	t.Cleanup(func() {
		if ids := strings.Fields(testenv.DockerCLI(t, "ps", "-aq", "--filter", "label=com.docker.compose.project="+drill)); len(ids) > 0 {
			testenv.DockerCLI(t, append([]string{"rm", "-f"}, ids...)...)
		}
	})
	testenv.DockerCLI(t, "volume", "create", "--label", "dev.syncd.drill="+app, app+"-drill-dead_data")
	testenv.DockerCLI(t, "network", "create", "--label", "dev.syncd.drill="+app, app+"-drill-dead_default")
	t.Cleanup(func() {
		testenv.DockerCLI(t, "volume", "rm", "-f", app+"-drill-dead_data")
		testenv.DockerCLI(t, "network", "prune", "-f", "--filter", "label=dev.syncd.drill="+app)
	})
	left := filepath.Join(f.state, "drills", app, "volumes", "data", "left-over")
	os.MkdirAll(filepath.Dir(left), 0o700)
	os.WriteFile(left, []byte("x"), 0o600)

	// The app moved on since its backup: a drill that restored into its
	// volume would lose this.
	dexec(t, app, "db", []byte("newer"), "write", "/data/after-backup")
	before := containers(t, app)
	data := dexec(t, app, "db", nil, "dump", "/data")
	code, out = f.syncd("drill", "--app", app, "--restic", restic)
	if code != 0 {
		t.Fatalf("drill exit %d:\n%s", code, out)
	}
	for _, want := range []string{"ok   restore:", "ok   healthchecks:", "ok   dump data.dump:", "ok   verify[0] (db: /demoweb cat /data/marker)", "ok   verify[1]", ": passed in"} {
		if !strings.Contains(out, want) {
			t.Errorf("drill output lacks %q:\n%s", want, out)
		}
	}
	if after := containers(t, app); !equalMaps(before, after) {
		t.Errorf("the drill touched the app's containers: %v → %v", before, after)
	}
	if got := dexec(t, app, "db", nil, "dump", "/data"); got != data {
		t.Errorf("the drill changed the app's volume: %d bytes of dump before, %d after", len(data), len(got))
	}
	if got := drillLeft(t, app); got != "" {
		t.Errorf("the drill left behind:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(f.state, "drills", app)); !os.IsNotExist(err) {
		t.Errorf("the drill directory is still there: %v", err)
	}
	d := lastDrill(t, f, app)
	if d == nil || d.Result != status.DrillPassed || d.Run == "" || d.At.IsZero() || !strings.Contains(out, d.Run) {
		t.Errorf("last_drill = %+v, want passed with the run", d)
	}
	assertNoLeakInDir(t, f.state, f.values()...)

	// The next cycle's status document carries it.
	f.mustSync()
	h, err := status.ReadLocal(f.state)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range h.Jobs {
		if j.Name == "backup/"+app && (j.LastDrill == nil || j.LastDrill.Run != d.Run || j.LastDrill.Result != status.DrillPassed) {
			t.Errorf("status job %s: last_drill = %+v, want %+v", j.Name, j.LastDrill, d)
		}
	}
}

// TestDrillE2EBindPath drills an app whose data is a directory of its
// project directory (backup.paths: [./data]): the drill mounts the run's
// copy from its own directory, and the app's directory is as it was.
func TestDrillE2EBindPath(t *testing.T) {
	testenv.Docker(t)
	f, app := restFleet(t, `backup:
  paths: [./data]
  drill:
    verify:
      - service: web
        command: ["/demoweb", "cat", "/data/kept.txt"]
        output: "^kept v1$"
`)
	f.write("apps/"+app+"/compose.yaml", `services:
  web:
    image: `+demoImage+`
    user: "0:0"
    volumes:
      - ./data:/data
`+healthy)
	f.commit()
	restic := testenv.Tool(t, "restic")
	f.mustSync()
	dexec(t, app, "web", []byte("kept v1"), "write", "/data/kept.txt")
	if code, out := f.syncd("backup", "--restic", restic); code != 0 {
		t.Fatalf("backup exit %d:\n%s", code, out)
	}
	dexec(t, app, "web", []byte("kept v2"), "write", "/data/kept.txt")
	before := containers(t, app)
	code, out := f.syncd("drill", "--app", app, "--restic", restic)
	if code != 0 || !strings.Contains(out, "1 path(s) restored") || !strings.Contains(out, "ok   verify[0]") {
		t.Fatalf("drill exit %d:\n%s", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(f.state, "projects", app, "data", "kept.txt")); err != nil || string(b) != "kept v2" {
		t.Errorf("the app's data after the drill: %q, %v; want kept v2", b, err)
	}
	if after := containers(t, app); !equalMaps(before, after) {
		t.Errorf("the drill touched the app's containers: %v → %v", before, after)
	}
	if got := drillLeft(t, app); got != "" {
		t.Errorf("the drill left behind:\n%s", got)
	}
}

// TestDrillE2EFailsOnWhatABackupCannotTell drills runs that backed up
// "successfully" yet hold nothing of use: a volume that was empty (the
// verify pattern finds no marker), then a check whose command exits with
// another code than it wants. Each fails, naming the check and why, and
// leaves nothing behind.
func TestDrillE2EFailsOnWhatABackupCannotTell(t *testing.T) {
	testenv.Docker(t)
	appYAML := func(check string) string {
		return "backup:\n  volumes: [data]\n  drill:\n    verify:\n" + check
	}
	f, app := restFleet(t, appYAML(`      - service: db
        command: ["/demoweb", "dump", "/data"]
        output: "(?m)^marker$"
`))
	restic := testenv.Tool(t, "restic")
	f.mustSync()
	if code, out := f.syncd("backup", "--restic", restic); code != 0 {
		t.Fatalf("backup exit %d:\n%s", code, out)
	}
	// The data arrives after the backup: the run's volume is empty.
	dexec(t, app, "db", []byte("x"), "write", "/data/marker")
	before := containers(t, app)
	data := dexec(t, app, "db", nil, "dump", "/data")

	code, out := f.syncd("drill", "--app", app, "--restic", restic)
	if code != 1 {
		t.Fatalf("drill of an empty volume: exit %d, want 1:\n%s", code, out)
	}
	want := `FAIL verify[0] (db: /demoweb dump /data): exited 0, but its output does not match "(?m)^marker$" (no output)`
	if !strings.Contains(out, want) || !strings.Contains(out, "ok   healthchecks:") {
		t.Errorf("drill output lacks %q:\n%s", want, out)
	}
	if d := lastDrill(t, f, app); d == nil || d.Result != status.DrillFailed || !strings.Contains(d.Detail, "verify[0]") {
		t.Errorf("last_drill = %+v, want failed naming verify[0]", d)
	}

	// A check that wants exit 0 of a command that exits 3.
	f.write("apps/"+app+"/app.yaml", appYAML(`      - service: db
        command: ["/demoweb", "cat", "/data/marker"]
`))
	f.commit()
	code, out = f.syncd("drill", "--app", app, "--restic", restic)
	if code != 1 {
		t.Fatalf("drill with a failing command: exit %d, want 1:\n%s", code, out)
	}
	want = "FAIL verify[0] (db: /demoweb cat /data/marker): exited 3, want 0 (first line: demoweb cat: open /data/marker: no such file or directory)"
	if !strings.Contains(out, want) {
		t.Errorf("drill output lacks %q:\n%s", want, out)
	}

	if after := containers(t, app); !equalMaps(before, after) {
		t.Errorf("the drills touched the app's containers: %v → %v", before, after)
	}
	if got := dexec(t, app, "db", nil, "dump", "/data"); !bytes.Equal([]byte(got), []byte(data)) {
		t.Error("the drills changed the app's volume")
	}
	if got := drillLeft(t, app); got != "" {
		t.Errorf("the failed drills left behind:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(f.state, "drills", app)); !os.IsNotExist(err) {
		t.Errorf("the drill directory is still there: %v", err)
	}
}

// TestDrillE2EThroughTheAgent: with an agent up, `syncd drill` is run by
// the agent (a restic of its own would not exist), and its verdict reaches
// the status document between cycles.
func TestDrillE2EThroughTheAgent(t *testing.T) {
	testenv.Docker(t)
	f, app := restFleet(t, dumpAndVolume+`  drill:
    verify:
      - service: db
        command: ["/demoweb", "cat", "/data/table"]
        output: "^rows$"
`)
	restic := testenv.Tool(t, "restic")
	a := startAgent(t, f, f.repo, "--restic", restic)
	waitStatus(t, f, a, "converged", func(h status.Host) bool { return h.State == status.Converged })
	dexec(t, app, "db", []byte("rows"), "write", "/data/table")
	if code, out := f.syncd("backup", "--app", app, "--restic", "/nonexistent/restic"); code != 0 {
		t.Fatalf("backup through the agent: exit %d:\n%s", code, out)
	}
	code, out := f.syncd("drill", "--app", app, "--restic", "/nonexistent/restic")
	if code != 0 || !strings.Contains(out, "ok   verify[0]") {
		t.Fatalf("drill through the agent: exit %d:\n%s\nagent log:\n%s", code, out, a.log)
	}
	waitStatus(t, f, a, "the drill's verdict", func(h status.Host) bool {
		for _, j := range h.Jobs {
			if j.Name == "backup/"+app && j.LastDrill != nil && j.LastDrill.Result == status.DrillPassed {
				return true
			}
		}
		return false
	})
	if got := drillLeft(t, app); got != "" {
		t.Errorf("the drill left behind:\n%s", got)
	}
}
