package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/state"
)

// The apply step: the plan executed project by project, in after: order.

// materialise makes a project's directory ready: the repository's files
// copied in, data directories created (and moved in from an older syncd's
// checkout).
func (r *Reconciler) materialise(p *desired.Project) error {
	for _, m := range p.Mounts {
		if err := r.Store.Materialise(m.Path, m.Rel, m.Source, m.Dir); err != nil {
			return fmt.Errorf("project directory of %s: %w", p.Name(), err)
		}
	}
	return nil
}

// Apply executes a prepared plan: projects in `after:` order, independent
// ones in parallel (bounded), removals last. A project whose release fails
// is rolled back; projects that follow it are skipped.
func (r *Reconciler) Apply(ctx context.Context, prep *Prepared) (Report, error) {
	rep := Report{Commit: prep.Commit, Wave: prep.Wave, Plan: prep.Plan, SecretsPending: prep.SecretsPending, Pending: prep.Pending,
		Redact: prep.redact.Text, Rendered: prep.Rendered()}
	records, err := r.records()
	if err != nil {
		return rep, err
	}
	var (
		mu       sync.Mutex
		outcomes = map[string]Outcome{}
		done     = map[string]chan struct{}{}
		wg       sync.WaitGroup
		sem      = make(chan struct{}, r.parallel())
	)
	for _, pr := range prep.Plan.Projects {
		if pr.Action == plan.Apply {
			done[pr.Name] = make(chan struct{})
		}
	}
	record := func(o Outcome, rec *state.Project) error {
		mu.Lock()
		defer mu.Unlock()
		outcomes[o.Project] = o
		if rec != nil {
			records[o.Project] = rec
		} else if o.Result == Removed {
			delete(records, o.Project)
		}
		if err := r.Store.SaveProjects(records); err != nil {
			// What runs changed: keep the record in memory, so neither the
			// rollback target nor the plan is lost, and write it next cycle.
			r.unsaved = maps.Clone(records)
			return fmt.Errorf("record what %s runs in the state directory (kept in memory, written again next cycle): %w", o.Project, err)
		}
		return nil
	}
	var saveErr error
	for _, pr := range prep.Plan.Projects {
		if pr.Action != plan.Apply {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[pr.Name])
			for _, dep := range pr.After {
				ch, ok := done[dep]
				if !ok {
					continue
				}
				<-ch
				mu.Lock()
				o := outcomes[dep]
				mu.Unlock()
				if o.Result != Applied {
					r.log().Warn("skipped", "project", pr.Name, "after", dep, "because", o.Result)
					record(Outcome{Project: pr.Name, Result: Skipped, Err: fmt.Errorf("skipped: %s, which it follows, %s", dep, o.Result)}, nil)
					return
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				record(Outcome{Project: pr.Name, Result: Skipped, Err: ctx.Err()}, nil)
				return
			}
			defer func() { <-sem }()
			unlock, ok := r.tryLock(pr.Name)
			if !ok {
				record(Outcome{Project: pr.Name, Result: Waiting, Err: fmt.Errorf("%s: a job (a backup or restore) is running on it; applied next cycle", pr.Name)}, nil)
				return
			}
			defer unlock()
			mu.Lock()
			prev := records[pr.Name]
			mu.Unlock()
			o, rec := r.applyProject(ctx, prep, pr, prev)
			if err := record(o, rec); err != nil {
				mu.Lock()
				saveErr = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if saveErr != nil {
		return rep, saveErr
	}
	var errs []error
	for _, pr := range prep.Plan.Projects {
		var o Outcome
		switch pr.Action {
		case plan.Apply:
			o = outcomes[pr.Name]
		case plan.Remove:
			o = Outcome{Project: pr.Name, Result: Removed}
			unlock, ok := r.tryLock(pr.Name)
			if !ok {
				o = Outcome{Project: pr.Name, Result: Waiting, Err: fmt.Errorf("%s: a job (a backup or restore) is running on it; removed next cycle", pr.Name)}
				break
			}
			err := r.Engine.Remove(ctx, pr.Name)
			unlock()
			if err != nil {
				o = Outcome{Project: pr.Name, Result: Failed, Err: fmt.Errorf("remove %s: %w", pr.Name, err)}
			} else {
				r.log().Info("removed", "project", pr.Name, "reason", pr.Reason)
				if err := record(o, nil); err != nil {
					return rep, err
				}
			}
		case plan.Hold:
			o = Outcome{Project: pr.Name, Result: Held, Err: errors.New(pr.Reason)}
		case plan.Refuse, plan.Guarded:
			o = Outcome{Project: pr.Name, Result: Refused, Err: fmt.Errorf("%s: %s", pr.Name, pr.Reason)}
		default:
			o = Outcome{Project: pr.Name, Result: Unchanged}
		}
		rep.Outcomes = append(rep.Outcomes, o)
		switch o.Result {
		case Failed, Refused, Skipped:
			errs = append(errs, o.Err)
		case RolledBack, TakenDown:
			errs = append(errs, fmt.Errorf("%w: %s: %v", ErrReleaseFailed, pr.Name, o.Err))
		}
	}
	if err := r.Store.PruneSnapshots(lastGood(records)); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// applyProject converges one project and, when its release fails, rolls it
// back. It returns the record to keep, or nil to keep the previous one.
func (r *Reconciler) applyProject(ctx context.Context, prep *Prepared, pr plan.Project, prev *state.Project) (Outcome, *state.Project) {
	t := prep.projects[pr.Name]
	log := r.log().With("project", pr.Name, "commit", prep.Commit)
	for _, c := range pr.Changes {
		log.Info("change", "service", c.Service, "action", c.Action, "reason", c.Reason, "drift", c.Drift)
	}
	timeout := t.project.App.HealthTimeoutOr(prep.repo.Fleet)
	// The snapshot first: a release that cannot be rolled back is not
	// started (the state disk full changes nothing in Docker).
	if err := r.Store.SaveSnapshot(prep.Commit, prep.dir); err != nil {
		log.Error("cannot write the rollback snapshot; nothing changed", "err", err)
		return Outcome{Project: pr.Name, Result: Failed, Err: fmt.Errorf("state directory: %w", err)}, nil
	}
	if err := r.materialise(t.project); err != nil {
		// The host's disk, not the release: nothing was changed in Docker.
		log.Error("cannot prepare the project directory", "err", err)
		return Outcome{Project: pr.Name, Result: Failed, Err: err}, nil
	}
	pulled := false
	// Only a policy that can refuse costs a scan (and a pull of its own).
	// Before the backup of an upgrade: a refused image changes nothing.
	if policy := prep.repo.ScanPolicyOf(prep.repo.Hosts[r.Host], pr.Name); r.Gate != nil && policy.RefuseSeverity != "" {
		if o, rec, stop := r.admit(ctx, prep, pr, prev, policy, log); stop {
			return o, rec
		}
		pulled = true
	}
	if r.BeforeUpgrade != nil && t.project.App.Backup.UpgradeBackup() && upgrades(pr) {
		log.Info("backing up before the upgrade")
		if err := r.BeforeUpgrade(ctx, prep.Rendered(), pr.Name); err != nil {
			err = fmt.Errorf("the backup before its upgrade failed, so the upgrade waits (tried again next cycle; app.yaml backup.before_upgrade: false turns it off): %w", prep.redact.Err(err))
			log.Error("upgrade waits", "err", err)
			return Outcome{Project: pr.Name, Result: Waiting, Err: err}, nil
		}
	}
	err := r.Engine.Apply(ctx, t.project.Compose, engine.ApplyOptions{Force: pr.Force, Timeout: timeout, Soak: t.project.App.SoakOr(prep.repo.Fleet), Pulled: pulled})
	if err == nil && r.Probes != nil {
		err = r.Probes.Verify(ctx, t.project, prep.redact.Text, timeout)
	}
	if err == nil {
		log.Info("applied")
		return Outcome{Project: pr.Name, Result: Applied}, r.recordOf(prep, prep.Commit, t)
	}
	if isEngineDown(ctx, err) {
		// Not the release's fault: keep everything as it is and retry.
		err = fmt.Errorf("%w: %w", engine.ErrEngine, prep.redact.OutsideErr(err))
		log.Warn("engine unavailable; will retry", "err", err)
		return Outcome{Project: pr.Name, Result: Failed, Err: err}, nil
	}
	if errors.Is(err, engine.ErrResources) {
		// The host is short of something: never the commit's fault, so it
		// is not held; the next cycle tries again (after the backoff).
		err = fmt.Errorf("%w: %w", engine.ErrResources, prep.redact.OutsideErr(err))
		log.Error("engine out of resources; will retry", "err", err)
		return Outcome{Project: pr.Name, Result: Failed, Err: err}, nil
	}
	err = prep.redact.OutsideErr(err)
	log.Error("release failed", "err", err)
	rec := r.rollback(ctx, prep, pr, prev, log)
	rec.FailedCommit, rec.FailedError, rec.FailedAt = prep.Commit, abbrev.Line(err.Error()), r.now()
	if rec.LastGood == "" {
		return Outcome{Project: pr.Name, Result: TakenDown, Err: err}, rec
	}
	return Outcome{Project: pr.Name, Result: RolledBack, Err: err}, rec
}

// upgrades reports whether pr recreates an existing service for another
// image.
func upgrades(pr plan.Project) bool {
	for _, c := range pr.Changes {
		if c.Action == plan.Recreate && c.Image {
			return true
		}
	}
	return false
}

func (r *Reconciler) tryLock(project string) (func(), bool) {
	if r.Locks == nil {
		return func() {}, true
	}
	return r.Locks.TryLock(project)
}

func isEngineDown(ctx context.Context, err error) bool {
	return errors.Is(err, engine.ErrEngine) || ctx.Err() != nil
}
