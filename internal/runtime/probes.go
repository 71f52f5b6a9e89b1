package runtime

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/jobs/probe"
	"github.com/syncd-dev/syncd/internal/notify"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/status"
)

// probeNotice turns a probe event into its notification: down and up (and
// the engine's) as a condition and its recovery, flapping and expiring
// certificates once each.
func probeNotice(host string, e probe.Event) notify.Event {
	kinds := map[probe.Kind]notify.Kind{
		probe.ProbeDown: notify.ProbeDown, probe.ProbeUp: notify.ProbeDown,
		probe.ProbeFlapping: notify.ProbeFlapping, probe.CertExpiring: notify.CertExpiring,
		probe.EngineDown: notify.EngineDown, probe.EngineUp: notify.EngineDown,
	}
	n := notify.Event{Kind: kinds[e.Kind], Key: e.Key(), Recovered: e.Recovered(),
		Host: host, App: e.Project, Subject: "probe " + e.Probe, Detail: e.Detail}
	switch e.Kind {
	case probe.ProbeDown:
		n.What = "failed " + notify.Count(e.Checks, "check") + " in a row"
	case probe.ProbeUp:
		n.What = "recovered: 1 check passed"
		if e.Checks != 1 {
			n.What = fmt.Sprintf("recovered: %d checks passed in a row", e.Checks)
		}
	case probe.ProbeFlapping:
		n.What = "is flapping"
	case probe.CertExpiring:
		n.What = "found a certificate about to expire"
	case probe.EngineDown:
		n.Subject, n.What = "the Docker engine", "is unreachable; probe alerts are held back"
	case probe.EngineUp:
		n.Subject, n.What = "the Docker engine", "answers again"
	}
	return n
}

// ProbeNotifier is the probe monitor's OnEvent for n.
func ProbeNotifier(host string, n *notify.Notifier) func(probe.Event) {
	return func(e probe.Event) { n.Notify(probeNotice(host, e)) }
}

// setProbes gives the monitor the projects a cycle rendered.
func setProbes(m *probe.Monitor, rd *reconcile.Rendered) error {
	if m == nil {
		return nil
	}
	var ps []*desired.Project
	for _, name := range slices.Sorted(maps.Keys(rd.Projects)) {
		ps = append(ps, rd.Projects[name])
	}
	return m.Set(ps, rd.Redactor().Text)
}

// probeStatus is the monitor's view of project's probes for the status.
func probeStatus(snaps []probe.Snapshot, project string) []status.Probe {
	var out []status.Probe
	for _, s := range snaps {
		if s.Project != project {
			continue
		}
		st := string(s.Status)
		if st == "" {
			st = "unknown"
		}
		out = append(out, status.Probe{Name: s.Probe, Kind: s.Kind, State: st, Since: s.Since, Flapping: s.Flapping,
			LastError: s.LastError, CertDaysLeft: s.CertDays})
	}
	return out
}

// publishProbes publishes the status again whenever the probes' states
// change, a probe's first verdict included (which no alert announces),
// looking every interval until ctx ends.
func publishProbes(ctx context.Context, m *probe.Monitor, rep *reporter, every time.Duration) {
	last := ""
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var b strings.Builder
		for _, s := range m.Snapshots() {
			fmt.Fprintf(&b, "%s/%s=%s,%t;", s.Project, s.Probe, s.Status, s.Flapping)
		}
		if now := b.String(); now != last {
			last = now
			rep.refresh(ctx)
		}
	}
}
