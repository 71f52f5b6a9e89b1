package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/redact"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// hookSink is a loopback webhook that fails with 503 while down > 0.
type hookSink struct {
	mu    sync.Mutex
	down  int // requests still to refuse
	got   []string
	seen  chan struct{}
	token string
}

func (h *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.URL.Query().Get("token") != h.token {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	if h.down > 0 {
		h.down--
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var m map[string]string
	_ = json.Unmarshal(body, &m)
	h.got = append(h.got, m["title"]+": "+m["message"])
	h.seen <- struct{}{}
}

// TestShoutrrrEndToEnd sends through the real shoutrrr generic service.
func TestShoutrrrEndToEnd(t *testing.T) {
	const token = "tk_9f8e7d6c5b4a"
	h := &hookSink{down: 3, seen: make(chan struct{}, 10), token: token}
	srv := httptest.NewServer(h)
	defer srv.Close()
	hook := "generic+" + srv.URL + "/hook?template=json&token=" + token

	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// A dead sink (connection refused) and a hanging one beside the good one.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "generic+http://" + ln.Addr().String() + "/hook?token=" + token
	ln.Close()
	hang := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang }))
	defer hanging.Close()
	defer close(hang)

	n := New(Config{
		Sinks: []Sink{
			{URL: hook},
			{URL: refused},
			{URL: "generic+" + hanging.URL + "/hook?token=" + token},
		},
		Logger:      logger,
		MinBackoff:  20 * time.Millisecond,
		SendTimeout: 500 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go n.Run(ctx)

	begin := time.Now()
	for range 50 {
		n.Notify(Event{Kind: BackupFailed, Key: "db", Host: "h", App: "db", Subject: "backup", What: "failed", Detail: "exit 1"})
	}
	n.Notify(Event{Kind: BackupFailed, Key: "db", Host: "h", App: "db", Subject: "backup", What: "works again", Detail: "ok", Recovered: true})
	n.Notify(Event{Kind: CycleFailed, Key: "", Host: "h", Subject: "the cycle", What: "failed", Detail: "pull refused"})
	if d := time.Since(begin); d > 100*time.Millisecond {
		t.Errorf("52 Notify calls took %v with dead sinks", d)
	}

	for range 3 {
		select {
		case <-h.seen:
		case <-time.After(20 * time.Second):
			t.Fatalf("timed out; got %q", h.got)
		}
	}
	select {
	case <-h.seen:
		t.Errorf("a fourth message")
	case <-time.After(300 * time.Millisecond):
	}
	h.mu.Lock()
	got := strings.Join(h.got, "|")
	h.mu.Unlock()
	if want := "syncd h: backup of db failed: backup of app db on host h failed: exit 1|" +
		"syncd h: backup of db works again: backup of app db on host h works again: ok|" +
		"syncd h: the cycle failed: the cycle on host h failed: pull refused"; got != want {
		t.Errorf("sink got %q, want %q", got, want)
	}
	cancel()

	logMu.Lock()
	defer logMu.Unlock()
	out := logs.String()
	t.Logf("logs:\n%s", out)
	if strings.Contains(out, token) || strings.Contains(out, "/hook") {
		t.Errorf("a log line shows the URL's token or path:\n%s", out)
	}
	if !strings.Contains(out, "notification sink unreachable") || !strings.Contains(out, "reachable again") {
		t.Errorf("no log of the sink going down and coming back:\n%s", out)
	}
}

func TestShoutrrrSendErrorHidesURL(t *testing.T) {
	const token = "tk_9f8e7d6c5b4a"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "nope", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	for _, u := range []string{
		"generic+" + srv.URL + "/hook/" + token + "?token=" + token,
		"generic+http://127.0.0.1:1/hook?token=" + token,
		"nosuch://" + token + "@x",
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		err := Shoutrrr{}.Send(ctx, u, "t", "m")
		cancel()
		if err == nil || strings.Contains(err.Error(), token) {
			t.Errorf("Send(%s) = %v", redact.Host(u), err)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestShoutrrrHostileTextEscaped: a probe target's or a container's text in
// an event (a window title, a screen clear, a C1 CSI, a bidi override)
// reaches the sink escaped, through the real shoutrrr generic service.
func TestShoutrrrHostileTextEscaped(t *testing.T) {
	const token = "tk_1a2b3c4d5e6f"
	h := &hookSink{seen: make(chan struct{}, 10), token: token}
	srv := httptest.NewServer(h)
	defer srv.Close()
	n := New(Config{Sinks: []Sink{{URL: "generic+" + srv.URL + "/hook?template=json&token=" + token}}, MinBackoff: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go n.Run(ctx)
	n.Notify(Event{Kind: ProbeDown, Key: "web", Host: "h", App: "web", Subject: "probe web\x1b]0;pwned\x07", What: "failed 1 check in a row",
		Detail: "GET http://x/: line 1\nline 2\x1b[2J\r\u009b31m\u202e"})
	select {
	case <-h.seen:
	case <-time.After(20 * time.Second):
		t.Fatal("no message reached the sink")
	}
	h.mu.Lock()
	got := h.got[0]
	h.mu.Unlock()
	for _, r := range got {
		if (r < 0x20 && r != '\n') || (r >= 0x80 && r <= 0x9f) || r == 0x202e {
			t.Fatalf("the sink got control character %U: %q", r, got)
		}
	}
	if want := `syncd h: probe web\x1b]0;pwned\x07 of web failed 1 check in a row: probe web\x1b]0;pwned\x07 of app web on host h failed 1 check in a row:` +
		"\n" + `GET http://x/: line 1` + "\n" + `line 2\x1b[2J\r\u009b31m\u202e`; got != want {
		t.Errorf("sink got %q, want %q", got, want)
	}
}

// TestBodiesStandAloneOnEveryService: through the real shoutrrr services a
// home-made or self-hosted sink uses (generic plain, which drops the
// title; generic JSON; ntfy; gotify), every body names the host, the app,
// the probe, job or release, and what happened, with the detail.
func TestBodiesStandAloneOnEveryService(t *testing.T) {
	sinks := testenv.NotifySinks(t)
	var cfg Config
	for _, s := range sinks {
		cfg.Sinks = append(cfg.Sinks, Sink{URL: s.URL})
	}
	cfg.MinBackoff = 20 * time.Millisecond
	n := New(cfg)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go n.Run(ctx)

	const refused = "GET http://127.0.0.1:43259/healthz: dial tcp 127.0.0.1:43259: connect: connection refused"
	events := []struct {
		e    Event
		body string
	}{
		{Event{Kind: ProbeDown, Key: "nextcloud/healthz", Host: "web-01", App: "nextcloud", Subject: "probe healthz",
			What: "failed " + Count(2, "check") + " in a row", Detail: refused},
			"probe healthz of app nextcloud on host web-01 failed 2 checks in a row: " + refused},
		{Event{Kind: ProbeDown, Key: "nextcloud/healthz", Host: "web-01", App: "nextcloud", Subject: "probe healthz",
			What: "recovered: 1 check passed", Recovered: true},
			"probe healthz of app nextcloud on host web-01 recovered: 1 check passed"},
		{Event{Kind: RolledBack, Key: "nextcloud@0123456789abcdef", Host: "web-01", App: "nextcloud", Subject: "release of commit 0123456789ab",
			What: "failed and was rolled back", Detail: "service app: healthcheck failed 3 times"},
			"release of commit 0123456789ab of app nextcloud on host web-01 failed and was rolled back: service app: healthcheck failed 3 times"},
		{Event{Kind: BackupFailed, Key: "nextcloud", Host: "web-01", App: "nextcloud", Subject: "backup",
			What: "failed", Detail: "dump db.sql: the command exited 3"},
			"backup of app nextcloud on host web-01 failed: dump db.sql: the command exited 3"},
	}
	for _, ev := range events {
		n.Notify(ev.e)
	}
	for _, s := range sinks {
		for _, ev := range events {
			got := s.Next(t, ev.body)
			if got.Body != ev.body {
				t.Errorf("%s: body %q, want %q", s.Service, got.Body, ev.body)
			}
			if s.Service != "generic" && !strings.HasPrefix(got.Title, "syncd web-01: ") {
				t.Errorf("%s: title %q", s.Service, got.Title)
			}
		}
	}
}

func TestCount(t *testing.T) {
	if got := Count(1, "check") + ", " + Count(2, "check") + ", " + Count(0, "new finding"); got != "1 check, 2 checks, 0 new findings" {
		t.Errorf("Count: %s", got)
	}
}
