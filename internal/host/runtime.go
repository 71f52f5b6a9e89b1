package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/syncd-dev/syncd/internal/agent"
	"github.com/syncd-dev/syncd/internal/jobs/probe"
	"github.com/syncd-dev/syncd/internal/notify"
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

// Runtime runs a host's cycles: source, gate, reconcile, report. The agent
// calls Cycle from its one loop goroutine; `syncd sync` calls it once; both
// get the same status on the status branch.
type Runtime struct {
	Host       string
	Source     Source
	Reconciler *reconcile.Reconciler
	// Reporter publishes the outcome of a cycle that was not quiet (the
	// status file, locally and on the status branch); may be nil.
	Reporter *Reporter
	// Jobs, when set, are given what each cycle rendered (their schedules
	// and the apps they back up follow it).
	Jobs *Jobs
	// Notify, when set, is told the cycle's state changes (failed and
	// recovered, rolled back, drift); its sinks follow syncd.yaml.
	Notify *notify.Notifier
	// Probes, when set, is given the projects each cycle rendered.
	Probes *probe.Monitor
	// Gate, when set, holds a head back until the lower waves run it
	// (needs a Git source and the status branch); nil applies every head.
	Gate *Gate
	// lastHead is the head of the last successful cycle that applied it:
	// a poll that finds it again costs the ls-remote only, unless the last
	// cycle failed (its status must be replaced once the failure is over).
	// A head held back by the gate is not lastHead: each poll asks again.
	lastHead string
	failed   bool
	// enrolling is set after a cycle in which the host's key could not
	// open its secrets yet (self-enrolment).
	enrolling bool
	// waves are the fleet's waves at the last head gated.
	waves *waves
	// applied is the commit the host runs, when no Reporter remembers it.
	applied string
	// rollout is the gate's state after the last cycle ("", waiting,
	// halted) and verdict the text of its verdict.
	rollout, verdict string
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
	fail := func(head string, err error) (agent.Result, error) {
		err = fmt.Errorf("source: %w", err)
		r.failed = true
		publish(head, reconcile.Report{Commit: head}, err)
		r.events(reconcile.Report{Commit: head}, err)
		return agent.Result{Commit: head}, err
	}
	head, err := r.Source.Head(ctx)
	if err != nil {
		return fail("", err)
	}
	if reason == agent.ReasonPoll && head == r.lastHead && !r.failed {
		return agent.Result{Quiet: true, Commit: head}, nil
	}
	applied := r.appliedCommit()
	target := head
	var v *verdict
	if r.Gate != nil && head != applied {
		if v, err = r.gate(ctx, head, applied); err != nil {
			return fail(head, err)
		}
		if v != nil {
			target = v.target
		}
	}
	was := r.rollout
	r.rollout = v.state()
	if r.Reporter != nil {
		r.Reporter.rollout = v.document()
	}
	if v.state() != "" && (target == "" || target == applied) {
		// Nothing new is through the gate. A poll touches nothing; any
		// other cycle heals what the host runs.
		changed := v.textOr() != r.verdict || r.rollout != was
		r.verdict = v.textOr()
		if reason == agent.ReasonPoll || applied == "" {
			if changed || r.failed {
				publish(head, reconcile.Report{Commit: applied, Wave: r.waves.wave}, nil)
			}
			r.failed = false
			ro := rolloutResult(v, was, applied)
			r.rolloutEvent(ro)
			return agent.Result{Quiet: !changed, Commit: applied, Output: v.message(r.Host, applied), Rollout: ro}, nil
		}
		target = applied
	}
	r.verdict = v.textOr()
	dir, err := r.Source.Checkout(ctx, target)
	if err != nil {
		return fail(target, err)
	}
	rep, err := r.Reconciler.Sync(ctx, reconcile.Source{Dir: dir, Commit: target})
	r.enrolling = rep.SecretsPending
	if rep.Rendered != nil {
		r.Jobs.Update(rep.Rendered)
		r.Notify.SetSinks(sinks(rep.Rendered, r.Reconciler.Logger), rep.Rendered.Redactor().Text)
		if err := setProbes(r.Probes, rep.Rendered); err != nil && r.Reconciler.Logger != nil {
			r.Reconciler.Logger.Warn("probes", "err", err)
		}
	}
	publish(head, rep, err)
	r.events(rep, err)
	for _, o := range rep.Outcomes {
		if o.Result == reconcile.Applied {
			r.Jobs.AfterDeploy(ctx)
			break
		}
	}
	res := result(rep)
	res.Output += v.message(r.Host, applied)
	if r.Gate != nil {
		res.Rollout = rolloutResult(v, was, applied)
		r.rolloutEvent(res.Rollout)
	}
	// A project left waiting (a job held it) makes the next poll a full
	// cycle again.
	r.failed = err != nil || rep.Waiting()
	if err == nil {
		r.applied = target
		if v.state() == "" {
			r.lastHead = head
		}
	}
	return res, err
}

// rolloutEvent notifies a halt of this host's rollout, and its end.
func (r *Runtime) rolloutEvent(ro *agent.Rollout) {
	if r.Notify == nil || ro == nil || !ro.Changed() {
		return
	}
	switch {
	case ro.State == agent.RolloutHalted:
		r.Notify.Notify(notify.Event{Kind: notify.RolloutHalted, Key: "rollout",
			Title: fmt.Sprintf("syncd %s: rollout of %s halted", r.Host, short(ro.Commit)), Message: ro.Text})
	case ro.Was == agent.RolloutHalted:
		r.Notify.Notify(notify.Event{Kind: notify.RolloutHalted, Key: "rollout", Recovered: true,
			Title: fmt.Sprintf("syncd %s: rollout resumed", r.Host), Message: ro.Text})
	}
}

// sinks resolves syncd.yaml `notify:` for the host: a url_secret is read
// from its secrets.
func sinks(rd *reconcile.Rendered, log *slog.Logger) []notify.Sink {
	var out []notify.Sink
	for i, s := range rd.Fleet.Notify {
		url := s.URL
		if s.URLSecret != "" {
			v, ok := rd.Secrets[s.URLSecret]
			if !ok || rd.SecretsPending {
				if log != nil {
					log.Warn("notify: the sink's url_secret is not among the host's secrets; it is left out", "sink", i, "url_secret", s.URLSecret)
				}
				continue
			}
			url = v
		}
		out = append(out, notify.Sink{URL: url, Events: s.Events})
	}
	return out
}

// events tells Notify what the cycle changed: a failed cycle (and its
// recovery), releases rolled back, drift found (and resolved).
func (r *Runtime) events(rep reconcile.Report, err error) {
	if r.Notify == nil {
		return
	}
	at := ""
	if rep.Commit != "" {
		at = " at " + rep.Commit[:min(12, len(rep.Commit))]
	}
	if err != nil {
		r.Notify.Notify(notify.Event{Kind: notify.CycleFailed, Key: "cycle", Title: fmt.Sprintf("syncd %s: cycle failed%s", r.Host, at), Message: firstLine(err.Error())})
	} else {
		r.Notify.Notify(notify.Event{Kind: notify.CycleFailed, Key: "cycle", Recovered: true, Title: fmt.Sprintf("syncd %s: cycles work again%s", r.Host, at)})
	}
	for _, o := range rep.Outcomes {
		if o.Result == reconcile.Refused && errors.Is(o.Err, reconcile.ErrImageRefused) {
			r.Notify.Notify(notify.Event{Kind: notify.ImageRefused, Key: o.Project + "@" + rep.Commit,
				Title: fmt.Sprintf("syncd %s: %s: image refused%s", r.Host, o.Project, at), Message: o.Err.Error()})
		}
		if o.Result == reconcile.RolledBack || o.Result == reconcile.TakenDown {
			msg := ""
			if o.Err != nil {
				msg = firstLine(o.Err.Error())
			}
			r.Notify.Notify(notify.Event{Kind: notify.RolledBack, Key: o.Project + "@" + rep.Commit,
				Title: fmt.Sprintf("syncd %s: %s %s%s", r.Host, o.Project, o.Result, at), Message: msg})
		}
	}
	if rep.Plan.Commit == "" {
		return // no plan: nothing known of drift
	}
	var drifted []string
	for _, pr := range rep.Plan.Projects {
		for _, c := range pr.Changes {
			if c.Drift {
				drifted = append(drifted, fmt.Sprintf("%s/%s: %s", pr.Name, c.Service, c.Reason))
			}
		}
	}
	if len(drifted) > 0 {
		r.Notify.Notify(notify.Event{Kind: notify.Drift, Key: "host", Title: fmt.Sprintf("syncd %s: drift found", r.Host), Message: strings.Join(drifted, "\n")})
	} else {
		r.Notify.Notify(notify.Event{Kind: notify.Drift, Key: "host", Recovered: true, Title: fmt.Sprintf("syncd %s: no drift any more", r.Host)})
	}
}

// gate checks head out to learn the fleet's waves (once per head) and asks
// the gate; nil when the head needs no gate (this host is of the lowest
// wave, or the repository there is invalid and will be refused).
func (r *Runtime) gate(ctx context.Context, head, applied string) (*verdict, error) {
	if r.waves == nil || r.waves.commit != head {
		dir, err := r.Source.Checkout(ctx, head)
		if err != nil {
			return nil, err
		}
		r.waves = wavesAt(dir, head, r.Host)
		if r.waves == nil {
			r.waves = &waves{commit: head}
		}
	}
	if r.waves.fleet == nil || r.waves.lowest() {
		return nil, nil
	}
	return r.Gate.decide(ctx, r.Host, head, applied, r.waves)
}

// appliedCommit is the commit the host runs: the Reporter's record (which
// survives a restart in the local status) or the last cycle's.
func (r *Runtime) appliedCommit() string {
	if r.Reporter != nil {
		return r.Reporter.applied()
	}
	return r.applied
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
		switch {
		case o.Result == reconcile.Waiting && o.Err != nil:
			fmt.Fprintf(&out, "%s: %s: %v\n", o.Project, o.Result, o.Err)
		case o.Result != reconcile.Unchanged:
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
