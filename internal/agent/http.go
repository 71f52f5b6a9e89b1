package agent

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// maxWebhookBody caps what a webhook may send: push payloads are a few KiB
// to a few hundred; an unauthenticated sender must not make us buffer more.
const maxWebhookBody = 1 << 20

// Handler serves GET /metrics (Prometheus, the agent's own registry),
// GET /healthz and POST /webhook.
func (a *Agent) Handler() http.Handler { return a.handler }

func (a *Agent) newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{
		ErrorLog: slogPrinter{a},
	}))
	mux.HandleFunc("GET /healthz", a.serveHealthz)
	mux.HandleFunc("/webhook", a.serveWebhook)
	return mux
}

// slogPrinter lets promhttp report scrape errors through the agent's logger.
type slogPrinter struct{ a *Agent }

func (p slogPrinter) Println(v ...any) { p.a.log.Warn("metrics: " + fmt.Sprint(v...)) }

// serveHealthz answers 200 "ok" unless cycles have kept failing for longer
// than three polls: a transient failure that the next retries heal is not
// worth a page.
func (a *Agent) serveHealthz(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	failing, since, failures, lastErr := a.failing, a.failSince, a.failures, a.lastErr
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if failing && a.clock.Now().Sub(since) > 3*a.cfg.Poll {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "cycles failing since %s (%d attempts): %s\n", since.UTC().Format(time.RFC3339), failures, lastErr)
		return
	}
	io.WriteString(w, "ok\n")
}

// serveWebhook triggers a cycle for a push notification from GitHub, Gitea
// or Forgejo, signed with the shared secret over the raw body.
func (a *Agent) serveWebhook(w http.ResponseWriter, r *http.Request) {
	if len(a.cfg.WebhookSecret) == 0 {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			a.logRefused("webhook refused: body too large", "remote", r.RemoteAddr, "limit", maxWebhookBody)
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	if header, err := a.verify(r.Header, body); err != nil {
		// Never the body: it is unauthenticated input.
		a.logRefused("webhook refused", "remote", r.RemoteAddr, "header", header, "err", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if r.Header.Get("X-GitHub-Event") == "ping" {
		io.WriteString(w, "pong\n")
		return
	}
	a.log.Debug("webhook accepted", "remote", r.RemoteAddr)
	a.Trigger("webhook")
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, "accepted\n")
}

// refusedLogEvery bounds the log of refused webhook requests, which anyone
// who can reach the port can send.
const refusedLogEvery = time.Minute

// logRefused logs a refused request, at most once per refusedLogEvery; the
// line after a quiet spell says how many were not logged.
func (a *Agent) logRefused(msg string, args ...any) {
	a.refused.Lock()
	defer a.refused.Unlock()
	now := a.clock.Now()
	if !a.refused.last.IsZero() && now.Sub(a.refused.last) < refusedLogEvery {
		a.refused.dropped++
		return
	}
	if a.refused.dropped > 0 {
		args = append(args, "not_logged_since_last", a.refused.dropped)
	}
	a.refused.last, a.refused.dropped = now, 0
	a.log.Warn(msg, args...)
}

// signatureHeaders are the headers forges sign a webhook with: the HMAC
// SHA-256 of the raw body with the shared secret, in hex.
var signatureHeaders = []struct{ name, prefix string }{
	{"X-Hub-Signature-256", "sha256="}, // GitHub (Gitea and Forgejo send it too)
	{"X-Gitea-Signature", ""},
	{"X-Forgejo-Signature", ""},
}

// verify checks every signature header present (at least one must be) and
// returns the name of the one that failed.
func (a *Agent) verify(h http.Header, body []byte) (string, error) {
	mac := hmac.New(sha256.New, a.cfg.WebhookSecret)
	mac.Write(body)
	want := mac.Sum(nil)
	seen := false
	for _, sh := range signatureHeaders {
		v := h.Get(sh.name)
		if v == "" {
			continue
		}
		seen = true
		hexSig, ok := strings.CutPrefix(v, sh.prefix)
		if !ok {
			return sh.name, fmt.Errorf("signature without the %q prefix", sh.prefix)
		}
		got, err := hex.DecodeString(hexSig)
		if err != nil {
			return sh.name, errors.New("signature is not hex")
		}
		if !hmac.Equal(got, want) {
			return sh.name, errors.New("signature does not match")
		}
	}
	if !seen {
		return "", errors.New("no signature header")
	}
	return "", nil
}
