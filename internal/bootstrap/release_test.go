package bootstrap_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

const releaseVersion = "v0.0.1-test"

var (
	releaseOnce sync.Once
	releaseDir  string
	releaseErr  error
)

// release runs `make release` once for the package's tests and returns
// its directory; the images are built when a Docker engine answers.
func release(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		testenv.Missing(t, "make release needs make: %v", err)
	}
	releaseOnce.Do(func() {
		dir, err := os.MkdirTemp("", "syncd-release-")
		if err != nil {
			releaseErr = err
			return
		}
		releaseDir = dir
		cmd := exec.Command("make", "-C", moduleRoot(t), "release", "VERSION="+releaseVersion, "OUT="+dir)
		if exec.Command("docker", "version").Run() != nil {
			cmd.Env = append(os.Environ(), "IMAGE=0")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			releaseErr = fmt.Errorf("make release: %v\n%s", err, out)
		}
	})
	if releaseErr != nil {
		t.Fatal(releaseErr)
	}
	return releaseDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if releaseDir != "" {
		os.RemoveAll(releaseDir)
		exec.Command("docker", "image", "rm", "-f", "syncd:"+releaseVersion+"-amd64", "syncd:"+releaseVersion+"-arm64").Run()
	}
	os.Exit(code)
}

func moduleRoot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func sha(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestReleaseBinariesAndChecksums(t *testing.T) {
	dir := release(t)
	sums, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	script, _ := os.ReadFile(filepath.Join(dir, "install.sh"))
	for _, f := range []string{"syncd_linux_amd64", "syncd_linux_arm64", "syncd.service", "install.sh"} {
		line := sha(t, filepath.Join(dir, f)) + "  " + f + "\n"
		if !strings.Contains(string(sums), line) {
			t.Errorf("SHA256SUMS lacks %q:\n%s", line, sums)
		}
		if strings.HasPrefix(f, "syncd_linux_") && !strings.Contains(string(script), "'"+sha(t, filepath.Join(dir, f))+"'") {
			t.Errorf("install.sh does not hold the sha256 of %s", f)
		}
	}
	if bytes.Contains(script, []byte("@SHA256")) || bytes.Contains(script, []byte("@UNIT@")) {
		t.Error("install.sh has a placeholder left")
	}
	fileCmd, err := exec.LookPath("file")
	if err != nil {
		testenv.Missing(t, "this test needs file(1) (apt-get install file): %v", err)
	}
	for arch, want := range map[string]string{"amd64": "x86-64", "arm64": "ARM aarch64"} {
		out, err := exec.Command(fileCmd, filepath.Join(dir, "syncd_linux_"+arch)).Output()
		if err != nil || !strings.Contains(string(out), "ELF 64-bit") || !strings.Contains(string(out), want) || !strings.Contains(string(out), "statically linked") {
			t.Errorf("syncd_linux_%s: %s %v", arch, out, err)
		}
	}
	// The binary of this machine runs; the other one under qemu-user when
	// it is installed.
	run := map[string][]string{runtime.GOARCH: {filepath.Join(dir, "syncd_linux_"+runtime.GOARCH), "version"}}
	if q, err := exec.LookPath("qemu-aarch64-static"); err == nil && runtime.GOARCH == "amd64" {
		run["arm64"] = []string{q, filepath.Join(dir, "syncd_linux_arm64"), "version"}
	} else if runtime.GOARCH == "amd64" {
		t.Log("no qemu-aarch64-static: the arm64 binary is checked by file(1) only (apt-get install qemu-user-static)")
	}
	for arch, argv := range run {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "syncd "+releaseVersion+" (") || !strings.Contains(string(out), "linux/"+arch+"; commit ") {
			t.Errorf("%s version: %v\n%s", arch, err, out)
		}
	}
}

// installer runs the release's install.sh into a temporary root.
type installer struct {
	t       *testing.T
	release string
	root    string
	bin     string // directory of the stand-in id and uname
	url     string
}

func newInstaller(t *testing.T) *installer {
	dir := release(t)
	in := &installer{t: t, release: dir, root: t.TempDir(), bin: t.TempDir()}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	in.url = srv.URL
	in.fake("id", "0")
	return in
}

// fake puts a stand-in for a command on the script's PATH that prints out.
func (in *installer) fake(name, out string) {
	if err := os.WriteFile(filepath.Join(in.bin, name), []byte("#!/bin/sh\necho "+out+"\n"), 0o755); err != nil {
		in.t.Fatal(err)
	}
}

func (in *installer) run(args ...string) (string, error) {
	in.t.Helper()
	argv := append([]string{filepath.Join(in.release, "install.sh"), "--root", in.root}, args...)
	cmd := exec.Command("sh", argv...)
	cmd.Env = append(os.Environ(), "PATH="+in.bin+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// tree is every file under the root, with its mode, size and time.
func (in *installer) tree() map[string]string {
	out := map[string]string{}
	filepath.WalkDir(in.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == in.root {
			return nil
		}
		st, _ := d.Info()
		rel, _ := filepath.Rel(in.root, p)
		out[rel] = fmt.Sprintf("%v %d %d", st.Mode(), st.Size(), st.ModTime().UnixNano())
		return nil
	})
	return out
}

func sameTree(a, b map[string]string) string {
	var diff []string
	for k, v := range a {
		if b[k] != v {
			diff = append(diff, fmt.Sprintf("%s: %q -> %q", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			diff = append(diff, fmt.Sprintf("%s: new %q", k, v))
		}
	}
	return strings.Join(diff, "\n")
}

func TestInstallAgainChangesNothingAndUninstallKeepsConfig(t *testing.T) {
	in := newInstaller(t)
	flags := []string{"--base-url", in.url, "--repo", "ssh://git@git.example.org/ops/fleet.git", "--host", "alpha", "--ssh-key", "/etc/syncd/deploy_key", "--known-hosts", "/etc/syncd/known_hosts"}
	out, err := in.run(flags...)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	for _, want := range []string{"checking that this runs as root", "picking the binary", "downloading " + in.url + "/syncd_linux_", "checking its sha256", "installing " + in.root + "/usr/local/bin/syncd", "writing " + in.root + "/etc/syncd/syncd.yaml", "syncd " + releaseVersion + " is installed"} {
		if !strings.Contains(out, want) {
			t.Errorf("install output lacks %q:\n%s", want, out)
		}
	}
	// Piped into sh, as `curl … | sh -s -- --help` does, it still helps.
	help := exec.Command("sh", "-s", "--", "--help")
	help.Stdin = bytes.NewReader(must(os.ReadFile(filepath.Join(in.release, "install.sh"))))
	if out, err := help.CombinedOutput(); err != nil || !strings.Contains(string(out), "Install syncd "+releaseVersion+" on this host") || !strings.Contains(string(out), "--uninstall") {
		t.Errorf("install.sh --help through a pipe: %v\n%s", err, out)
	}
	bin := filepath.Join(in.root, "usr/local/bin/syncd")
	if sha(t, bin) != sha(t, filepath.Join(in.release, "syncd_linux_"+runtime.GOARCH)) {
		t.Error("the installed binary is not the release's")
	}
	if got, _ := os.ReadFile(filepath.Join(in.root, "etc/systemd/system/syncd.service")); !bytes.Equal(got, must(os.ReadFile(filepath.Join(in.release, "syncd.service")))) {
		t.Error("the installed unit is not the release's")
	}
	conf := string(must(os.ReadFile(filepath.Join(in.root, "etc/syncd/syncd.yaml"))))
	if !strings.Contains(conf, "repo: \"ssh://git@git.example.org/ops/fleet.git\"\nhost: \"alpha\"\nssh-key: \"/etc/syncd/deploy_key\"\nknown-hosts: \"/etc/syncd/known_hosts\"\n") {
		t.Errorf("syncd.yaml:\n%s", conf)
	}
	modes := map[string]os.FileMode{"usr/local/bin/syncd": 0o755, "etc/syncd": 0o700 | fs.ModeDir, "etc/syncd/syncd.yaml": 0o600, "var/lib/syncd": 0o700 | fs.ModeDir, "etc/systemd/system/syncd.service": 0o644}
	for p, want := range modes {
		if st, err := os.Stat(filepath.Join(in.root, p)); err != nil || st.Mode() != want {
			t.Errorf("%s: mode %v, want %v (%v)", p, st.Mode(), want, err)
		}
	}
	// The installed binary and the settings it was given work together.
	if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil || !strings.Contains(string(out), releaseVersion) {
		t.Errorf("installed syncd version: %v %s", err, out)
	}

	before := in.tree()
	out, err = in.run(flags...)
	if err != nil || !strings.Contains(out, "is syncd "+releaseVersion+" already (sha256 matches): not downloading it") || !strings.Contains(out, "nothing changed") || strings.Contains(out, "install: downloading") {
		t.Fatalf("install again: %v\n%s", err, out)
	}
	if d := sameTree(before, in.tree()); d != "" {
		t.Errorf("install again changed files:\n%s", d)
	}
	// Without --repo/--host (cloud-init wrote syncd.yaml): kept as it is.
	if out, err := in.run("--base-url", in.url); err != nil || !strings.Contains(out, "keeping "+in.root+"/etc/syncd/syncd.yaml as it is") {
		t.Errorf("install without flags: %v\n%s", err, out)
	}
	if d := sameTree(before, in.tree()); d != "" {
		t.Errorf("install without flags changed files:\n%s", d)
	}

	os.WriteFile(filepath.Join(in.root, "etc/syncd/age.key"), []byte("AGE-SECRET-KEY-1..."), 0o600)
	out, err = in.run("--uninstall")
	if err != nil {
		t.Fatalf("uninstall: %v\n%s", err, out)
	}
	for _, p := range []string{"usr/local/bin/syncd", "etc/systemd/system/syncd.service"} {
		if _, err := os.Stat(filepath.Join(in.root, p)); !os.IsNotExist(err) {
			t.Errorf("uninstall left %s", p)
		}
	}
	for _, p := range []string{"etc/syncd/syncd.yaml", "etc/syncd/age.key", "var/lib/syncd"} {
		if _, err := os.Stat(filepath.Join(in.root, p)); err != nil {
			t.Errorf("uninstall removed %s: %v", p, err)
		}
	}
	if !strings.Contains(out, "kept "+in.root+"/etc/syncd") {
		t.Errorf("uninstall output:\n%s", out)
	}
}

func TestInstallRefusesAndChangesNothing(t *testing.T) {
	in := newInstaller(t)
	// A server whose binary was tampered with, and one that stops half-way.
	tampered := t.TempDir()
	for _, arch := range []string{"amd64", "arm64"} {
		b := must(os.ReadFile(filepath.Join(in.release, "syncd_linux_"+arch)))
		b[len(b)/2] ^= 0xff
		os.WriteFile(filepath.Join(tampered, "syncd_linux_"+arch), b, 0o755)
	}
	bad := httptest.NewServer(http.FileServer(http.Dir(tampered)))
	defer bad.Close()
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := must(os.ReadFile(filepath.Join(in.release, filepath.Base(r.URL.Path))))
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Write(b[:len(b)/2])
		// Returning with less than Content-Length: the connection is cut.
	}))
	defer cut.Close()

	cases := []struct {
		name  string
		setup func()
		args  []string
		want  string
	}{
		{"tampered binary", nil, []string{"--base-url", bad.URL}, "refused: " + bad.URL + "/syncd_linux_"},
		{"download stops half-way", nil, []string{"--base-url", cut.URL}, "download of " + cut.URL + "/syncd_linux_"},
		{"no server", nil, []string{"--base-url", "http://127.0.0.1:1"}, "failed"},
		{"architecture without a binary", func() { in.fake("uname", "riscv64") }, []string{"--base-url", in.url}, "no syncd binary for architecture riscv64"},
		{"not root", func() { in.fake("id", "1000") }, []string{"--base-url", in.url}, "this must run as root"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			os.RemoveAll(in.bin)
			os.MkdirAll(in.bin, 0o755)
			in.fake("id", "0")
			if c.setup != nil {
				c.setup()
			}
			before := in.tree()
			out, err := in.run(append(c.args, "--repo", "https://git.example.org/fleet.git", "--host", "alpha")...)
			if err == nil || !strings.Contains(out, c.want) || !strings.Contains(out, "nothing was changed") {
				t.Errorf("err %v, want the message %q and 'nothing was changed':\n%s", err, c.want, out)
			}
			if d := sameTree(before, in.tree()); d != "" {
				t.Errorf("a refused install changed files:\n%s", d)
			}
		})
	}
	// A refused upgrade leaves the installed syncd as it was too.
	os.RemoveAll(in.bin)
	os.MkdirAll(in.bin, 0o755)
	in.fake("id", "0")
	if out, err := in.run("--base-url", in.url); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(in.root, "usr/local/bin/syncd"), []byte("not syncd"), 0o755) // an old or damaged binary
	before := in.tree()
	if out, err := in.run("--base-url", bad.URL); err == nil || !strings.Contains(out, "refused") {
		t.Errorf("tampered upgrade: %v\n%s", err, out)
	}
	if d := sameTree(before, in.tree()); d != "" {
		t.Errorf("a refused upgrade changed files:\n%s", d)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestReleaseImages: the release's FROM scratch images hold syncd alone,
// for their architecture, and the amd64 one runs.
func TestReleaseImages(t *testing.T) {
	testenv.Docker(t)
	dir := release(t)
	version := releaseVersion
	sums := string(must(os.ReadFile(filepath.Join(dir, "SHA256SUMS"))))
	for _, arch := range []string{"amd64", "arm64"} {
		tar := "syncd_image_linux_" + arch + ".tar"
		if !strings.Contains(sums, sha(t, filepath.Join(dir, tar))+"  "+tar) {
			t.Errorf("SHA256SUMS lacks %s", tar)
		}
		tag := "syncd:" + version + "-" + arch
		testenv.DockerCLI(t, "image", "rm", "-f", tag) // what the release left: load it from the file
		testenv.DockerCLI(t, "load", "-q", "-i", filepath.Join(dir, tar))
		if got := testenv.DockerCLI(t, "image", "inspect", "--format", "{{.Os}}/{{.Architecture}} {{json .Config.Entrypoint}} {{index .Config.Labels \"org.opencontainers.image.version\"}}", tag); got != "linux/"+arch+` ["/syncd"] `+version {
			t.Errorf("%s: %s", tag, got)
		}
	}
	if runtime.GOARCH == "amd64" {
		out := testenv.DockerCLI(t, "run", "--rm", "syncd:"+version+"-amd64", "version")
		if !strings.HasPrefix(out, "syncd "+version+" (") {
			t.Errorf("docker run … version: %s", out)
		}
	}
}

// TestContainerComposeFile: deploy/compose.yaml is valid Compose, and
// says what to set when the version or the host name is missing.
func TestContainerComposeFile(t *testing.T) {
	compose := testenv.Tool(t, "docker-compose")
	file := filepath.Join(moduleRoot(t), "deploy", "compose.yaml")
	run := func(env ...string) (string, error) {
		cmd := exec.Command(compose, "-f", file, "config")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("SYNCD_VERSION=v1.2.3-amd64", "SYNCD_HOST=web-03")
	if err != nil {
		t.Fatalf("compose config: %v\n%s", err, out)
	}
	for _, want := range []string{"image: syncd:v1.2.3-amd64", "- web-03", "source: /var/run/docker.sock", "source: /etc/syncd", "source: /var/lib/syncd\n        target: /var/lib/syncd", "source: /var/lib/docker/volumes\n        target: /var/lib/docker/volumes\n        read_only: true"} {
		if !strings.Contains(out, want) {
			t.Errorf("compose config lacks %q:\n%s", want, out)
		}
	}
	if out, err := run("SYNCD_VERSION=v1.2.3-amd64", "SYNCD_HOST="); err == nil || !strings.Contains(out, "set SYNCD_HOST") {
		t.Errorf("without SYNCD_HOST: %v\n%s", err, out)
	}
}
