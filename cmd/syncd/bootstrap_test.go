package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/secrets"
	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
	"github.com/syncd-dev/syncd/internal/status"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// runWith runs syncd in-process with env on top of the process's.
func runWith(env map[string]string, args ...string) (int, string, string) {
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return os.Getenv(k)
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, getenv, &out, &errOut)
	return code, out.String(), errOut.String()
}

// files is every file of dir with its content, .git left out.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			out[p] = string(b)
		}
		return nil
	})
	return out
}

func TestEnrollErrorsChangeNothing(t *testing.T) {
	t.Parallel()
	repo := t.TempDir()
	opKey, opRecip := secretstest.NewKey(t)
	os.MkdirAll(filepath.Join(repo, "hosts/alpha"), 0o755)
	os.WriteFile(filepath.Join(repo, ".sops.yaml"), []byte("creation_rules:\n  - path_regex: ^hosts/alpha/\n    age: "+opRecip+"\n"), 0o644)
	secretstest.WriteFile(t, filepath.Join(repo, "hosts/alpha/secrets.sops.yaml"), opRecip, []byte("api_token: tok-Delta-55aQwErTy1\n"))
	_, hostRecip := secretstest.NewKey(t)

	// A status branch on which alpha reported without a recipient.
	srv := testenv.NewGitServer(t)
	url := srv.InitBare(t, "fleet")
	w := &status.Writer{URL: url, Host: "alpha", Dir: filepath.Join(t.TempDir(), "status"), StateDir: t.TempDir()}
	if _, err := w.Write(context.Background(), status.Host{Host: "alpha", State: status.Converged, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	keyless := map[string]string{"SOPS_AGE_KEY_FILE": "", "HOME": t.TempDir(), "XDG_CONFIG_HOME": ""}
	withKey := map[string]string{"SOPS_AGE_KEY_FILE": opKey}
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no operator key", keyless, []string{"--recipient", hostRecip}, "no operator age key: SOPS_AGE_KEY_FILE is not set and "},
		{"not a recipient", withKey, []string{"--recipient", "age1notarecipient"}, `--recipient: "age1notarecipient" is not an age recipient`},
		{"a private key", withKey, []string{"--recipient", "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"}, "that is an age private key, not a recipient"},
		{"no recipient in the status", withKey, []string{"--status-repo", url}, "host alpha's status (hosts/alpha.yaml on syncd/status) has no age_recipient"},
		{"no status", withKey, []string{"--status-repo", url, "--host", "beta"}, "host beta has no status on syncd/status yet"},
		{"no origin", withKey, nil, "find the repository's origin"},
		{"remove without a marked recipient", withKey, []string{"--remove"}, "no recipient of host alpha is marked in its rule"},
	}
	for _, c := range cases {
		before := files(t, repo)
		args := append([]string{"enroll", "--repo", repo, "--host", "alpha"}, c.args...)
		code, out, errOut := runWith(c.env, args...)
		if code != exitFailure || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stderr %q, want %q", c.name, code, errOut, c.want)
		}
		if strings.Contains(out+errOut, "AGE-SECRET-KEY-1QQQ") {
			t.Errorf("%s: the private key was echoed:\n%s", c.name, out+errOut)
		}
		after := files(t, repo)
		for p, v := range before {
			if after[p] != v {
				t.Errorf("%s: %s changed", c.name, p)
			}
		}
	}
}

func TestInitHostCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	os.WriteFile(kh, []byte("git.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPpXVcTAp/7HhC5E/XQBKC9d+s7kLw8yF6exLf5LYMNJ\n"), 0o644)
	out := filepath.Join(dir, "alpha")
	args := []string{"init-host", "--host", "alpha", "--repo", "ssh://git@git.example.org/ops/fleet.git", "--known-hosts", kh, "--out", out}
	code, stdout, stderr := runWith(nil, args...)
	if code != 0 {
		t.Fatalf("init-host: exit %d\n%s%s", code, stdout, stderr)
	}
	key, _ := os.ReadFile(filepath.Join(out, "deploy_key"))
	pub, _ := os.ReadFile(filepath.Join(out, "deploy_key.pub"))
	for _, want := range []string{strings.TrimSpace(string(pub)), "curl -fsSL", "syncd enroll --repo . --host alpha", "syncd status --fleet"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("init-host output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout+stderr, "PRIVATE KEY") || strings.Contains(stdout+stderr, string(key[40:80])) {
		t.Errorf("init-host printed the private key:\n%s", stdout)
	}
	// The agent takes the settings the user-data writes: every key is one
	// of its flags (it stops later, at the deploy key that is not there).
	ud, _ := os.ReadFile(filepath.Join(out, "user-data"))
	_, conf, _ := strings.Cut(string(ud), "path: /etc/syncd/syncd.yaml")
	_, conf, _ = strings.Cut(conf, "content: |\n")
	var settings strings.Builder
	for _, line := range strings.Split(conf, "\n") {
		if !strings.HasPrefix(line, "        ") {
			break
		}
		settings.WriteString(strings.TrimPrefix(line, "        ") + "\n")
	}
	confFile := filepath.Join(dir, "syncd.yaml")
	os.WriteFile(confFile, []byte(settings.String()), 0o600)
	if !strings.Contains(settings.String(), "ssh-key: /etc/syncd/deploy_key\n") {
		t.Fatalf("syncd.yaml from the user-data:\n%s", settings.String())
	}
	code, _, stderr = runWith(nil, "agent", "--config", confFile, "--state-dir", t.TempDir(), "--age-key", filepath.Join(dir, "age.key"), "--listen", "")
	if code != exitFailure || strings.Contains(stderr, "unknown setting") || !strings.Contains(stderr, "/etc/syncd/deploy_key") {
		t.Errorf("agent with the user-data's settings: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := runWith(nil, args...); code != exitFailure || !strings.Contains(stderr, "exists already") {
		t.Errorf("second init-host: exit %d %s", code, stderr)
	}
	if again, _ := os.ReadFile(filepath.Join(out, "deploy_key")); !bytes.Equal(again, key) {
		t.Error("the second init-host replaced the deploy key")
	}

	// https: the token goes into the user-data, never to the output.
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("tok-Hotel-0o9i8u7y\n"), 0o600)
	https := []string{"init-host", "--host", "beta", "--repo", "https://git.example.org/ops/fleet.git", "--out", filepath.Join(dir, "beta")}
	if code, _, stderr := runWith(nil, https...); code != exitFailure || !strings.Contains(stderr, "is https: pass --token-file FILE") {
		t.Errorf("https without a token: exit %d %s", code, stderr)
	}
	code, stdout, stderr = runWith(nil, append(https, "--token-file", tok)...)
	if code != 0 || !strings.Contains(stdout, "with the token of "+tok+" in it") || strings.Contains(stdout+stderr, "tok-Hotel") {
		t.Errorf("https init-host: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestEnrollE2ESelfEnrolment: a host with no age key syncs from the Git
// server, makes its key, runs its app without secrets, publishes its
// recipient; `syncd enroll` re-encrypts; the host's next cycle delivers
// the secret to its container.
func TestEnrollE2ESelfEnrolment(t *testing.T) {
	t.Parallel()
	sops := testenv.Tool(t, "sops")
	f := newFleet(t) // f.key is the operator's key here
	app := f.app()
	plain := testenv.ProjectName(t) + "-plain"
	f.write("apps/"+plain+"/compose.yaml", "services:\n  web:\n    image: "+demoImage+"\n    environment:\n      DEMO_MESSAGE: ${MSG}\n"+healthy)
	f.apps = append(f.apps, plain)
	f.write(".sops.yaml", "creation_rules:\n  - path_regex: ^hosts/"+f.host+"/\n    age: "+f.recip+"\n")
	f.commit()
	g := newGitRemote(t, f)
	testenv.Git(t, f.repo, "remote", "add", "origin", g.url)
	c1 := g.push(t, f, "a host whose key is not enrolled", false)

	hostKey := filepath.Join(t.TempDir(), "etc-syncd", "age.key")
	// One cycle by hand first: it makes the key and says what to do.
	code, out, errOut := runWith(nil, "sync", "--repo", g.url, "--token-file", g.tokenFile, "--host", f.host, "--age-key", hostKey, "--state-dir", f.state)
	if code != 0 || !strings.Contains(out, "host "+f.host+" at "+c1+" is enrolling") || !strings.Contains(out, app+": waits for the host's age key to be enrolled") {
		t.Fatalf("sync of a host without a key: exit %d\n%s%s", code, out, errOut)
	}
	a := startAgent(t, f, g.url, "--age-key", hostKey, "--poll", "200ms", "--token-file", g.tokenFile)
	h := waitStatus(t, f, a, "the host enrolling", func(h status.Host) bool { return h.State == status.Enrolling && h.DesiredCommit == c1 })
	st, err := os.Stat(hostKey)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the host's key: %v %v", st, err)
	}
	id, err := secrets.LoadIdentity(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	recipient := id.Recipients()[0]
	if h.AgeRecipient != recipient || !strings.Contains(h.Message, "syncd enroll --repo . --host "+f.host) || !strings.Contains(h.Message, app) {
		t.Errorf("status: recipient %q (key %q), message %q", h.AgeRecipient, recipient, h.Message)
	}
	if got := containers(t, plain); !strings.HasSuffix(got[plain+"/web"], "running") {
		t.Errorf("the app without secrets does not run: %v", got)
	}
	if got := containers(t, app); len(got) != 0 {
		t.Errorf("the app with secrets runs before the key is enrolled: %v", got)
	}
	for _, p := range h.Projects {
		if p.Name == app && p.State != status.Enrolling {
			t.Errorf("project %s: %+v", app, p)
		}
	}
	// The recipient reaches the status branch.
	bare := filepath.Join(g.server.Root, "fleet.git")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		out, _ := exec.Command("git", "-C", bare, "show", "syncd/status:hosts/"+f.host+".yaml").Output()
		if strings.Contains(string(out), "age_recipient: "+recipient) && strings.Contains(string(out), "state: enrolling") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the status branch never showed the recipient:\n%s\nlog:\n%s", out, a.log)
		}
	}

	// The operator enrolls it from the status branch of the origin.
	code, out, errOut = runWith(map[string]string{"SOPS_AGE_KEY_FILE": f.key}, "enroll", "--repo", f.repo, "--host", f.host, "--token-file", g.tokenFile)
	if code != 0 || !strings.Contains(out, "hosts/"+f.host+"/secrets.sops.yaml: re-encrypted") {
		t.Fatalf("enroll: exit %d\n%s%s", code, out, errOut)
	}
	secretsFile := filepath.Join(f.repo, "hosts", f.host, "secrets.sops.yaml")
	cmd := exec.Command(sops, "decrypt", secretsFile)
	cmd.Env = append(os.Environ(), "SOPS_AGE_KEY_FILE="+hostKey)
	if plainText, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(plainText), f.secrets["api_token"]) {
		t.Fatalf("sops decrypt with the host's new key: %v\n%s", err, plainText)
	}
	c2 := g.push(t, f, "enroll "+f.host, false)
	waitStatus(t, f, a, "the enrolled host converged", applied(c2))
	web := strings.Fields(containers(t, app)[app+"/web"])
	if len(web) == 0 {
		t.Fatalf("the app with secrets does not run after enrolment")
	}
	if got := testenv.DockerCLI(t, "cp", web[0]+":/run/secrets/api_token", "-"); !strings.Contains(got, f.secrets["api_token"]) {
		t.Error("/run/secrets/api_token does not hold the secret after enrolment")
	}
	log := a.log.String()
	if strings.Contains(log, "AGE-SECRET-KEY") {
		t.Errorf("the agent's log holds the private key:\n%s", log)
	}
	secretstest.AssertNoLeak(t, "the agent's log", log, f.values()...)
	secretstest.AssertNoLeak(t, "enroll's output", out+errOut, f.values()...)
}
