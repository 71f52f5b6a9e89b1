package probe

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/schedule"
	"github.com/syncd-dev/syncd/internal/state"
)

// StateFile is the name of the probes' state in the state directory.
const StateFile = "probes.json"

// Options configure a Monitor.
type Options struct {
	// StateDir is the state directory; the probes' state is StateFile in it.
	StateDir string
	// Containers answers container probes and tells whether the engine
	// answers; nil fails container probes and never holds alerts.
	Containers Containers
	// OnEvent receives the events of a Tick, after it, in order. It must
	// not block for long (queue the notification).
	OnEvent func(Event)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// RootCAs verifies HTTPS servers; nil means the host's roots.
	RootCAs *x509.CertPool
	// Parallel bounds the checks run at once (default 8).
	Parallel int
}

// Monitor runs a host's probes on their schedules, keeps their state in
// the state directory and reports changes through Options.OnEvent.
type Monitor struct {
	opts    Options
	checker *Checker
	log     *slog.Logger

	mu      sync.Mutex
	targets map[string]*target // by key
	file    stateFile
	redact  func(string) string
}

type target struct {
	project string
	probe   desired.Probe
	sched   cron.Schedule
}

// stateFile is StateFile's content.
type stateFile struct {
	Probes map[string]*State `json:"probes"`
	Engine EngineState       `json:"engine"`
}

// EngineState is whether the Docker engine answered the last time probes
// asked.
type EngineState struct {
	Down      bool      `json:"down,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

func key(project, probe string) string { return project + "/" + probe }

// NewMonitor returns a Monitor with the state a previous run left in
// opts.StateDir. A state file that cannot be read is reported and the
// probes start afresh: probing matters more than their history.
func NewMonitor(opts Options) (*Monitor, error) {
	m := &Monitor{opts: opts, log: opts.Logger, targets: map[string]*target{},
		file:    stateFile{Probes: map[string]*State{}},
		checker: &Checker{Containers: opts.Containers, RootCAs: opts.RootCAs, Now: opts.Now}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	data, err := os.ReadFile(m.path())
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("probes: %w", err)
	default:
		var f stateFile
		if err := json.Unmarshal(data, &f); err != nil {
			m.log.Warn("the probes' state cannot be read; starting afresh", "file", m.path(), "err", err)
		} else {
			if f.Probes == nil {
				f.Probes = map[string]*State{}
			}
			m.file = f
		}
	}
	return m, nil
}

func (m *Monitor) path() string { return filepath.Join(m.opts.StateDir, StateFile) }

// Set replaces the probes the Monitor runs with those of projects (as the
// last cycle rendered them). redact scrubs the host's secret values from
// what the probes say. The state of a probe that is gone is forgotten at
// the next Tick; the others keep theirs.
func (m *Monitor) Set(projects []*desired.Project, redact func(string) string) error {
	targets := map[string]*target{}
	var errs []error
	for _, p := range projects {
		for _, pr := range p.Probes {
			sc, err := schedule.Parse(pr.ScheduleOr())
			if err != nil {
				errs = append(errs, fmt.Errorf("probe %s of %s: %w", pr.Name, p.Name(), err))
				continue
			}
			targets[key(p.Name(), pr.Name)] = &target{project: p.Name(), probe: pr, sched: sc}
		}
	}
	m.mu.Lock()
	m.targets, m.redact = targets, redact
	m.mu.Unlock()
	return errors.Join(errs...)
}

// Run ticks every second until ctx ends.
func (m *Monitor) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if err := m.Tick(ctx); err != nil {
			m.log.Error("probes", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick runs every probe that is due now (never run, or its schedule's next
// time after its last run has come), records the results, writes the
// state file and sends the events. It returns an error only when the
// state cannot be written.
func (m *Monitor) Tick(ctx context.Context) error {
	now := m.now()
	m.mu.Lock()
	var due []*target
	for k, t := range m.targets {
		st := m.file.Probes[k]
		if st == nil || st.LastRun.IsZero() || !t.sched.Next(st.LastRun).After(now) {
			due = append(due, t)
		}
	}
	for k := range m.file.Probes {
		if _, ok := m.targets[k]; !ok {
			delete(m.file.Probes, k)
		}
	}
	redact := m.redact
	m.mu.Unlock()
	if len(due) == 0 {
		return nil
	}
	slices.SortFunc(due, func(a, b *target) int { return cmp.Compare(key(a.project, a.probe.Name), key(b.project, b.probe.Name)) })

	var events []Event
	engineDown := false
	if c := m.opts.Containers; c != nil {
		pctx, cancel := context.WithTimeout(ctx, desired.DefaultProbeTimeout)
		err := c.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		engineDown = err != nil
		m.mu.Lock()
		e := &m.file.Engine
		switch {
		case engineDown && !e.Down:
			*e = EngineState{Down: true, Since: now, LastError: redactWith(redact, err.Error())}
			events = append(events, Event{Kind: EngineDown, At: now, Detail: e.LastError})
		case !engineDown && e.Down:
			*e = EngineState{Since: now}
			events = append(events, Event{Kind: EngineUp, At: now})
		}
		m.mu.Unlock()
	}

	results := m.checkAll(ctx, due, engineDown, redact)
	if ctx.Err() != nil {
		return nil // a check cut short says nothing of the probe
	}
	m.mu.Lock()
	for i, t := range due {
		k := key(t.project, t.probe.Name)
		st := m.file.Probes[k]
		if st == nil {
			st = &State{}
			m.file.Probes[k] = st
		}
		for _, kind := range st.Observe(PolicyOf(t.probe), results[i], engineDown) {
			events = append(events, m.event(kind, t, st, now))
		}
	}
	err := m.save()
	m.mu.Unlock()
	for _, e := range events {
		m.log.Info("probe event", "kind", e.Kind, "project", e.Project, "probe", e.Probe, "checks", e.Checks, "detail", e.Detail)
		if m.opts.OnEvent != nil {
			m.opts.OnEvent(e)
		}
	}
	return err
}

func (m *Monitor) event(kind Kind, t *target, st *State, now time.Time) Event {
	e := Event{Kind: kind, Project: t.project, Probe: t.probe.Name, At: now}
	switch kind {
	case ProbeDown:
		e.Checks, e.Detail = st.Failures, st.LastError
	case ProbeUp:
		e.Checks = st.Successes
	case ProbeFlapping:
		e.Detail = fmt.Sprintf("%d status changes within its last %d results (last error: %s); changes are not reported one by one until it settles",
			st.changes(), len(st.Results), st.LastError)
	case CertExpiring:
		e.Detail = fmt.Sprintf("the certificate of %s expires in %d days (cert_days: %d)", t.probe.HTTP.URL, *st.CertDays, t.probe.HTTP.CertDays)
		e.Detail = redactWith(m.redact, e.Detail)
	}
	return e
}

// checkAll runs the due checks, at most Parallel at once. While the
// engine is unreachable, container probes are not asked: they fail with
// that reason.
func (m *Monitor) checkAll(ctx context.Context, due []*target, engineDown bool, redact func(string) string) []Result {
	out := make([]Result, len(due))
	sem := make(chan struct{}, cmp.Or(m.opts.Parallel, 8))
	var wg sync.WaitGroup
	for i, t := range due {
		if engineDown && t.probe.Container != nil {
			out[i] = Result{At: m.now(), Error: "the Docker engine is unreachable", EngineDown: true}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = m.checker.Check(ctx, t.project, t.probe, redact)
		}()
	}
	wg.Wait()
	return out
}

func (m *Monitor) save() error {
	data, err := json.MarshalIndent(m.file, "", "  ")
	if err != nil {
		return err
	}
	if err := state.WriteFile(m.path(), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("probes: write %s: %w", m.path(), err)
	}
	return nil
}

// Snapshot is the state of one probe, for the status document and
// metrics.
type Snapshot struct {
	Project, Probe, Kind string
	State
}

// Snapshots returns the state of every probe the Monitor runs, by project
// then probe; a probe not checked yet has Status Unknown.
func (m *Monitor) Snapshots() []Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Snapshot
	for _, k := range slices.Sorted(maps.Keys(m.targets)) {
		t := m.targets[k]
		s := Snapshot{Project: t.project, Probe: t.probe.Name, Kind: t.probe.Kind()}
		if st := m.file.Probes[k]; st != nil {
			s.State = *st
			s.Results = slices.Clone(st.Results)
		}
		out = append(out, s)
	}
	return out
}

// Engine returns whether the engine answered the last time probes asked.
func (m *Monitor) Engine() EngineState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.file.Engine
}

func (m *Monitor) now() time.Time {
	if m.opts.Now == nil {
		return time.Now()
	}
	return m.opts.Now()
}

func redactWith(redact func(string) string, s string) string {
	if redact == nil {
		return s
	}
	return redact(s)
}
