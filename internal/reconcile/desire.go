package reconcile

import (
	"context"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/plan"
)

// Desire renders host from repo exactly as a cycle does (labels, config
// hashes resolved against observed, keyed hashes of the secret values and
// file contents each service uses, with key) and returns the planner's
// desired side and the rendered projects by name. It touches no engine and
// no state: syncd diff plans two commits with it, as a host would.
//
// rendered, when not nil, are the host's projects as repo.Render returned
// them for secrets (validate renders every host of a commit once), used
// instead of rendering again; Desire labels them.
func Desire(ctx context.Context, repo *desired.Repo, host string, secrets desired.Secrets, commit string, key []byte, observed plan.Observed, rendered []*desired.Project) (plan.Desired, map[string]*desired.Project, error) {
	var ts map[string]*target
	var err error
	if rendered != nil {
		ts, err = targetsOf(host, rendered, secrets, commit, observed, key)
	} else {
		ts, err = targets(ctx, host, repo, secrets, commit, observed, key)
	}
	if err != nil {
		return plan.Desired{}, nil, err
	}
	projects := make(map[string]*desired.Project, len(ts))
	for name, t := range ts {
		projects[name] = t.project
	}
	return desiredOf(repo, repo.Hosts[host], commit, ts), projects, nil
}

// desiredOf is the planner's desired side of the host's targets, in apply
// order.
func desiredOf(repo *desired.Repo, h *desired.Host, commit string, targets map[string]*target) plan.Desired {
	d := plan.Desired{Commit: commit, AllowMassRemoval: repo.Fleet.Prune.AllowMassRemoval}
	for _, name := range repo.ApplyOrder(h) {
		if t := targets[name]; t != nil {
			d.Projects = append(d.Projects, desiredProject(t))
		}
	}
	return d
}
