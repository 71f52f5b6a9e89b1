package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"
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

// opError is an error whose message has been cleaned (secret values and
// URL credentials removed) and that wraps its kind and its cause.
type opError struct {
	msg  string
	errs []error
}

func (e *opError) Error() string   { return e.msg }
func (e *opError) Unwrap() []error { return e.errs }

// wrap describes a failed SDK or client call. It wraps ErrEngine when the
// error is a connection failure, or when the engine no longer answers a
// ping after it: the engine, not the request, was at fault.
func (e *Engine) wrap(ctx context.Context, op string, err error, r redactor) error {
	if err == nil {
		return nil
	}
	msg := op + ": " + r.redact(redactURLs(err.Error()))
	errs := []error{err}
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
	return &opError{msg: msg, errs: errs}
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

// credentialsInURL matches the user-info part of a URL (scheme://user:pw@).
var credentialsInURL = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@`)

// redactURLs removes credentials from URLs in s (a DOCKER_HOST may hold some).
func redactURLs(s string) string {
	return credentialsInURL.ReplaceAllString(s, "${1}<redacted>@")
}

// minRedactLen is the shortest secret value replaced inside a message:
// shorter ones would blank out ordinary words.
const minRedactLen = 4

// redactor blanks a project's secret values out of messages.
type redactor []string

// secretValues returns the values p's Compose secrets are filled from
// (inline content, or an environment source), longest first so a value
// that contains another is replaced whole.
func secretValues(p *types.Project) redactor {
	var vals []string
	for _, s := range p.Secrets {
		v := s.Content
		if s.Environment != "" {
			v = p.Environment[s.Environment]
		}
		if len(v) >= minRedactLen {
			vals = append(vals, v)
		}
	}
	slices.SortFunc(vals, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	return slices.Compact(vals)
}

func (r redactor) redact(s string) string {
	for _, v := range r {
		s = strings.ReplaceAll(s, v, "<redacted>")
	}
	return s
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
