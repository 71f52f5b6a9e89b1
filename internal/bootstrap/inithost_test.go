package bootstrap_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/syncd-dev/syncd/internal/bootstrap"
	"github.com/syncd-dev/syncd/internal/testenv"
)

const knownHosts = "git.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPpXVcTAp/7HhC5E/XQBKC9d+s7kLw8yF6exLf5LYMNJ\n"

// allowedSigners is who signs main's commits.
const allowedSigners = "ops@example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINjlKEIDbWBSsTSmsnLaAsf/QNOXgMaDrmohMHBRCeE6\n"

func initHost(out string) bootstrap.InitHost {
	return bootstrap.InitHost{Host: "alpha", Repo: "git@git.example.org:ops/fleet.git", Out: out, KnownHosts: []byte(knownHosts),
		InstallURL: "https://example.org/v1.0.0/install.sh", InstallSHA256: strings.Repeat("ab", 32), AllowedSigners: []byte(allowedSigners)}
}

// userDataFiles is the user-data's write_files, path to permissions and
// content, and its runcmd.
func userDataFiles(t *testing.T, ud string) (map[string]string, [][]string) {
	t.Helper()
	var doc struct {
		WriteFiles []struct{ Path, Permissions, Content string } `yaml:"write_files"`
		Runcmd     [][]string                                    `yaml:"runcmd"`
	}
	if err := yaml.Unmarshal([]byte(ud), &doc); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range doc.WriteFiles {
		files[f.Path] = f.Permissions + "\n" + f.Content
	}
	return files, doc.Runcmd
}

// cloudInitSchema checks the user-data with Debian's cloud-init.
func cloudInitSchema(t *testing.T, file string) {
	t.Helper()
	ci, err := exec.LookPath("cloud-init")
	if err != nil {
		testenv.Missing(t, "this test needs Debian's cloud-init (apt-get install cloud-init; .ci/run does): %v", err)
	}
	if out, err := exec.Command(ci, "schema", "--config-file", file).CombinedOutput(); err != nil || !strings.Contains(string(out), "Valid") {
		t.Errorf("cloud-init schema: %v\n%s", err, out)
	}
}

func TestInitHostUserDataPassesCloudInitSchema(t *testing.T) {
	out := filepath.Join(t.TempDir(), "alpha")
	res, err := initHost(out).Run()
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{out: 0o700 | os.ModeDir, res.DeployKey: 0o600, res.DeployKey + ".pub": 0o644, res.UserData: 0o600, res.Token: 0o600} {
		if st, err := os.Stat(p); err != nil || st.Mode() != want {
			t.Errorf("%s: mode %v, want %v (%v)", p, st.Mode(), want, err)
		}
	}
	priv := must(os.ReadFile(res.DeployKey))
	signer, err := ssh.ParsePrivateKey(priv)
	if err != nil || signer.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("deploy key: %v", err)
	}
	if !strings.HasPrefix(res.PublicKey, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))) {
		t.Errorf("public key %q is not the deploy key's", res.PublicKey)
	}
	ud := string(must(os.ReadFile(res.UserData)))
	if !strings.HasPrefix(ud, "#cloud-config\n") || strings.Contains(ud, "AGE-SECRET-KEY") {
		t.Fatalf("user-data:\n%s", ud)
	}
	files, runcmd := userDataFiles(t, ud)
	token := string(must(os.ReadFile(res.Token)))
	if files["/etc/syncd/deploy_key"] != "0600\n"+string(priv) || files["/etc/syncd/known_hosts"] != "0644\n"+knownHosts ||
		files["/etc/syncd/allowed_signers"] != "0644\n"+allowedSigners || files["/etc/syncd/enroll_token"] != "0600\n"+token || len(token) != 65 {
		t.Errorf("write_files: %v", files)
	}
	if want := "0600\nrepo: git@git.example.org:ops/fleet.git\nbranch: main\nhost: alpha\nssh-key: /etc/syncd/deploy_key\nknown-hosts: /etc/syncd/known_hosts\nenroll-token: /etc/syncd/enroll_token\nallowed-signers: /etc/syncd/allowed_signers\n"; files["/etc/syncd/syncd.yaml"] != want {
		t.Errorf("syncd.yaml:\n%s\nwant\n%s", files["/etc/syncd/syncd.yaml"], want)
	}
	want := "curl -fsSL --retry 5 -o /run/syncd-install.sh 'https://example.org/v1.0.0/install.sh' && echo '" + strings.Repeat("ab", 32) + "  /run/syncd-install.sh' | sha256sum -c - && sh /run/syncd-install.sh"
	if len(runcmd) != 1 || strings.Join(runcmd[0], " ") != "sh -c "+want || res.RunCommand != want {
		t.Errorf("runcmd %q, want the one line %q", runcmd, want)
	}
	if res.UserDataSize > 16<<10 {
		t.Errorf("user-data is %d bytes; providers cap it at 16 KiB", res.UserDataSize)
	}
	cloudInitSchema(t, res.UserData)
}

// TestInitHostSignedCommitsByDefault: without allowed signers init-host
// refuses and writes nothing; with --unsigned the config has no
// signed-commit gate, says so, and passes the schema.
func TestInitHostSignedCommitsByDefault(t *testing.T) {
	out := filepath.Join(t.TempDir(), "alpha")
	o := initHost(out)
	o.AllowedSigners = nil
	if _, err := o.Run(); err == nil || !strings.Contains(err.Error(), "no --allowed-signers") || !strings.Contains(err.Error(), "--unsigned") {
		t.Errorf("no signers: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused init-host wrote %s", out)
	}
	both := initHost(out)
	both.Unsigned = true
	if _, err := both.Run(); err == nil || !strings.Contains(err.Error(), "give one") {
		t.Errorf("both: %v", err)
	}
	o.Unsigned = true
	res, err := o.Run()
	if err != nil {
		t.Fatal(err)
	}
	ud := string(must(os.ReadFile(res.UserData)))
	files, _ := userDataFiles(t, ud)
	if _, ok := files["/etc/syncd/allowed_signers"]; ok || strings.Contains(files["/etc/syncd/syncd.yaml"], "allowed-signers") || !strings.Contains(ud, "# UNSIGNED: made with --unsigned") {
		t.Errorf("an --unsigned user-data:\n%s", ud)
	}
	cloudInitSchema(t, res.UserData)
}

func TestInitHostRefusesToOverwriteKeys(t *testing.T) {
	out := filepath.Join(t.TempDir(), "alpha")
	if _, err := initHost(out).Run(); err != nil {
		t.Fatal(err)
	}
	key := must(os.ReadFile(filepath.Join(out, bootstrap.DeployKeyFile)))
	ud := must(os.ReadFile(filepath.Join(out, bootstrap.UserDataFile)))
	_, err := initHost(out).Run()
	if err == nil || !strings.Contains(err.Error(), "exists already; init-host never overwrites") {
		t.Fatalf("second init-host: %v", err)
	}
	if string(must(os.ReadFile(filepath.Join(out, bootstrap.DeployKeyFile)))) != string(key) || string(must(os.ReadFile(filepath.Join(out, bootstrap.UserDataFile)))) != string(ud) {
		t.Error("the second init-host changed the files")
	}
	// Only the user-data is there (the key was moved away): still refused.
	os.Remove(filepath.Join(out, bootstrap.DeployKeyFile))
	if _, err := initHost(out).Run(); err == nil {
		t.Error("init-host overwrote the user-data")
	}
}

func TestInitHostBadInput(t *testing.T) {
	for _, c := range []struct {
		edit func(*bootstrap.InitHost)
		want string
	}{
		{func(o *bootstrap.InitHost) { o.Repo = "https://git.example.org/fleet.git" }, "pass --token-file"},
		{func(o *bootstrap.InitHost) { o.Repo = "git.example.org/fleet.git" }, "must be ssh://"},
		{func(o *bootstrap.InitHost) { o.Host = "Alpha Host" }, "--host"},
		{func(o *bootstrap.InitHost) { o.KnownHosts = nil }, "--known-hosts"},
		{func(o *bootstrap.InitHost) { o.KnownHosts = []byte("git.example.org not-a-key\n") }, "not a known_hosts file"},
	} {
		out := filepath.Join(t.TempDir(), "x")
		o := initHost(out)
		c.edit(&o)
		if _, err := o.Run(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %q", o, err, c.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("a refused init-host wrote %s", out)
		}
	}
}

func TestScanHostKey(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
		return nil, errors.New("no")
	}}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { ssh.NewServerConn(c, cfg); c.Close() }()
		}
	}()
	line, fp, err := bootstrap.ScanHostKey(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if fp != ssh.FingerprintSHA256(signer.PublicKey()) {
		t.Errorf("fingerprint %s, want %s", fp, ssh.FingerprintSHA256(signer.PublicKey()))
	}
	_, hosts, key, _, _, err := ssh.ParseKnownHosts(line)
	if err != nil || string(key.Marshal()) != string(signer.PublicKey().Marshal()) || len(hosts) != 1 || !strings.HasPrefix(hosts[0], "[127.0.0.1]:") {
		t.Errorf("known_hosts line %q: %v %v", line, hosts, err)
	}
}

// TestInitHostHTTPSToken: an https repository gets the token, no deploy
// key; the user-data still passes the schema.
func TestInitHostHTTPSToken(t *testing.T) {
	out := filepath.Join(t.TempDir(), "alpha")
	o := bootstrap.InitHost{Host: "alpha", Repo: "https://git.example.org/ops/fleet.git", Out: out, Token: []byte("tok-Foxtrot-1q2w3e4r\n"), InstallURL: "https://example.org/install.sh",
		AllowedSigners: []byte(allowedSigners)}
	res, err := o.Run()
	if err != nil {
		t.Fatal(err)
	}
	if res.DeployKey != "" {
		t.Errorf("a deploy key for an https repository: %s", res.DeployKey)
	}
	if _, err := os.Stat(filepath.Join(out, bootstrap.DeployKeyFile)); !os.IsNotExist(err) {
		t.Errorf("deploy key file: %v", err)
	}
	ud := string(must(os.ReadFile(res.UserData)))
	if !strings.Contains(ud, "path: /etc/syncd/token\n      owner: root:root\n      permissions: \"0600\"\n      content: |\n        tok-Foxtrot-1q2w3e4r\n") ||
		!strings.Contains(ud, "token-file: /etc/syncd/token\n") || strings.Contains(ud, "ssh-key") {
		t.Errorf("user-data:\n%s", ud)
	}
	if st, err := os.Stat(res.Token); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("enrolment token %s: %v", res.Token, err)
	}
	cloudInitSchema(t, res.UserData)
	if _, err := o.Run(); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("second run: %v", err)
	}
	for _, bad := range []bootstrap.InitHost{
		{Host: "beta", Repo: o.Repo, Out: filepath.Join(t.TempDir(), "b"), Unsigned: true},
		{Host: "beta", Repo: o.Repo, Out: filepath.Join(t.TempDir(), "b"), Token: []byte("two\nlines\n"), Unsigned: true},
		{Host: "beta", Repo: "https://user:tok-Golf-5t6y7u8i@git.example.org/fleet.git", Out: filepath.Join(t.TempDir(), "b"), Token: []byte("t"), Unsigned: true},
	} {
		_, err := bad.Run()
		if err == nil || strings.Contains(err.Error(), "tok-Golf") || strings.Contains(err.Error(), "lines") {
			t.Errorf("%+v: %v", bad, err)
		}
		if _, err := os.Stat(bad.Out); !os.IsNotExist(err) {
			t.Errorf("a refused init-host wrote %s", bad.Out)
		}
	}
}
