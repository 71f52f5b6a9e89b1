package runtime

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

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/jobs"
	"github.com/syncd-dev/syncd/internal/jobs/probe"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/state"
	"github.com/syncd-dev/syncd/internal/status"
)

// Observer is what the status document reads of the engine: the Compose
// projects that run, their health and images.
type Observer interface {
	Observe(ctx context.Context, host string) (plan.Observed, error)
}

// reporter turns each cycle into the host's status document and hands it
// to the one writer of it (status.Writer: locally always, on the host's
// status branch when it publishes). Its lock guards the document it keeps,
// never a publication: the writer, latest-wins, takes the network alone.
type reporter struct {
	host, version string
	engine        Observer
	store         *state.Store
	writer        *status.Writer
	log           *slog.Logger
	now           func() time.Time
	enrolment     Enrolment
	jobs          *jobs.Runner
	probes        *probe.Monitor
	scans         func(imageID string) (status.ImageScan, bool)

	mu   sync.Mutex // the document kept: cycles, finished jobs and probes
	last *status.Host
	wave int
	// lastGood is the commit the host runs (its last good release).
	lastGood string
	// pushErr is the last publication failure logged, "" while it works.
	pushErr string
	// keyWarned is the host.yaml status_key last warned about as not
	// this host's.
	keyWarned string
	// since is when the host became converged at sinceCommit.
	since       time.Time
	sinceCommit string
	// bake is the fleet's bake time (waves.bake_time) and waited whether
	// a host of a higher wave waits for this one's bake, both as the last
	// rendered commit says (bakeKnown: one was rendered).
	bake              time.Duration
	waited, bakeKnown bool
	// baked is the commit whose bake this host attests, bakedAt when that
	// bake ended: kept while it stays converged at it since since.
	baked   string
	bakedAt time.Time
	loaded  bool // lastGood and since were read from the last document
}

// applied is the commit the host runs: its last good release, remembered
// across restarts by the local status document.
func (r *reporter) applied() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.load()
	return r.lastGood
}

// load reads what the last document said once, after a restart.
func (r *reporter) load() {
	if r.loaded || r.writer == nil {
		return
	}
	r.loaded = true
	if prev, err := status.ReadLocal(r.writer.StateDir); err == nil {
		r.lastGood = cmp.Or(r.lastGood, prev.AppliedCommit)
		if prev.State == status.Converged && !prev.ConvergedSince.IsZero() {
			r.since, r.sinceCommit = prev.ConvergedSince, prev.AppliedCommit
			if prev.BakedCommit == prev.AppliedCommit {
				r.baked, r.bakedAt = prev.BakedCommit, prev.BakedAt
			}
		}
	}
}

// report publishes the status of a cycle, with the wave gate's verdict on
// the head (nil: through).
func (r *reporter) report(ctx context.Context, head string, rep reconcile.Report, cycleErr error, took time.Duration, ro *status.Rollout) {
	if r.writer == nil {
		return
	}
	if r.enrolment.UnsignedCommits {
		r.log.Warn("commits are applied without a signature check (no allowed signers): whoever can push the branch, a deploy key read from this host's user-data included, deploys here; set allowed-signers in the host's config")
	}
	r.mu.Lock()
	r.enrol(rep.Rendered)
	r.waves(rep.Rendered)
	doc := r.document(ctx, head, rep, cycleErr, took, ro)
	r.last = &doc
	r.mu.Unlock()
	r.publish(ctx, doc)
}

// applying writes, in the state directory only, that a cycle is about to
// change what runs: `syncd status` on the host shows "applying" and what
// while the apply lasts (a pull, a health wait, a soak can take minutes).
// The cycle's own document replaces it when the apply ends.
func (r *reporter) applying(target string, pl plan.Plan) {
	if r.writer == nil {
		return
	}
	r.mu.Lock()
	doc := status.Host{Host: r.host, Wave: r.wave, SyncdVersion: r.version}
	if r.last != nil {
		doc = *r.last
	} else {
		r.load()
		doc.AppliedCommit = r.lastGood
	}
	r.mu.Unlock()
	var names []string
	for _, p := range pl.Projects {
		if p.Action == plan.Apply || p.Action == plan.Remove {
			names = append(names, p.Name)
		}
	}
	doc.State, doc.DesiredCommit = status.Applying, target
	doc.Message = fmt.Sprintf("applying %s: %s", abbrev.Commit(target), strings.Join(names, ", "))
	if err := r.writer.WriteLocal(doc); err != nil {
		r.log.Warn("status: write the local document", "err", err)
	}
}

// enrol compares what main says of the host with its own status key: once
// main enrols that key and the host's key opens its secrets (no longer
// pending), the enrolment is done and its secret goes; a key in main that
// is not the host's is warned about, once.
func (r *reporter) enrol(rd *reconcile.Rendered) {
	if rd == nil || rd.Host == nil || r.writer.Key == nil {
		return
	}
	own := r.writer.Key.Public()
	enrolled := rd.Host.StatusKey
	switch {
	case enrolled == "":
	case !status.SameKey(enrolled, own):
		if enrolled != r.keyWarned {
			r.keyWarned = enrolled
			r.log.Warn("main's host.yaml enrols another status key than this host's: its status documents count as unverified for the other hosts' wave gates and `syncd status --fleet`; enroll the host again (`syncd enroll --token`) or put this host's key in status_key",
				"file", "hosts/"+r.host+"/host.yaml", "enrolled", status.Fingerprint(enrolled), "own", r.writer.Key.Fingerprint())
		}
	case r.enrolment.MAC != "" && !rd.SecretsPending:
		r.enrolment.MAC = ""
		r.log.Info("enrolled: main's host.yaml names this host's status key and its key opens its secrets; the enrolment secret is no longer needed", "status_key", r.writer.Key.Fingerprint())
		if r.enrolment.Done != nil {
			r.enrolment.Done()
		}
	}
}

// waves keeps what the bake attestation needs of the rendered commit: its
// bake time, and whether a host of a higher wave waits for this one.
func (r *reporter) waves(rd *reconcile.Rendered) {
	if rd == nil || rd.Repo == nil || rd.Host == nil {
		return
	}
	r.bake, r.bakeKnown, r.waited = rd.Fleet.Waves.BakeTime, true, false
	for name, h := range rd.Repo.Hosts {
		if h.Wave > rd.Host.Wave && !slices.Contains(rd.Fleet.Waves.Skip, name) {
			r.waited = true
			break
		}
	}
}

// bakeDue reports whether the bake of what the host runs has ended since
// its last document, which does not attest it yet, and a higher wave
// waits for that attestation: the next poll is then a full cycle, which
// looks at the host again and publishes the attestation when it is still
// converged and healthy. Without it a healthy rollout would wait for the
// next commit or the heartbeat.
func (r *reporter) bakeDue() bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last != nil && r.waited && r.bakeKnown && r.last.State == status.Converged && r.last.AppliedCommit != "" &&
		r.last.BakedCommit != r.last.AppliedCommit && r.sinceCommit == r.last.AppliedCommit &&
		!r.now().Before(r.since.Add(r.bake))
}

// refresh publishes the last cycle's document again with the jobs' and
// the probes' news (a job finished, a probe changed, between cycles).
func (r *reporter) refresh(ctx context.Context) {
	r.mu.Lock()
	if r.last == nil {
		r.mu.Unlock()
		return // the first cycle's document will carry them
	}
	doc := *r.last
	doc.UpdatedAt = r.now()
	if r.jobs != nil {
		doc.Jobs = r.jobs.Status()
	}
	if r.probes != nil {
		snaps := r.probes.Snapshots()
		doc.Projects = slices.Clone(doc.Projects)
		for i := range doc.Projects {
			doc.Projects[i].Probes = probeStatus(snaps, doc.Projects[i].Name)
		}
	}
	r.last = &doc
	r.mu.Unlock()
	r.publish(ctx, doc)
}

// publish hands doc to the writer and logs a failing publication once per
// spell (and when the reason changes), not at every cycle's retry.
func (r *reporter) publish(ctx context.Context, doc status.Host) {
	_, err := r.writer.Write(ctx, doc)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil:
		if msg := err.Error(); msg != r.pushErr {
			r.log.Warn("status: publication failed; retried every cycle, logged again when the reason changes", "err", err)
			r.pushErr = msg
		}
	case r.pushErr != "":
		r.log.Info("status: published again")
		r.pushErr = ""
	}
}

// document builds the status from the cycle's report, what syncd recorded
// and one more look at the engine; the writer redacts it.
func (r *reporter) document(ctx context.Context, head string, rep reconcile.Report, cycleErr error, took time.Duration, ro *status.Rollout) status.Host {
	if len(rep.Plan.Projects) > 0 || rep.Wave != 0 {
		r.wave = rep.Wave
	}
	// target is the commit the cycle worked on: head, or an older one the
	// wave gate let through.
	// A host the gate holds back before it ran anything worked on none.
	target := rep.Commit
	if target == "" && ro == nil {
		target = head
	}
	doc := status.Host{
		Host: r.host, Wave: r.wave, DesiredCommit: head, SyncdVersion: r.version, UpdatedAt: r.now(), AgeRecipient: r.enrolment.AgeRecipient,
		EnrolmentMAC: r.enrolment.MAC, UnsignedCommits: r.enrolment.UnsignedCommits,
		Drift:     rep.Plan.Drift(),
		LastCycle: status.Cycle{At: r.now(), DurationMS: took.Milliseconds(), Result: "ok"},
	}
	if r.jobs != nil {
		doc.Jobs = r.jobs.Status()
	}
	if cycleErr != nil {
		doc.LastCycle.Result = "error"
		doc.LastCycle.Error = abbrev.Line(cycleErr.Error())
	}
	records, _ := r.store.Projects()
	observed, obsErr := r.engine.Observe(ctx, r.host)
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
	suspended := map[string]status.Suspension{}
	for _, pr := range rep.Plan.Projects {
		if s := pr.Suspended; pr.Action == plan.Suspend && s != nil {
			names[pr.Name] = true
			suspended[pr.Name] = status.Suspension{By: s.By, Reason: s.Reason, Until: s.Until}
		}
	}
	var probes []probe.Snapshot
	if r.probes != nil {
		probes = r.probes.Snapshots()
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
				if h, err := r.store.Keyed(s.ConfigHash); err == nil {
					p.ConfigHash[svc] = h
				}
			}
			if rec.FailedCommit != "" && rec.FailedCommit == target {
				p.State, p.LastError = status.Held, rec.FailedError
				if failed == "" {
					failed = name + ": " + rec.FailedError
				}
			}
		}
		if o, ok := outcomes[name]; ok && o.Err != nil {
			p.LastError = abbrev.Line(o.Err.Error())
			switch o.Result {
			case reconcile.Held:
				p.State = status.Held
			case reconcile.Waiting:
				p.State = status.Waiting
			case reconcile.Failed, reconcile.RolledBack, reconcile.TakenDown, reconcile.Refused, reconcile.Skipped:
				p.State = status.Failed
			}
		}
		if s, ok := suspended[name]; ok {
			p.State, p.Suspended = status.Suspended, &s
		}
		if slices.Contains(rep.Pending, name) {
			p.State, p.LastError = status.Enrolling, "waits for the host's age key to be enrolled (syncd enroll)"
		}
		if op := observed.Projects[name]; op != nil && obsErr == nil {
			p.Health = health(op)
			for _, c := range op.Containers {
				p.Images = append(p.Images, status.Image{Service: c.Service, Ref: c.Image, ID: c.ImageID, Digest: observed.Digests[c.ImageID]})
			}
			p.Scan = r.scanSummaries(p.Images)
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
		doc.State, doc.Message = status.Enrolling, enrolMessage(r.host, rep.Pending)
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
	doc.Rollout = ro
	return doc
}

// rolloutFields fill in what the wave gates of other hosts judge by: since
// when this host is converged at what it runs (the bake time counts from
// it, kept while it stays so), the commit that failed here, and this
// host's own gate.
func (r *reporter) rolloutFields(doc *status.Host, target, failed string) {
	if doc.State == status.Converged && doc.AppliedCommit != "" {
		if r.sinceCommit != doc.AppliedCommit || r.since.IsZero() {
			r.since, r.sinceCommit = r.now(), doc.AppliedCommit
		}
		doc.ConvergedSince = r.since
		// The attestation the higher waves' gates need: written in a
		// document only once the bake has ended with the host converged
		// and healthy at this commit throughout (since is reset on any
		// cycle that finds it otherwise).
		if r.baked != r.sinceCommit && r.bakeKnown && !r.now().Before(r.since.Add(r.bake)) {
			r.baked, r.bakedAt = r.sinceCommit, r.since.Add(r.bake)
		}
		if r.baked == r.sinceCommit {
			doc.BakedCommit, doc.BakedAt = r.baked, r.bakedAt
		}
	} else {
		r.since, r.sinceCommit = time.Time{}, ""
		r.baked, r.bakedAt = "", time.Time{}
	}
	// Only a release that failed (rolled back and held) or a commit the
	// host refused as invalid halts the higher waves: an engine or network
	// fault is not the commit's.
	if failed != "" && target != "" {
		doc.FailedCommit, doc.FailedError = target, failed
	}
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
	rank := map[status.State]int{status.Converged: 0, status.Enrolling: 1, status.Degraded: 1, status.Waiting: 1, status.Suspended: 1, status.Held: 2, status.Failed: 3}
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
func (r *reporter) scanSummaries(images []status.Image) []status.ImageScan {
	if r.scans == nil {
		return nil
	}
	var out []status.ImageScan
	seen := map[string]bool{}
	for _, img := range images {
		if img.ID == "" || seen[img.ID] {
			continue
		}
		seen[img.ID] = true
		if s, ok := r.scans(img.ID); ok {
			s.Ref, s.ID = img.Ref, img.ID
			out = append(out, s)
		}
	}
	return out
}
