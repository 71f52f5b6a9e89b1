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
	"github.com/syncd-dev/syncd/internal/source"
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
	b := &source.StatusBranches{Git: &source.Git{URL: url}}
	w := &status.Writer{Publisher: b, Host: "alpha", Dir: filepath.Join(t.TempDir(), "status"), StateDir: t.TempDir()}
	if _, err := w.Write(context.Background(), status.Host{Host: "alpha", State: status.Converged, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	keyless := map[string]string{"SOPS_AGE_KEY_FILE": "", "HOME": t.TempDir(), "XDG_CONFIG_HOME": ""}
	withKey := map[string]string{"SOPS_AGE_KEY_FILE": opKey}
	token := filepath.Join(t.TempDir(), "enroll_token")
	os.WriteFile(token, []byte(strings.Repeat("5a", 32)+"\n"), 0o600)
	notToken := filepath.Join(t.TempDir(), "not_a_token")
	os.WriteFile(notToken, []byte("tok-Echo-nope\n"), 0o600)
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no operator key", keyless, []string{"--recipient", hostRecip}, "no operator age key: SOPS_AGE_KEY_FILE is not set and "},
		{"not a recipient", withKey, []string{"--recipient", "age1notarecipient"}, `--recipient: "age1notarecipient" is not an age recipient`},
		{"a private key", withKey, []string{"--recipient", "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"}, "that is an age private key, not a recipient"},
		{"the status branch without a token", withKey, []string{"--status-repo", url}, "what it says of host alpha is trusted only with its enrolment token: pass --token FILE"},
		{"nothing published", withKey, []string{"--status-repo", url, "--token", token}, "host alpha's publication (hosts/alpha.yaml on syncd/status-alpha) is refused: its document publishes no age_recipient, status_key, enrolment_mac"},
		{"not a token", withKey, []string{"--status-repo", url, "--token", notToken}, "not a token made by `syncd init-host`"},
		{"no status", withKey, []string{"--status-repo", url, "--host", "beta", "--token", token}, "host beta has no status on syncd/status-beta yet"},
		{"no origin", withKey, []string{"--token", token}, "find the repository's origin"},
		{"remove without a marked recipient", withKey, []string{"--remove"}, "no recipient of host alpha is marked in its rule"},
	}
	for _, c := range cases {
		before := files(t, repo)
		args := append([]string{"enroll", "--repo", repo, "--host", "alpha"}, c.args...)
		code, out, errOut := runWith(c.env, args...)
		if code != exitFailure || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stderr %q, want %q", c.name, code, errOut, c.want)
		}
		if strings.Contains(out+errOut, "AGE-SECRET-KEY-1QQQ") || strings.Contains(out+errOut, "5a5a5a") || strings.Contains(out+errOut, "tok-Echo") {
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
	signers := filepath.Join(dir, "allowed_signers")
	os.WriteFile(signers, []byte("ops@example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINjlKEIDbWBSsTSmsnLaAsf/QNOXgMaDrmohMHBRCeE6\n"), 0o644)
	args := []string{"init-host", "--host", "alpha", "--repo", "ssh://git@git.example.org/ops/fleet.git", "--known-hosts", kh, "--out", out}

	// Without allowed signers it refuses and writes nothing; a file the
	// host would refuse is refused here.
	if code, _, stderr := runWith(nil, args...); code != exitFailure || !strings.Contains(stderr, "no --allowed-signers") {
		t.Errorf("init-host without --allowed-signers: exit %d %s", code, stderr)
	}
	bad := filepath.Join(dir, "bad_signers")
	os.WriteFile(bad, []byte("ops@example.org cert-authority ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINjlKEIDbWBSsTSmsnLaAsf/QNOXgMaDrmohMHBRCeE6\n"), 0o644)
	if code, _, stderr := runWith(nil, append(args, "--allowed-signers", bad)...); code != exitFailure || !strings.Contains(stderr, "--allowed-signers: ") {
		t.Errorf("init-host with a bad allowed_signers: exit %d %s", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a refused init-host wrote %s", out)
	}
	// --unsigned: a config without the gate, and the output says so.
	unsignedOut := filepath.Join(dir, "gamma")
	code, stdout, stderr := runWith(nil, "init-host", "--host", "gamma", "--repo", "ssh://git@git.example.org/ops/fleet.git", "--known-hosts", kh, "--out", unsignedOut, "--unsigned")
	if ud, _ := os.ReadFile(filepath.Join(unsignedOut, "user-data")); code != 0 || !strings.Contains(stdout, "UNSIGNED (--unsigned)") || strings.Contains(string(ud), "allowed-signers") {
		t.Errorf("init-host --unsigned: exit %d\n%s%s\n%s", code, stdout, stderr, ud)
	}

	args = append(args, "--allowed-signers", signers)
	code, stdout, stderr = runWith(nil, args...)
	if code != 0 {
		t.Fatalf("init-host: exit %d\n%s%s", code, stdout, stderr)
	}
	key, _ := os.ReadFile(filepath.Join(out, "deploy_key"))
	pub, _ := os.ReadFile(filepath.Join(out, "deploy_key.pub"))
	token, _ := os.ReadFile(filepath.Join(out, "enroll_token"))
	for _, want := range []string{strings.TrimSpace(string(pub)), "curl -fsSL", "syncd enroll --repo . --host alpha --token " + filepath.Join(out, "enroll_token"), "syncd status --fleet",
		"It applies only commits signed by a key of " + signers,
		// The host pushes to a branch of its own, the one the forge must leave unprotected.
		"pushes its status to the branch syncd/status-alpha)", "halves on syncd/status-alpha,"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("init-host output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout+stderr, "PRIVATE KEY") || strings.Contains(stdout+stderr, string(key[40:80])) || strings.Contains(stdout+stderr, strings.TrimSpace(string(token))) {
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
	if !strings.Contains(settings.String(), "ssh-key: /etc/syncd/deploy_key\n") || !strings.Contains(settings.String(), "allowed-signers: /etc/syncd/allowed_signers\n") ||
		!strings.Contains(settings.String(), "enroll-token: /etc/syncd/enroll_token\n") {
		t.Fatalf("syncd.yaml from the user-data:\n%s", settings.String())
	}
	code, _, stderr = runWith(nil, "agent", "--config", confFile, "--state-dir", t.TempDir(), "--age-key", filepath.Join(dir, "age.key"), "--listen", "")
	if code != exitFailure || strings.Contains(stderr, "unknown setting") || !strings.Contains(stderr, "/etc/syncd/allowed_signers") {
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
	https := []string{"init-host", "--host", "beta", "--repo", "https://git.example.org/ops/fleet.git", "--out", filepath.Join(dir, "beta"), "--allowed-signers", signers}
	if code, _, stderr := runWith(nil, https...); code != exitFailure || !strings.Contains(stderr, "is https: pass --token-file FILE") {
		t.Errorf("https without a token: exit %d %s", code, stderr)
	}
	code, stdout, stderr = runWith(nil, append(https, "--token-file", tok)...)
	if code != 0 || !strings.Contains(stdout, "with the token of "+tok+" in it") || strings.Contains(stdout+stderr, "tok-Hotel") ||
		!strings.Contains(stdout, "push the branch syncd/status-beta (not main") || !strings.Contains(stdout, "halves on syncd/status-beta,") {
		t.Errorf("https init-host: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestEnrollE2ESelfEnrolment: a host with no age key, given init-host's
// enrolment token, syncs from the Git server, makes its age key and its
// status key, runs its app without secrets, and publishes both keys with
// a MAC under the token. A publication forged by another host's key is
// refused by `syncd enroll --token`, with the reason; the genuine one,
// enrolled from a clone of a plain path (`git clone /srv/fleet.git`),
// shows both fingerprints, re-encrypts the secrets and writes the status
// key into host.yaml. The host's next cycle delivers the secret, deletes
// its copy of the token, and its signed document verifies. It applies
// commits unsigned (no allowed signers): its status says so.
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

	// init-host makes the enrolment token: one copy for the operator,
	// one in the user-data (here copied where cloud-init writes it).
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	os.WriteFile(kh, []byte("git.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPpXVcTAp/7HhC5E/XQBKC9d+s7kLw8yF6exLf5LYMNJ\n"), 0o644)
	if code, out, errOut := runWith(nil, "init-host", "--host", f.host, "--repo", "ssh://git@git.example.org/ops/fleet.git", "--known-hosts", kh, "--out", filepath.Join(dir, "out"), "--unsigned"); code != 0 {
		t.Fatalf("init-host: %d\n%s%s", code, out, errOut)
	}
	opToken := filepath.Join(dir, "out", "enroll_token")
	hostToken := filepath.Join(t.TempDir(), "etc-syncd", "enroll_token")
	os.MkdirAll(filepath.Dir(hostToken), 0o700)
	os.WriteFile(hostToken, []byte(readFile(t, opToken)), 0o600)

	hostKey := filepath.Join(t.TempDir(), "etc-syncd", "age.key")
	// One cycle by hand first: it makes the keys and says what to do.
	code, out, errOut := runWith(nil, "sync", "--repo", g.url, "--token-file", g.tokenFile, "--host", f.host, "--age-key", hostKey, "--state-dir", f.state, "--enroll-token", hostToken)
	if code != 0 || !strings.Contains(out, "host "+f.host+" at "+c1+" is enrolling") || !strings.Contains(out, app+": waits for the host's age key to be enrolled") {
		t.Fatalf("sync of a host without a key: exit %d\n%s%s", code, out, errOut)
	}
	a := startAgent(t, f, g.url, "--age-key", hostKey, "--poll", "200ms", "--token-file", g.tokenFile, "--enroll-token", hostToken)
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
	statusKey, _, err := status.OpenKey(f.state, f.host)
	if err != nil {
		t.Fatal(err)
	}
	if h.AgeRecipient != recipient || h.StatusKey != statusKey.Public() || h.EnrolmentMAC == "" || !h.UnsignedCommits ||
		!strings.Contains(h.Message, "syncd enroll --repo . --host "+f.host) || !strings.Contains(h.Message, app) {
		t.Errorf("status: recipient %q (key %q), status key %q (%q), MAC %q, unsigned commits %v, message %q", h.AgeRecipient, recipient, h.StatusKey, statusKey.Public(), h.EnrolmentMAC, h.UnsignedCommits, h.Message)
	}
	if got := containers(t, plain); !strings.HasSuffix(got[plain+"/web"], "running") {
		t.Errorf("the app without secrets does not run: %v", got)
	}
	if got := containers(t, app); len(got) != 0 {
		t.Errorf("the app with secrets runs before the key is enrolled: %v", got)
	}
	// The publication reaches the status branch.
	bare := filepath.Join(g.server.Root, "fleet.git")
	var genuine string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		out, _ := exec.Command("git", "-C", bare, "show", "syncd/status-"+f.host+":hosts/"+f.host+".yaml").Output()
		genuine = string(out)
		if strings.Contains(genuine, "age_recipient: "+recipient) && strings.Contains(genuine, "enrolment_mac: "+h.EnrolmentMAC) && strings.Contains(genuine, "state: enrolling") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the status branch never showed the publication:\n%s\nlog:\n%s", genuine, a.log)
		}
	}

	// Another host's key publishes in this host's name, on a status
	// branch of its own (so that the agent's next push cannot hide it):
	// its own recipient under the genuine MAC, and the genuine fields
	// signed with its key. Both are refused, naming why; nothing changes.
	forged := g.server.InitBare(t, "forged")
	malloryKey, _, err := status.OpenKey(t.TempDir(), "mallory")
	if err != nil {
		t.Fatal(err)
	}
	_, malloryRecip := secretstest.NewKey(t)
	mb := &source.StatusBranches{Git: &source.Git{URL: forged, TokenFile: g.tokenFile}}
	mallory := &status.Writer{Publisher: mb, Dir: t.TempDir(), Host: f.host, Key: malloryKey}
	operator := map[string]string{"SOPS_AGE_KEY_FILE": f.key}
	before := files(t, f.repo)
	if _, err := mallory.Write(context.Background(), status.Host{Host: f.host, State: status.Enrolling, AgeRecipient: malloryRecip, EnrolmentMAC: h.EnrolmentMAC}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runWith(operator, "enroll", "--repo", f.repo, "--host", f.host, "--token", opToken, "--status-repo", forged, "--token-file", g.tokenFile)
	if code != exitFailure || !strings.Contains(errOut, "host "+f.host+"'s publication (hosts/"+f.host+".yaml on syncd/status-"+f.host+") is refused: its enrolment_mac does not verify with this token") {
		t.Errorf("enroll of a forged recipient: exit %d\n%s%s", code, out, errOut)
	}
	sig, err := malloryKey.Sign([]byte(genuine + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(t.TempDir(), "mallory")
	authURL := strings.Replace(forged, "http://", "http://x:"+g.server.Token+"@", 1)
	testenv.Git(t, "", "clone", "-q", "-b", "syncd/status-"+f.host, authURL, work)
	os.WriteFile(filepath.Join(work, "hosts", f.host+".yaml"), []byte(genuine+"\n"), 0o644)
	os.WriteFile(filepath.Join(work, "hosts", f.host+".yaml.sig"), []byte(sig), 0o644)
	testenv.Git(t, work, "commit", "-qam", "status")
	testenv.Git(t, work, "push", "-q", "origin", "syncd/status-"+f.host)
	code, out, errOut = runWith(operator, "enroll", "--repo", f.repo, "--host", f.host, "--token", opToken, "--status-repo", forged, "--token-file", g.tokenFile)
	if code != exitFailure || !strings.Contains(errOut, "is refused: the document is not signed by the status key it publishes: signed by key "+malloryKey.Fingerprint()) {
		t.Errorf("enroll of a publication signed by another key: exit %d\n%s%s", code, out, errOut)
	}
	for p, v := range before {
		if files(t, f.repo)[p] != v {
			t.Errorf("a refused enroll changed %s", p)
		}
	}

	// The operator enrolls it from a clone of the bare repository's path:
	// its origin is that path, read with go-git.
	clone := filepath.Join(t.TempDir(), "clone")
	testenv.Git(t, "", "clone", "-q", bare, clone)
	code, out, errOut = runWith(operator, "enroll", "--repo", clone, "--host", f.host, "--token", opToken)
	if code != 0 || !strings.Contains(out, "hosts/"+f.host+"/secrets.sops.yaml: re-encrypted") ||
		!strings.Contains(out, "  age recipient  "+recipient+"\n  status key     ssh-ed25519 "+statusKey.Fingerprint()+"\n") ||
		!strings.Contains(out, "hosts/"+f.host+"/host.yaml: status_key set to "+statusKey.Fingerprint()) {
		t.Fatalf("enroll: exit %d\n%s%s", code, out, errOut)
	}
	if hostYAML := readFile(t, filepath.Join(clone, "hosts", f.host, "host.yaml")); !strings.Contains(hostYAML, "status_key: \""+statusKey.Public()+"\"\n") {
		t.Errorf("host.yaml after enroll:\n%s", hostYAML)
	}
	secretsFile := filepath.Join(clone, "hosts", f.host, "secrets.sops.yaml")
	cmd := exec.Command(sops, "decrypt", secretsFile)
	cmd.Env = append(os.Environ(), "SOPS_AGE_KEY_FILE="+hostKey)
	if plainText, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(plainText), f.secrets["api_token"]) {
		t.Fatalf("sops decrypt with the host's new key: %v\n%s", err, plainText)
	}
	testenv.Git(t, clone, "add", "-A")
	testenv.Git(t, clone, "commit", "-qm", "enroll "+f.host)
	testenv.Git(t, clone, "push", "-q", "origin", "HEAD:main")
	c2 := testenv.Git(t, clone, "rev-parse", "HEAD")
	h = waitStatus(t, f, a, "the enrolled host converged, its token deleted", func(h status.Host) bool {
		_, err := os.Stat(hostToken)
		return applied(c2)(h) && h.EnrolmentMAC == "" && os.IsNotExist(err)
	})
	web := strings.Fields(containers(t, app)[app+"/web"])
	if len(web) == 0 {
		t.Fatalf("the app with secrets does not run after enrolment")
	}
	if got := testenv.DockerCLI(t, "cp", web[0]+":/run/secrets/api_token", "-"); !strings.Contains(got, f.secrets["api_token"]) {
		t.Error("/run/secrets/api_token does not hold the secret after enrolment")
	}

	// Its document verifies against the key main now enrols; both views
	// warn that it applies unsigned commits.
	var fleetOut, fleetErr bytes.Buffer
	if code := run(context.Background(), []string{"status", "--fleet", "--repo", g.url, "--token-file", g.tokenFile, "--state-dir", filepath.Join(t.TempDir(), "none")}, os.Getenv, &fleetOut, &fleetErr); code != 0 ||
		!strings.Contains(fleetOut.String(), "converged  ") || !strings.Contains(fleetOut.String(), "verified\n") ||
		!strings.Contains(fleetOut.String(), "warning: "+f.host+" apply(s) commits without checking their signatures") {
		t.Errorf("status --fleet: exit %d\n%s%s", code, fleetOut.String(), fleetErr.String())
	}
	if code, out, _ := runWith(nil, "status", "--state-dir", f.state); code != 0 || !strings.Contains(out, "warning: this host applies commits without checking their signatures") ||
		!strings.Contains(out, "status key: "+statusKey.Public()) {
		t.Errorf("status: exit %d\n%s", code, out)
	}
	log := a.log.String()
	if !strings.Contains(log, "commits are applied without a signature check") || !strings.Contains(log, "enrolled: deleted the one-time enrolment token") {
		t.Errorf("the agent's log does not warn of unsigned commits or tell of the token's deletion:\n%s", log)
	}
	if strings.Contains(log, "AGE-SECRET-KEY") || strings.Contains(log, strings.TrimSpace(readFile(t, opToken))) {
		t.Errorf("the agent's log holds the private key or the token:\n%s", log)
	}
	secretstest.AssertNoLeak(t, "the agent's log", log, f.values()...)
	secretstest.AssertNoLeak(t, "enroll's output", out+errOut, f.values()...)
}
