package agent

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testSecret = "s3cret-webhook-key"

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func pendingReason(a *Agent) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pending
}

func serve(h http.Handler, method, path string, body io.Reader, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, body)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestWebhook(t *testing.T) {
	const body = `{"ref":"refs/heads/main","marker":"BODY-MUST-NOT-BE-LOGGED"}`
	good := sign(testSecret, body)
	bad := sign("another secret", body)
	big := strings.Repeat("x", maxWebhookBody+1)
	tests := []struct {
		name    string
		method  string
		body    string
		header  map[string]string
		code    int
		trigger bool
	}{
		{"github", "POST", body, map[string]string{"X-Hub-Signature-256": "sha256=" + good, "X-GitHub-Event": "push"}, 202, true},
		{"gitea", "POST", body, map[string]string{"X-Gitea-Signature": good, "X-Gitea-Event": "push"}, 202, true},
		{"forgejo", "POST", body, map[string]string{"X-Forgejo-Signature": good, "X-Forgejo-Event": "push"}, 202, true},
		{"gitea sending every header", "POST", body, map[string]string{"X-Gitea-Signature": good, "X-Hub-Signature-256": "sha256=" + good}, 202, true},
		{"uppercase hex", "POST", body, map[string]string{"X-Gitea-Signature": strings.ToUpper(good)}, 202, true},
		{"github ping", "POST", body, map[string]string{"X-Hub-Signature-256": "sha256=" + good, "X-GitHub-Event": "ping"}, 200, false},
		{"wrong secret", "POST", body, map[string]string{"X-Hub-Signature-256": "sha256=" + bad}, 401, false},
		{"wrong secret, gitea", "POST", body, map[string]string{"X-Gitea-Signature": bad}, 401, false},
		{"wrong secret, forgejo", "POST", body, map[string]string{"X-Forgejo-Signature": bad}, 401, false},
		{"one good, one bad", "POST", body, map[string]string{"X-Gitea-Signature": good, "X-Hub-Signature-256": "sha256=" + bad}, 401, false},
		{"no signature", "POST", body, nil, 401, false},
		{"github without prefix", "POST", body, map[string]string{"X-Hub-Signature-256": good}, 401, false},
		{"not hex", "POST", body, map[string]string{"X-Gitea-Signature": "zz" + good[2:]}, 401, false},
		{"truncated", "POST", body, map[string]string{"X-Gitea-Signature": good[:32]}, 401, false},
		{"ping with a bad signature", "POST", body, map[string]string{"X-Hub-Signature-256": "sha256=" + bad, "X-GitHub-Event": "ping"}, 401, false},
		{"signed body over 1 MiB", "POST", big, map[string]string{"X-Hub-Signature-256": "sha256=" + sign(testSecret, big)}, 413, false},
		{"GET", "GET", "", nil, 405, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{WebhookSecret: []byte(testSecret)})
			rec := serve(h.a.Handler(), tt.method, "/webhook", strings.NewReader(tt.body), tt.header)
			if rec.Code != tt.code {
				t.Errorf("status %d, want %d (%s)", rec.Code, tt.code, rec.Body)
			}
			if got := pendingReason(h.a) == "webhook"; got != tt.trigger {
				t.Errorf("triggered a cycle: %v, want %v", got, tt.trigger)
			}
			logs := h.logs.String()
			if strings.Contains(logs, "BODY-MUST-NOT-BE-LOGGED") || strings.Contains(logs, testSecret) {
				t.Errorf("the body or the secret was logged:\n%s", logs)
			}
			if tt.code == 401 {
				if w := h.logs.atLeastInfo(t); len(w) != 1 || w[0]["level"] != "WARN" {
					t.Errorf("refusal logged %v, want one warning", w)
				}
			}
		})
	}
}

func TestWebhookWithoutSecretIsNotFound(t *testing.T) {
	h := newHarness(t, Config{})
	const body = `{}`
	rec := serve(h.a.Handler(), "POST", "/webhook", strings.NewReader(body), map[string]string{"X-Hub-Signature-256": "sha256=" + sign("", body)})
	if rec.Code != 404 || pendingReason(h.a) != "" {
		t.Errorf("status %d, pending %q; want 404 and nothing", rec.Code, pendingReason(h.a))
	}
}

func TestWebhookRunsCycle(t *testing.T) {
	h := newHarness(t, Config{Poll: time.Minute, WebhookSecret: []byte(testSecret)})
	h.run()
	h.expect("start").finish(Result{}, nil)
	h.idle()
	const body = `{"ref":"refs/heads/main"}`
	rec := serve(h.a.Handler(), "POST", "/webhook", strings.NewReader(body), map[string]string{"X-Hub-Signature-256": "sha256=" + sign(testSecret, body)})
	if rec.Code != 202 {
		t.Fatalf("status %d", rec.Code)
	}
	h.expect("webhook").finish(Result{Commit: "c2", Changed: 1}, nil)
	h.idle()
	// A refused one starts nothing: the next cycle is the timer's.
	rec = serve(h.a.Handler(), "POST", "/webhook", strings.NewReader(body), map[string]string{"X-Hub-Signature-256": "sha256=" + sign("guess", body)})
	if rec.Code != 401 {
		t.Fatalf("status %d", rec.Code)
	}
	h.fire()
	h.expect("poll").finish(Result{Quiet: true}, nil)
	h.idle()
}

// metricValue returns the value of the exposition line that starts with
// series (name plus labels, exactly as exposed).
func metricValue(t *testing.T, exposition, series string) float64 {
	t.Helper()
	for _, l := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Errorf("no %s in the exposition", series)
	return -1
}

func scrape(t *testing.T, a *Agent) string {
	t.Helper()
	rec := serve(a.Handler(), "GET", "/metrics", nil, nil)
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, Config{Poll: time.Minute})
	before := scrape(t, h.a)
	for _, r := range []string{"ok", "error", "quiet"} {
		if v := metricValue(t, before, `syncd_cycles_total{result="`+r+`"}`); v != 0 {
			t.Errorf("before any cycle, %s = %v", r, v)
		}
	}
	h.run()
	h.expect("start").finish(Result{Commit: "c1", Changed: 2, Drift: 1, Projects: map[string]int{"running": 3, "failed": 1}}, nil)
	h.fire()
	h.expect("poll").finish(Result{Quiet: true}, nil)
	h.fire()
	h.expect("poll").finish(Result{}, errors.New("ls-remote failed"))
	h.fire()
	h.expect("poll").finish(Result{Commit: "c2", Changed: 1, Drift: 2, Projects: map[string]int{"running": 4, "held": 1}}, nil)
	h.idle()

	m := scrape(t, h.a)
	want := map[string]float64{
		`syncd_cycles_total{result="ok"}`:                              2,
		`syncd_cycles_total{result="error"}`:                           1,
		`syncd_cycles_total{result="quiet"}`:                           1,
		`syncd_polls_total`:                                            3,
		`syncd_drift_total`:                                            3,
		`syncd_projects{state="running"}`:                              4,
		`syncd_projects{state="held"}`:                                 1,
		`syncd_cycle_duration_seconds_count{reason="start"}`:           1,
		`syncd_cycle_duration_seconds_count{reason="poll"}`:            3,
		`syncd_last_success_timestamp_seconds`:                         float64(h.clock.Now().UnixNano()) / 1e9,
		`syncd_cycle_duration_seconds_bucket{reason="poll",le="0.05"}`: 3, // the fake clock stands still
	}
	for series, v := range want {
		if got := metricValue(t, m, series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
	if strings.Contains(m, `syncd_projects{state="failed"}`) {
		t.Error("a state no longer reported is still exposed")
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if !strings.Contains(m, "\n"+name+" ") {
			t.Errorf("no %s: the go/process collectors are missing", name)
		}
	}
}

func TestMetricsRegistriesAreSeparate(t *testing.T) {
	// Two agents in one process (tests, or a future multi-repo agent) must
	// not collide on a global registry.
	a1 := New(Config{}, nil)
	a2 := New(Config{}, nil)
	a1.metrics.polls.Inc()
	if v := metricValue(t, scrape(t, a2), "syncd_polls_total"); v != 0 {
		t.Errorf("second agent sees the first's polls: %v", v)
	}
}

func healthz(t *testing.T, a *Agent) (int, string) {
	t.Helper()
	rec := serve(a.Handler(), "GET", "/healthz", nil, nil)
	return rec.Code, rec.Body.String()
}

func TestHealthz(t *testing.T) {
	h := newHarness(t, Config{Poll: time.Minute, Backoff: 5 * time.Second})
	if code, body := healthz(t, h.a); code != 200 || body != "ok\n" {
		t.Errorf("before the first cycle: %d %q", code, body)
	}
	h.run()
	h.expect("start").finish(Result{}, nil)
	h.fire()
	failStart := h.clock.Now()
	h.expect("poll").finish(Result{}, errors.New("git fetch: host unreachable"))
	h.idle()
	if code, body := healthz(t, h.a); code != 200 || body != "ok\n" {
		t.Errorf("right after a failure: %d %q, want 200 ok", code, body)
	}
	// Keep failing until the streak is older than 3×Poll.
	for h.clock.Now().Sub(failStart) <= 3*time.Minute {
		if code, _ := healthz(t, h.a); code != 200 {
			t.Fatalf("503 after failing for only %s", h.clock.Now().Sub(failStart))
		}
		h.fire()
		h.expect("poll").finish(Result{}, errors.New("git fetch: host unreachable"))
		h.idle()
	}
	code, body := healthz(t, h.a)
	if code != 503 || !strings.Contains(body, "git fetch: host unreachable") || !strings.Contains(body, "failing since "+failStart.Format(time.RFC3339)) {
		t.Errorf("after failing for %s: %d %q", h.clock.Now().Sub(failStart), code, body)
	}
	h.fire()
	h.expect("poll").finish(Result{Commit: "c1"}, nil)
	h.idle()
	if code, body := healthz(t, h.a); code != 200 || body != "ok\n" {
		t.Errorf("after recovering: %d %q", code, body)
	}
}

func TestUnknownPath(t *testing.T) {
	a := New(Config{}, nil)
	if rec := serve(a.Handler(), "GET", "/", nil, nil); rec.Code != 404 {
		t.Errorf("GET / = %d", rec.Code)
	}
	if rec := serve(a.Handler(), "POST", "/metrics", bytes.NewReader(nil), nil); rec.Code != 405 {
		t.Errorf("POST /metrics = %d", rec.Code)
	}
}
