package notify

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/syncd-dev/syncd/internal/escape"

	"github.com/syncd-dev/syncd/internal/redact"
)

// Sender delivers one message to one sink URL.
type Sender interface {
	Send(ctx context.Context, url, title, message string) error
}

// Sink is one resolved entry of syncd.yaml `notify:`: the URL (read from the
// host's secrets when syncd.yaml names url_secret) and the event names it
// wants; none means every event.
type Sink struct {
	URL    string
	Events []string
}

// Defaults of Config.
const (
	DefaultQueueSize   = 256
	DefaultRepeatEvery = time.Hour
	DefaultRetryFor    = 24 * time.Hour
	DefaultSendTimeout = 10 * time.Second
	minBackoff         = time.Second
	maxBackoff         = 5 * time.Minute
)

// Config configures a Notifier; only Sinks is required.
type Config struct {
	Sinks  []Sink
	Sender Sender              // default: Shoutrrr
	Redact func(string) string // applied to every title and message: the host's redaction (redact.Redactor.Text)
	Logger *slog.Logger        // narrowed by the caller (With("component", "notify"))
	// QueueSize bounds the messages waiting per sink; when full the oldest
	// is dropped (and counted).
	QueueSize int
	// RepeatEvery is how often a failure that persists is sent again.
	RepeatEvery time.Duration
	// RetryFor bounds how long a message is retried while its sink is down.
	RetryFor    time.Duration
	SendTimeout time.Duration
	// MinBackoff is the first retry's delay; it doubles up to 5m.
	MinBackoff time.Duration
}

type message struct {
	title, text string
	queued      time.Time
}

type sink struct {
	url      string
	events   []string
	queue    []message
	attempts int       // failed attempts at the head of queue
	next     time.Time // no attempt before
	down     bool      // the last attempt failed (logged once)
}

type condition struct {
	lastSent time.Time
}

// Notifier deduplicates events and sends them from one goroutine (Run).
type Notifier struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}

	mu      sync.Mutex
	sinks   []*sink
	active  map[string]condition // failing Kind+Key -> when it was last queued
	dropped uint64
}

// New returns a Notifier; nothing is sent until Run.
func New(cfg Config) *Notifier {
	if cfg.Sender == nil {
		cfg.Sender = Shoutrrr{}
	}
	if cfg.Redact == nil {
		cfg.Redact = func(s string) string { return s }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.RepeatEvery <= 0 {
		cfg.RepeatEvery = DefaultRepeatEvery
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = DefaultRetryFor
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = minBackoff
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = DefaultSendTimeout
	}
	n := &Notifier{cfg: cfg, log: cfg.Logger, wake: make(chan struct{}, 1), active: map[string]condition{}}
	for _, s := range cfg.Sinks {
		n.sinks = append(n.sinks, &sink{url: s.URL, events: s.Events})
	}
	return n
}

// Notify records an observation and queues what must be sent: a failure
// the first time it is seen and again every RepeatEvery while it persists,
// its recovery once. It never blocks on a sink. On a nil Notifier (no
// sinks configured) it does nothing.
func (n *Notifier) Notify(e Event) {
	if n == nil {
		return
	}
	now := time.Now()
	id := string(e.Kind) + "\x00" + e.Key
	n.mu.Lock()
	defer n.mu.Unlock()
	c, failing := n.active[id]
	if e.Recovered {
		if !failing {
			return
		}
		delete(n.active, id)
		if Recovery(e.Kind) == "" {
			return
		}
	} else {
		if failing && now.Sub(c.lastSent) < n.cfg.RepeatEvery {
			return
		}
		n.active[id] = condition{lastSent: now}
	}
	// A sink shows what it is sent (a chat, a phone): text from outside
	// (a container's, a probe target's, a peer's) must not act on it.
	title, body := e.Text()
	m := message{title: escape.Text(n.redact(title)), text: escape.Lines(n.redact(body)), queued: now}
	queued := false
	for _, s := range n.sinks {
		if len(s.events) > 0 && !slices.Contains(s.events, e.name()) {
			continue
		}
		if len(s.queue) >= n.cfg.QueueSize {
			s.queue = s.queue[1:]
			s.attempts = 0
			n.dropped++
			n.log.Warn("notification queue full: dropped the oldest message", "sink", redact.Host(s.url), "dropped_total", n.dropped)
		}
		s.queue = append(s.queue, m)
		queued = true
	}
	if queued {
		select {
		case n.wake <- struct{}{}:
		default:
		}
	}
}

// SetSinks replaces the sinks and the redaction (a new commit changed
// syncd.yaml `notify:` or the host's secrets). A sink whose URL stays
// keeps what it has queued.
func (n *Notifier) SetSinks(sinks []Sink, redact func(string) string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if redact != nil {
		n.cfg.Redact = redact
	}
	old := map[string]*sink{}
	for _, s := range n.sinks {
		old[s.url] = s
	}
	n.sinks = nil
	for _, s := range sinks {
		if o := old[s.URL]; o != nil {
			o.events = s.Events
			n.sinks = append(n.sinks, o)
			continue
		}
		n.sinks = append(n.sinks, &sink{url: s.URL, events: s.Events})
	}
}

// redact applies the redaction (n.mu held).
func (n *Notifier) redact(s string) string { return n.cfg.Redact(s) }

// Dropped is how many messages a full queue or RetryFor has cost so far.
func (n *Notifier) Dropped() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dropped
}

// Run sends queued messages until ctx is done, retrying each with backoff
// while its sink is down (up to RetryFor). Sinks are independent: one that
// is down holds back only its own queue.
func (n *Notifier) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := n.sendDue(ctx)
		if ctx.Err() != nil {
			return
		}
		if wait < 0 {
			wait = time.Hour // idle until Notify wakes us
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-timer.C:
		}
	}
}

// sendDue makes one attempt for every sink whose head message is due and
// returns how long until the next is due, or -1 when nothing is queued.
func (n *Notifier) sendDue(ctx context.Context) time.Duration {
	for {
		progressed := false
		n.mu.Lock()
		sinks := slices.Clone(n.sinks)
		n.mu.Unlock()
		for _, s := range sinks {
			n.mu.Lock()
			if len(s.queue) == 0 || time.Now().Before(s.next) {
				n.mu.Unlock()
				continue
			}
			m := s.queue[0]
			n.mu.Unlock()

			sctx, cancel := context.WithTimeout(ctx, n.cfg.SendTimeout)
			err := n.cfg.Sender.Send(sctx, s.url, m.title, m.text)
			cancel()
			if ctx.Err() != nil {
				return 0
			}

			n.mu.Lock()
			// The head may have been dropped by a full queue meanwhile.
			head := len(s.queue) > 0 && s.queue[0] == m
			if err == nil {
				if head {
					s.queue = s.queue[1:]
				}
				if s.down {
					n.log.Info("notification sink reachable again", "sink", redact.Host(s.url), "failed_attempts", s.attempts)
				}
				s.attempts, s.down, s.next = 0, false, time.Time{}
				progressed = true
			} else {
				s.attempts++
				if !s.down {
					n.log.Warn("notification sink unreachable; retrying", "sink", redact.Host(s.url),
						"err", n.redact(scrub(err.Error(), s.url)))
					s.down = true
				}
				if head && time.Since(m.queued) >= n.cfg.RetryFor {
					s.queue = s.queue[1:]
					n.dropped++
					n.log.Warn("notification dropped: its sink was down too long", "sink", redact.Host(s.url),
						"retried_for", n.cfg.RetryFor, "dropped_total", n.dropped)
					s.attempts = 0
				}
				s.next = time.Now().Add(backoff(n.cfg.MinBackoff, s.attempts))
			}
			n.mu.Unlock()
		}
		if !progressed {
			break
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	wait := time.Duration(-1)
	for _, s := range n.sinks {
		if len(s.queue) == 0 {
			continue
		}
		d := max(time.Until(s.next), 0)
		if wait < 0 || d < wait {
			wait = d
		}
	}
	return wait
}

// backoff doubles from first to maxBackoff.
func backoff(first time.Duration, attempts int) time.Duration {
	d := first
	for i := 1; i < attempts && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}
