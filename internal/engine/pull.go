package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/compose/v5/pkg/api"
)

// Pull makes sure the image of every service of p is on the engine,
// pulling as Apply's create would (pull_policy; by default only what is
// missing), and returns the ID each image reference points to now. It
// creates no container: what it returns can be scanned before anything
// starts, and Apply with ApplyOptions.Pulled then creates from exactly
// these images. Failures to reach the engine wrap ErrEngine. p is not
// modified.
func (e *Engine) Pull(ctx context.Context, p *types.Project) (map[string]string, error) {
	if p == nil || p.Name == "" {
		return nil, fmt.Errorf("pull: a project with a name is required")
	}
	proj := p.WithoutUnresolvedOptionalDependencies() // a deep copy
	for name, svc := range proj.Services {
		if svc.PullPolicy == "" {
			svc.PullPolicy = types.PullPolicyMissing // Create's default; Pull's own is "always"
		}
		proj.Services[name] = svc
	}
	err := recovered(func() error {
		return e.compose.Pull(ctx, proj, api.PullOptions{Quiet: true, IgnoreBuildable: true})
	})
	if err != nil {
		return nil, e.wrap(ctx, "pull "+p.Name, err)
	}
	ids := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		ref := p.Services[name].Image
		if ref == "" || ids[ref] != "" {
			continue
		}
		res, err := e.api.ImageInspect(ctx, ref)
		if err != nil {
			return nil, e.wrap(ctx, fmt.Sprintf("pull %s: service %s: image %s", p.Name, name, ref), err)
		}
		ids[ref] = res.ID
	}
	return ids, nil
}

// pinned returns a copy of p whose services do not pull: their images
// were pulled (and admitted) by Pull, and what starts must be what was
// admitted, even where pull_policy says always. Compose leaves the pull
// policy out of its config hash.
func pinned(p *types.Project) *types.Project {
	for name, svc := range p.Services {
		if svc.Image != "" {
			svc.PullPolicy = types.PullPolicyNever
		}
		p.Services[name] = svc
	}
	return p
}
