package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// call is one cycle the agent started; the test answers it.
type call struct {
	ctx    context.Context
	reason string
	reply  chan syncReply
}

func (c *call) finish(res Result, err error) { c.reply <- syncReply{res, err} }

// harness runs an agent on a fake clock with a cycle the test scripts.
type harness struct {
	t      *testing.T
	a      *Agent
	clock  *fakeClock
	calls  chan *call
	logs   *logBuffer
	cancel context.CancelFunc
	runErr chan error
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeClock(), calls: make(chan *call), logs: &logBuffer{}}
	cfg.Clock = h.clock
	cfg.Logger = slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.a = New(cfg, func(ctx context.Context, reason string) (Result, error) {
		c := &call{ctx: ctx, reason: reason, reply: make(chan syncReply)}
		h.calls <- c
		r := <-c.reply
		return r.res, r.err
	})
	return h
}

// run starts the loop; cleanup stops it, answering whatever cycle runs.
func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.runErr = make(chan error, 1)
	go func() { h.runErr <- h.a.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		for {
			select {
			case c := <-h.calls:
				c.finish(Result{}, nil)
			case <-h.runErr:
				return
			case <-time.After(10 * time.Second):
				h.t.Error("Run did not return")
				return
			}
		}
	})
}

// next waits for the agent to start a cycle.
func (h *harness) next() *call {
	h.t.Helper()
	select {
	case c := <-h.calls:
		return c
	case <-time.After(10 * time.Second):
		h.t.Fatal("timed out waiting for a cycle")
		return nil
	}
}

// expect waits for a cycle and checks its reason.
func (h *harness) expect(reason string) *call {
	h.t.Helper()
	c := h.next()
	if c.reason != reason {
		h.t.Fatalf("cycle reason %q, want %q", c.reason, reason)
	}
	return c
}

// idle waits until the loop, done with its cycle, waits on its timer, and
// returns the timer's duration.
func (h *harness) idle() time.Duration {
	h.t.Helper()
	return h.clock.waitTimer(h.t)
}

// fire advances the clock to the loop's pending timer.
func (h *harness) fire() {
	h.t.Helper()
	h.clock.Advance(h.idle())
}

// logBuffer collects JSON log lines; safe for the loop and the test.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// lines returns the records logged, decoded.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// atLeast returns the records at level Info or above.
func (b *logBuffer) atLeastInfo(t *testing.T) []map[string]any {
	var out []map[string]any
	for _, m := range b.lines(t) {
		if m["level"] != "DEBUG" {
			out = append(out, m)
		}
	}
	return out
}

func inPollRange(d, poll time.Duration) bool {
	return d >= poll*9/10 && d <= poll*11/10
}

func TestStartCycleRuns(t *testing.T) {
	h := newHarness(t, Config{Poll: time.Minute})
	h.run()
	c := h.expect("start")
	if c.ctx.Err() != nil {
		t.Fatal("cycle context already done")
	}
	c.finish(Result{Commit: "abc123", Changed: 2}, nil)
	if d := h.idle(); !inPollRange(d, time.Minute) {
		t.Errorf("next wait %s, want a minute ±10%%", d)
	}
	logs := h.logs.atLeastInfo(t)
	if len(logs) != 1 || logs[0]["msg"] != "cycle" || logs[0]["reason"] != "start" || logs[0]["commit"] != "abc123" || logs[0]["changed"] != 2.0 {
		t.Errorf("logs = %v, want one Info line for the start cycle", logs)
	}
}

func TestQuietPollLogsNothing(t *testing.T) {
	h := newHarness(t, Config{Poll: time.Minute})
	h.run()
	h.expect("start").finish(Result{Commit: "c1"}, nil)
	h.idle()
	h.logs.Reset()
	for range 3 {
		h.fire()
		h.expect("poll").finish(Result{Quiet: true}, nil)
		if d := h.idle(); !inPollRange(d, time.Minute) {
			t.Errorf("wait after a quiet poll %s, want a minute ±10%%", d)
		}
	}
	if s := h.logs.String(); s != "" {
		t.Errorf("quiet polls logged (at debug level even):\n%s", s)
	}
	// A poll that found news logs its one line.
	h.fire()
	h.expect("poll").finish(Result{Commit: "c2", Changed: 1}, nil)
	h.idle()
	if logs := h.logs.atLeastInfo(t); len(logs) != 1 || logs[0]["reason"] != "poll" || logs[0]["commit"] != "c2" {
		t.Errorf("logs after a poll that changed something: %v", logs)
	}
}

func TestDriftCycleWhenSourceStill(t *testing.T) {
	h := newHarness(t, Config{Poll: time.Minute, Drift: 5 * time.Minute})
	h.run()
	t0 := h.clock.Now()
	h.expect("start").finish(Result{}, nil)
	for polls := 0; ; polls++ {
		if polls > 10 {
			t.Fatal("no drift cycle after 10 polls")
		}
		h.fire()
		c := h.next()
		if c.reason == "drift" {
			if got := h.clock.Now().Sub(t0); got != 5*time.Minute {
				t.Errorf("drift cycle %s after the last full one, want 5m", got)
			}
			if polls < 4 {
				t.Errorf("drift cycle after %d polls, want at least 4 (a minute ±10%% each)", polls)
			}
			c.finish(Result{}, nil)
			break
		}
		if c.reason != "poll" {
			t.Fatalf("reason %q, want poll", c.reason)
		}
		c.finish(Result{Quiet: true}, nil)
	}
	// The drift cycle restarts the drift period: the next one is a poll.
	h.fire()
	h.expect("poll").finish(Result{Quiet: true}, nil)
}

func TestTriggerBurstDuringCycleCoalesces(t *testing.T) {
	h := newHarness(t, Config{Poll: time.Minute})
	h.run()
	start := h.expect("start")
	for _, r := range []string{"poll", "webhook", "webhook", "signal", "webhook", "drift", "watch"} {
		h.a.Trigger(r)
	}
	start.finish(Result{}, nil)
	// One cycle for the whole burst, named after its first strong trigger.
	second := h.expect("webhook")
	h.a.mu.Lock()
	pending, tokens := h.a.pending, len(h.a.wake)
	h.a.mu.Unlock()
	if pending != "" || tokens != 0 {
		t.Errorf("after the coalesced cycle started: pending %q, wake tokens %d; want none", pending, tokens)
	}
	second.finish(Result{}, nil)
	h.idle()
	// Nothing else was queued: the next cycle is the next trigger's.
	h.a.Trigger("watch")
	h.expect("watch").finish(Result{}, nil)
	h.idle()
}

func TestTriggerWhileIdleRunsAtOnce(t *testing.T) {
	h := newHarness(t, Config{Poll: time.Minute})
	h.run()
	h.expect("start").finish(Result{}, nil)
	h.idle()
	h.a.Trigger("signal")
	h.expect("signal").finish(Result{}, nil)
	// The trigger's cycle replaced the poll timer: a fresh one waits.
	if d := h.idle(); !inPollRange(d, time.Minute) {
		t.Errorf("wait %s", d)
	}
}

func waiters(a *Agent) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.waiters)
}

type syncOut struct {
	res Result
	err error
}

func goSync(a *Agent) chan syncOut {
	ch := make(chan syncOut, 1)
	go func() {
		res, err := a.Sync(context.Background())
		ch <- syncOut{res, err}
	}()
	return ch
}

func TestSyncAnsweredByALaterCycle(t *testing.T) {
	h := newHarness(t, Config{Poll: time.Minute})
	h.run()
	start := h.expect("start")
	// Two requests while the start cycle runs: that cycle began before
	// them, so it must not answer them; the next one answers both.
	s1, s2 := goSync(h.a), goSync(h.a)
	eventually(t, "two Sync calls waiting", func() bool { return waiters(h.a) == 2 })
	h.a.Trigger("webhook") // merged into the same cycle
	start.finish(Result{Commit: "old", Output: "start output"}, nil)
	req := h.expect("request")
	select {
	case o := <-s1:
		t.Fatalf("Sync returned before its cycle ended: %+v", o)
	default:
	}
	req.finish(Result{Commit: "new", Changed: 1, Output: "applied web"}, nil)
	for _, ch := range []chan syncOut{s1, s2} {
		o := <-ch
		if o.err != nil || o.res.Commit != "new" || o.res.Output != "applied web" {
			t.Errorf("Sync = %+v, %v; want the request cycle's result", o.res, o.err)
		}
	}
	// While idle, and for a failing cycle: the error comes back.
	h.idle()
	s3 := goSync(h.a)
	h.expect("request").finish(Result{Commit: "new", Output: "web unhealthy"}, errors.New("web: not healthy"))
	if o := <-s3; o.err == nil || o.err.Error() != "web: not healthy" || o.res.Output != "web unhealthy" {
		t.Errorf("Sync of a failing cycle = %+v, %v", o.res, o.err)
	}
}

func TestSyncAfterStop(t *testing.T) {
	h := newHarness(t, Config{Poll: time.Minute})
	h.run()
	start := h.expect("start")
	s := goSync(h.a)
	eventually(t, "Sync waiting", func() bool { return waiters(h.a) == 1 })
	h.cancel()
	start.finish(Result{}, nil)
	if err := <-h.runErr; err != nil {
		t.Fatalf("Run = %v", err)
	}
	h.runErr <- nil // for the cleanup
	if o := <-s; !errors.Is(o.err, ErrStopped) {
		t.Errorf("pending Sync at shutdown = %v, want ErrStopped", o.err)
	}
	if _, err := h.a.Sync(context.Background()); !errors.Is(err, ErrStopped) {
		t.Errorf("Sync after Run = %v, want ErrStopped", err)
	}
}

func TestSyncCallerGivesUp(t *testing.T) {
	h := newHarness(t, Config{Poll: time.Minute})
	h.run()
	start := h.expect("start")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := h.a.Sync(ctx); done <- err }()
	eventually(t, "Sync waiting", func() bool { return waiters(h.a) == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Sync = %v, want context.Canceled", err)
	}
	// The loop still runs the requested cycle and is not stuck on the caller.
	start.finish(Result{}, nil)
	h.expect("request").finish(Result{}, nil)
	h.idle()
}

func TestShutdownLetsRunningCycleFinish(t *testing.T) {
	h := newHarness(t, Config{Poll: time.Minute, Grace: 2 * time.Minute})
	h.run()
	c := h.expect("start")
	h.cancel()
	if d := h.idle(); d != 2*time.Minute {
		t.Fatalf("pending timer %s, want the 2m grace", d)
	}
	h.clock.Advance(time.Minute)
	if c.ctx.Err() != nil {
		t.Fatal("the cycle's context was cancelled before the grace ended")
	}
	select {
	case err := <-h.runErr:
		t.Fatalf("Run returned (%v) while its cycle ran", err)
	default:
	}
	c.finish(Result{Commit: "c1", Changed: 1}, nil)
	if err := <-h.runErr; err != nil {
		t.Errorf("Run = %v, want nil after an orderly shutdown", err)
	}
	h.runErr <- nil
	if n := len(h.clock.pending()); n != 0 {
		t.Errorf("%d timers left pending", n)
	}
}

func TestShutdownCancelsCycleAfterGrace(t *testing.T) {
	h := newHarness(t, Config{Poll: time.Minute, Grace: 30 * time.Second})
	h.run()
	h.expect("start").finish(Result{}, nil)
	h.fire()
	c := h.expect("poll")
	h.cancel()
	if d := h.idle(); d != 30*time.Second {
		t.Fatalf("pending timer %s, want the 30s grace", d)
	}
	h.clock.Advance(30 * time.Second)
	select {
	case <-c.ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the cycle's context was not cancelled after the grace")
	}
	c.finish(Result{}, c.ctx.Err())
	err := <-h.runErr
	h.runErr <- nil
	if err == nil || !strings.Contains(err.Error(), "grace") {
		t.Errorf("Run = %v, want an error about the grace", err)
	}
}

func TestShutdownWhileIdle(t *testing.T) {
	h := newHarness(t, Config{Poll: time.Minute})
	h.run()
	h.expect("start").finish(Result{}, nil)
	h.idle()
	h.cancel()
	if err := <-h.runErr; err != nil {
		t.Errorf("Run = %v", err)
	}
	h.runErr <- nil
	if n := len(h.clock.pending()); n != 0 {
		t.Errorf("%d timers left pending", n)
	}
}

func TestRunWithEndedContextRunsNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	a := New(Config{Clock: newFakeClock()}, func(context.Context, string) (Result, error) { ran = true; return Result{}, nil })
	if err := a.Run(ctx); err != nil || ran {
		t.Errorf("Run = %v, cycle ran: %v", err, ran)
	}
}

func TestRunTwice(t *testing.T) {
	h := newHarness(t, Config{})
	h.run()
	c := h.expect("start")
	if err := h.a.Run(context.Background()); err == nil {
		t.Error("second Run did not fail")
	}
	c.finish(Result{}, nil)
}

func TestFailingCyclesBackOff(t *testing.T) {
	h := newHarness(t, Config{Poll: time.Minute, Backoff: 5 * time.Second})
	h.run()
	boom := errors.New("ls-remote: connection refused")
	h.expect("start").finish(Result{}, boom)
	// A retry of a full cycle is a full cycle; waits double up to Poll.
	for _, want := range []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute, time.Minute} {
		if d := h.idle(); d != want {
			t.Fatalf("retry scheduled after %s, want %s", d, want)
		}
		h.fire()
		h.expect("drift").finish(Result{}, boom)
	}
	h.idle()
	warns := h.logs.atLeastInfo(t)
	if len(warns) != 1 || warns[0]["level"] != "WARN" || warns[0]["retry_in"] != float64(5*time.Second) || !strings.Contains(warns[0]["err"].(string), "connection refused") {
		t.Errorf("logs while failing the same way: %v; want one warning", warns)
	}
	// A different failure is news.
	h.fire()
	h.expect("drift").finish(Result{}, errors.New("repo invalid: hosts/a/host.yaml: unknown app"))
	h.idle()
	if n := len(h.logs.atLeastInfo(t)); n != 2 {
		t.Errorf("%d lines after the error changed, want 2", n)
	}
	// Success ends the backoff, once, and polling resumes.
	h.fire()
	h.expect("drift").finish(Result{Commit: "c1"}, nil)
	if d := h.idle(); !inPollRange(d, time.Minute) {
		t.Errorf("wait after recovery %s, want the poll interval", d)
	}
	logs := h.logs.atLeastInfo(t)
	if last := logs[len(logs)-1]; len(logs) != 3 || last["level"] != "INFO" || !strings.Contains(last["msg"].(string), "backoff over") || last["failures"] != 8.0 {
		t.Errorf("logs after recovery: %v", logs)
	}
	// The backoff starts over; a failed poll is retried as a poll.
	h.fire()
	h.expect("poll").finish(Result{}, boom)
	if d := h.idle(); d != 5*time.Second {
		t.Errorf("first retry after a new failure in %s, want 5s", d)
	}
	h.fire()
	h.expect("poll").finish(Result{Quiet: true}, nil)
	h.idle()
}

func TestBackoffCappedAtPoll(t *testing.T) {
	h := newHarness(t, Config{Poll: 8 * time.Second, Backoff: 5 * time.Second})
	h.run()
	h.expect("start").finish(Result{}, errors.New("x"))
	for _, want := range []time.Duration{5 * time.Second, 8 * time.Second, 8 * time.Second} {
		if d := h.idle(); d != want {
			t.Fatalf("retry after %s, want %s", d, want)
		}
		h.fire()
		h.expect("drift").finish(Result{}, errors.New("x"))
	}
}

func TestCyclePanicIsAFailure(t *testing.T) {
	a := New(Config{Clock: newFakeClock()}, func(context.Context, string) (Result, error) { panic("nil map") })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	_, err := a.Sync(ctx)
	if err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Errorf("Sync = %v, want the panic as an error", err)
	}
}
