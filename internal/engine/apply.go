package engine

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/containerd/errdefs"
	"github.com/docker/compose/v5/pkg/api"
	"github.com/docker/compose/v5/pkg/compose"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/escape"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/redact"
)

// Label puts syncd's labels on every service of p: managed, host, commit,
// and the secrets hash of the services that have one in secrets. They are
// Compose custom labels, which Compose leaves out of its config hash: a new
// commit alone recreates nothing.
func Label(p *types.Project, host, commit string, secrets map[string]string) {
	for name, svc := range p.Services {
		svc.CustomLabels = svc.CustomLabels.
			Add(plan.LabelManaged, "true").
			Add(plan.LabelHost, host).
			Add(plan.LabelCommit, commit)
		if h := secrets[name]; h != "" {
			svc.CustomLabels = svc.CustomLabels.Add(plan.LabelSecrets, h)
		} else {
			delete(svc.CustomLabels, plan.LabelSecrets)
		}
		p.Services[name] = svc
	}
}

// LabelOwner marks every service of p as created by the syncd whose state
// directory is stateDir: a second syncd for the same host, with another
// state directory, sees it on the engine and refuses to fight over them.
// A custom label: Compose's config hash leaves it out.
func LabelOwner(p *types.Project, stateDir string) {
	for name, svc := range p.Services {
		svc.CustomLabels = svc.CustomLabels.Add(plan.LabelOwner, stateDir)
		p.Services[name] = svc
	}
}

// ServiceHashes returns, per service of p, the config hash Compose puts in
// the com.docker.compose.config-hash label of the containers Apply creates
// from p. Compare it with plan.Container.ConfigHash.
//
// A service that shares a namespace or volumes with another service
// (network_mode, ipc or pid "service:x", volumes_from "x") is hashed by
// Compose with x's container ID in place of the reference: here it cannot
// match. ServiceHashesObserved resolves such references.
func ServiceHashes(p *types.Project) (map[string]string, error) {
	return ServiceHashesObserved(p, nil)
}

// ServiceHashesObserved is ServiceHashes with service references resolved
// against the containers that run p now, as Compose resolves them when it
// creates a container. With observed nil it is ServiceHashes.
func ServiceHashesObserved(p *types.Project, observed *plan.ObservedProject) (map[string]string, error) {
	var ids map[string]string // service -> the container ID Compose would pick
	if observed != nil {
		ids = map[string]string{}
		byName := slices.Clone(observed.Containers)
		slices.SortFunc(byName, func(a, b plan.Container) int { return cmp.Compare(a.Name, b.Name) })
		for _, c := range byName {
			if _, seen := ids[c.Service]; !seen {
				ids[c.Service] = c.ID
			}
		}
	}
	out := make(map[string]string, len(p.Services))
	for name, svc := range p.Services {
		h, err := compose.ServiceHash(asCreated(svc, ids))
		if err != nil {
			return nil, fmt.Errorf("hash service %s: %w", name, err)
		}
		out[name] = h
	}
	return out, nil
}

// asCreated returns svc as Compose hashes it when it creates a container:
// what `use_api_socket` adds (create.go, useAPISocket) and service
// references resolved to container IDs (resolveServiceReferences). The
// other changes Up makes before hashing are left out of the hash anyway:
// pull policy, scale, depends_on, build, custom labels.
func asCreated(svc types.ServiceConfig, ids map[string]string) types.ServiceConfig {
	if svc.UseAPISocket {
		svc.Volumes = append(slices.Clone(svc.Volumes), types.ServiceVolumeConfig{
			Type:   types.VolumeTypeBind,
			Source: "/var/run/docker.sock",
			Target: "/var/run/docker.sock",
		})
		if _, set := svc.Environment["DOCKER_CONFIG"]; !set {
			svc.Environment = maps.Clone(svc.Environment)
			if svc.Environment == nil {
				svc.Environment = types.MappingWithEquals{}
			}
			dir := "/run/secrets/docker"
			svc.Environment["DOCKER_CONFIG"] = &dir
		}
		svc.Configs = append(slices.Clone(svc.Configs), types.ServiceConfigObjConfig{
			Source: "#apisocket",
			Target: "/run/secrets/docker/config.json",
		})
	}
	if len(svc.VolumesFrom) > 0 {
		svc.VolumesFrom = slices.Clone(svc.VolumesFrom)
		for i, v := range svc.VolumesFrom {
			spec := strings.Split(v, ":")
			switch {
			case spec[0] == "container" && len(spec) > 1:
				svc.VolumesFrom[i] = spec[1]
			case ids[spec[0]] != "":
				svc.VolumesFrom[i] = ids[spec[0]]
			}
		}
	}
	for _, mode := range []*string{&svc.NetworkMode, &svc.Ipc, &svc.Pid} {
		if dep, ok := strings.CutPrefix(*mode, types.ServicePrefix); ok && ids[dep] != "" {
			*mode = types.ContainerPrefix + ids[dep]
		}
	}
	return svc
}

// DefaultTimeout bounds the wait for health when ApplyOptions.Timeout is 0.
const DefaultTimeout = 5 * time.Minute

// ApplyOptions tunes Apply.
type ApplyOptions struct {
	// Force lists services to recreate even when their config hash did not
	// change (a rotated secret value, which Compose does not hash).
	Force []string
	// Timeout bounds the wait for every service to run and be healthy;
	// 0 means DefaultTimeout.
	Timeout time.Duration
	// Soak is how long every service must stay running and healthy after
	// it first is, within Timeout; 0 means no soak.
	Soak time.Duration
	// Pulled says that Pull brought the images: Apply pulls nothing, so
	// the containers run exactly the images Pull returned.
	Pulled bool
}

// soakPoll is how often the soak looks at the project's containers.
const soakPoll = 500 * time.Millisecond

// Apply converges the engine to p as `docker compose up -d --wait
// --remove-orphans` would: it creates what is missing, recreates what
// changed (and the Force services), removes containers of services p no
// longer has, and pulls only images that are not present locally (unless
// a service's pull_policy says otherwise). Then it waits until every
// service runs and, where it has a healthcheck, is healthy.
//
// A container that turns unhealthy or exits fails Apply at once, with an
// *UnhealthyError (ErrUnhealthy) naming its service; so does health that
// has not decided after the timeout. Failures to reach the engine wrap
// ErrEngine. p is not modified.
func (e *Engine) Apply(ctx context.Context, p *types.Project, opts ApplyOptions) error {
	if p == nil || p.Name == "" {
		return fmt.Errorf("apply: a project with a name is required")
	}
	for _, svc := range opts.Force {
		if _, ok := p.Services[svc]; !ok {
			return fmt.Errorf("apply %s: cannot force service %q: the project has no such service", p.Name, svc)
		}
	}
	timeout := cmp.Or(opts.Timeout, DefaultTimeout)
	proj := withComposeLabels(p)
	if opts.Pulled {
		proj = pinned(proj)
	}

	create := api.CreateOptions{
		RemoveOrphans:        true,
		Recreate:             api.RecreateDiverged,
		RecreateDependencies: api.RecreateDiverged,
		Inherit:              true, // keep anonymous volumes across a recreate, as `up` does
		QuietPull:            true,
	}
	if len(opts.Force) > 0 {
		create.Services = slices.Clone(opts.Force)
		create.Recreate = api.RecreateForce
	}
	// Up in detached mode is exactly Create then Start; calling them apart
	// tells a failed create (not a health problem) from a failed start.
	e.log.Debug("apply", "project", p.Name, "force", opts.Force)
	for attempt := 1; ; attempt++ {
		err := e.removeInterrupted(ctx, p.Name)
		if err == nil {
			err = recovered(func() error { return e.compose.Create(ctx, proj, create) })
		}
		if err == nil {
			break
		}
		// A container that vanished or a name still taken: the engine is
		// finishing what an interrupted run asked of it. Converging again
		// is safe; blaming the release is not.
		if attempt < 3 && raced(err) && ctx.Err() == nil {
			e.log.Info("engine busy with an interrupted run's containers; trying again", "project", p.Name, "err", redact.URLs(err.Error()))
			select {
			case <-time.After(time.Duration(attempt) * time.Second):
			case <-ctx.Done():
			}
			continue
		}
		return e.wrap(ctx, "apply "+p.Name, err)
	}
	began := time.Now()
	err := recovered(func() error {
		return e.compose.Start(ctx, proj.Name, api.StartOptions{Project: proj, Wait: true, WaitTimeout: timeout})
	})
	if ctx.Err() != nil {
		// Compose's wait returns nil when its context is cancelled.
		return fmt.Errorf("apply %s: %w", p.Name, ctx.Err())
	}
	// A crash-looping container can look "running" at the instant the wait
	// polls it: look once more, and learn which services failed and how.
	st, listErr := e.serviceStates(ctx, proj)
	switch {
	case listErr != nil && err != nil:
		return e.wrap(ctx, "apply "+p.Name, err)
	case listErr != nil:
		return e.wrap(ctx, "apply "+p.Name+": check health", listErr)
	case len(st.failed) > 0:
		return &UnhealthyError{Project: p.Name, Services: st.failed}
	case err != nil && len(st.starting) > 0 && time.Since(began) >= timeout:
		return &UnhealthyError{Project: p.Name, Services: st.starting, TimedOut: true}
	case err != nil:
		// Not a health verdict: a container that could not start (a port
		// already taken, say), or the engine.
		return e.wrap(ctx, "apply "+p.Name, err)
	}
	return e.soak(ctx, proj, opts.Soak, began.Add(timeout))
}

// soak watches a project that just became healthy for d (at most until
// deadline): a release that turns unhealthy, exits or restarts seconds
// after its first healthy check fails its apply, so it never becomes the
// rollback target.
func (e *Engine) soak(ctx context.Context, p *types.Project, d time.Duration, deadline time.Time) error {
	if d <= 0 {
		return nil
	}
	start := time.Now()
	end := start.Add(d)
	if end.After(deadline) {
		end = deadline
	}
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("apply %s: %w", p.Name, ctx.Err())
		case <-time.After(min(soakPoll, time.Until(end))):
		}
		st, err := e.serviceStates(ctx, p)
		if err != nil {
			return e.wrap(ctx, "apply "+p.Name+": soak", err)
		}
		if len(st.failed) > 0 {
			for svc, what := range st.failed {
				st.failed[svc] = fmt.Sprintf("%s %s into its %s soak", what, time.Since(start).Round(time.Second), d)
			}
			return &UnhealthyError{Project: p.Name, Services: st.failed}
		}
	}
	return nil
}

// raced reports an error of the engine still carrying out an interrupted
// run's requests: a container gone between list and use, a name or a
// removal still in progress.
func raced(err error) bool {
	if resourceHint(err) != "" {
		return false // not a race: the host is short of something
	}
	msg := err.Error()
	if strings.Contains(msg, "No such image") {
		return false // the image is missing: no race, and trying again changes nothing
	}
	if errdefs.IsNotFound(err) || errdefs.IsConflict(err) {
		return true
	}
	return strings.Contains(msg, "No such container") || strings.Contains(msg, "is already in use by container") ||
		strings.Contains(msg, "is already in progress") || strings.Contains(msg, "is ambiguous")
}

// interruptedName is the name Compose gives a container it is replacing
// ("<12 hex of its ID>_<name>") until the new one is created and the old
// one removed.
var interruptedName = regexp.MustCompile(`^/?[0-9a-f]{12}_`)

// removeInterrupted removes what an interrupted run (syncd killed, the
// engine lost) left that blocks the next one: containers a recreate left
// under their temporary name (while they hold it, Compose cannot recreate
// the service again), and a second network of the same name, created when
// the next run listed the networks before the engine had finished the
// killed run's create (Compose then fails: "network ... is ambiguous").
func (e *Engine) removeInterrupted(ctx context.Context, project string) error {
	if err := e.removeDuplicateNetworks(ctx, project); err != nil {
		return err
	}
	res, err := e.api.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", api.ProjectLabel+"="+project),
	})
	if err != nil {
		return err
	}
	for _, c := range res.Items {
		if len(c.Names) == 0 || !interruptedName.MatchString(c.Names[0]) {
			continue
		}
		e.log.Info("removing a container an interrupted recreate left", "project", project, "container", strings.TrimPrefix(c.Names[0], "/"))
		if _, err := e.api.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			return err
		}
	}
	return nil
}

// removeDuplicateNetworks leaves one network per name among project's: of
// each group it removes the newest first, and a network still in use
// refuses removal and is the one kept.
func (e *Engine) removeDuplicateNetworks(ctx context.Context, project string) error {
	res, err := e.api.NetworkList(ctx, client.NetworkListOptions{
		Filters: make(client.Filters).Add("label", api.ProjectLabel+"="+project),
	})
	if err != nil {
		return err
	}
	byName := map[string][]network.Summary{}
	for _, n := range res.Items {
		byName[n.Name] = append(byName[n.Name], n)
	}
	for name, group := range byName {
		slices.SortFunc(group, func(a, b network.Summary) int { return b.Created.Compare(a.Created) })
		left := len(group)
		for _, n := range group {
			if left == 1 {
				break
			}
			if _, err := e.api.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil {
				continue // in use: the one to keep
			}
			left--
			e.log.Info("removed a duplicate network an interrupted run left", "project", project, "network", name)
		}
	}
	return nil
}

// withComposeLabels returns a copy of p whose services carry the labels
// Compose's own project loader adds and its create relies on (project,
// service, one-off...): a project loaded with compose-go alone has none.
func withComposeLabels(p *types.Project) *types.Project {
	proj := p.WithoutUnresolvedOptionalDependencies() // a deep copy
	for name, svc := range proj.Services {
		svc.CustomLabels = svc.CustomLabels.
			Add(api.ProjectLabel, proj.Name).
			Add(api.ServiceLabel, name).
			Add(api.VersionLabel, api.ComposeVersion).
			Add(api.WorkingDirLabel, proj.WorkingDir).
			Add(api.ConfigFilesLabel, strings.Join(proj.ComposeFiles, ",")).
			Add(api.OneoffLabel, "False")
		if svc.UseAPISocket && svc.Environment == nil {
			// Compose adds DOCKER_CONFIG to it without making it first; an
			// empty map hashes as no map.
			svc.Environment = types.MappingWithEquals{}
		}
		proj.Services[name] = svc
	}
	if proj.Configs == nil {
		proj.Configs = types.Configs{} // the same, for use_api_socket's config
	}
	return proj
}

// states sorts the services whose containers are not running and healthy.
type states struct {
	failed   map[string]string // unhealthy, exited, restarting or dead
	starting map[string]string // running, health not decided yet
}

// serviceStates lists p's containers and returns the services that are not
// running and healthy, with what was seen of each.
func (e *Engine) serviceStates(ctx context.Context, p *types.Project) (states, error) {
	st := states{failed: map[string]string{}, starting: map[string]string{}}
	res, err := e.api.ContainerList(ctx, client.ContainerListOptions{
		All: true,
		Filters: make(client.Filters).
			Add("label", api.ProjectLabel+"="+p.Name).
			Add("label", api.OneoffLabel+"=False"),
	})
	if err != nil {
		return st, err
	}
	// A service others wait for with service_completed_successfully is a
	// job: exiting 0 is its success, as in Compose's own wait.
	jobs := map[string]bool{}
	for _, svc := range p.Services {
		for dep, d := range svc.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				jobs[dep] = true
			}
		}
	}
	for _, c := range res.Items {
		svc := c.Labels[api.ServiceLabel]
		if _, ok := p.Services[svc]; !ok {
			continue
		}
		h := health(c)
		switch c.State {
		case container.StateRunning:
			switch h {
			case string(container.Unhealthy):
				st.failed[svc] = "unhealthy" + e.lastHealthcheck(ctx, c.ID)
			case string(container.Starting):
				st.starting[svc] = "starting"
			}
		case container.StateExited:
			if !jobs[svc] || !strings.HasPrefix(c.Status, "Exited (0)") {
				st.failed[svc] = exited(c.Status)
			}
		case container.StateRestarting, container.StateDead:
			st.failed[svc] = string(c.State)
		}
		// created, paused, removing: not a health verdict.
	}
	return st, nil
}

// maxHealthOutput is what an unhealthy verdict shows of the healthcheck's
// last output.
const maxHealthOutput = 300

// lastHealthcheck is " (last healthcheck: exit N: output)" of the
// container's last failed check, or "" when the engine keeps none. The
// output is the container's text: one line, escaped, cut short.
func (e *Engine) lastHealthcheck(ctx context.Context, id string) string {
	res, err := e.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil || res.Container.State == nil || res.Container.State.Health == nil {
		return ""
	}
	log := res.Container.State.Health.Log
	for i := len(log) - 1; i >= 0; i-- {
		if r := log[i]; r != nil && r.ExitCode != 0 {
			out := strings.Join(strings.Fields(r.Output), " ")
			if out == "" {
				return fmt.Sprintf(" (last healthcheck: exit %d, no output)", r.ExitCode)
			}
			return fmt.Sprintf(" (last healthcheck: exit %d: %s)", r.ExitCode, escape.Text(abbrev.Text(out, maxHealthOutput)))
		}
	}
	return ""
}

// exited turns a status such as "Exited (1) 3 seconds ago" into "exited (1)".
func exited(status string) string {
	if _, rest, ok := strings.Cut(status, "("); ok {
		if code, _, ok := strings.Cut(rest, ")"); ok {
			return "exited (" + code + ")"
		}
	}
	return "exited"
}

// Remove takes the project name down: its containers (one-off ones too)
// and networks. Its volumes are kept. Removing a project that does not
// exist is not an error.
func (e *Engine) Remove(ctx context.Context, name string) error {
	err := recovered(func() error { return e.compose.Down(ctx, name, api.DownOptions{RemoveOrphans: true}) })
	return e.wrap(ctx, "remove "+name, err)
}

// recovered runs an SDK call and turns a panic in it (in its own goroutine)
// into an error: a bug in the SDK must fail one apply, not the agent.
func recovered(call func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("the Compose SDK panicked: %v", v)
		}
	}()
	return call()
}
