package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/escape"
)

// Containers is what a container probe needs of Docker.
type Containers interface {
	// ServiceHealth says how the container of service in project is:
	// "healthy", "unhealthy", "starting", "running" (it has no
	// healthcheck), "exited (1)", "restarting", "missing"... An error means
	// the engine could not be asked.
	ServiceHealth(ctx context.Context, project, service string) (string, error)
	// Ping checks that the engine answers.
	Ping(ctx context.Context) error
}

// Result is one check of one probe.
type Result struct {
	At      time.Time
	OK      bool
	Latency time.Duration
	// Error says why the check failed; redacted.
	Error string
	// CertDays is how many whole days the server's certificate has left
	// (https only; nil otherwise).
	CertDays *int
	// EngineDown marks a check that could not reach the Docker engine.
	EngineDown bool
}

// Checker runs one check of a probe.
type Checker struct {
	// Containers answers container probes; nil fails them.
	Containers Containers
	// RootCAs verifies HTTPS servers; nil means the host's roots.
	RootCAs *x509.CertPool
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// maxBody caps what is read of a response to look for the body substring.
const maxBody = 1 << 20

// Check runs p once for project, within p's timeout. redact scrubs the
// host's secret values from what it says (a URL may hold a token); nil
// leaves the text as it is.
func (c *Checker) Check(ctx context.Context, project string, p desired.Probe, redact func(string) string) Result {
	if redact == nil {
		redact = func(s string) string { return s }
	}
	timeout := p.TimeoutOr()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	r := Result{At: c.now()}
	var err error
	switch {
	case p.HTTP != nil:
		r.CertDays, err = c.http(ctx, p.HTTP, r.At)
	case p.TCP != nil:
		err = tcp(ctx, p.TCP.Address)
	case p.Container != nil:
		r.EngineDown, err = c.container(ctx, project, p.Container.Service)
	default:
		err = errors.New("the probe has no kind (http, tcp or container)")
	}
	r.Latency = time.Since(start)
	if err != nil {
		msg := err.Error()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			msg = fmt.Sprintf("no answer within %s (timeout)", timeout)
			if p.HTTP != nil {
				msg = fmt.Sprintf("GET %s: no answer within %s (timeout)", p.HTTP.URL, timeout)
			} else if p.TCP != nil {
				msg = fmt.Sprintf("connect %s: no answer within %s (timeout)", p.TCP.Address, timeout)
			}
		}
		// A target's certificate names and status line are its own text.
		r.Error = escape.Text(redact(msg))
		return r
	}
	r.OK = true
	return r
}

func (c *Checker) http(ctx context.Context, h *desired.HTTPProbe, now time.Time) (*int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", h.URL, unwrapURL(err))
	}
	req.Header.Set("User-Agent", "syncd-probe")
	tr := &http.Transport{
		Proxy:             http.ProxyFromEnvironment,
		DisableKeepAlives: true, // each check connects anew: reachability and the certificate are what is checked
		TLSClientConfig:   &tls.Config{RootCAs: c.RootCAs, InsecureSkipVerify: h.TLSSkipVerify},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %s", h.URL, describe(unwrapURL(err)))
	}
	defer resp.Body.Close()
	var days *int
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		d := int(resp.TLS.PeerCertificates[0].NotAfter.Sub(now) / (24 * time.Hour))
		days = &d
	}
	if h.Status != 0 && resp.StatusCode != h.Status {
		return days, fmt.Errorf("GET %s: status %d, want %d", h.URL, resp.StatusCode, h.Status)
	}
	if h.Status == 0 && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		return days, fmt.Errorf("GET %s: status %d, want 2xx", h.URL, resp.StatusCode)
	}
	if h.Body != "" {
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			return days, fmt.Errorf("GET %s: read the body: %w", h.URL, err)
		}
		if !strings.Contains(string(body), h.Body) {
			return days, fmt.Errorf("GET %s: the body (%d bytes) does not contain %q", h.URL, len(body), h.Body)
		}
	}
	return days, nil
}

// unwrapURL drops *url.Error's own quoting of the URL: messages name it
// once, themselves.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// describe says what a TLS failure means for the one who reads the alert.
func describe(err error) string {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	switch {
	case errors.As(err, &unknown):
		return "the certificate is not signed by an authority the host trusts (self-signed?); set tls_skip_verify: true only if that is intended: " + err.Error()
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the certificate has expired or is not valid yet: " + err.Error()
	case errors.As(err, &host):
		return "the certificate is for another name: " + err.Error()
	}
	return err.Error()
}

func tcp(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			return fmt.Errorf("connect %s: %v", addr, op.Err)
		}
		return fmt.Errorf("connect %s: %v", addr, err)
	}
	return conn.Close()
}

func (c *Checker) container(ctx context.Context, project, service string) (engineDown bool, err error) {
	if c.Containers == nil {
		return false, errors.New("no Docker engine to ask")
	}
	st, err := c.Containers.ServiceHealth(ctx, project, service)
	if err != nil {
		return true, fmt.Errorf("engine unreachable: %w", err)
	}
	switch st {
	case "healthy", "running":
		return false, nil
	case "missing", "":
		return false, fmt.Errorf("service %s has no container", service)
	}
	return false, fmt.Errorf("service %s is %s", service, st)
}

func (c *Checker) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}
