package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/syncd-dev/syncd/internal/host"
	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/status"
)

// gitFlags are the flags of a Git source.
type gitFlags struct {
	branch, tokenFile, sshKey, knownHosts, allowedSigners, pgpKeyring string
}

func (g *gitFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.branch, "branch", "main", "the `branch` of a Git --repo to follow")
	fs.StringVar(&g.tokenFile, "token-file", "", "https: a `file` holding the access token (never put it in the URL)")
	fs.StringVar(&g.sshKey, "ssh-key", "/etc/syncd/deploy_key", "ssh: the deploy key `file`")
	fs.StringVar(&g.knownHosts, "known-hosts", "/etc/syncd/known_hosts", "ssh: the known_hosts `file` the server's key must be in")
	fs.StringVar(&g.allowedSigners, "allowed-signers", "", "SSH allowed_signers `file`: only commits signed by these keys are applied")
	fs.StringVar(&g.pgpKeyring, "pgp-keyring", "", "armored OpenPGP public keys `file`: only commits signed by these keys are applied")
}

// newSource builds the source --repo names; a Git checkout lives in the
// state directory.
func newSource(repo, stateDir string, g gitFlags) (host.Source, error) {
	if !source.IsURL(repo) {
		if g.allowedSigners != "" || g.pgpKeyring != "" {
			return nil, fmt.Errorf("--allowed-signers and --pgp-keyring need a Git URL as --repo; %s is a directory", repo)
		}
		dir, err := filepath.Abs(repo)
		if err != nil {
			return nil, err
		}
		return source.Local{Dir: dir}, nil
	}
	src := &source.Git{URL: repo, Branch: g.branch, Dir: stateDir, TokenFile: g.tokenFile, SSHKeyFile: g.sshKey, KnownHostsFile: g.knownHosts}
	if g.allowedSigners != "" || g.pgpKeyring != "" {
		signers, err := source.LoadSigners(g.allowedSigners, g.pgpKeyring)
		if err != nil {
			return nil, err
		}
		src.Signers = signers
	}
	return src, nil
}

// statusWriter pushes the host's status to branch of a Git source; nil for
// a local directory or an empty branch (the status stays local).
func statusWriter(src host.Source, branch, hostName, stateDir string, log *slog.Logger) (*status.Writer, error) {
	gs, ok := src.(*source.Git)
	if !ok || branch == "" {
		return nil, nil
	}
	auth, err := gs.Auth()
	if err != nil {
		return nil, err
	}
	return &status.Writer{URL: gs.URL, Branch: branch, Auth: auth, Dir: filepath.Join(stateDir, "status-repo"),
		StateDir: stateDir, Host: hostName, Logger: log}, nil
}

// headCheckout checks the head of repo out into a temporary directory of
// its own (the state directory's checkout belongs to the agent or sync
// that may be running) and returns it with the head's commit; done
// removes it.
func headCheckout(ctx context.Context, repo string, g gitFlags) (dir, head string, done func(), err error) {
	tmp, err := os.MkdirTemp("", "syncd-checkout-")
	if err != nil {
		return "", "", nil, err
	}
	done = func() { os.RemoveAll(tmp) }
	src, err := newSource(repo, tmp, g)
	if err == nil {
		head, err = src.Head(ctx)
	}
	if err == nil {
		dir, err = src.Checkout(ctx, head)
	}
	if err != nil {
		done()
		return "", "", nil, err
	}
	return dir, head, done, nil
}
