package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/syncd-dev/syncd/internal/redact"
)

// Errors a caller tells apart. ErrBranchMoved is transient (poll again);
// ErrNoBranch, ErrHostKey, ErrUnsigned and ErrUntrusted are permanent: they
// need a new commit or a person.
var (
	// ErrNoBranch: the remote has no such branch (or is empty).
	ErrNoBranch = errors.New("no such branch")
	// ErrBranchMoved: the branch moved between Head and Checkout.
	ErrBranchMoved = errors.New("the branch moved")
	// ErrHostKey: an ssh host key is unknown or differs from known_hosts.
	ErrHostKey = errors.New("ssh host key not trusted")
)

// Default deadlines for a context that has none.
const (
	headTimeout     = time.Minute
	checkoutTimeout = 10 * time.Minute
	sshDialTimeout  = 30 * time.Second
)

// Git is a desired-state repository behind a Git URL: https or http (a
// token from TokenFile), ssh (ssh:// or scp-like user@host:path, with a
// deploy key and known_hosts), or file://. A plain local path is not a Git
// source: use Local.
type Git struct {
	URL string
	// Branch is followed; "" means "main".
	Branch string
	// Dir holds the working checkout at Dir/repo, a stable path, and the
	// temporary directories of the next one beside it.
	Dir string
	// TokenFile (https) holds a token, sent as the basic-auth password; it
	// is read on each use, so a rotated token needs no restart.
	TokenFile string
	// SSHKeyFile is the deploy key (unencrypted OpenSSH or PEM) and
	// KnownHostsFile the host keys it may talk to; an unknown or changed
	// host key is refused.
	SSHKeyFile, KnownHostsFile string
	// Signers, when not nil, must have signed a commit before it is
	// checked out.
	Signers *Signers

	mu sync.Mutex // one Checkout at a time
}

// IsURL reports whether repo names a remote Git repository (scheme://... or
// an scp-like user@host:path, the way git itself decides) rather than a
// local directory.
func IsURL(repo string) bool {
	if strings.Contains(repo, "://") {
		return true
	}
	ep, err := transport.NewEndpoint(repo)
	return err == nil && ep.Protocol == "ssh"
}

func (g *Git) branch() string {
	if g.Branch == "" {
		return "main"
	}
	return g.Branch
}

// endpoint parses the URL and refuses what is not a Git URL this type
// serves.
func (g *Git) endpoint() (*transport.Endpoint, error) {
	if !IsURL(g.URL) {
		return nil, fmt.Errorf("%q is not a Git URL (https://, ssh://, user@host:path or file://); a local directory is read as it is", g.displayURL())
	}
	ep, err := transport.NewEndpoint(g.URL)
	if err != nil {
		return nil, fmt.Errorf("parse repository URL %s: %w", g.displayURL(), g.redact(err))
	}
	switch ep.Protocol {
	case "https", "http", "ssh", "file":
		return ep, nil
	}
	return nil, fmt.Errorf("repository URL %s: unsupported scheme %q", g.displayURL(), ep.Protocol)
}

// Auth returns the credentials for this URL, for whoever else talks to
// the same remote (the status branch pushes with it): basic auth with the
// token for http(s) ("syncd" as the user name, which GitHub, GitLab and
// Gitea ignore), the deploy key with known_hosts checking for ssh, nil for
// file:// and for http(s) without a TokenFile.
func (g *Git) Auth() (transport.AuthMethod, error) {
	ep, err := g.endpoint()
	if err != nil {
		return nil, err
	}
	switch ep.Protocol {
	case "https", "http":
		if g.TokenFile == "" {
			return nil, nil
		}
		token, err := readToken(g.TokenFile)
		if err != nil {
			return nil, err
		}
		return &githttp.BasicAuth{Username: "syncd", Password: token}, nil
	case "ssh":
		return g.sshAuth(ep)
	}
	return nil, nil
}

func readToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		// The error names the file, never its content.
		return "", fmt.Errorf("read token file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("token file %s is empty", file)
	}
	if strings.ContainsAny(token, "\r\n") {
		return "", fmt.Errorf("token file %s holds more than one line", file)
	}
	return token, nil
}

// sshAuthMethod is go-git's public-key auth with a dial timeout: go-git
// dials ssh without the caller's context.
type sshAuthMethod struct {
	*gitssh.PublicKeys
}

func (a sshAuthMethod) ClientConfig() (*ssh.ClientConfig, error) {
	c, err := a.PublicKeys.ClientConfig()
	if err != nil {
		return nil, err
	}
	c.Timeout = sshDialTimeout
	return c, nil
}

func (g *Git) sshAuth(ep *transport.Endpoint) (transport.AuthMethod, error) {
	if g.SSHKeyFile == "" {
		return nil, fmt.Errorf("repository %s is ssh: it needs a deploy key file", g.displayURL())
	}
	if g.KnownHostsFile == "" {
		return nil, fmt.Errorf("repository %s is ssh: it needs a known_hosts file; host keys are never accepted blindly", g.displayURL())
	}
	user := ep.User
	if user == "" {
		user = "git"
	}
	keys, err := gitssh.NewPublicKeysFromFile(user, g.SSHKeyFile, "")
	if err != nil {
		return nil, fmt.Errorf("load deploy key %s: %w", g.SSHKeyFile, err)
	}
	cb, algos, err := hostKeyCheck(g.KnownHostsFile, ep)
	if err != nil {
		return nil, err
	}
	keys.HostKeyCallback = cb
	keys.HostKeyAlgorithms = algos
	return sshAuthMethod{keys}, nil
}

// hostKeyCheck checks host keys against file alone, with errors that say
// what to do, and the key algorithms to ask the server for: those known
// for the host, so that a host known by its ed25519 key is not taken for
// a changed one because it offered RSA first.
func hostKeyCheck(file string, ep *transport.Endpoint) (ssh.HostKeyCallback, []string, error) {
	if _, err := os.Stat(file); err != nil {
		return nil, nil, fmt.Errorf("known_hosts: %w", err)
	}
	db, err := gitssh.NewKnownHostsDb(file)
	if err != nil {
		return nil, nil, fmt.Errorf("read known_hosts %s: %w", file, err)
	}
	port := ep.Port
	if port <= 0 {
		port = 22
	}
	algos := db.HostKeyAlgorithms(net.JoinHostPort(ep.Host, strconv.Itoa(port)))
	check := db.HostKeyCallback()
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		if err == nil {
			return nil
		}
		fp := key.Type() + " " + ssh.FingerprintSHA256(key)
		var keyErr *knownhosts.KeyError
		var revoked *knownhosts.RevokedError
		switch {
		case errors.As(err, &keyErr) && len(keyErr.Want) == 0:
			return fmt.Errorf("%w: %s is not in %s (it offered %s); check the key out of band and add it", ErrHostKey, hostname, file, fp)
		case errors.As(err, &keyErr):
			return fmt.Errorf("%w: %s offered %s, which is not the key known for it (%s line %d): the host key changed or someone is in between; refusing",
				ErrHostKey, hostname, fp, keyErr.Want[0].Filename, keyErr.Want[0].Line)
		case errors.As(err, &revoked):
			return fmt.Errorf("%w: %s offered %s, which %s marks revoked", ErrHostKey, hostname, fp, file)
		}
		return fmt.Errorf("%w: %s: %v", ErrHostKey, hostname, err)
	}
	return cb, algos, nil
}

// Head asks the remote for the commit at the head of the branch: one
// ls-remote, nothing fetched, nothing written. It is the cheap poll.
func (g *Git) Head(ctx context.Context) (string, error) {
	ctx, cancel := withDefaultDeadline(ctx, headTimeout)
	defer cancel()
	if _, err := g.endpoint(); err != nil {
		return "", err
	}
	auth, err := g.Auth()
	if err != nil {
		return "", err
	}
	remote := gogit.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{g.URL}})
	refs, err := remote.ListContext(ctx, &gogit.ListOptions{Auth: auth})
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return "", fmt.Errorf("ls-remote %s: %w %s: the repository is empty", g.displayURL(), ErrNoBranch, g.branch())
	}
	if err != nil {
		return "", fmt.Errorf("ls-remote %s: %w", g.displayURL(), g.redact(err))
	}
	want := plumbing.NewBranchReferenceName(g.branch())
	for _, r := range refs {
		if r.Name() == want && r.Type() == plumbing.HashReference {
			return r.Hash().String(), nil
		}
	}
	return "", fmt.Errorf("ls-remote %s: %w %s", g.displayURL(), ErrNoBranch, g.branch())
}

// Checkout makes Dir/repo the tree of commit, the head of the branch that
// Head returned, and returns Dir/repo. Already there, it costs no network;
// otherwise it clones the branch shallow into a new directory beside
// Dir/repo, checks it is at commit (ErrBranchMoved if not: poll again),
// checks its signature when Signers is set, before a file of it is
// written, and only then swaps it in. On any error Dir/repo is left as it
// was. A force-pushed branch needs nothing special: each clone is fresh.
func (g *Git) Checkout(ctx context.Context, commit string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ctx, cancel := withDefaultDeadline(ctx, checkoutTimeout)
	defer cancel()
	if !plumbing.IsHash(commit) {
		return "", fmt.Errorf("checkout: %q is not a commit hash", commit)
	}
	want := plumbing.NewHash(commit)
	if g.Dir == "" {
		return "", errors.New("checkout: no directory to check out into")
	}
	if _, err := g.endpoint(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(g.Dir, 0o700); err != nil {
		return "", fmt.Errorf("checkout: %w", err)
	}
	live := filepath.Join(g.Dir, "repo")
	if err := recoverSwap(live); err != nil {
		return "", fmt.Errorf("checkout: clean up an interrupted swap: %w", err)
	}
	if r, at := checkedOutAt(live); at == want {
		// Verified again (it is local and cheap): the trusted keys may
		// have changed since it was checked out.
		if err := g.verify(r, want); err != nil {
			return "", err
		}
		return live, nil
	}

	auth, err := g.Auth()
	if err != nil {
		return "", err
	}
	next, err := os.MkdirTemp(g.Dir, "repo"+newSuffix)
	if err != nil {
		return "", fmt.Errorf("checkout: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(next)
		}
	}()
	// The head at depth 1, as almost every cycle wants; a commit behind
	// it (the newest one through the wave gate) needs the history.
	r, err := g.clone(ctx, next, auth, 1)
	if err != nil {
		return "", err
	}
	head, err := r.Head()
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", g.displayURL(), g.redact(err))
	}
	if head.Hash() != want {
		if err := os.RemoveAll(next); err != nil {
			return "", fmt.Errorf("checkout: %w", err)
		}
		if r, err = g.clone(ctx, next, auth, HistoryDepth); err != nil {
			return "", err
		}
		if _, err := r.CommitObject(want); err != nil {
			return "", fmt.Errorf("fetch %s: %w: %s is now at %s and %s is not among its last %d commits; poll again",
				g.displayURL(), ErrBranchMoved, g.branch(), head.Hash(), want, HistoryDepth)
		}
	}
	if err := g.verify(r, want); err != nil {
		return "", err
	}
	wt, err := r.Worktree()
	if err == nil {
		err = wt.Reset(&gogit.ResetOptions{Commit: want, Mode: gogit.HardReset})
	}
	if err != nil {
		return "", fmt.Errorf("check out %s: %w", want, err)
	}
	if err := swapIn(live, next); err != nil {
		return "", fmt.Errorf("check out %s: %w", want, err)
	}
	keep = true
	return live, nil
}

// HistoryDepth is how far back a host looks for a commit to apply: the
// wave gate may let through a commit older than the head, one that was
// perhaps never a branch tip (pushed together with newer ones).
const HistoryDepth = 64

// clone clones the branch into dir, depth commits deep, without checking
// out a file (nothing is written before the signature check).
func (g *Git) clone(ctx context.Context, dir string, auth transport.AuthMethod, depth int) (*gogit.Repository, error) {
	r, err := gogit.PlainCloneContext(ctx, dir, false, &gogit.CloneOptions{
		URL:           g.URL,
		Auth:          auth,
		RemoteName:    "origin",
		ReferenceName: plumbing.NewBranchReferenceName(g.branch()),
		SingleBranch:  true,
		Depth:         depth,
		Tags:          gogit.NoTags,
		NoCheckout:    true,
	})
	if err != nil {
		if errors.Is(err, gogit.NoMatchingRefSpecError{}) || errors.Is(err, transport.ErrEmptyRemoteRepository) {
			return nil, fmt.Errorf("fetch %s: %w %s", g.displayURL(), ErrNoBranch, g.branch())
		}
		return nil, fmt.Errorf("fetch %s: %w", g.displayURL(), g.redact(err))
	}
	return r, nil
}

// Ancestors returns head and the commits before it on the branch, newest
// first, following first parents, down to but not including until (the
// commit the host runs), at most HistoryDepth of them: the commits the
// wave gate may choose from. It costs one shallow fetch into memory.
func (g *Git) Ancestors(ctx context.Context, head, until string) ([]string, error) {
	ctx, cancel := withDefaultDeadline(ctx, checkoutTimeout)
	defer cancel()
	if !plumbing.IsHash(head) {
		return nil, fmt.Errorf("ancestors: %q is not a commit hash", head)
	}
	auth, err := g.Auth()
	if err != nil {
		return nil, err
	}
	r, err := gogit.CloneContext(ctx, memory.NewStorage(), nil, &gogit.CloneOptions{
		URL: g.URL, Auth: auth, RemoteName: "origin", ReferenceName: plumbing.NewBranchReferenceName(g.branch()),
		SingleBranch: true, Depth: HistoryDepth, Tags: gogit.NoTags, NoCheckout: true,
	})
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", g.displayURL(), g.redact(err))
	}
	c, err := r.CommitObject(plumbing.NewHash(head))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w: %s is not among the last %d commits of %s; poll again", g.displayURL(), ErrBranchMoved, head, HistoryDepth, g.branch())
	}
	var out []string
	for len(out) < HistoryDepth && c.Hash.String() != until {
		out = append(out, c.Hash.String())
		if c.NumParents() == 0 {
			break
		}
		// The shallow boundary: its parents were not fetched.
		if c, err = c.Parent(0); err != nil {
			break
		}
	}
	return out, nil
}

// verify checks the signature of commit in r when Signers is set.
func (g *Git) verify(r *gogit.Repository, commit plumbing.Hash) error {
	if g.Signers == nil {
		return nil
	}
	c, err := r.CommitObject(commit)
	if err != nil {
		return fmt.Errorf("read commit %s: %w", commit, err)
	}
	_, err = g.Signers.Verify(c)
	return err
}

// checkedOutAt opens the checkout at dir and returns the commit its HEAD
// names: the zero hash when there is none (or it is not a repository,
// which Checkout then replaces).
func checkedOutAt(dir string) (*gogit.Repository, plumbing.Hash) {
	r, err := gogit.PlainOpen(dir)
	if err != nil {
		return nil, plumbing.ZeroHash
	}
	head, err := r.Head()
	if err != nil {
		return nil, plumbing.ZeroHash
	}
	return r, head.Hash()
}

func withDefaultDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// displayURL is the URL as it may appear in errors and logs: a password,
// and for http(s) any user name (a token is often put there), replaced.
func (g *Git) displayURL() string { return redact.URL(g.URL) }

// secrets are the strings that must never leave this package in an error:
// the token, and whatever userinfo the URL carries by mistake.
func (g *Git) secrets() []string {
	var s []string
	if g.TokenFile != "" {
		if b, err := os.ReadFile(g.TokenFile); err == nil {
			if t := strings.TrimSpace(string(b)); t != "" {
				s = append(s, t)
			}
		}
	}
	if u, err := url.Parse(g.URL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			s = append(s, p)
		}
		if (u.Scheme == "http" || u.Scheme == "https") && len(u.User.Username()) >= 8 {
			s = append(s, u.User.Username())
		}
	}
	return s
}

// redact returns err with the URL's credentials and the token hidden
// (package redact: errors.Is still sees the original chain, nothing
// reaches its text), and for an authentication failure over http(s) which
// token was used.
func (g *Git) redact(err error) error {
	if err == nil {
		return nil
	}
	err = redact.New(nil, g.secrets()...).Err(err)
	isHTTP := strings.HasPrefix(g.URL, "http://") || strings.HasPrefix(g.URL, "https://")
	if isHTTP && (errors.Is(err, transport.ErrAuthenticationRequired) || errors.Is(err, transport.ErrAuthorizationFailed)) {
		if g.TokenFile == "" {
			return fmt.Errorf("%w (no token file is configured)", err)
		}
		return fmt.Errorf("%w (with the token from %s)", err, g.TokenFile)
	}
	return err
}
