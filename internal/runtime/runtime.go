package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/agent"
	"github.com/syncd-dev/syncd/internal/jobs"
	"github.com/syncd-dev/syncd/internal/jobs/probe"
	"github.com/syncd-dev/syncd/internal/notify"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/status"
)

// Source is where cycles get the desired state: a Git remote
// (source.Git) or a local directory (source.Local).
type Source interface {
	// Head is the revision the source is at now: for Git one ls-remote.
	Head(ctx context.Context) (string, error)
	// Checkout makes that revision's tree available and returns its path.
	Checkout(ctx context.Context, rev string) (string, error)
}

// History lists a branch's head and the commits before it down to what
// the host runs, newest first (source.Git.Ancestors): the commits the wave
// gate may choose from.
type History interface {
	Ancestors(ctx context.Context, head, until string) ([]string, error)
}

// Deps are what a host's runtime is made of, opened by the wiring
// (cmd/syncd) once for `syncd agent` and `syncd sync` alike. Every
// capability is given explicitly; nil leaves it out.
type Deps struct {
	Host, Version string
	Source        Source
	Reconciler    *reconcile.Reconciler
	// Engine is what the status document reads of what runs.
	Engine Observer
	// Status is the one writer of the host's status document (locally, and
	// on its status branch when it has a Publisher).
	Status *status.Writer
	// Jobs are the host's day-2 jobs (backups, the repository check,
	// scans); nil for none.
	Jobs *jobs.Runner
	// Notify is told the cycles' and the jobs' state changes; nil for none.
	Notify *notify.Notifier
	// Probes run between cycles (the agent); nil for none.
	Probes *probe.Monitor
	// History, with Status reading the fleet's status branches, turns the
	// wave gate on; nil applies every head.
	History History
	// Scans returns the last scan of an image, for the document.
	Scans func(imageID string) (status.ImageScan, bool)
	// Enrolment is what the host publishes until main enrols it.
	Enrolment Enrolment
	Now       func() time.Time
	Log       *slog.Logger
}

// Enrolment is the host's self-enrolment (DESIGN §4): what it publishes
// until main's host.yaml enrols its status key and its key opens its
// secrets.
type Enrolment struct {
	// AgeRecipient is the public half of the host's age key.
	AgeRecipient string
	// MAC binds AgeRecipient and the status key to the host under its
	// one-time enrolment secret (bootstrap.EnrolmentMAC); "" without one.
	MAC string
	// Done is called once the host is enrolled: the wiring deletes the
	// secret.
	Done func()
	// UnsignedCommits: the host applies commits without checking their
	// signatures; every document says so, and every cycle warns.
	UnsignedCommits bool
}

// Runtime runs a host's cycles: source, gate, reconcile, report. The agent
// calls Cycle from its one loop goroutine; `syncd sync` calls it once; both
// get the same status on the status branch.
type Runtime struct {
	host       string
	source     Source
	reconciler *reconcile.Reconciler
	reporter   *reporter
	jobs       *jobs.Runner
	notify     *notify.Notifier
	probes     *probe.Monitor
	gate       *Gate
	log        *slog.Logger
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
	// rollout is the gate's state after the last cycle ("", waiting,
	// halted) and verdict the text of its verdict.
	rollout, verdict string
	// rolloutDoc is the gate's verdict for the status document; nil when
	// the head is through.
	rolloutDoc *status.Rollout
}

// New makes the runtime of d: its report, its wave gate (with History and
// a Status that reads the fleet), and the links between its parts (a job's
// result and the probes' changes publish the status again; jobs and probes
// notify through Notify).
func New(d Deps) *Runtime {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	rep := &reporter{host: d.Host, version: d.Version, engine: d.Engine, store: d.Reconciler.Store, writer: d.Status, log: d.Log.With("component", "status"),
		now: d.Now, enrolment: d.Enrolment, jobs: d.Jobs, probes: d.Probes, scans: d.Scans}
	r := &Runtime{host: d.Host, source: d.Source, reconciler: d.Reconciler, reporter: rep, jobs: d.Jobs, notify: d.Notify,
		probes: d.Probes, log: d.Log}
	if d.History != nil && d.Status != nil && d.Status.Branches != nil {
		r.gate = &Gate{Fleet: d.Status, History: d.History, Heartbeat: d.Status.Heartbeat, Now: d.Now, Log: d.Log.With("component", "rollout")}
	}
	if d.Jobs != nil {
		d.Jobs.Changed = func() { rep.refresh(context.Background()) } // the publication has its own deadline
	}
	return r
}

// Run runs what goes on between cycles until ctx ends: the jobs'
// scheduler and the probes, whose changes publish the status within
// seconds. The agent calls it; `syncd sync`, one cycle, does not.
func (r *Runtime) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if r.jobs != nil {
		wg.Go(func() { r.jobs.Run(ctx) })
	}
	if r.probes != nil {
		wg.Go(func() { r.probes.Run(ctx) })
		wg.Go(func() { publishProbes(ctx, r.probes, r.reporter, 5*time.Second) })
	}
	wg.Wait()
}

// Cycle runs one cycle for reason (agent.ReasonPoll, ...). A poll that
// finds the head where the last good cycle left it costs one ls-remote.
func (r *Runtime) Cycle(ctx context.Context, reason string) (agent.Result, error) {
	start := time.Now()
	publish := func(head string, rep reconcile.Report, err error) {
		if r.reporter != nil {
			r.reporter.report(ctx, head, rep, err, time.Since(start), r.rolloutDoc)
		}
	}
	fail := func(head string, err error) (agent.Result, error) {
		err = fmt.Errorf("source: %w", err)
		r.failed = true
		publish(head, reconcile.Report{Commit: head}, err)
		r.events(reconcile.Report{Commit: head}, err)
		return agent.Result{Commit: head}, err
	}
	head, err := r.source.Head(ctx)
	if err != nil {
		return fail("", err)
	}
	// A poll at which this host's bake has ended is a full cycle: it
	// looks at the host and writes the attestation the next wave waits
	// for.
	if reason == agent.ReasonPoll && head == r.lastHead && !r.failed && !r.reporter.bakeDue() {
		return agent.Result{Quiet: true, Commit: head}, nil
	}
	applied := r.appliedCommit()
	target := head
	var v *verdict
	if r.gate != nil && head != applied {
		if v, err = r.gated(ctx, head, applied); err != nil {
			return fail(head, err)
		}
		if v != nil {
			target = v.target
		}
	}
	was := r.rollout
	r.rollout = v.state()
	r.rolloutDoc = v.document()
	if v.state() != "" && (target == "" || target == applied) {
		// Nothing new is through the gate. A poll touches nothing; any
		// other cycle heals what the host runs.
		changed := v.textOr() != r.verdict || r.rollout != was
		r.verdict = v.textOr()
		if reason == agent.ReasonPoll || applied == "" {
			// The document looks at the engine again: the attestation
			// of a bake that ended meanwhile is written too.
			if changed || r.failed || r.reporter.bakeDue() {
				publish(head, reconcile.Report{Commit: applied, Wave: r.waves.wave}, nil)
			}
			r.failed = false
			ro := rolloutResult(v, was, applied)
			r.rolloutEvent(ro)
			return agent.Result{Quiet: !changed, Commit: applied, Output: v.message(r.host, applied), Rollout: ro}, nil
		}
		target = applied
	}
	r.verdict = v.textOr()
	dir, err := r.source.Checkout(ctx, target)
	if err != nil {
		return fail(target, err)
	}
	rep, err := r.sync(ctx, reconcile.Source{Dir: dir, Commit: target})
	r.enrolling = rep.SecretsPending
	if rep.Rendered != nil {
		r.jobs.Update(rep.Rendered)
		r.notify.SetSinks(sinks(rep.Rendered, r.log), rep.Rendered.Redactor().Text)
		if err := setProbes(r.probes, rep.Rendered); err != nil {
			r.log.Warn("probes", "err", err)
		}
	}
	publish(head, rep, err)
	r.events(rep, err)
	for _, o := range rep.Outcomes {
		if o.Result == reconcile.Applied {
			r.jobs.AfterDeploy(ctx)
			break
		}
	}
	res := result(rep)
	res.Output += v.message(r.host, applied)
	if r.gate != nil {
		res.Rollout = rolloutResult(v, was, applied)
		r.rolloutEvent(res.Rollout)
	}
	// A project left waiting (a job held it) makes the next poll a full
	// cycle again.
	r.failed = err != nil || rep.Waiting()
	if err == nil {
		if v.state() == "" {
			r.lastHead = head
		}
	}
	return res, err
}

// sync prepares the plan of src and applies it; a plan that changes what
// runs is shown as applying in the local status first.
func (r *Runtime) sync(ctx context.Context, src reconcile.Source) (reconcile.Report, error) {
	prep, err := r.reconciler.Prepare(ctx, src)
	if err != nil {
		return reconcile.Report{Commit: src.Commit}, err
	}
	if prep.Plan.Changes() && r.reporter != nil {
		r.reporter.applying(src.Commit, prep.Plan)
	}
	return r.reconciler.Apply(ctx, prep)
}

// rolloutEvent notifies a halt of this host's rollout, and its end.
func (r *Runtime) rolloutEvent(ro *agent.Rollout) {
	if r.notify == nil || ro == nil || !ro.Changed() {
		return
	}
	ev := notify.Event{Kind: notify.RolloutHalted, Key: "rollout", Host: r.host, Subject: "the rollout", Detail: ro.Text}
	if ro.Commit != "" {
		ev.Subject += " of commit " + abbrev.Commit(ro.Commit)
	}
	switch {
	case ro.State == agent.RolloutHalted:
		ev.What = "halted"
		r.notify.Notify(ev)
	case ro.Was == agent.RolloutHalted:
		ev.What, ev.Recovered = "resumed", true
		r.notify.Notify(ev)
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
	if r.notify == nil {
		return
	}
	cycle := notify.Event{Kind: notify.CycleFailed, Key: "cycle", Host: r.host, Subject: "the cycle"}
	release := "release"
	if rep.Commit != "" {
		cycle.Subject += " at commit " + abbrev.Commit(rep.Commit)
		release += " of commit " + abbrev.Commit(rep.Commit)
	}
	if err != nil {
		cycle.What, cycle.Detail = "failed", abbrev.Line(err.Error())
	} else {
		cycle.What, cycle.Recovered = "works again", true
	}
	r.notify.Notify(cycle)
	for _, o := range rep.Outcomes {
		if o.Result == reconcile.Refused && errors.Is(o.Err, reconcile.ErrImageRefused) {
			r.notify.Notify(notify.Event{Kind: notify.ImageRefused, Key: o.Project + "@" + rep.Commit,
				Host: r.host, App: o.Project, Subject: release, What: "was not applied: an image was refused", Detail: o.Err.Error()})
		}
		if o.Result == reconcile.RolledBack || o.Result == reconcile.TakenDown {
			msg := ""
			if o.Err != nil {
				msg = abbrev.Line(o.Err.Error())
			}
			r.notify.Notify(notify.Event{Kind: notify.RolledBack, Key: o.Project + "@" + rep.Commit,
				Host: r.host, App: o.Project, Subject: release, What: "failed and was " + string(o.Result), Detail: msg})
		}
	}
	if rep.Plan.Commit == "" {
		return // no plan: nothing known of drift
	}
	var drifted []string
	for _, pr := range rep.Plan.Projects {
		for _, c := range pr.Changes {
			if c.Drift {
				drifted = append(drifted, fmt.Sprintf("app %s, service %s: %s", pr.Name, c.Service, c.Reason))
			}
		}
	}
	drift := notify.Event{Kind: notify.Drift, Key: "host", Host: r.host, Subject: "the containers"}
	if len(drifted) > 0 {
		drift.What, drift.Detail = "drifted from commit "+abbrev.Commit(rep.Plan.Commit), strings.Join(drifted, "\n")
	} else {
		drift.What, drift.Recovered = "match commit "+abbrev.Commit(rep.Plan.Commit)+" again", true
	}
	r.notify.Notify(drift)
}

// gate checks head out to learn the fleet's waves (once per head) and asks
// the gate; nil when the head needs no gate (this host is of the lowest
// wave, or the repository there is invalid and will be refused).
func (r *Runtime) gated(ctx context.Context, head, applied string) (*verdict, error) {
	if r.waves == nil || r.waves.commit != head {
		dir, err := r.source.Checkout(ctx, head)
		if err != nil {
			return nil, err
		}
		r.waves = wavesAt(dir, head, r.host)
		if r.waves == nil {
			r.waves = &waves{commit: head}
		}
	}
	if r.waves.fleet == nil || r.waves.lowest() {
		return nil, nil
	}
	return r.gate.decide(ctx, r.host, head, applied, r.waves)
}

// appliedCommit is the commit the host runs: the report's record, which
// survives a restart in the local status.
func (r *Runtime) appliedCommit() string { return r.reporter.applied() }

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
	for _, p := range rep.Plan.Projects {
		if p.Action == plan.Suspend {
			res.Suspended++
		}
	}
	res.Output = out.String()
	return res
}
