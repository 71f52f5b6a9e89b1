package main

import (
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

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

// gate is the wave gate of a Git source that pushes its status: the
// status branch is where the lower waves' reports are read. A local
// directory, or a status kept local, has no gate.
func gate(src host.Source, writer *status.Writer, now func() time.Time, log *slog.Logger) *host.Gate {
	gs, ok := src.(*source.Git)
	if !ok || writer == nil {
		return nil
	}
	return &host.Gate{Fleet: writer, History: gs, Now: now, Log: log.With("component", "rollout")}
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
	// The host signs its documents with a key of its own, made at its
	// first start; main enrols its public half (host.yaml status_key).
	key, made, err := status.OpenKey(stateDir, hostName)
	if err != nil {
		return nil, err
	}
	if made {
		log.Info("made the host's status key; its public half is published in the status for `syncd enroll`", "file", filepath.Join(stateDir, status.KeyFile), "status_key", key.Public())
	}
	return &status.Writer{URL: gs.URL, Branch: branch, Auth: auth, Dir: filepath.Join(stateDir, "status-repo"),
		StateDir: stateDir, Host: hostName, Logger: log, Key: key}, nil
}

// unsignedCommits reports whether src is a Git source that applies
// commits without checking their signatures.
func unsignedCommits(src host.Source) bool {
	gs, ok := src.(*source.Git)
	return ok && gs.Signers == nil
}
