package host

import (
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
	// Scans, when set, returns the last scan of an image (by ID) for the
	// project's scan summary; false for an image never scanned.
	Scans func(imageID string) (status.ImageScan, bool)

	once sync.Once // the read-only warning is given once
	// readOnlyUntil pauses pushes after the remote refused one: the status
	// stays local, and write access is tried again an hour later.
	readOnlyUntil time.Time
	wave          int
	lastGood      string
	// pushErr is the last push failure logged, "" while pushes work.
	pushErr string
	// redact is the last cycle's redaction of the host's secret values,
	// kept for the cycles that stop before decrypting.
	redact func(string) string
}

// Report publishes the status of a cycle.
func (r *Reporter) Report(ctx context.Context, head string, rep reconcile.Report, cycleErr error, took time.Duration) {
	doc := r.document(ctx, head, rep, cycleErr, took)
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
	doc := status.Host{
		Host: r.Host, Wave: r.wave, DesiredCommit: head, SyncdVersion: r.Version, UpdatedAt: r.Now(), AgeRecipient: r.AgeRecipient,
		Drift:     rep.Plan.Drift(),
		LastCycle: status.Cycle{At: r.Now(), DurationMS: took.Milliseconds(), Result: "ok"},
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
	worst := status.Converged
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
			if rec.FailedCommit != "" && rec.FailedCommit == head {
				p.State, p.LastError = status.Held, rec.FailedError
			}
		}
		if o, ok := outcomes[name]; ok && o.Err != nil {
			p.LastError = firstLine(o.Err.Error())
			switch o.Result {
			case reconcile.Held:
				p.State = status.Held
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
	if r.lastGood == "" {
		if prev, err := status.ReadLocal(r.Store.Dir()); err == nil {
			r.lastGood = prev.AppliedCommit
		}
	}
	if doc.State == status.Converged || doc.State == status.Degraded {
		r.lastGood = head
	}
	doc.AppliedCommit = r.lastGood
	return doc
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
	rank := map[status.State]int{status.Converged: 0, status.Enrolling: 1, status.Degraded: 1, status.Held: 2, status.Failed: 3}
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
