package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd-dev/syncd/internal/jobs"
)

// Cycle runs one reconcile cycle. reason says what triggered it: "start",
// "poll", "drift", "webhook", "signal", "watch", "request". A cycle for
// "poll" whose source has not moved returns Result{Quiet: true} (costs one
// ls-remote, logs nothing); every other reason asks for a full cycle.
// "Not moved" should mean: the head is the one the last successful cycle
// processed, so that a poll retrying a failed cycle does not pass for quiet.
//
// The context is detached from the agent's: on shutdown a running cycle is
// cancelled only after Config.Grace.
type Cycle func(ctx context.Context, reason string) (Result, error)

// Result is what one cycle reports. On error it may still carry what is
// known (commit, projects, output).
type Result struct {
	Quiet    bool           // nothing moved: not logged, counted as a poll
	Commit   string         // the commit the cycle worked on
	Changed  int            // projects changed
	Drift    int            // drift seen this cycle
	Projects map[string]int // projects by state ("running", "failed", "held", ...); nil leaves the gauge as it was
	Output   string         // human text of what happened (for `syncd sync` asking over the socket)
	// Suspended counts the projects left as they run (suspended in Git
	// or on the host): the host is not converged while there are any.
	Suspended int
	// Rollout is the wave gate's word on the head after the cycle; nil
	// leaves the rollout gauges as they were (a quiet poll).
	Rollout *Rollout
}

// Rollout states of a host's wave gate.
const (
	RolloutWaiting = "waiting"
	RolloutHalted  = "halted"
)

// Rollout is whether the wave gate holds the branch head back from this
// host after a cycle, and whether that changed: a notifier says
// "rollout halted" when State becomes halted and "rollout resumed" when Was
// is halted and State is not.
type Rollout struct {
	// State is "" (the head is through, or there is no gate),
	// RolloutWaiting or RolloutHalted.
	State string
	// Commit is the head held back; Applied what the host runs meanwhile.
	Commit, Applied string
	// Was is State after the previous cycle that gated.
	Was string
	// Text says the gate's verdict, with the hosts and why.
	Text string
}

// Changed reports whether the state differs from the previous cycle's.
func (r *Rollout) Changed() bool { return r != nil && r.State != r.Was }

// Config tunes the loop. Zero values mean the defaults.
type Config struct {
	Poll          time.Duration // default 1m; each wait jittered ±10%
	Drift         time.Duration // default 5m: a full cycle even when the source has not moved; negative: never
	WebhookSecret []byte        // HMAC-SHA256; empty: the webhook endpoint answers 404
	Grace         time.Duration // on shutdown, how long a running cycle may go on (default 2m) before its ctx is cancelled
	Backoff       time.Duration // first retry wait after a failing cycle (default 5s, doubling, capped at Poll)
	Logger        *slog.Logger  // default: discard
	Clock         Clock         // default: the real clock
	// Settings are what the agent runs with (repo, host, age-key): a sync
	// asked for over the socket with other ones is refused.
	Settings map[string]string
	// Job, when set, runs a job asked for over the socket (POST /job:
	// `syncd backup` and `syncd restore` with the agent up) and returns
	// what to print.
	// The request was validated (jobs.Request.Validate) on its way in.
	Job func(ctx context.Context, req jobs.Request) (string, error)
	// Collectors are more metrics served on /metrics (the jobs').
	Collectors []prometheus.Collector
}

const (
	defaultPoll    = time.Minute
	defaultDrift   = 5 * time.Minute
	defaultGrace   = 2 * time.Minute
	defaultBackoff = 5 * time.Second
)

// Reasons the loop itself gives a cycle; Trigger takes any other.
const (
	ReasonStart   = "start"
	ReasonPoll    = "poll"
	ReasonDrift   = "drift"
	ReasonRequest = "request"
)

// ErrStopped answers a Sync that the loop will never serve: Run has returned.
var ErrStopped = errors.New("agent stopped")

// Agent runs cycles one at a time, on its own schedule and on triggers.
type Agent struct {
	cfg     Config
	cycle   Cycle
	log     *slog.Logger
	clock   Clock
	metrics *metrics
	handler http.Handler

	started atomic.Bool
	// wake holds one token when a trigger or request is pending; the
	// pending reason itself is under mu.
	wake chan struct{}

	// refused rate-limits the log of refused webhook requests: one line a
	// minute at most, with how many were left out.
	refused struct {
		sync.Mutex
		last    time.Time
		dropped int
	}

	mu      sync.Mutex
	stopped bool
	pending string           // merged reason of the triggers not yet served; "" none
	waiters []chan syncReply // Sync calls the next cycle answers
	// Health of the loop, written after each cycle, read by /healthz.
	failing   bool
	failSince time.Time // start of the first cycle of the current failing streak
	failures  int       // failed cycles in the current streak
	lastErr   string

	// Loop-only state: touched only by the goroutine in Run.
	backoff     time.Duration // wait before the next retry while failing
	retryReason string        // reason a retry after a failure carries
	lastFull    time.Time     // start of the last successful full (not quiet) cycle
}

type syncReply struct {
	res Result
	err error
}

// New returns an agent that runs cycle; nothing runs until Run.
func New(cfg Config, cycle Cycle) *Agent {
	if cfg.Poll <= 0 {
		cfg.Poll = defaultPoll
	}
	if cfg.Drift == 0 {
		cfg.Drift = defaultDrift
	}
	if cfg.Grace <= 0 {
		cfg.Grace = defaultGrace
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = defaultBackoff
	}
	cfg.Backoff = min(cfg.Backoff, cfg.Poll)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	a := &Agent{
		cfg:     cfg,
		cycle:   cycle,
		log:     cfg.Logger,
		clock:   cfg.Clock,
		metrics: newMetrics(cfg.Collectors...),
		wake:    make(chan struct{}, 1),
	}
	a.handler = a.newHandler()
	return a
}

// Trigger asks for a cycle without waiting for it. Triggers that arrive
// while a cycle runs, or before the loop gets to them, are merged into one
// pending cycle, which carries the strongest reason (any named trigger
// over "drift" over "poll"; the first on a tie).
func (a *Agent) Trigger(reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.addPending(reason)
}

// Sync asks the loop for a cycle ("request") and waits for the result of a
// cycle started after the call. Concurrent calls share that cycle. It
// returns ErrStopped when Run has returned (or returns before serving it).
func (a *Agent) Sync(ctx context.Context) (Result, error) {
	ch := make(chan syncReply, 1) // buffered: the loop never waits for a caller that gave up
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return Result{}, ErrStopped
	}
	a.waiters = append(a.waiters, ch)
	a.addPending(ReasonRequest)
	a.mu.Unlock()
	select {
	case r := <-ch:
		return r.res, r.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// addPending merges reason into the pending one and wakes the loop. Call
// with mu held.
func (a *Agent) addPending(reason string) {
	a.pending = merge(a.pending, reason)
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// rank orders reasons when triggers merge: a poll may end quiet, a drift
// cycle is full but expects no news, every other reason expects news.
func rank(reason string) int {
	switch reason {
	case "":
		return -1
	case ReasonPoll:
		return 0
	case ReasonDrift:
		return 1
	}
	return 2
}

// merge keeps the stronger reason, the earlier one on a tie.
func merge(cur, next string) string {
	if rank(next) > rank(cur) {
		return next
	}
	return cur
}

// take claims everything pending for the cycle about to start: the merged
// reason (with base, the reason the loop itself has) and the Sync callers.
func (a *Agent) take(base string) (string, []chan syncReply) {
	a.mu.Lock()
	defer a.mu.Unlock()
	reason := merge(base, a.pending)
	waiters := a.waiters
	a.pending, a.waiters = "", nil
	select {
	case <-a.wake:
	default:
	}
	return reason, waiters
}

// Run runs a "start" cycle, then cycles on the poll schedule, the drift
// schedule, retries with backoff and triggers until ctx ends. When ctx ends
// during a cycle, the cycle may finish within Config.Grace (its context is
// not derived from ctx's cancellation); after that its context is cancelled
// and Run waits for it to return. Run returns nil after an orderly
// shutdown and an error when a cycle had to be cancelled or Run was called
// twice.
func (a *Agent) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("agent: Run called twice")
	}
	defer a.stop()
	if ctx.Err() != nil {
		return nil
	}
	reason, waiters := a.take(ReasonStart)
	if err := a.runCycle(ctx, reason, waiters); err != nil {
		return err
	}
	for ctx.Err() == nil {
		wait, base := a.next()
		t := a.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		case <-a.wake:
			t.Stop()
			base = ""
		}
		if ctx.Err() != nil {
			return nil
		}
		reason, waiters := a.take(base)
		if reason == "" {
			continue // a token whose trigger the previous take already served
		}
		if err := a.runCycle(ctx, reason, waiters); err != nil {
			return err
		}
	}
	return nil
}

// next says how long the loop waits for a trigger and what it runs when
// nothing comes: a retry while failing, else a poll or the drift cycle.
func (a *Agent) next() (time.Duration, string) {
	a.mu.Lock()
	failing := a.failing
	a.mu.Unlock()
	if failing {
		return a.backoff, a.retryReason
	}
	wait := time.Duration(float64(a.cfg.Poll) * (0.9 + 0.2*rand.Float64()))
	if a.cfg.Drift > 0 {
		if due := a.lastFull.Add(a.cfg.Drift).Sub(a.clock.Now()); due <= wait {
			return max(due, 0), ReasonDrift
		}
	}
	return wait, ReasonPoll
}

// stop marks the agent stopped and fails the Sync calls no cycle will serve.
func (a *Agent) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopped = true
	for _, w := range a.waiters {
		w <- syncReply{err: ErrStopped}
	}
	a.waiters = nil
}

// runCycle runs one cycle and waits for it, giving it the shutdown grace
// when ctx ends meanwhile, then records and answers it.
func (a *Agent) runCycle(ctx context.Context, reason string, waiters []chan syncReply) error {
	start := a.clock.Now()
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	done := make(chan syncReply, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				a.log.Error("cycle panicked", "reason", reason, "panic", p, "stack", string(debug.Stack()))
				done <- syncReply{err: fmt.Errorf("cycle panicked: %v", p)}
			}
		}()
		res, err := a.cycle(cctx, reason)
		done <- syncReply{res, err}
	}()

	var out syncReply
	var shutdownErr error
	select {
	case out = <-done:
	case <-ctx.Done():
		a.log.Info("shutting down: letting the running cycle finish", "reason", reason, "grace", a.cfg.Grace)
		grace := a.clock.NewTimer(a.cfg.Grace)
		select {
		case out = <-done:
			grace.Stop()
		case <-grace.C():
			a.log.Warn("shutdown grace over: cancelling the running cycle", "reason", reason, "grace", a.cfg.Grace)
			cancel()
			out = <-done
			shutdownErr = fmt.Errorf("shutdown: %s cycle cancelled after the %s grace", reason, a.cfg.Grace)
		}
	}
	a.record(reason, start, a.clock.Now().Sub(start), out.res, out.err)
	for _, w := range waiters {
		w <- out
	}
	return shutdownErr
}

// record updates the metrics, the health and the backoff after a cycle and
// logs it: nothing for a quiet poll, one line for a cycle that changed
// something or failed, and the backoff once when failing starts or stops.
func (a *Agent) record(reason string, start time.Time, dur time.Duration, res Result, err error) {
	a.metrics.observe(reason, a.clock.Now(), dur, res, err)

	a.mu.Lock()
	wasFailing, since, failures, prevErr := a.failing, a.failSince, a.failures, a.lastErr
	if err != nil {
		if !a.failing {
			a.failing, a.failSince, a.failures = true, start, 0
			a.backoff = a.cfg.Backoff
		} else {
			a.backoff = min(2*a.backoff, a.cfg.Poll)
		}
		a.failures++
		a.lastErr = err.Error()
		failures = a.failures
	} else {
		a.failing, a.failures, a.lastErr = false, 0, ""
	}
	a.mu.Unlock()

	if err != nil {
		a.retryReason = ReasonDrift
		if rank(reason) == 0 {
			a.retryReason = ReasonPoll
		}
	} else if !res.Quiet {
		a.lastFull = start
	}

	attrs := []any{"reason", reason, "commit", res.Commit, "changed", res.Changed, "drift", res.Drift, "duration", dur.Round(time.Millisecond)}
	switch {
	case err != nil && !wasFailing:
		a.log.Warn("cycle failed; backing off", append(attrs, "err", err, "retry_in", a.backoff)...)
	case err != nil && err.Error() != prevErr:
		a.log.Warn("cycle failed", append(attrs, "err", err, "failures", failures, "retry_in", a.backoff)...)
	case err != nil:
		a.log.Debug("cycle failed again", append(attrs, "failures", failures, "retry_in", a.backoff)...)
	case wasFailing:
		a.log.Info("cycle succeeded again; backoff over", append(attrs, "failures", failures, "failing_for", start.Sub(since).Round(time.Second))...)
	case res.Quiet:
	case res.Changed > 0 || res.Drift > 0:
		a.log.Info("cycle", attrs...)
	default:
		a.log.Debug("cycle", attrs...)
	}
}
