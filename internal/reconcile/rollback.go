package reconcile

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/state"
)

// The rollback step: a failed release back to its last good commit.

// rollback brings a failed project back to its last-known-good commit's
// rendering, or takes it down (volumes kept) when it never had one.
func (r *Reconciler) rollback(ctx context.Context, prep *Prepared, pr plan.Project, prev *state.Project, log *slog.Logger) *state.Project {
	name := pr.Name
	if prev != nil && prev.LastGood != "" {
		if dir, ok := r.Store.Snapshot(prev.LastGood); ok {
			t, err := r.renderAt(ctx, dir, prev.LastGood, name)
			if err == nil {
				err = r.materialise(t.project)
			}
			if err == nil {
				// Recreate what the failed release touched; Compose's hashes
				// cannot see a secret or a moved tag going back.
				var force []string
				for _, c := range pr.Changes {
					if _, ok := t.project.Compose.Services[c.Service]; ok {
						force = append(force, c.Service)
					}
				}
				// No soak: going back is the best there is.
				err = r.Engine.Apply(ctx, t.project.Compose, engine.ApplyOptions{Force: force, Timeout: t.project.App.HealthTimeoutOr(prep.repo.Fleet)})
			}
			if err == nil {
				log.Warn("rolled back", "to", prev.LastGood)
				return r.recordOf(prep, prev.LastGood, t)
			}
			log.Error("rollback failed; taking the project down", "to", prev.LastGood, "err", prep.redact.OutsideErr(err))
		}
	}
	if err := r.Engine.Remove(ctx, name); err != nil {
		log.Error("take down failed", "err", prep.redact.OutsideErr(err))
	} else {
		log.Warn("taken down; volumes kept")
	}
	return &state.Project{Services: map[string]state.Service{}}
}

// renderAt renders one project of the host from a snapshot, with the
// secrets decrypted from that commit.
func (r *Reconciler) renderAt(ctx context.Context, dir, commit, name string) (*target, error) {
	repo, ps := desired.Load(dir)
	if ps.HasErrors() {
		return nil, ps.Err()
	}
	repo.ProjectsDir = r.Store.ProjectsDir()
	h, ok := repo.Hosts[r.Host]
	if !ok {
		return nil, fmt.Errorf("host %s not in snapshot %s", r.Host, commit)
	}
	secrets, err := repo.HostSecrets(h, r.Decrypter)
	if err != nil {
		return nil, err
	}
	targets, err := r.targets(ctx, repo, secrets, commit, plan.Observed{})
	if err != nil {
		return nil, err
	}
	t, ok := targets[name]
	if !ok {
		return nil, fmt.Errorf("%s not in snapshot %s", name, commit)
	}
	return t, nil
}
