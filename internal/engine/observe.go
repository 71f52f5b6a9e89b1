package engine

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/syncd-dev/syncd/internal/plan"
)

// Observe lists every Compose project on the engine, owned by syncd or not,
// with its containers (one-off `compose run` containers left out), and the
// local images. A project is Owned when every one of its containers
// carries syncd's managed label for host.
//
// It costs two calls: one container list, one image list.
func (e *Engine) Observe(ctx context.Context, host string) (plan.Observed, error) {
	res, err := e.api.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", api.ProjectLabel),
	})
	if err != nil {
		return plan.Observed{}, e.wrap(ctx, "list containers", err)
	}
	imgs, err := e.api.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		return plan.Observed{}, e.wrap(ctx, "list images", err)
	}

	obs := plan.Observed{Projects: map[string]*plan.ObservedProject{}, Images: map[string]string{}, Digests: map[string]string{}}
	for _, c := range res.Items {
		if strings.EqualFold(c.Labels[api.OneoffLabel], "True") || c.Labels[api.HookLabel] != "" {
			continue // `compose run` and lifecycle-hook containers come and go
		}
		name := c.Labels[api.ProjectLabel]
		p := obs.Projects[name]
		if p == nil {
			p = &plan.ObservedProject{Name: name, Owned: true}
			obs.Projects[name] = p
		}
		p.Owned = p.Owned && c.Labels[plan.LabelManaged] == "true" && c.Labels[plan.LabelHost] == host
		p.Containers = append(p.Containers, observedContainer(c))
	}
	for _, p := range obs.Projects {
		slices.SortFunc(p.Containers, func(a, b plan.Container) int {
			return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Name, b.Name))
		})
	}
	for _, img := range imgs.Items {
		for _, ref := range img.RepoTags {
			if ref != "<none>:<none>" {
				obs.Images[ref] = img.ID
			}
		}
		for _, d := range img.RepoDigests {
			if _, digest, ok := strings.Cut(d, "@"); ok && digest != "" {
				obs.Digests[img.ID] = digest
				break
			}
		}
	}
	return obs, nil
}

func observedContainer(c container.Summary) plan.Container {
	// Names holds the canonical "/name" and, for linked containers,
	// "/other/alias" forms.
	name := c.ID
	for i, n := range c.Names {
		if i == 0 || strings.LastIndex(n, "/") == 0 {
			name = strings.TrimPrefix(n, "/")
		}
		if strings.LastIndex(n, "/") == 0 {
			break
		}
	}
	return plan.Container{
		ID:          c.ID,
		Name:        name,
		Service:     c.Labels[api.ServiceLabel],
		ConfigHash:  c.Labels[api.ConfigHashLabel],
		SecretsHash: c.Labels[plan.LabelSecrets],
		Commit:      c.Labels[plan.LabelCommit],
		// The engine lists the image ID here instead of the reference when
		// the reference has since moved to another image.
		Image:   c.Image,
		ImageID: c.ImageID,
		State:   string(c.State),
		Health:  health(c),
		Owner:   c.Labels[plan.LabelOwner],
	}
}

// health reads a container's health from a list entry: a field on recent
// engines (API 1.52+), the status text ("Up 3 minutes (healthy)") before.
func health(c container.Summary) string {
	if c.Health != nil {
		if c.Health.Status == container.NoHealthcheck {
			return ""
		}
		return string(c.Health.Status)
	}
	switch {
	case strings.Contains(c.Status, "(unhealthy)"):
		return string(container.Unhealthy)
	case strings.Contains(c.Status, "(healthy)"):
		return string(container.Healthy)
	case strings.Contains(c.Status, "(health: starting)"):
		return string(container.Starting)
	}
	return ""
}
