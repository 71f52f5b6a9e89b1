package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/syncd-dev/syncd/internal/redact"
)

var (
	// ErrEngine marks a failure to reach the engine (unreachable, or
	// restarting): retry later, the release is not to blame.
	ErrEngine = errors.New("docker engine unavailable")
	// ErrUnhealthy marks a project whose services did not all become
	// running and healthy after Apply; see *UnhealthyError.
	ErrUnhealthy = errors.New("project not healthy")
	// ErrResources marks an engine out of something the host provides
	// (address pools for networks, disk, memory, file descriptors): retry
	// later once a person fixed the host, the release is not to blame.
	ErrResources = errors.New("the docker engine is out of resources")
)

// resourceErrors are what the engine says when the host, not the request,
// is short of something, each with what to do.
var resourceErrors = []struct{ text, hint string }{
	{"non-overlapping IPv4 address pool", "the engine has no address pool left for another network: add pools (default-address-pools in /etc/docker/daemon.json) or put apps on one external network"},
	{"address pools have been fully subnetted", "the engine has no address pool left for another network: add pools (default-address-pools in /etc/docker/daemon.json) or put apps on one external network"},
	{"no space left on device", "the engine's disk is full: free space under the Docker root directory (docker system prune, bigger disk)"},
	{"too many open files", "the engine ran out of file descriptors: raise LimitNOFILE of the docker service"},
	{"cannot allocate memory", "the host is out of memory"},
}

// resourceHint returns what to do when err is the engine being short of a
// resource, or "".
func resourceHint(err error) string {
	msg := err.Error()
	for _, r := range resourceErrors {
		if strings.Contains(msg, r.text) {
			return r.hint
		}
	}
	return ""
}

// opError is a failed SDK or client call: its message (URL credentials
// removed; the caller, which knows the host's secrets, redacts the rest)
// and its kinds (ErrEngine, ErrResources, the context's error). errors.Is
// and errors.As see the kinds and the cause; Unwrap is not offered, so no
// caller reaches the cause's own text and prints it unredacted.
type opError struct {
	msg   string
	kinds []error
	cause error
}

func (e *opError) Error() string { return e.msg }

func (e *opError) Is(target error) bool {
	return slices.Contains(e.kinds, target) || errors.Is(e.cause, target)
}

func (e *opError) As(target any) bool { return errors.As(e.cause, target) }

// wrap describes a failed SDK or client call. It wraps ErrEngine when the
// error is a connection failure, or when the engine no longer answers a
// ping after it: the engine, not the request, was at fault.
func (e *Engine) wrap(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	msg := op + ": " + redact.URLs(err.Error())
	var errs []error
	switch hint := resourceHint(err); {
	case hint != "":
		msg += " (" + hint + ")"
		errs = append(errs, ErrResources)
	case ctx.Err() != nil:
		// The caller gave up; say so rather than blame anything.
		errs = append(errs, ctx.Err())
	case connectionFailure(err):
		errs = append(errs, ErrEngine)
	default:
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pingTimeout)
		defer cancel()
		if _, perr := e.api.Ping(pctx, client.PingOptions{}); perr != nil {
			errs = append(errs, ErrEngine)
		}
	}
	return &opError{msg: msg, kinds: errs, cause: err}
}

// connectionFailure reports whether err says the engine could not be
// talked to, rather than that it refused a request.
func connectionFailure(err error) bool {
	if client.IsErrConnectionFailed(err) || errdefs.IsUnavailable(err) {
		return true
	}
	for _, target := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE, io.ErrUnexpectedEOF} {
		if errors.Is(err, target) {
			return true
		}
	}
	var opErr *net.OpError
	return errors.As(err, &opErr)
}

// UnhealthyError says which services of a project did not become running
// and healthy after Apply. It wraps ErrUnhealthy.
type UnhealthyError struct {
	Project string
	// Services maps each failing service to what was seen of it:
	// "unhealthy", "exited (1)", "restarting", "dead", or, when TimedOut,
	// "starting" (health not decided).
	Services map[string]string
	// TimedOut is true when health did not decide within the timeout; false
	// when a container turned unhealthy or stopped, which fails at once.
	TimedOut bool
}

func (e *UnhealthyError) Error() string {
	names := make([]string, 0, len(e.Services))
	for svc := range e.Services {
		names = append(names, svc)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, svc := range names {
		parts[i] = fmt.Sprintf("service %s %s", svc, e.Services[svc])
	}
	what := "not healthy"
	if e.TimedOut {
		what = "not healthy before the timeout"
	}
	return fmt.Sprintf("project %s %s: %s", e.Project, what, strings.Join(parts, ", "))
}

func (e *UnhealthyError) Unwrap() error { return ErrUnhealthy }
