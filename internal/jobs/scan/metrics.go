package scan

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd-dev/syncd/internal/desired"
)

// Collector returns the scan metrics of what ScanRunning last scanned (the
// images that run), for the agent's registry:
//
//	syncd_scan_findings{severity}        findings by severity, every running image, before the policy
//	syncd_scan_refused_images            running images that violate their project's policy (once per project)
//	syncd_scan_db_timestamp_seconds      when the vulnerability DB of those scans was built
func (s *Scanner) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Scanner }

var (
	findingsDesc = prometheus.NewDesc("syncd_scan_findings", "Vulnerabilities trivy found in the images that run, by severity (before the scan policy).", []string{"severity"}, nil)
	refusedDesc  = prometheus.NewDesc("syncd_scan_refused_images", "Images that run that violate the scan policy of the project running them (an image counts once per project).", nil, nil)
	dbDesc       = prometheus.NewDesc("syncd_scan_db_timestamp_seconds", "Unix time the vulnerability DB of the last scans was built.", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- findingsDesc
	ch <- refusedDesc
	ch <- dbDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.Lock()
	last := c.s.last
	c.s.mu.Unlock()
	if last == nil {
		return // nothing scanned yet: no numbers rather than zeros
	}
	counts := map[string]int{}
	seen := map[string]bool{}
	refused := 0
	var db DB
	for _, r := range last {
		if r.Err != nil {
			continue
		}
		if r.Verdict.Refused() {
			refused++
		}
		if r.Report.DB.UpdatedAt.After(db.UpdatedAt) {
			db = r.Report.DB
		}
		if seen[r.Image.ID] {
			continue // an image two projects run counts once
		}
		seen[r.Image.ID] = true
		for sev, n := range r.Verdict.Counts {
			counts[sev] += n
		}
	}
	for _, sev := range desired.Severities {
		ch <- prometheus.MustNewConstMetric(findingsDesc, prometheus.GaugeValue, float64(counts[sev]), sev)
	}
	ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.GaugeValue, float64(refused))
	if !db.UpdatedAt.IsZero() {
		ch <- prometheus.MustNewConstMetric(dbDesc, prometheus.GaugeValue, float64(db.UpdatedAt.Unix()))
	}
}
