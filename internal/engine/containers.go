package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/escape"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/proc"
)

// What day-2 jobs (backups, restores, drills) need of the engine: a project's
// containers, where its volumes live, stopping and starting services in
// order, and running a command inside a container with streamed input and
// output.

// Containers lists project's service containers (one-off ones left out),
// running or not, sorted by service.
func (e *Engine) Containers(ctx context.Context, project string) ([]plan.Container, error) {
	res, err := e.api.ContainerList(ctx, client.ContainerListOptions{
		All: true,
		Filters: make(client.Filters).
			Add("label", api.ProjectLabel+"="+project).
			Add("label", api.OneoffLabel+"=False"),
	})
	if err != nil {
		return nil, e.wrap(ctx, "list containers of "+project, err)
	}
	var cs []plan.Container
	for _, c := range res.Items {
		if c.Labels[api.HookLabel] != "" {
			continue
		}
		cs = append(cs, observedContainer(c))
	}
	slices.SortFunc(cs, func(a, b plan.Container) int { return strings.Compare(a.Service+a.Name, b.Service+b.Name) })
	return cs, nil
}

// ErrNoVolume: the volume does not exist on the engine (the app never ran
// on this host, or it was removed).
var ErrNoVolume = errors.New("no such volume")

// VolumePath returns where the engine keeps the data of volume name (its
// mountpoint on this host).
func (e *Engine) VolumePath(ctx context.Context, name string) (string, error) {
	res, err := e.api.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
	if err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "no such volume") {
			return "", fmt.Errorf("volume %s: %w", name, ErrNoVolume)
		}
		return "", e.wrap(ctx, "inspect volume "+name, err)
	}
	if res.Volume.Driver != "local" || res.Volume.Mountpoint == "" {
		return "", fmt.Errorf("volume %s uses the %q driver: only local volumes can be read from the host; back it up with a dump", name, res.Volume.Driver)
	}
	return res.Volume.Mountpoint, nil
}

// Stop stops the containers ids one after the other, in the order given.
func (e *Engine) Stop(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if _, err := e.api.ContainerStop(ctx, id, client.ContainerStopOptions{}); err != nil {
			return e.wrap(ctx, "stop container "+abbrev.ID(id), err)
		}
	}
	return nil
}

// Start starts the containers ids in the order given, each running (and
// healthy, when it has a healthcheck) before the next starts, as
// depends_on wants; timeout bounds the wait for each.
func (e *Engine) Start(ctx context.Context, ids []string, timeout time.Duration) error {
	for _, id := range ids {
		if _, err := e.api.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			return e.wrap(ctx, "start container "+abbrev.ID(id), err)
		}
		if err := e.waitReady(ctx, id, timeout); err != nil {
			return err
		}
	}
	return nil
}

// waitReady waits for container id to be running and, with a healthcheck,
// healthy.
func (e *Engine) waitReady(ctx context.Context, id string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		res, err := e.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return e.wrap(ctx, "inspect container "+abbrev.ID(id), err)
		}
		st := res.Container.State
		name := strings.TrimPrefix(res.Container.Name, "/")
		switch {
		case st == nil:
		case st.Status == container.StateExited || st.Status == container.StateDead:
			return fmt.Errorf("container %s stopped after its start (exit %d)", name, st.ExitCode)
		case st.Running && (st.Health == nil || st.Health.Status == container.Healthy || st.Health.Status == container.NoHealthcheck):
			return nil
		case st.Health != nil && st.Health.Status == container.Unhealthy:
			return fmt.Errorf("container %s is unhealthy after its start", name)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("container %s is not ready %s after its start", name, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ExitError is a command run in a container that exited non-zero.
type ExitError struct {
	Container string
	Code      int
	Stderr    string // its last lines
}

// ExitCode is the command's exit code.
func (e *ExitError) ExitCode() int { return e.Code }

// ErrOutput is the end of the command's stderr (escaped).
func (e *ExitError) ErrOutput() string { return e.Stderr }

func (e *ExitError) Error() string {
	s := fmt.Sprintf("the command exited %d in container %s", e.Code, e.Container)
	if e.Stderr != "" {
		s += ": " + e.Stderr
	}
	return s
}

// Exec runs argv in container id, as `docker exec -i` would: stdin (nil
// for none) is streamed to it, its stdout to stdout, nothing buffered. A
// non-zero exit returns an *ExitError with the end of its stderr.
func (e *Engine) Exec(ctx context.Context, id string, argv []string, stdin io.Reader, stdout io.Writer) error {
	created, err := e.api.ExecCreate(ctx, id, client.ExecCreateOptions{
		Cmd: argv, AttachStdout: true, AttachStderr: true, AttachStdin: stdin != nil,
	})
	if err != nil {
		return e.wrap(ctx, "exec in container "+abbrev.ID(id), err)
	}
	att, err := e.api.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return e.wrap(ctx, "exec in container "+abbrev.ID(id), err)
	}
	defer att.Close()
	stop := context.AfterFunc(ctx, att.Close) // a cancelled job drops the stream
	defer stop()
	inErr := make(chan error, 1)
	if stdin != nil {
		go func() {
			_, err := io.Copy(att.Conn, stdin)
			if err == nil {
				err = att.CloseWrite()
			} else {
				att.Close() // a broken input must not look like its end
			}
			inErr <- err
		}()
	} else {
		inErr <- nil
	}
	stderr := proc.NewTail(4 << 10)
	_, copyErr := stdcopy.StdCopy(stdout, stderr, att.Reader)
	if err := <-inErr; err != nil && copyErr == nil {
		copyErr = fmt.Errorf("stream input: %w", err)
	}
	if copyErr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("exec in container %s: %w", abbrev.ID(id), copyErr)
	}
	// The stream ends when the process does; its exit code may take a
	// moment to be recorded.
	for range 50 {
		ins, err := e.api.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
		if err != nil {
			return e.wrap(ctx, "exec in container "+abbrev.ID(id), err)
		}
		if !ins.Running {
			if ins.ExitCode != 0 {
				return &ExitError{Container: abbrev.ID(id), Code: ins.ExitCode, Stderr: escape.Lines(stderr.LastLines(3))}
			}
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("exec in container %s: its output ended but the process still runs", abbrev.ID(id))
}
