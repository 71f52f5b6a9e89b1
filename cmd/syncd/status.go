package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/status"
)

func runStatus(ctx context.Context, c *cli, args []string) int {
	var g gitFlags
	fs := newFlags(c, "status", "[--state-dir DIR] [--json] | --fleet --repo URL [--status-branch BRANCH] [--json]")
	stateDir := fs.String("state-dir", "/var/lib/syncd", "this host's state `directory`")
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
		auth, err := (&source.Git{URL: *repo, TokenFile: g.tokenFile, SSHKeyFile: g.sshKey, KnownHostsFile: g.knownHosts}).Auth()
		if err == nil {
			var hosts []status.Host
			if hosts, err = status.ReadAll(ctx, *repo, *branch, auth); err == nil {
				view := status.View(hosts)
				if *asJSON {
					enc := json.NewEncoder(c.stdout)
					enc.SetIndent("", "  ")
					enc.Encode(view)
					return exitOK
				}
				view.Write(c.stdout, c.now())
				fmt.Fprintln(c.stdout)
				status.Table(c.stdout, hosts, c.now())
				return exitOK
			}
		}
		fmt.Fprintf(c.stderr, "syncd status --fleet: %v\n", err)
		return exitFailure
	}
	h, err := status.ReadLocal(*stateDir)
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd status: %v (has syncd run a cycle with --state-dir %s?)\n", err, *stateDir)
		return exitFailure
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(h)
		return exitOK
	}
	fmt.Fprintf(c.stdout, "host %s (wave %d): %s\n", h.Host, h.Wave, h.State)
	fmt.Fprintf(c.stdout, "desired %s, applied %s, updated %s ago\n", short(h.DesiredCommit), short(h.AppliedCommit), time.Since(h.UpdatedAt).Round(time.Second))
	if h.AgeRecipient != "" {
		fmt.Fprintf(c.stdout, "age recipient: %s\n", h.AgeRecipient)
	}
	if h.Message != "" {
		fmt.Fprintf(c.stdout, "to do: %s\n", h.Message)
	}
	if h.LastCycle.Error != "" {
		fmt.Fprintf(c.stdout, "last cycle: %s: %s\n", h.LastCycle.Result, h.LastCycle.Error)
	}
	for _, p := range h.Projects {
		line := fmt.Sprintf("  %-24s %-10s %-9s %s", p.Name, p.State, p.Health, short(p.Commit))
		if p.LastError != "" {
			line += "  " + p.LastError
		}
		fmt.Fprintln(c.stdout, line)
	}
	return exitOK
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
