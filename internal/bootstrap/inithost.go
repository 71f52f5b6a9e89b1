package bootstrap

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"gopkg.in/yaml.v3"

	"github.com/syncd-dev/syncd/internal/state"
)

// ReleaseURL is where releases are downloaded from by default: a release's
// files are ReleaseURL/<version>/<file>, and ReleaseURL/latest/download
// the newest.
const ReleaseURL = "https://github.com/syncd-dev/syncd/releases/download"

// InitHost is what `syncd init-host` makes for a new host.
type InitHost struct {
	Host   string
	Repo   string // ssh://… or user@host:path
	Branch string
	// Out is the directory the files go to (made 0700).
	Out string
	// KnownHosts is the known_hosts content for the Git server (ssh).
	KnownHosts []byte
	// Token is an access token for an https Repo, instead of a deploy key.
	Token []byte
	// InstallURL is the install.sh the host runs; InstallSHA256, when set,
	// is checked before it runs.
	InstallURL, InstallSHA256 string
	// AllowedSigners is an allowed_signers file (checked by the caller):
	// the SSH keys main's commits must be signed with. The user-data
	// carries it and the config points at it, so the host applies no
	// commit they did not sign: its Git credential, readable from the
	// metadata service by any process on the VM, cannot deploy. Required
	// unless Unsigned.
	AllowedSigners []byte
	// Unsigned writes a config without the signed-commit gate: the host
	// applies any commit pushed to its branch (and says so on every
	// cycle and in its status).
	Unsigned bool
}

// Host files init-host writes and the paths they get on the host.
const (
	DeployKeyFile      = "deploy_key"
	UserDataFile       = "user-data"
	hostConfigDir      = "/etc/syncd"
	hostDeployKey      = hostConfigDir + "/deploy_key"
	hostKnownHosts     = hostConfigDir + "/known_hosts"
	hostToken          = hostConfigDir + "/token"
	hostConfig         = hostConfigDir + "/syncd.yaml"
	hostAllowedSigners = hostConfigDir + "/allowed_signers"
	hostEnrolToken     = hostConfigDir + "/" + TokenFile
)

// InitResult is what the operator is told.
type InitResult struct {
	DeployKey    string // the private key's file (0600); "" for an https repository
	PublicKey    string // authorized_keys form: add it to the repository with write access
	UserData     string // the file
	RunCommand   string // the one runcmd line
	UserDataSize int
	// Token is the enrolment token's file (0600): `syncd enroll --token`
	// checks the host's publication with it.
	Token string
}

// Run makes the host's ed25519 deploy key and user-data in o.Out. It
// refuses to overwrite any file that exists.
func (o InitHost) Run() (InitResult, error) {
	if err := checkHost(o.Host); err != nil {
		return InitResult{}, err
	}
	if err := o.checkSigners(); err != nil {
		return InitResult{}, err
	}
	if strings.HasPrefix(o.Repo, "https://") {
		return o.runToken()
	}
	if _, err := SSHAddress(o.Repo); err != nil {
		return InitResult{}, err
	}
	if len(bytes.TrimSpace(o.KnownHosts)) == 0 {
		return InitResult{}, errors.New("no known_hosts for the Git server: pass --known-hosts FILE, or let init-host scan it and confirm the fingerprint")
	}
	if _, _, _, _, _, err := ssh.ParseKnownHosts(o.KnownHosts); err != nil {
		return InitResult{}, fmt.Errorf("--known-hosts: not a known_hosts file: %v", err)
	}
	keyPath := filepath.Join(o.Out, DeployKeyFile)
	paths := []string{keyPath, keyPath + ".pub", filepath.Join(o.Out, UserDataFile), filepath.Join(o.Out, TokenFile)}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return InitResult{}, fmt.Errorf("%s exists already; init-host never overwrites a host's keys: use another --out, or remove the files if you mean to make new ones (and remove the old deploy key from the repository)", p)
		}
	}
	if err := os.MkdirAll(o.Out, 0o700); err != nil {
		return InitResult{}, err
	}
	secret, err := newToken()
	if err != nil {
		return InitResult{}, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return InitResult{}, err
	}
	comment := "syncd@" + o.Host
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return InitResult{}, err
	}
	privPEM := pem.EncodeToMemory(block)
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return InitResult{}, err
	}
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " " + comment
	run := o.runCommand()
	ud, err := o.userData([]writeFile{
		{Path: hostDeployKey, Owner: "root:root", Permissions: "0600", Content: string(privPEM)},
		{Path: hostKnownHosts, Owner: "root:root", Permissions: "0644", Content: string(o.KnownHosts)},
	}, [][2]string{{"ssh-key", hostDeployKey}, {"known-hosts", hostKnownHosts}}, run, secret)
	if err != nil {
		return InitResult{}, err
	}
	contents := [][]byte{privPEM, []byte(authorized + "\n"), ud, tokenText(secret)}
	modes := []os.FileMode{0o600, 0o644, 0o600, 0o600}
	for i, p := range paths {
		if err := state.CreateFile(p, contents[i], modes[i]); err != nil {
			return InitResult{}, err
		}
	}
	return InitResult{DeployKey: keyPath, PublicKey: authorized, UserData: paths[2], RunCommand: run, UserDataSize: len(ud), Token: paths[3]}, nil
}

// checkSigners refuses a config without the signed-commit gate unless it
// is asked for.
func (o InitHost) checkSigners() error {
	signers := len(bytes.TrimSpace(o.AllowedSigners)) > 0
	switch {
	case signers && o.Unsigned:
		return errors.New("--allowed-signers and --unsigned: give one")
	case !signers && !o.Unsigned:
		return errors.New("no --allowed-signers: the host's Git credential sits in its user-data, which any process on the VM (any container included) can read from the metadata service, and with it push main; pass --allowed-signers FILE (the SSH keys that sign main's commits, allowed_signers format), so the host applies only commits they signed, or --unsigned to apply any commit (the host warns about it on every cycle)")
	}
	return nil
}

// runCommand is the user-data's one runcmd line: fetch install.sh, check
// it when its sha256 is known, run it (it reads /etc/syncd/syncd.yaml).
func (o InitHost) runCommand() string {
	cmd := "curl -fsSL --retry 5 -o /run/syncd-install.sh " + shellQuote(o.InstallURL)
	if o.InstallSHA256 != "" {
		cmd += " && echo " + shellQuote(o.InstallSHA256+"  /run/syncd-install.sh") + " | sha256sum -c -"
	}
	return cmd + " && sh /run/syncd-install.sh"
}

type writeFile struct {
	Path        string `yaml:"path"`
	Owner       string `yaml:"owner"`
	Permissions string `yaml:"permissions"`
	Content     string `yaml:"content"`
}

// runToken is Run for an https repository: the host gets o.Token, no
// deploy key.
func (o InitHost) runToken() (InitResult, error) {
	token := strings.TrimSpace(string(o.Token))
	if token == "" || strings.ContainsAny(token, "\r\n") {
		return InitResult{}, fmt.Errorf("--repo %s is https: pass --token-file FILE with one access token (scoped to this repository, write access for the status branch); or use an ssh URL and a deploy key", redactURL(o.Repo))
	}
	if u, err := url.Parse(o.Repo); err != nil || u.User != nil {
		return InitResult{}, errors.New("--repo: put no credentials in the URL; the token goes in --token-file")
	}
	p, tp := filepath.Join(o.Out, UserDataFile), filepath.Join(o.Out, TokenFile)
	for _, f := range []string{p, tp} {
		if _, err := os.Lstat(f); err == nil {
			return InitResult{}, fmt.Errorf("%s exists already; init-host never overwrites a host's files: use another --out, or remove it if you mean to make a new one", f)
		}
	}
	secret, err := newToken()
	if err != nil {
		return InitResult{}, err
	}
	run := o.runCommand()
	ud, err := o.userData([]writeFile{{Path: hostToken, Owner: "root:root", Permissions: "0600", Content: token + "\n"}},
		[][2]string{{"token-file", hostToken}}, run, secret)
	if err != nil {
		return InitResult{}, err
	}
	if err := os.MkdirAll(o.Out, 0o700); err != nil {
		return InitResult{}, err
	}
	if err := state.CreateFile(p, ud, 0o600); err != nil {
		return InitResult{}, err
	}
	if err := state.CreateFile(tp, tokenText(secret), 0o600); err != nil {
		return InitResult{}, err
	}
	return InitResult{UserData: p, RunCommand: run, UserDataSize: len(ud), Token: tp}, nil
}

// userData is the #cloud-config: files (credentials, the allowed signers,
// the enrolment token) and syncd.yaml with the repository, the host and
// settings, then the one runcmd line.
func (o InitHost) userData(files []writeFile, extra [][2]string, run string, secret []byte) ([]byte, error) {
	branch := o.Branch
	if branch == "" {
		branch = "main"
	}
	files = append(files, writeFile{Path: hostEnrolToken, Owner: "root:root", Permissions: "0600", Content: string(tokenText(secret))})
	extra = append(extra, [2]string{"enroll-token", hostEnrolToken})
	if !o.Unsigned {
		files = append(files, writeFile{Path: hostAllowedSigners, Owner: "root:root", Permissions: "0644", Content: string(o.AllowedSigners)})
		extra = append(extra, [2]string{"allowed-signers", hostAllowedSigners})
	}
	settings := &yaml.Node{Kind: yaml.MappingNode}
	for _, kv := range append([][2]string{{"repo", o.Repo}, {"branch", branch}, {"host", o.Host}}, extra...) {
		settings.Content = append(settings.Content, scalar(kv[0]), scalar(kv[1]))
	}
	cfg, err := yaml.Marshal(settings)
	if err != nil {
		return nil, err
	}
	doc := struct {
		WriteFiles []writeFile `yaml:"write_files"`
		Runcmd     [][]string  `yaml:"runcmd"`
	}{
		WriteFiles: append(files, writeFile{Path: hostConfig, Owner: "root:root", Permissions: "0600", Content: string(cfg)}),
		Runcmd:     [][]string{{"sh", "-c", run}},
	}
	body, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("#cloud-config\n")
	fmt.Fprintf(&b, "# syncd host %s, made by `syncd init-host` on %s.\n", o.Host, time.Now().UTC().Format(time.DateOnly))
	b.WriteString("# It holds the host's Git credential and its one-time enrolment token, and no age key: the host\n")
	b.WriteString("# makes its own keys on first start and publishes only their public halves, with a MAC under\n")
	b.WriteString("# the token (`syncd enroll --token` checks it, adds them to .sops.yaml and host.yaml).\n")
	if o.Unsigned {
		b.WriteString("# UNSIGNED: made with --unsigned; the host applies any commit pushed to its branch.\n")
	} else {
		b.WriteString("# The host applies only commits signed by a key of /etc/syncd/allowed_signers.\n")
	}
	b.Write(body)
	return b.Bytes(), nil
}

// SSHAddress returns host:port of the SSH server of a Git URL (ssh://… or
// the scp-like user@host:path).
func SSHAddress(repo string) (string, error) {
	if strings.Contains(repo, "://") {
		u, err := url.Parse(repo)
		if err != nil || u.Scheme != "ssh" || u.Hostname() == "" {
			return "", fmt.Errorf("--repo %s: init-host makes an SSH deploy key, so the URL must be ssh://[user@]host[:port]/path or user@host:path", redactURL(repo))
		}
		port := u.Port()
		if port == "" {
			port = "22"
		}
		return net.JoinHostPort(u.Hostname(), port), nil
	}
	at := strings.Index(repo, "@")
	colon := strings.Index(repo, ":")
	if at < 0 || colon < at || strings.ContainsAny(repo[:colon], "/") {
		return "", fmt.Errorf("--repo %s: init-host makes an SSH deploy key, so the URL must be ssh://[user@]host[:port]/path or user@host:path", repo)
	}
	return net.JoinHostPort(repo[at+1:colon], "22"), nil
}

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = url.User(u.User.Username())
		return u.String()
	}
	return s
}

// errScanned stops the handshake once the server showed its key.
var errScanned = errors.New("host key scanned")

// ScanHostKey connects to the SSH server at addr and returns its host key,
// as known_hosts lines and the key's SHA256 fingerprint, without logging
// in. The caller must have the operator confirm the fingerprint.
func ScanHostKey(ctx context.Context, addr string) (line []byte, fingerprint string, err error) {
	var key ssh.PublicKey
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("scan %s: %w", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	cfg := &ssh.ClientConfig{User: "git", HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
		key = k
		return errScanned
	}}
	_, _, _, err = ssh.NewClientConn(conn, addr, cfg)
	if key == nil {
		return nil, "", fmt.Errorf("scan %s: the server showed no host key: %v", addr, err)
	}
	host := addr
	if h, port, err := net.SplitHostPort(addr); err == nil && port == "22" {
		host = h
	}
	return []byte(knownhosts.Line([]string{knownhosts.Normalize(host)}, key) + "\n"), ssh.FingerprintSHA256(key), nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
