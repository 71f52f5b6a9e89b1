package probe

import (
	"fmt"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
)

// Status of a probe.
type Status string

// Statuses. A probe is Unknown until its first check; its first success
// makes it Up without an event (nothing changed for anyone), its first
// failure_threshold failures make it Down.
const (
	Unknown Status = ""
	Up      Status = "up"
	Down    Status = "down"
)

// Flapping: a probe whose status changed FlapChanges times within its last
// desired.MaxProbeResults results is flapping: reported once, and its
// changes are not reported one by one. It is over when fewer than
// StableChanges changes remain in that window.
const (
	FlapChanges   = 4
	StableChanges = 2
)

// State is what is remembered of one probe, across restarts.
type State struct {
	Status Status    `json:"status,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	// LastError is the last failed check's reason, redacted.
	LastError string `json:"last_error,omitempty"`
	// Successes and Failures are the current runs of passed and failed
	// checks.
	Successes int `json:"successes"`
	Failures  int `json:"failures"`
	// Checks and Failed count every check and every failed one.
	Checks int64 `json:"checks"`
	Failed int64 `json:"failed"`
	// Results are the last desired.MaxProbeResults checks, oldest first.
	Results  []Record `json:"results,omitempty"`
	Flapping bool     `json:"flapping,omitempty"`
	// Alerted says a down event went out and its up did not yet: an up is
	// only news to whoever heard of the down.
	Alerted bool `json:"alerted,omitempty"`
	// CertDays is the certificate's days left at the last check, if any.
	CertDays   *int      `json:"cert_days,omitempty"`
	CertWarned bool      `json:"cert_warned,omitempty"`
	LastRun    time.Time `json:"last_run,omitzero"`
	// LatencyMS is the last check's.
	LatencyMS int64 `json:"latency_ms"`
}

// Record is one result as kept.
type Record struct {
	At        time.Time `json:"at"`
	OK        bool      `json:"ok"`
	LatencyMS int64     `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
	// Status is the probe's status after this result.
	Status Status `json:"status,omitempty"`
}

// Policy is what of a probe's settings the state machine needs.
type Policy struct {
	Failures, Successes int
	// CertDays warns below this many days left; 0 never.
	CertDays int
}

// PolicyOf returns p's policy, defaults filled in.
func PolicyOf(p desired.Probe) Policy {
	pol := Policy{Failures: p.FailuresOr(), Successes: p.SuccessesOr()}
	if p.HTTP != nil {
		pol.CertDays = p.HTTP.CertDays
	}
	return pol
}

// Kind of event.
type Kind string

// Events. Recoveries (ProbeUp, EngineUp) follow only a failure that was
// reported.
const (
	ProbeDown     Kind = "probe_down"
	ProbeUp       Kind = "probe_up"
	ProbeFlapping Kind = "probe_flapping"
	CertExpiring  Kind = "cert_expiring"
	EngineDown    Kind = "engine_down"
	EngineUp      Kind = "engine_up"
)

// Event is a change worth telling a person about.
type Event struct {
	Kind Kind
	// Project and Probe name the probe; both "" for the engine's events.
	Project, Probe string
	At             time.Time
	// Checks is how many checks in a row failed (ProbeDown) or passed
	// (ProbeUp).
	Checks int
	// Detail says why (the last error, the days left); redacted.
	Detail string
}

// Key tells one instance of a condition from another (for deduplication):
// "project/probe", or "engine".
func (e Event) Key() string {
	if e.Project == "" {
		return "engine"
	}
	return e.Project + "/" + e.Probe
}

// Recovered reports whether e ends a condition (up after down).
func (e Event) Recovered() bool { return e.Kind == ProbeUp || e.Kind == EngineUp }

func (e Event) String() string {
	switch e.Kind {
	case EngineDown:
		return "the Docker engine is unreachable; probe alerts are held back: " + e.Detail
	case EngineUp:
		return "the Docker engine answers again"
	}
	s := fmt.Sprintf("probe %s of %s: %s", e.Probe, e.Project, e.Kind)
	if e.Checks > 0 {
		s += fmt.Sprintf(" (checks in a row: %d)", e.Checks)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Observe adds one result to s and returns the kinds of event it causes.
// hold holds back down events (the engine is unreachable: one host alert
// says it): the probe is still evaluated and its status still changes; a
// down held back is reported once hold is over, if the probe is still
// down then.
func (s *State) Observe(pol Policy, r Result, hold bool) []Kind {
	s.Checks++
	s.LastRun = r.At
	s.LatencyMS = r.Latency.Milliseconds()
	if r.OK {
		s.Successes++
		s.Failures = 0
	} else {
		s.Failed++
		s.Failures++
		s.Successes = 0
		s.LastError = r.Error
	}
	before := s.Status
	switch {
	case s.Status != Up && r.OK && (s.Status == Unknown || s.Successes >= max(pol.Successes, 1)):
		s.Status = Up
	case s.Status != Down && !r.OK && s.Failures >= max(pol.Failures, 1):
		s.Status = Down
	}
	changed := s.Status != before
	if changed {
		s.Since = r.At
	}
	s.Results = append(s.Results, Record{At: r.At, OK: r.OK, LatencyMS: r.Latency.Milliseconds(), Error: r.Error, Status: s.Status})
	if n := len(s.Results) - desired.MaxProbeResults; n > 0 {
		s.Results = append([]Record(nil), s.Results[n:]...)
	}

	var out []Kind
	flips := s.changes()
	switch {
	case !s.Flapping && flips >= FlapChanges:
		s.Flapping = true
		out = append(out, ProbeFlapping)
	case s.Flapping && flips < StableChanges:
		// Settled: say where, once.
		s.Flapping = false
		if s.Status == Down && !hold {
			s.Alerted = true
			out = append(out, ProbeDown)
		} else if s.Status == Up {
			s.Alerted = false
			out = append(out, ProbeUp)
		}
	case s.Flapping:
	case s.Status == Down && !s.Alerted && !hold && !r.OK:
		// A new down, or one held back while the engine was unreachable
		// that still fails now that it answers.
		s.Alerted = true
		out = append(out, ProbeDown)
	case s.Status == Up && changed && s.Alerted:
		s.Alerted = false
		out = append(out, ProbeUp)
	}
	if r.CertDays != nil {
		s.CertDays = r.CertDays
		switch {
		case pol.CertDays > 0 && *r.CertDays < pol.CertDays && !s.CertWarned:
			s.CertWarned = true
			out = append(out, CertExpiring)
		case pol.CertDays == 0 || *r.CertDays >= pol.CertDays:
			s.CertWarned = false
		}
	}
	return out
}

// changes counts the status changes within the kept results.
func (s *State) changes() int {
	n := 0
	for i := 1; i < len(s.Results); i++ {
		a, b := s.Results[i-1].Status, s.Results[i].Status
		if a != Unknown && b != Unknown && a != b {
			n++
		}
	}
	return n
}
