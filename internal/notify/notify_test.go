package notify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncd-dev/syncd/internal/redact"
)

type sent struct{ url, title, text string }

// fakeSender records deliveries; while down is set, every send fails.
type fakeSender struct {
	mu       sync.Mutex
	down     bool
	got      []sent
	attempts int
}

func (f *fakeSender) Send(_ context.Context, url, title, text string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.down {
		return errors.New("503 Service Unavailable")
	}
	f.got = append(f.got, sent{url, title, text})
	return nil
}

func (f *fakeSender) setDown(d bool) { f.mu.Lock(); f.down = d; f.mu.Unlock() }

func (f *fakeSender) titles() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ts []string
	for _, s := range f.got {
		ts = append(ts, strings.TrimPrefix(s.title, "syncd h: "))
	}
	return ts
}

func start(t *testing.T, cfg Config) (*Notifier, *fakeSender) {
	f := &fakeSender{}
	cfg.Sender = f
	if cfg.Sinks == nil {
		cfg.Sinks = []Sink{{URL: "generic://hook.example/x"}}
	}
	n := New(cfg)
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go n.Run(ctx)
	return n, f
}

func failed(key string) Event {
	return Event{Kind: BackupFailed, Key: key, Host: "h", Subject: "backup of " + key, What: "failed", Detail: "restic exited 1"}
}

func recovered(key string) Event {
	return Event{Kind: BackupFailed, Key: key, Host: "h", Subject: "backup of " + key, What: "recovered", Recovered: true}
}

func eq(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("sent %q, want %q", got, want)
	}
}

func TestDedupe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, f := start(t, Config{})
		for range 10 { // a failure seen on every cycle
			n.Notify(failed("db"))
			time.Sleep(time.Minute)
		}
		synctest.Wait()
		eq(t, f.titles(), "backup of db failed")

		time.Sleep(time.Hour) // persists: sent again, once
		n.Notify(failed("db"))
		n.Notify(failed("db"))
		synctest.Wait()
		eq(t, f.titles(), "backup of db failed", "backup of db failed")

		n.Notify(recovered("db"))
		n.Notify(recovered("db"))
		n.Notify(recovered("web")) // never failed: nothing to say
		synctest.Wait()
		eq(t, f.titles(), "backup of db failed", "backup of db failed", "backup of db recovered")

		n.Notify(failed("db")) // fails anew: sent at once
		synctest.Wait()
		if got := len(f.titles()); got != 4 {
			t.Errorf("a new failure after the recovery: %d messages, want 4", got)
		}
	})
}

func TestEventFilterAndKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, f := start(t, Config{Sinks: []Sink{
			{URL: "generic://a.example/x", Events: []string{"backup_failed"}},
			{URL: "generic://b.example/x", Events: []string{"backup_recovered", "drift"}},
		}})
		n.Notify(failed("db"))
		n.Notify(failed("web")) // another key: its own failure
		n.Notify(Event{Kind: Drift, Key: "web", Host: "h", Subject: "drift"})
		n.Notify(recovered("db"))
		synctest.Wait()
		f.mu.Lock()
		defer f.mu.Unlock()
		var got []string
		for _, s := range f.got {
			got = append(got, redact.Host(s.url)+" "+strings.TrimPrefix(s.title, "syncd h: "))
		}
		slices.SortStableFunc(got, func(a, b string) int { return strings.Compare(a[:20], b[:20]) }) // per sink, in order
		eq(t, got, "generic://a.example backup of db failed", "generic://a.example backup of web failed",
			"generic://b.example drift", "generic://b.example backup of db recovered")
	})
}

func TestRetriesWhileDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, f := start(t, Config{})
		f.setDown(true)
		n.Notify(failed("db"))
		n.Notify(recovered("db"))
		n.Notify(failed("web"))
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if len(f.titles()) != 0 || f.attempts < 10 {
			t.Fatalf("while down: %d sent, %d attempts", len(f.titles()), f.attempts)
		}
		// Backoff is capped: far fewer attempts than one a second.
		if f.attempts > 60 {
			t.Errorf("%d attempts in 2h: backoff does not grow", f.attempts)
		}
		f.setDown(false)
		time.Sleep(maxBackoff)
		synctest.Wait()
		eq(t, f.titles(), "backup of db failed", "backup of db recovered", "backup of web failed")
		if n.Dropped() != 0 {
			t.Errorf("dropped %d", n.Dropped())
		}
	})
}

func TestRetryForBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, f := start(t, Config{RetryFor: time.Hour})
		f.setDown(true)
		n.Notify(failed("db"))
		time.Sleep(2 * time.Hour)
		f.setDown(false)
		n.Notify(failed("web"))
		synctest.Wait()
		eq(t, f.titles(), "backup of web failed")
		if n.Dropped() != 1 {
			t.Errorf("dropped %d, want 1", n.Dropped())
		}
	})
}

func TestQueueFullDropsOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, f := start(t, Config{QueueSize: 3})
		f.setDown(true)
		for i := range 5 {
			n.Notify(failed(fmt.Sprint(i)))
		}
		if n.Dropped() != 2 {
			t.Errorf("dropped %d, want 2", n.Dropped())
		}
		f.setDown(false)
		time.Sleep(maxBackoff)
		synctest.Wait()
		eq(t, f.titles(), "backup of 2 failed", "backup of 3 failed", "backup of 4 failed")
	})
}

func TestRedact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, f := start(t, Config{Redact: func(s string) string { return strings.ReplaceAll(s, "hunter2", "[REDACTED]") }})
		n.Notify(Event{Kind: CycleFailed, Host: "h", Subject: "cycle hunter2", What: "failed", Detail: "password hunter2 refused"})
		synctest.Wait()
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.got) != 1 || strings.Contains(f.got[0].title+f.got[0].text, "hunter2") {
			t.Errorf("sent %+v", f.got)
		}
	})
}

func TestEventNames(t *testing.T) {
	want := "backup_failed backup_recovered cert_expiring check_failed check_recovered cycle_failed cycle_recovered drift drift_resolved drill_failed drill_recovered engine_down engine_up image_refused new_findings probe_down probe_flapping probe_up rolled_back rollout_halted rollout_resumed"
	if got := strings.Join(EventNames(), " "); got != want {
		t.Errorf("EventNames() = %s", got)
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct{ url, err string }{
		{"generic+https://hooks.example/x?token=abcdef123", ""},
		{"ntfy://:tk_secret123@ntfy.example/alerts", ""},
		{"nosuch://tk_secret123@x", "unknown service \"nosuch\""},
		{"::", "not a URL"},
	} {
		err := CheckURL(tc.url)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("CheckURL(%q) = %v, want %q", tc.url, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), "secret123") {
			t.Errorf("CheckURL(%q) shows the token: %v", tc.url, err)
		}
	}
	if got := redact.Host("telegram://123:tok@telegram?chats=1"); got != "telegram://telegram" {
		t.Errorf("Redacted = %s", got)
	}
}

func TestNilNotifier(t *testing.T) {
	var n *Notifier
	n.Notify(failed("db")) // no sinks configured: a no-op, not a panic
}
