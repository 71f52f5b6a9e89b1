package source

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// sshGitServer is an SSH server on loopback, in process (x/crypto/ssh),
// that runs the real git-upload-pack for a client with one key, as a Git
// host's ssh endpoint would: no sshd needed.
type sshGitServer struct {
	addr    string
	hostKey ssh.PublicKey
}

func newSSHGitServer(t *testing.T, root string, clientKey ssh.PublicKey) *sshGitServer {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if c.User() == "git" && bytes.Equal(key.Marshal(), clientKey.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	cfg.AddHostKey(hostSigner)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go serveSSH(conn, cfg, root)
		}
	}()
	return &sshGitServer{addr: l.Addr().String(), hostKey: hostSigner.PublicKey()}
}

func serveSSH(conn net.Conn, cfg *ssh.ServerConfig, root string) {
	defer conn.Close()
	_, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go serveSession(ch, chReqs, root)
	}
}

func serveSession(ch ssh.Channel, reqs <-chan *ssh.Request, root string) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			req.Reply(req.Type == "env", nil)
			continue
		}
		var payload struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
			req.Reply(false, nil)
			return
		}
		name, arg, _ := strings.Cut(payload.Command, " ")
		if name != "git-upload-pack" && name != "git-receive-pack" {
			req.Reply(false, nil)
			return
		}
		req.Reply(true, nil)
		repo := filepath.Join(root, path.Clean("/"+strings.Trim(arg, "'")))
		cmd := exec.Command("git", strings.TrimPrefix(name, "git-"), repo)
		cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
		stdin, err := cmd.StdinPipe()
		status := uint32(1)
		if err == nil && cmd.Start() == nil {
			// Not waited for: it ends when the client closes the channel.
			go func() { io.Copy(stdin, ch); stdin.Close() }()
			if cmd.Wait() == nil {
				status = 0
			}
		}
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		return
	}
}

// deployKey writes a new ed25519 private key in OpenSSH format and
// returns its path and public key.
func deployKey(t *testing.T) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "deploy")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "deploy_key")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return p, sshPub
}

func knownHostsFile(t *testing.T, addr string, key ssh.PublicKey) string {
	t.Helper()
	return writeFile(t, knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)+"\n")
}

func TestSSHTransportWithKnownHosts(t *testing.T) {
	needGit(t)
	root := t.TempDir()
	testenv.Git(t, "", "init", "-q", "--bare", "-b", "main", filepath.Join(root, "fleet.git"))
	w := newWorkRepo(t)
	c1 := w.commit("one", map[string]string{"hosts/a/host.yaml": "apps: [web]\n"})
	w.push(filepath.Join(root, "fleet.git"))

	keyFile, pub := deployKey(t)
	srv := newSSHGitServer(t, root, pub)
	url := "ssh://git@" + srv.addr + "/fleet.git"
	ctx := context.Background()

	g := &Git{URL: url, Dir: t.TempDir(), SSHKeyFile: keyFile, KnownHostsFile: knownHostsFile(t, srv.addr, srv.hostKey)}
	head, err := g.Head(ctx)
	if err != nil || head != c1 {
		t.Fatalf("Head over ssh = %s, %v; want %s", head, err, c1)
	}
	dir, err := g.Checkout(ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	assertTree(t, dir, map[string]string{"hosts/a/host.yaml": "apps: [web]\n"})
	auth, err := g.Auth()
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := auth.(sshAuthMethod).ClientConfig(); err != nil || cfg.Timeout == 0 || cfg.User != "git" {
		t.Errorf("ssh client config: %+v, %v; want user git and a dial timeout", cfg, err)
	}

	// The host presents a key other than the one known for it.
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(otherPriv)
	changed := &Git{URL: url, Dir: t.TempDir(), SSHKeyFile: keyFile, KnownHostsFile: knownHostsFile(t, srv.addr, otherSigner.PublicKey())}
	_, err = changed.Head(ctx)
	if !errors.Is(err, ErrHostKey) || !strings.Contains(err.Error(), ssh.FingerprintSHA256(srv.hostKey)) || !strings.Contains(err.Error(), "changed") {
		t.Errorf("a changed host key: %v, want ErrHostKey naming the key offered", err)
	}
	t.Logf("changed host key: %v", err)

	// The host is not in known_hosts at all.
	unknown := &Git{URL: url, Dir: t.TempDir(), SSHKeyFile: keyFile, KnownHostsFile: knownHostsFile(t, "git.example.org:22", srv.hostKey)}
	_, err = unknown.Checkout(ctx, c1)
	if !errors.Is(err, ErrHostKey) || !strings.Contains(err.Error(), "not in") {
		t.Errorf("an unknown host: %v, want ErrHostKey saying it is not known", err)
	}
	t.Logf("unknown host: %v", err)

	// No known_hosts: refused before any connection.
	blind := &Git{URL: url, Dir: t.TempDir(), SSHKeyFile: keyFile}
	if _, err := blind.Head(ctx); err == nil || !strings.Contains(err.Error(), "known_hosts") {
		t.Errorf("no known_hosts file: %v", err)
	}

	// A deploy key the server does not know.
	otherKey, _ := deployKey(t)
	denied := &Git{URL: url, Dir: t.TempDir(), SSHKeyFile: otherKey, KnownHostsFile: g.KnownHostsFile}
	if _, err := denied.Head(ctx); err == nil || !strings.Contains(err.Error(), srv.addr) {
		t.Errorf("an unauthorized deploy key: %v", err)
	} else {
		t.Logf("unauthorized deploy key: %v", err)
	}
}

// TestHostKeyCallback checks the callback Auth hands to another package
// (the status writer), without a connection.
func TestHostKeyCallback(t *testing.T) {
	keyFile, _ := deployKey(t)
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	host, _ := ssh.NewSignerFromKey(hostPriv)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ssh.NewSignerFromKey(otherPriv)
	g := &Git{URL: "git@git.example.org:org/fleet.git", SSHKeyFile: keyFile,
		KnownHostsFile: knownHostsFile(t, "git.example.org:22", host.PublicKey())}
	auth, err := g.Auth()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := auth.(sshAuthMethod).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 22}
	if err := cfg.HostKeyCallback("git.example.org:22", addr, host.PublicKey()); err != nil {
		t.Errorf("the known key: %v", err)
	}
	if err := cfg.HostKeyCallback("git.example.org:22", addr, other.PublicKey()); !errors.Is(err, ErrHostKey) {
		t.Errorf("another key: %v, want ErrHostKey", err)
	}
	if err := cfg.HostKeyCallback("git.example.com:22", addr, host.PublicKey()); !errors.Is(err, ErrHostKey) {
		t.Errorf("an unknown host: %v, want ErrHostKey", err)
	}
	if len(cfg.HostKeyAlgorithms) == 0 || cfg.HostKeyAlgorithms[0] != ssh.KeyAlgoED25519 {
		t.Errorf("host key algorithms %v: want the known key's type first", cfg.HostKeyAlgorithms)
	}

	for name, g := range map[string]*Git{
		"file": {URL: "file:///srv/fleet.git"},
		"http": {URL: "https://git.example.org/fleet.git"},
	} {
		if a, err := g.Auth(); a != nil || err != nil {
			t.Errorf("%s without credentials: Auth = %v, %v; want none", name, a, err)
		}
	}
}
