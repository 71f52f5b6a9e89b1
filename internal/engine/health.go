package engine

import (
	"context"
	"fmt"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// ServiceHealth says how the container of service in project is, for a
// container probe: "healthy", "unhealthy", "starting", "running" (no
// healthcheck), "exited (N)", "restarting", "dead", "created", "paused",
// or "missing" when it has none. Of several replicas, the worst counts.
// An error (wrapping ErrEngine) means the engine could not be asked.
func (e *Engine) ServiceHealth(ctx context.Context, project, service string) (string, error) {
	res, err := e.api.ContainerList(ctx, client.ContainerListOptions{
		All: true,
		Filters: make(client.Filters).
			Add("label", api.ProjectLabel+"="+project).
			Add("label", api.ServiceLabel+"="+service).
			Add("label", api.OneoffLabel+"=False"),
	})
	if err != nil {
		return "", e.wrap(ctx, fmt.Sprintf("health of %s/%s", project, service), err)
	}
	worst, rank := "missing", -1
	for _, c := range res.Items {
		st, r := "running", 1
		switch c.State {
		case container.StateRunning:
			switch h := health(c); h {
			case string(container.Unhealthy):
				st, r = h, 4
			case string(container.Starting):
				st, r = h, 2
			case string(container.Healthy):
				st, r = h, 0
			}
		case container.StateExited:
			st, r = exited(c.Status), 5
		default:
			st, r = string(c.State), 3
		}
		if r > rank {
			worst, rank = st, r
		}
	}
	return worst, nil
}
