package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/client"

	"github.com/syncd-dev/syncd/internal/abbrev"
)

// What a restore drill needs of the engine beyond Apply and Exec: volumes
// of its own, made before anything mounts them, and the removal of
// everything that carries its label (after the drill, or what a killed
// drill left).

// CreateBindVolume creates the local volume name, labelled, whose data is
// the host directory dir (driver options type=none, o=bind): a throwaway
// project mounts what was extracted there, and nothing else of the host.
//
// The engine answers a create of a name it has with the volume it has,
// whatever was asked: a volume of that name that is not this one (an
// app's) is refused, never used.
func (e *Engine) CreateBindVolume(ctx context.Context, name, dir string, labels map[string]string) error {
	res, err := e.api.VolumeCreate(ctx, client.VolumeCreateOptions{
		Name: name, Driver: "local", Labels: labels,
		DriverOpts: map[string]string{"type": "none", "o": "bind", "device": dir},
	})
	if err != nil {
		return e.wrap(ctx, "create volume "+name, err)
	}
	v := res.Volume
	if v.Driver != "local" || v.Options["device"] != dir || v.Options["o"] != "bind" {
		return fmt.Errorf("create volume %s: a volume of that name exists already and is not this one: remove it, or rename it (`docker volume inspect %s`)", name, name)
	}
	for k, want := range labels {
		if v.Labels[k] != want {
			return fmt.Errorf("create volume %s: a volume of that name exists already without the label %s=%s: remove it, or rename it", name, k, want)
		}
	}
	return nil
}

// RemoveLabelled removes every container (running or not), network and
// volume that carries the label key=value and whose Compose project (a
// container's) or name (a network's, a volume's) starts with prefix, in
// that order, and returns how many it removed: a label alone, which any
// compose file can set, never takes something else down. Everything is
// tried; the error joins what failed.
func (e *Engine) RemoveLabelled(ctx context.Context, key, value, prefix string) (int, error) {
	if prefix == "" {
		return 0, errors.New("remove what is labelled " + key + ": no name prefix")
	}
	filter := make(client.Filters).Add("label", key+"="+value)
	var errs []error
	n := 0
	cs, err := e.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filter})
	if err != nil {
		return 0, e.wrap(ctx, "list containers labelled "+key, err)
	}
	for _, c := range cs.Items {
		if !strings.HasPrefix(c.Labels[api.ProjectLabel], prefix) {
			continue
		}
		if _, err := e.api.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			errs = append(errs, e.wrap(ctx, "remove container "+abbrev.ID(c.ID), err))
			continue
		}
		n++
	}
	nets, err := e.api.NetworkList(ctx, client.NetworkListOptions{Filters: filter})
	if err != nil {
		errs = append(errs, e.wrap(ctx, "list networks labelled "+key, err))
	} else {
		for _, nw := range nets.Items {
			if !strings.HasPrefix(nw.Name, prefix) {
				continue
			}
			if _, err := e.api.NetworkRemove(ctx, nw.ID, client.NetworkRemoveOptions{}); err != nil {
				errs = append(errs, e.wrap(ctx, "remove network "+nw.Name, err))
				continue
			}
			n++
		}
	}
	vols, err := e.api.VolumeList(ctx, client.VolumeListOptions{Filters: filter})
	if err != nil {
		errs = append(errs, e.wrap(ctx, "list volumes labelled "+key, err))
	} else {
		for _, v := range vols.Items {
			if !strings.HasPrefix(v.Name, prefix) {
				continue
			}
			if _, err := e.api.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil {
				errs = append(errs, e.wrap(ctx, "remove volume "+v.Name, err))
				continue
			}
			n++
		}
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("remove what is labelled %s=%s: %w", key, value, err)
	}
	return n, nil
}
