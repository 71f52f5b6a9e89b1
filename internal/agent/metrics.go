package agent

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the agent's, on a registry of its own (never the global
// one): the loop's duration, outcome and last success, as node_exporter
// reports each collector's.
type metrics struct {
	reg         *prometheus.Registry
	duration    *prometheus.HistogramVec
	cycles      *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	projects    *prometheus.GaugeVec
	drift       prometheus.Counter
	polls       prometheus.Counter
	waiting     prometheus.Gauge
	halted      prometheus.Gauge
	states      map[string]bool // the projects gauge's labels, to delete the ones gone
}

func newMetrics(more ...prometheus.Collector) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "syncd_cycle_duration_seconds",
			Help: "How long reconcile cycles took, by what triggered them.",
			// From a quiet ls-remote to an apply that waits for health.
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"reason"}),
		cycles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncd_cycles_total",
			Help: "Reconcile cycles run, by result: ok, error, or quiet (a poll that found the source unmoved).",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "syncd_last_success_timestamp_seconds",
			Help: "Unix time at which the last successful cycle (quiet polls included) ended.",
		}),
		projects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "syncd_projects",
			Help: "Compose projects on this host by state, as the last cycle that reported them saw them.",
		}, []string{"state"}),
		drift: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "syncd_drift_total",
			Help: "Drift (projects changed by hand) seen by cycles.",
		}),
		polls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "syncd_polls_total",
			Help: "Polls of the source (cycles run for the poll timer, quiet or not).",
		}),
	}
	// The wave gate's state, one 0/1 gauge each.
	for _, g := range []struct {
		into       *prometheus.Gauge
		name, help string
	}{
		{&m.waiting, "syncd_rollout_waiting", "1 while the wave gate holds the branch head back from this host until lower waves have applied it, converged and baked."},
		{&m.halted, "syncd_rollout_halted", "1 while the branch head is halted for this host because a lower-wave host failed it; a fixing commit resumes."},
	} {
		*g.into = prometheus.NewGauge(prometheus.GaugeOpts{Name: g.name, Help: g.help})
	}
	for _, r := range []string{"ok", "error", "quiet"} {
		m.cycles.WithLabelValues(r) // shown as 0 from the start
	}
	m.reg.MustRegister(m.duration, m.cycles, m.lastSuccess, m.projects, m.drift, m.polls, m.waiting, m.halted,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.reg.MustRegister(more...)
	return m
}

func (m *metrics) observe(reason string, end time.Time, dur time.Duration, res Result, err error) {
	m.duration.WithLabelValues(reason).Observe(dur.Seconds())
	if reason == ReasonPoll {
		m.polls.Inc()
	}
	switch {
	case err != nil:
		m.cycles.WithLabelValues("error").Inc()
	case res.Quiet:
		m.cycles.WithLabelValues("quiet").Inc()
	default:
		m.cycles.WithLabelValues("ok").Inc()
	}
	if err == nil {
		m.lastSuccess.Set(float64(end.UnixNano()) / 1e9)
	}
	if res.Drift > 0 {
		m.drift.Add(float64(res.Drift))
	}
	if ro := res.Rollout; ro != nil {
		m.waiting.Set(boolGauge(ro.State == RolloutWaiting))
		m.halted.Set(boolGauge(ro.State == RolloutHalted))
	}
	if res.Projects != nil {
		// Set, then delete what is gone: a scrape never sees the gauge empty.
		for state, n := range res.Projects {
			m.projects.WithLabelValues(state).Set(float64(n))
		}
		for state := range m.states {
			if _, ok := res.Projects[state]; !ok {
				m.projects.DeleteLabelValues(state)
			}
		}
		m.states = map[string]bool{}
		for state := range res.Projects {
			m.states[state] = true
		}
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
