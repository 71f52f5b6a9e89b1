package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/status"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// dataApp adds an app that keeps its data the way many official compose
// files do: a relative bind mount (./data), a read-only config tree from
// the repository (./conf) and a config file (./site.conf).
func (f *fleet) dataApp() string {
	name := testenv.ProjectName(f.t)
	f.write("apps/"+name+"/compose.yaml", `services:
  web:
    image: `+demoImage+`
    volumes:
      - ./data:/data
      - ./conf:/conf:ro
    configs:
      - source: site
        target: /etc/site.conf
`+healthy+`configs:
  site:
    file: ./site.conf
`)
	f.write("apps/"+name+"/conf/app.txt", "conf v1\n")
	f.write("apps/"+name+"/site.conf", "site v1\n")
	f.apps = append(f.apps, name)
	return name
}

// cp runs docker cp and returns its output ("-" as the destination gives
// the file as a tar stream, which holds the file's bytes).
func webID(t *testing.T, app string) string {
	t.Helper()
	c := containers(t, app)[app+"/web"]
	if !strings.HasSuffix(c, " running") {
		t.Fatalf("%s/web is not running: %q", app, c)
	}
	return strings.Fields(c)[0]
}

func writeInContainer(t *testing.T, id, path, content string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), filepath.Base(path))
	os.WriteFile(src, []byte(content), 0o644)
	testenv.DockerCLI(t, "cp", src, id+":"+path)
}

func readInContainer(t *testing.T, id, path string) string {
	t.Helper()
	return testenv.DockerCLI(t, "cp", id+":"+path, "-")
}

// TestSyncE2ERelativeBindMountKeepsDataAcrossCommits is the data-loss
// report: a container writes into ./data, a commit that changes only a
// README swaps in a new checkout, and the file must still be there.
func TestSyncE2ERelativeBindMountKeepsDataAcrossCommits(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	g := newGitRemote(t, f)
	app := f.dataApp()
	f.commit()
	c1 := g.push(t, f, "first", false)
	sync := func() string {
		t.Helper()
		code, out := f.syncd("sync", "--repo", g.url, "--token-file", g.tokenFile)
		if code != 0 {
			t.Fatalf("sync exit %d:\n%s", code, out)
		}
		return out
	}
	sync()
	id := webID(t, app)
	writeInContainer(t, id, "/data/written.txt", "what the container wrote")
	projectDir := filepath.Join(f.state, "projects", app)
	if data, err := os.ReadFile(filepath.Join(projectDir, "data", "written.txt")); err != nil || string(data) != "what the container wrote" {
		t.Fatalf("the container's write is not in the project directory: %q, %v", data, err)
	}
	if got := readInContainer(t, id, "/conf/app.txt"); !strings.Contains(got, "conf v1") {
		t.Fatalf("/conf/app.txt in the container: %q", got)
	}

	// A commit that touches nothing the app uses: nothing is recreated,
	// and the data and the config tree are still there.
	f.write("README.md", "docs only\n")
	g.push(t, f, "readme", false)
	if out := sync(); strings.Contains(out, app+": applied") {
		t.Errorf("a README commit re-applied %s:\n%s", app, out)
	}
	if webID(t, app) != id {
		t.Error("a README commit recreated the container")
	}
	if got := readInContainer(t, id, "/data/written.txt"); !strings.Contains(got, "what the container wrote") {
		t.Fatalf("after a README commit, /data/written.txt is gone: %q", got)
	}
	if got := readInContainer(t, id, "/conf/app.txt"); !strings.Contains(got, "conf v1") {
		t.Fatalf("after a README commit, /conf/app.txt is gone: %q", got)
	}

	// Changing the config tree recreates the service that mounts it, with
	// the new content; the data stays.
	f.write("apps/"+app+"/conf/app.txt", "conf v2\n")
	f.write("apps/"+app+"/site.conf", "site v2\n")
	g.push(t, f, "conf v2", false)
	code, plan := f.syncd("plan", "--repo", g.url, "--token-file", g.tokenFile)
	if code != 0 || !strings.Contains(plan, "web: recreate") || !strings.Contains(plan, "mount ./conf") || !strings.Contains(plan, "config site") {
		t.Errorf("plan of a config tree change: exit %d\n%s", code, plan)
	}
	sync()
	id2 := webID(t, app)
	if id2 == id {
		t.Error("a change of the mounted config tree did not recreate web")
	}
	for path, want := range map[string]string{"/conf/app.txt": "conf v2", "/etc/site.conf": "site v2", "/data/written.txt": "what the container wrote"} {
		if got := readInContainer(t, id2, path); !strings.Contains(got, want) {
			t.Errorf("%s in the new container: %q, want %q", path, got, want)
		}
	}

	// sync publishes its status to the status branch, as the agent does.
	bare := filepath.Join(g.server.Root, "fleet.git")
	doc, err := exec.Command("git", "-C", bare, "show", "syncd/status-"+f.host+":hosts/"+f.host+".yaml").CombinedOutput()
	if err != nil || !strings.Contains(string(doc), "name: "+app) {
		t.Errorf("sync did not publish the status to syncd/status: %v\n%s", err, doc)
	}
	// The status lists the data directory.
	h, err := status.ReadLocal(f.state)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range h.Projects {
		if p.Name == app {
			found = len(p.Data) == 1 && p.Data[0] == filepath.Join(projectDir, "data")
			if !found {
				t.Errorf("status data of %s: %v", app, p.Data)
			}
		}
	}
	if !found && !t.Failed() {
		t.Errorf("status has no project %s", app)
	}
	_ = c1
}

// TestSyncE2EUpgradeMovesDataOutOfTheOldCheckout runs the syncd of the last
// release before project directories (which resolved ./data inside its
// checkout), lets the container write, then upgrades: the new syncd's first
// cycle, with a new commit that swaps the checkout, must keep the data.
func TestSyncE2EUpgradeMovesDataOutOfTheOldCheckout(t *testing.T) {
	t.Parallel()
	old := buildSyncdAt(t, legacyRevision)
	f := newFleet(t)
	g := newGitRemote(t, f)
	app := f.dataApp()
	f.commit()
	f.write("syncd.yaml", "") // the old syncd knows no soak
	g.push(t, f, "first", false)
	cmd := exec.Command(old, "sync", "--repo", g.url, "--token-file", g.tokenFile, "--host", f.host, "--age-key", f.key, "--state-dir", f.state)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the old syncd's sync: %v\n%s", err, out)
	}
	id := webID(t, app)
	writeInContainer(t, id, "/data/written.txt", "written under the old syncd")
	if _, err := os.Stat(filepath.Join(f.state, "repo", "apps", app, "data", "written.txt")); err != nil {
		t.Fatalf("the old syncd did not keep data in its checkout, so this test shows nothing: %v", err)
	}

	f.write("README.md", "a commit that swaps the checkout\n")
	f.write("syncd.yaml", "defaults:\n  soak: 1s\n")
	g.push(t, f, "readme", false)
	code, out := f.syncd("sync", "--repo", g.url, "--token-file", g.tokenFile)
	if code != 0 {
		t.Fatalf("sync after the upgrade: exit %d\n%s", code, out)
	}
	id2 := webID(t, app)
	if got := readInContainer(t, id2, "/data/written.txt"); !strings.Contains(got, "written under the old syncd") {
		t.Fatalf("after the upgrade, /data/written.txt is lost: %q\n%s", got, out)
	}
	if data, err := os.ReadFile(filepath.Join(f.state, "projects", app, "data", "written.txt")); err != nil || !bytes.Contains(data, []byte("old syncd")) {
		t.Errorf("the data is not in the project directory: %q, %v", data, err)
	}
	// And it stays through the next commit.
	f.write("README.md", "another\n")
	g.push(t, f, "readme 2", false)
	if code, out := f.syncd("sync", "--repo", g.url, "--token-file", g.tokenFile); code != 0 {
		t.Fatalf("second sync after the upgrade: exit %d\n%s", code, out)
	}
	if got := readInContainer(t, webID(t, app), "/data/written.txt"); !strings.Contains(got, "written under the old syncd") {
		t.Fatalf("the next commit lost the migrated data: %q", got)
	}
}

// legacyRevision is the last commit whose syncd resolved relative bind
// mounts inside its checkout.
const legacyRevision = "bc5aed6"

// buildSyncdAt builds cmd/syncd as it was at rev, from this repository's
// history.
func buildSyncdAt(t *testing.T, rev string) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	archive := exec.Command("git", "-C", root, "archive", rev)
	tar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	tar.Stdin = pipe
	var stderr bytes.Buffer
	archive.Stderr = &stderr
	if err := tar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s (the test needs this repository's history; clone it whole): %v\n%s", rev, err, stderr.String())
	}
	if err := tar.Wait(); err != nil {
		t.Fatalf("tar: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "syncd-"+rev)
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(gobin, "build", "-trimpath", "-o", bin, "./cmd/syncd")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build syncd at %s: %v\n%s", rev, err, out)
	}
	return bin
}
