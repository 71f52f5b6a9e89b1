package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/escape"
	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/status"
)

func runStatus(ctx context.Context, c *cli, args []string) int {
	var g gitFlags
	fs := newFlags(c, "status", "[--state-dir DIR] [--json] | --fleet --repo URL [--status-branch BRANCH] [--json]")
	stateDir := fs.String("state-dir", "/var/lib/syncd", "this host's state `directory` (with --fleet: where the documents seen are remembered, when it exists)")
	asJSON := fs.Bool("json", false, "print this host's status document (with --fleet: the rollout view) as JSON")
	fleet := fs.Bool("fleet", false, "read every host's status from the status branch of --repo")
	repo := fs.String("repo", "", "the desired-state repository's Git `URL` (with --fleet)")
	branch := fs.String("status-branch", "syncd/status", "the status `branch`")
	g.register(fs)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *fleet {
		if !source.IsURL(*repo) {
			fmt.Fprintln(c.stderr, "syncd status --fleet: --repo must be the repository's Git URL")
			return exitUsage
		}
		if err := fleetStatus(ctx, c, *repo, *branch, *stateDir, *asJSON, g); err != nil {
			fmt.Fprintf(c.stderr, "syncd status --fleet: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	h, err := status.ReadLocal(*stateDir)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(c.stderr, "syncd status: %v: no cycle has run with --state-dir %s; give --state-dir the agent's (or sync's) state directory, or run `syncd sync` first\n", err, *stateDir)
		return exitFailure
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd status: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		if err := escape.JSON(c.stdout, h); err != nil {
			fmt.Fprintf(c.stderr, "syncd status: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	fmt.Fprintf(c.stdout, "host %s (wave %d): %s\n", h.Host, h.Wave, h.State)
	fmt.Fprintf(c.stdout, "desired %s, applied %s, updated %s ago\n", abbrev.Commit(h.DesiredCommit), abbrev.Commit(h.AppliedCommit), c.now().Sub(h.UpdatedAt).Round(time.Second))
	if h.AgeRecipient != "" {
		fmt.Fprintf(c.stdout, "age recipient: %s\n", h.AgeRecipient)
	}
	if h.StatusKey != "" {
		fmt.Fprintf(c.stdout, "status key: %s (%s)\n", h.StatusKey, status.Fingerprint(h.StatusKey))
	}
	if h.UnsignedCommits {
		fmt.Fprintln(c.stdout, unsignedWarning)
	}
	switch {
	case h.State == status.Applying:
		fmt.Fprintf(c.stdout, "now: %s\n", h.Message)
	case h.Message != "":
		fmt.Fprintf(c.stdout, "to do: %s\n", h.Message)
	}
	if h.LastCycle.Error != "" {
		fmt.Fprintf(c.stdout, "last cycle: %s: %s\n", h.LastCycle.Result, h.LastCycle.Error)
	}
	for _, p := range h.Projects {
		line := fmt.Sprintf("  %-24s %-10s %-9s %s", p.Name, p.State, p.Health, abbrev.Commit(p.Commit))
		if p.LastError != "" {
			line += "  " + p.LastError
		}
		if p.Suspended != nil {
			line += "  suspended " + p.Suspended.String() + "; `syncd resume --app " + p.Name + "` or remove `suspended:` from Git"
		}
		fmt.Fprintln(c.stdout, line)
	}
	return exitOK
}

// unsignedWarning is what `syncd status` says of a host without a
// signed-commit gate.
const unsignedWarning = "warning: this host applies commits without checking their signatures (no allowed signers): whoever can push the branch, a deploy key read from its user-data included, deploys here; set allowed-signers in its config"

// fleetStatus prints the rollout view of the status branch of repo,
// counting only the documents that verify against the status keys of
// the head of --branch (main, where review is change control).
func fleetStatus(ctx context.Context, c *cli, repo, branch, stateDir string, asJSON bool, g gitFlags) error {
	keys, err := statusKeys(ctx, repo, g)
	if err != nil {
		return err
	}
	git := &source.Git{URL: repo, TokenFile: g.tokenFile, SSHKeyFile: g.sshKey, KnownHostsFile: g.knownHosts}
	r := &status.Reader{Branches: &source.StatusBranches{Git: git, Name: branch}, Now: c.now}
	// On a host, the agent's memory of the documents it has seen tells a
	// replay; elsewhere, there is none.
	if st, err := os.Stat(stateDir); err == nil && st.IsDir() {
		r.Memory = filepath.Join(stateDir, "status-repo", "seen.json")
	}
	hosts, err := r.Read(ctx, keys)
	if err != nil && (len(hosts) == 0 || errors.Is(err, status.ErrNoBranch)) {
		return err
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd status --fleet: %v\n", err)
	}
	view := status.View(hosts, c.now())
	if asJSON {
		return escape.JSON(c.stdout, view)
	}
	view.Write(c.stdout, c.now())
	fmt.Fprintln(c.stdout)
	status.Table(c.stdout, hosts, c.now())
	return nil
}

// statusKeys are the hosts' status keys at the head of repo's branch: a
// checkout of its own, with the signed-commit gate when one is given.
func statusKeys(ctx context.Context, repo string, g gitFlags) (status.Keys, error) {
	dir, _, done, err := tempCheckout(ctx, repo, "syncd-status-", g)
	if err != nil {
		return nil, fmt.Errorf("read the hosts' status keys from %s: %w", displayRepo(repo), err)
	}
	defer done()
	return keysOf(dir)
}

// keysOf reads the hosts' status keys of the repository at dir. A
// repository with problems still gives the keys of the hosts it could
// read (a bad status_key is kept, and verifies nothing); a host it could
// not read is not listed, so its document does not count.
func keysOf(dir string) (status.Keys, error) {
	r, ps := desired.Load(dir)
	if r == nil {
		return nil, ps
	}
	keys := status.Keys{}
	for name, h := range r.Hosts {
		keys[name] = h.StatusKey
	}
	return keys, nil
}
