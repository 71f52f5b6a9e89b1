package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/state"
)

// The admit step: the scan gate before a project is created.

// admit pulls a project's images and asks the Gate about the new ones,
// before any container is created. stop is set when the release must not
// go on: a refusal holds the commit for the project (as a failed release
// is) and changes nothing in Docker; an engine or gate that cannot answer
// now is retried next cycle.
func (r *Reconciler) admit(ctx context.Context, prep *Prepared, pr plan.Project, prev *state.Project, policy desired.ScanPolicy, log *slog.Logger) (o Outcome, rec *state.Project, stop bool) {
	t := prep.projects[pr.Name]
	ids, err := r.Engine.Pull(ctx, t.project.Compose)
	if err != nil {
		err = prep.redact.OutsideErr(err)
		if isEngineDown(ctx, err) || errors.Is(err, engine.ErrResources) {
			log.Warn("pull failed; will retry", "err", err)
			return Outcome{Project: pr.Name, Result: Failed, Err: err}, nil, true
		}
		log.Error("pull failed; nothing changed", "err", err)
		return Outcome{Project: pr.Name, Result: Failed, Err: err}, held(prev, prep.Commit, err, r.now()), true
	}
	fresh := map[string]string{}
	for ref, id := range ids {
		if !slices.Contains(prep.running[pr.Name], id) {
			// The reference only names the image in messages and logs;
			// it may be made of a secret.
			fresh[prep.redact.Text(ref)] = id
		}
	}
	err = r.Gate.Admit(ctx, pr.Name, policy, fresh)
	if err == nil {
		return Outcome{}, nil, false
	}
	err = prep.redact.OutsideErr(err)
	var tmp interface{ Temporary() bool }
	if ctx.Err() != nil || (errors.As(err, &tmp) && tmp.Temporary()) {
		log.Warn("the gate cannot decide; will retry", "err", err)
		return Outcome{Project: pr.Name, Result: Failed, Err: err}, nil, true
	}
	err = fmt.Errorf("%w: %w", ErrImageRefused, err)
	log.Error("release refused; the project keeps running what it ran", "err", err)
	return Outcome{Project: pr.Name, Result: Refused, Err: err}, held(prev, prep.Commit, err, r.now()), true
}

// held returns prev (what runs, unchanged) with commit marked failed.
func held(prev *state.Project, commit string, err error, at time.Time) *state.Project {
	rec := &state.Project{Services: map[string]state.Service{}}
	if prev != nil {
		c := *prev
		c.Services = maps.Clone(prev.Services)
		rec = &c
	}
	rec.FailedCommit, rec.FailedError, rec.FailedAt = commit, abbrev.Line(err.Error()), at
	return rec
}
