package host

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/syncd-dev/syncd/internal/agent"
	"github.com/syncd-dev/syncd/internal/reconcile"
)

// Source is where cycles get the desired state: a Git remote
// (source.Git) or a local directory (source.Local).
type Source interface {
	// Head is the revision the source is at now: for Git one ls-remote.
	Head(ctx context.Context) (string, error)
	// Checkout makes that revision's tree available and returns its path.
	Checkout(ctx context.Context, rev string) (string, error)
}

// Runtime runs a host's cycles: source, reconcile, report. The agent calls
// Cycle from its one loop goroutine; `syncd sync` calls it once; both get
// the same status on the status branch.
type Runtime struct {
	Host       string
	Source     Source
	Reconciler *reconcile.Reconciler
	// Reporter publishes the outcome of a cycle that was not quiet (the
	// status file, locally and on the status branch); may be nil.
	Reporter *Reporter
	// lastHead is the head of the last successful cycle: a poll that finds
	// it again costs the ls-remote only, unless the last cycle failed (its
	// status must be replaced once the failure is over).
	lastHead string
	failed   bool
	// enrolling is set after a cycle in which the host's key could not
	// open its secrets yet (self-enrolment).
	enrolling bool
}

// Cycle runs one cycle for reason (agent.ReasonPoll, ...). A poll that
// finds the head where the last good cycle left it costs one ls-remote.
func (r *Runtime) Cycle(ctx context.Context, reason string) (agent.Result, error) {
	start := time.Now()
	publish := func(head string, rep reconcile.Report, err error) {
		if r.Reporter != nil {
			r.Reporter.Report(ctx, head, rep, err, time.Since(start))
		}
	}
	head, err := r.Source.Head(ctx)
	if err != nil {
		err = fmt.Errorf("source: %w", err)
		r.failed = true
		publish("", reconcile.Report{}, err)
		return agent.Result{}, err
	}
	if reason == agent.ReasonPoll && head == r.lastHead && !r.failed {
		return agent.Result{Quiet: true, Commit: head}, nil
	}
	dir, err := r.Source.Checkout(ctx, head)
	if err != nil {
		err = fmt.Errorf("source: %w", err)
		r.failed = true
		publish(head, reconcile.Report{Commit: head}, err)
		return agent.Result{Commit: head}, err
	}
	rep, err := r.Reconciler.Sync(ctx, reconcile.Source{Dir: dir, Commit: head})
	r.enrolling = rep.SecretsPending
	publish(head, rep, err)
	res := result(rep)
	r.failed = err != nil
	if err == nil {
		r.lastHead = head
	}
	return res, err
}

// Enrolling reports whether the last cycle found the host's key not yet
// able to open its secrets (self-enrolment).
func (r *Runtime) Enrolling() bool { return r.enrolling }

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
