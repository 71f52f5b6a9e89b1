package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/syncd-dev/syncd/internal/agent"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/source"
)

// desiredSource is where cycles get the desired state: a Git remote or a
// local directory.
type desiredSource interface {
	// Head is the revision the source is at now: for Git one ls-remote.
	Head(ctx context.Context) (string, error)
	// Checkout makes that revision's tree available and returns its path.
	Checkout(ctx context.Context, rev string) (string, error)
}

// localSource is a directory; its revision is a hash of its content.
type localSource struct{ source.Local }

func (l localSource) Head(context.Context) (string, error) { return l.Revision() }

func (l localSource) Checkout(context.Context, string) (string, error) { return l.Dir, nil }

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
func newSource(repo, stateDir string, g gitFlags) (desiredSource, error) {
	if !source.IsURL(repo) {
		if g.allowedSigners != "" || g.pgpKeyring != "" {
			return nil, fmt.Errorf("--allowed-signers and --pgp-keyring need a Git URL as --repo; %s is a directory", repo)
		}
		dir, err := filepath.Abs(repo)
		if err != nil {
			return nil, err
		}
		return localSource{source.Local{Dir: dir}}, nil
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

// runner runs cycles: source, reconcile, report. The agent calls cycle
// from its one loop goroutine; `syncd sync` calls it once.
type runner struct {
	host string
	src  desiredSource
	rec  *reconcile.Reconciler
	// report publishes the outcome of a cycle that was not quiet (the
	// status file, locally and on the status branch); may be nil.
	report func(ctx context.Context, head string, rep reconcile.Report, err error, took time.Duration)
	// lastHead is the head of the last successful cycle: a poll that finds
	// it again costs the ls-remote only, unless the last cycle failed (its
	// status must be replaced once the failure is over).
	lastHead string
	failed   bool
	// enrolling is set after a cycle in which the host's key could not
	// open its secrets yet (self-enrolment).
	enrolling bool
}

func (r *runner) cycle(ctx context.Context, reason string) (agent.Result, error) {
	start := time.Now()
	publish := func(head string, rep reconcile.Report, err error) {
		if r.report != nil {
			r.report(ctx, head, rep, err, time.Since(start))
		}
	}
	head, err := r.src.Head(ctx)
	if err != nil {
		err = fmt.Errorf("source: %w", err)
		r.failed = true
		publish("", reconcile.Report{}, err)
		return agent.Result{}, err
	}
	if reason == agent.ReasonPoll && head == r.lastHead && !r.failed {
		return agent.Result{Quiet: true, Commit: head}, nil
	}
	dir, err := r.src.Checkout(ctx, head)
	if err != nil {
		err = fmt.Errorf("source: %w", err)
		r.failed = true
		publish(head, reconcile.Report{Commit: head}, err)
		return agent.Result{Commit: head}, err
	}
	rep, err := r.rec.Sync(ctx, reconcile.Source{Dir: dir, Commit: head})
	r.enrolling = rep.SecretsPending
	publish(head, rep, err)
	res := result(rep)
	r.failed = err != nil
	if err == nil {
		r.lastHead = head
	}
	return res, err
}

// result turns a cycle's report into what the agent counts and prints.
func result(rep reconcile.Report) agent.Result {
	res := agent.Result{Commit: rep.Commit, Drift: rep.Plan.Drift(), Projects: map[string]int{}}
	var out strings.Builder
	if rep.Plan.Commit != "" {
		// A cycle stopped before its plan (an invalid repository) has none
		// to show: its error says why.
		rep.Plan.Write(&out)
	}
	for _, o := range rep.Outcomes {
		res.Projects[string(o.Result)]++
		if o.Result != reconcile.Unchanged {
			fmt.Fprintf(&out, "%s: %s\n", o.Project, o.Result)
		}
		switch o.Result {
		case reconcile.Applied, reconcile.Removed, reconcile.RolledBack, reconcile.TakenDown:
			res.Changed++
		}
	}
	for _, p := range rep.Pending {
		fmt.Fprintf(&out, "%s: waits for the host's age key to be enrolled (syncd enroll)\n", p)
	}
	res.Output = out.String()
	return res
}
