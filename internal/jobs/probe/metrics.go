package probe

import "github.com/prometheus/client_golang/prometheus"

// The Monitor's metrics, computed from its state at each scrape (a
// prometheus.Collector): register it on the agent's registry.
var (
	upDesc = prometheus.NewDesc("syncd_probe_up",
		"1 when the probe is up, 0 when it is down (after its thresholds); absent until its first check.",
		[]string{"project", "probe", "kind"}, nil)
	latencyDesc = prometheus.NewDesc("syncd_probe_latency_seconds",
		"How long the probe's last check took.", []string{"project", "probe", "kind"}, nil)
	checksDesc = prometheus.NewDesc("syncd_probe_checks_total",
		"Checks of the probe since its state began, by result: ok or failed.", []string{"project", "probe", "kind", "result"}, nil)
	flappingDesc = prometheus.NewDesc("syncd_probe_flapping",
		"1 while the probe is flapping (4 status changes within its last 20 results).", []string{"project", "probe", "kind"}, nil)
	certDesc = prometheus.NewDesc("syncd_probe_certificate_days_left",
		"Whole days the certificate of an https probe's server has left.", []string{"project", "probe"}, nil)
	engineDesc = prometheus.NewDesc("syncd_probe_engine_up",
		"1 when the Docker engine answered the probes' last ping, else 0.", nil, nil)
)

// Describe implements prometheus.Collector.
func (m *Monitor) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{upDesc, latencyDesc, checksDesc, flappingDesc, certDesc, engineDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Monitor) Collect(ch chan<- prometheus.Metric) {
	for _, s := range m.Snapshots() {
		if s.Status == Unknown {
			continue
		}
		up := 0.0
		if s.Status == Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, s.Project, s.Probe, s.Kind)
		ch <- prometheus.MustNewConstMetric(latencyDesc, prometheus.GaugeValue, float64(s.LatencyMS)/1000, s.Project, s.Probe, s.Kind)
		ch <- prometheus.MustNewConstMetric(checksDesc, prometheus.CounterValue, float64(s.Checks-s.Failed), s.Project, s.Probe, s.Kind, "ok")
		ch <- prometheus.MustNewConstMetric(checksDesc, prometheus.CounterValue, float64(s.Failed), s.Project, s.Probe, s.Kind, "failed")
		flap := 0.0
		if s.Flapping {
			flap = 1
		}
		ch <- prometheus.MustNewConstMetric(flappingDesc, prometheus.GaugeValue, flap, s.Project, s.Probe, s.Kind)
		if s.CertDays != nil {
			ch <- prometheus.MustNewConstMetric(certDesc, prometheus.GaugeValue, float64(*s.CertDays), s.Project, s.Probe)
		}
	}
	if m.opts.Containers != nil {
		up := 1.0
		if m.Engine().Down {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(engineDesc, prometheus.GaugeValue, up)
	}
}
