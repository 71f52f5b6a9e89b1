package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/jobs/probe"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/state"
	"github.com/syncd-dev/syncd/internal/status"
)

// Reporter turns each cycle into the host's status document: written to
// the state directory always, and pushed to the status branch when a
// Writer is set.
type Reporter struct {
	Host    string
	Version string
	Engine  interface {
		Observe(ctx context.Context, host string) (plan.Observed, error)
	}
	Store  *state.Store
	Writer *status.Writer // nil: local only
	Log    *slog.Logger
	Now    func() time.Time
	// AgeRecipient is the public half of the host's age key, published
	// for `syncd enroll`.
	AgeRecipient string
	// EnrolmentMAC binds AgeRecipient and the Writer's status key to the
	// host under its one-time enrolment secret (bootstrap.EnrolmentMAC),
	// published until the host is enrolled; "" without a secret.
	EnrolmentMAC string
	// Enrolled is called once, after the first cycle that finds the host
	// enrolled (main's host.yaml names its status key, and its key opens
	// its secrets): the wiring deletes the enrolment secret.
	Enrolled func()
	// UnsignedCommits: the host applies commits without checking their
	// signatures; every document says so, and every cycle warns.
	UnsignedCommits bool
	// Jobs, when set, gives the last result of each job for the document.
	Jobs interface{ Status() []status.Job }
	// Probes, when set, gives the probes' state for the document.
	Probes interface{ Snapshots() []probe.Snapshot }
	// Scans, when set, returns the last scan of an image (by ID) for the
	// project's scan summary; false for an image never scanned.
	Scans func(imageID string) (status.ImageScan, bool)

	mu   sync.Mutex // one document at a time: cycles and finished jobs
	last *status.Host
	once sync.Once // the read-only warning is given once
	// readOnlyUntil pauses pushes after the remote refused one: the status
	// stays local, and write access is tried again an hour later.
	readOnlyUntil time.Time
	wave          int
	lastGood      string
	// pushErr is the last push failure logged, "" while pushes work.
	pushErr string
	// keyWarned is the host.yaml status_key last warned about as not
	// this host's.
	keyWarned string
	// redact is the last cycle's redaction of the host's secret values,
	// kept for the cycles that stop before decrypting.
	redact func(string) string
	// rollout is the wave gate's verdict for the next document (set by
	// the Runtime); nil when the head is through.
	rollout *status.Rollout
	// since is when the host became converged at sinceCommit.
	since       time.Time
	sinceCommit string
	loaded      bool // lastGood and since were read from the last document
}

// applied is the commit the host runs: its last good release, remembered
// across restarts by the local status document.
func (r *Reporter) applied() string {
	r.load()
	return r.lastGood
}

// load reads what the last document said once, after a restart.
func (r *Reporter) load() {
	if r.loaded {
		return
	}
	r.loaded = true
	if prev, err := status.ReadLocal(r.Store.Dir()); err == nil {
		r.lastGood = cmp.Or(r.lastGood, prev.AppliedCommit)
		if prev.State == status.Converged && !prev.ConvergedSince.IsZero() {
			r.since, r.sinceCommit = prev.ConvergedSince, prev.AppliedCommit
		}
	}
}

// Report publishes the status of a cycle.
func (r *Reporter) Report(ctx context.Context, head string, rep reconcile.Report, cycleErr error, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enrolment(rep.Rendered)
	if r.UnsignedCommits {
		r.Log.Warn("commits are applied without a signature check (no allowed signers): whoever can push the branch, a deploy key read from this host's user-data included, deploys here; set allowed-signers in the host's config")
	}
	doc := r.document(ctx, head, rep, cycleErr, took)
	r.last = &doc
	r.publish(ctx, doc)
}

// enrolment compares what main says of the host with its own status key:
// once main enrols that key and the host's key opens its secrets (no
// longer pending), the enrolment is done and its secret goes; a key in
// main that is not the host's is warned about, once.
func (r *Reporter) enrolment(rd *reconcile.Rendered) {
	if rd == nil || rd.Host == nil || r.Writer == nil || r.Writer.Key == nil {
		return
	}
	own := r.Writer.Key.Public()
	enrolled := rd.Host.StatusKey
	switch {
	case enrolled == "":
	case !status.SameKey(enrolled, own):
		if enrolled != r.keyWarned {
			r.keyWarned = enrolled
			r.Log.Warn("main's host.yaml enrols another status key than this host's: its status documents count as unverified for the other hosts' wave gates and `syncd status --fleet`; enroll the host again (`syncd enroll --token`) or put this host's key in status_key",
				"file", "hosts/"+r.Host+"/host.yaml", "enrolled", status.Fingerprint(enrolled), "own", r.Writer.Key.Fingerprint())
		}
	case r.EnrolmentMAC != "" && !rd.SecretsPending:
		r.EnrolmentMAC = ""
		r.Log.Info("enrolled: main's host.yaml names this host's status key and its key opens its secrets; the enrolment secret is no longer needed", "status_key", r.Writer.Key.Fingerprint())
		if r.Enrolled != nil {
			r.Enrolled()
		}
	}
}

// Refresh publishes the last cycle's document again with the jobs' and
// the probes' news (a job finished, a probe changed, between cycles).
func (r *Reporter) Refresh(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		return // the first cycle's document will carry them
	}
	doc := *r.last
	doc.UpdatedAt = r.Now()
	if r.Jobs != nil {
		doc.Jobs = r.scrubJobs(r.Jobs.Status())
	}
	if r.Probes != nil {
		snaps := r.Probes.Snapshots()
		doc.Projects = slices.Clone(doc.Projects)
		for i := range doc.Projects {
			doc.Projects[i].Probes = probeStatus(snaps, doc.Projects[i].Name)
		}
	}
	r.last = &doc
	r.publish(ctx, doc)
}

func (r *Reporter) scrubJobs(jobs []status.Job) []status.Job {
	for i := range jobs {
		jobs[i].Error = r.scrub(jobs[i].Error)
	}
	return jobs
}

func (r *Reporter) publish(ctx context.Context, doc status.Host) {
	if r.Writer == nil || r.Now().Before(r.readOnlyUntil) {
		if err := status.WriteLocal(r.Store.Dir(), doc); err != nil {
			r.Log.Warn("status: write", "err", err)
		}
		return
	}
	_, err := r.Writer.Write(ctx, doc)
	switch {
	case errors.Is(err, status.ErrReadOnly):
		r.readOnlyUntil = r.Now().Add(time.Hour)
		r.once.Do(func() {
			r.Log.Warn("status: the remote refuses this host's pushes; the status stays local (state/status.json)", "branch", r.Writer.Branch, "err", err)
		})
	case err != nil:
		// Once per failing spell (and when the reason changes), not at
		// every cycle's retry.
		if msg := err.Error(); msg != r.pushErr {
			r.Log.Warn("status: push failed; retried every cycle, logged again when the reason changes", "err", err)
			r.pushErr = msg
		}
	default:
		if r.pushErr != "" {
			r.Log.Info("status: pushed again")
			r.pushErr = ""
		}
	}
}

// document builds the status from the cycle's report, what syncd recorded
// and one more look at the engine.
// scrub redacts the host's secret values from text published in the status.
func (r *Reporter) scrub(text string) string {
	if r.redact == nil {
		return text
	}
	return r.redact(text)
}

func (r *Reporter) document(ctx context.Context, head string, rep reconcile.Report, cycleErr error, took time.Duration) status.Host {
	if rep.Redact != nil {
		r.redact = rep.Redact
	}
	if len(rep.Plan.Projects) > 0 || rep.Wave != 0 {
		r.wave = rep.Wave
	}
	// target is the commit the cycle worked on: head, or an older one the
	// wave gate let through.
	// A host the gate holds back before it ran anything worked on none.
	target := rep.Commit
	if target == "" && r.rollout == nil {
		target = head
	}
	doc := status.Host{
		Host: r.Host, Wave: r.wave, DesiredCommit: head, SyncdVersion: r.Version, UpdatedAt: r.Now(), AgeRecipient: r.AgeRecipient,
		EnrolmentMAC: r.EnrolmentMAC, UnsignedCommits: r.UnsignedCommits,
		Drift:     rep.Plan.Drift(),
		LastCycle: status.Cycle{At: r.Now(), DurationMS: took.Milliseconds(), Result: "ok"},
	}
	if r.Jobs != nil {
		doc.Jobs = r.scrubJobs(r.Jobs.Status())
	}
	if cycleErr != nil {
		doc.LastCycle.Result = "error"
		doc.LastCycle.Error = firstLine(cycleErr.Error())
	}
	records, _ := r.Store.Projects()
	observed, obsErr := r.Engine.Observe(ctx, r.Host)
	outcomes := map[string]reconcile.Outcome{}
	for _, o := range rep.Outcomes {
		outcomes[o.Project] = o
	}
	names := map[string]bool{}
	for n := range records {
		names[n] = true
	}
	for n := range outcomes {
		names[n] = true
	}
	for _, n := range rep.Pending {
		names[n] = true
	}
	var probes []probe.Snapshot
	if r.Probes != nil {
		probes = r.Probes.Snapshots()
	}
	worst := status.Converged
	failed := "" // the first project whose release of target failed, and why
	for _, name := range slices.Sorted(maps.Keys(names)) {
		p := status.Project{Name: name, State: status.Converged, Health: status.NoHealth}
		if rec := records[name]; rec != nil {
			p.Commit = rec.Commit
			p.Data = rec.Data
			// Compose's hash covers environment values, secrets among
			// them: published keyed, so a reader of the status branch
			// cannot confirm a guessed password against it.
			p.ConfigHash = map[string]string{}
			for svc, s := range rec.Services {
				if h, err := r.Store.Keyed(s.ConfigHash); err == nil {
					p.ConfigHash[svc] = h
				}
			}
			if rec.FailedCommit != "" && rec.FailedCommit == target {
				p.State, p.LastError = status.Held, rec.FailedError
				if failed == "" {
					failed = name + ": " + r.scrub(rec.FailedError)
				}
			}
		}
		if o, ok := outcomes[name]; ok && o.Err != nil {
			p.LastError = firstLine(o.Err.Error())
			switch o.Result {
			case reconcile.Held:
				p.State = status.Held
			case reconcile.Waiting:
				p.State = status.Waiting
			case reconcile.Failed, reconcile.RolledBack, reconcile.TakenDown, reconcile.Refused, reconcile.Skipped:
				p.State = status.Failed
			}
		}
		if slices.Contains(rep.Pending, name) {
			p.State, p.LastError = status.Enrolling, "waits for the host's age key to be enrolled (syncd enroll)"
		}
		if op := observed.Projects[name]; op != nil && obsErr == nil {
			p.Health = health(op)
			for _, c := range op.Containers {
				p.Images = append(p.Images, status.Image{Service: c.Service, Ref: r.scrub(c.Image), ID: c.ImageID, Digest: observed.Digests[c.ImageID]})
			}
			p.Scan = r.scans(p.Images)
			if p.State == status.Converged && (p.Health == status.Unhealthy || !allRunning(op)) {
				p.State = status.Degraded
			}
		}
		p.Probes = probeStatus(probes, name)
		doc.Projects = append(doc.Projects, p)
		worst = worse(worst, p.State)
	}
	switch {
	case errors.Is(cycleErr, reconcile.ErrInvalid), errors.Is(cycleErr, reconcile.ErrSecrets):
		doc.State = status.Invalid
	case errors.Is(cycleErr, engine.ErrEngine) || obsErr != nil || head == "":
		doc.State = status.Unreachable
	case cycleErr != nil && worst == status.Converged:
		doc.State = status.Failed
	case rep.SecretsPending && cycleErr == nil && worst != status.Failed:
		doc.State, doc.Message = status.Enrolling, enrolMessage(r.Host, rep.Pending)
	default:
		doc.State = worst
	}
	// applied_commit is what runs: a held project runs its last good
	// release, not head. After a restart, the last document says it.
	r.load()
	if (doc.State == status.Converged || doc.State == status.Degraded) && target != "" {
		r.lastGood = target
	}
	doc.AppliedCommit = r.lastGood
	if doc.State == status.Invalid {
		failed = doc.LastCycle.Error
	}
	r.rolloutFields(&doc, target, failed)
	return doc
}

// rolloutFields fill in what the wave gates of other hosts judge by: since
// when this host is converged at what it runs (the bake time counts from
// it, kept while it stays so), the commit that failed here, and this
// host's own gate.
func (r *Reporter) rolloutFields(doc *status.Host, target, failed string) {
	if doc.State == status.Converged && doc.AppliedCommit != "" {
		if r.sinceCommit != doc.AppliedCommit || r.since.IsZero() {
			r.since, r.sinceCommit = r.Now(), doc.AppliedCommit
		}
		doc.ConvergedSince = r.since
	} else {
		r.since, r.sinceCommit = time.Time{}, ""
	}
	// Only a release that failed (rolled back and held) or a commit the
	// host refused as invalid halts the higher waves: an engine or network
	// fault is not the commit's.
	if failed != "" && target != "" {
		doc.FailedCommit, doc.FailedError = target, failed
	}
	doc.Rollout = r.rollout
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func health(op *plan.ObservedProject) status.Health {
	h := status.NoHealth
	for _, c := range op.Containers {
		switch c.Health {
		case "unhealthy":
			return status.Unhealthy
		case "starting":
			h = status.Starting
		case "healthy":
			if h == status.NoHealth {
				h = status.Healthy
			}
		}
	}
	return h
}

func allRunning(op *plan.ObservedProject) bool {
	for _, c := range op.Containers {
		if c.State != "running" {
			return false
		}
	}
	return true
}

// worse orders project states for the host's: the worst one wins.
func worse(a, b status.State) status.State {
	rank := map[status.State]int{status.Converged: 0, status.Enrolling: 1, status.Degraded: 1, status.Waiting: 1, status.Held: 2, status.Failed: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// enrolMessage is the status message of an enrolling host.
func enrolMessage(host string, pending []string) string {
	msg := fmt.Sprintf("this host made its own age key, which cannot open its secrets yet: run `syncd enroll --repo . --host %s` in a working copy of the desired-state repository, review and commit", host)
	if len(pending) > 0 {
		msg += "; until then these apps wait: " + strings.Join(pending, ", ")
	}
	return msg
}

// scans returns the scan summary of each distinct image of images.
func (r *Reporter) scans(images []status.Image) []status.ImageScan {
	if r.Scans == nil {
		return nil
	}
	var out []status.ImageScan
	seen := map[string]bool{}
	for _, img := range images {
		if img.ID == "" || seen[img.ID] {
			continue
		}
		seen[img.ID] = true
		if s, ok := r.Scans(img.ID); ok {
			s.Ref, s.ID = img.Ref, img.ID
			out = append(out, s)
		}
	}
	return out
}
