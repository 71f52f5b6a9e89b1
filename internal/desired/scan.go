package desired

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// AppScan is app.yaml's `scan:`: the app's additions to its host's scan
// policy. Its ignore entries add to the host's; a field it sets overrides
// the host's.
type AppScan struct {
	RefuseSeverity string `yaml:"refuse_severity"`
	// IgnoreUnfixed leaves out findings that have no fixed version.
	IgnoreUnfixed *bool        `yaml:"ignore_unfixed"`
	Ignore        []ScanIgnore `yaml:"ignore"`
	// OnError says what a scan that fails (no DB, a timeout, trivy
	// missing) does to the deploy gate: allow (default) or refuse.
	OnError string `yaml:"on_error"`
}

// ScanIgnore is an accepted risk: a finding ID that does not count until
// a date, for a reason, both required, so the acceptance is reviewed and
// runs out.
type ScanIgnore struct {
	ID     string `yaml:"id"`
	Until  string `yaml:"until"`
	Reason string `yaml:"reason"`

	// File and Line say where the entry is written, for messages.
	File string `yaml:"-"`
	Line int    `yaml:"-"`
}

// On-error policies of the scan gate.
const (
	ScanOnErrorAllow  = "allow"
	ScanOnErrorRefuse = "refuse"
)

// untilLayout is the date format of ScanIgnore.Until.
const untilLayout = "2006-01-02"

// Expires is the instant the entry stops hiding its finding: the end of
// its until day, UTC. The zero time for an until that is not a date.
func (i ScanIgnore) Expires() time.Time {
	d, err := time.Parse(untilLayout, i.Until)
	if err != nil {
		return time.Time{}
	}
	return d.AddDate(0, 0, 1)
}

// Active reports whether the entry still hides its finding at now.
func (i ScanIgnore) Active(now time.Time) bool { return now.Before(i.Expires()) }

// ScanPolicy is the effective scan policy of one app on one host.
type ScanPolicy struct {
	// RefuseSeverity: an image with a finding at or above it is refused
	// by the deploy gate; "" refuses nothing.
	RefuseSeverity string
	IgnoreUnfixed  bool
	Ignore         []ScanIgnore
	OnError        string
}

// ScanPolicyOf returns the scan policy of app on h: the host's, with the
// app's ignore entries added and the fields it sets overriding.
func (r *Repo) ScanPolicyOf(h *Host, app string) ScanPolicy {
	p := ScanPolicy{OnError: ScanOnErrorAllow}
	add := func(s *AppScan) {
		if s.RefuseSeverity != "" {
			p.RefuseSeverity = s.RefuseSeverity
		}
		if s.IgnoreUnfixed != nil {
			p.IgnoreUnfixed = *s.IgnoreUnfixed
		}
		p.Ignore = append(p.Ignore, s.Ignore...)
		if s.OnError != "" {
			p.OnError = s.OnError
		}
	}
	if h != nil && h.Scan != nil {
		add(&h.Scan.AppScan)
	}
	if a := r.Apps[app]; a != nil && a.Scan != nil {
		add(a.Scan)
	}
	return p
}

// SeverityRank orders Severities: UNKNOWN 0 … CRITICAL 4, and -1 for a
// word that is not one of them.
func SeverityRank(s string) int { return slices.Index(Severities, s) }

// checkScan checks a `scan:` block of host.yaml or app.yaml and notes
// where each ignore entry is written.
func checkScan(p string, n *yaml.Node, s AppScan, ps *Problems) {
	if s.RefuseSeverity != "" && SeverityRank(s.RefuseSeverity) < 0 {
		ps.add(p, lineOf(n, "scan", "refuse_severity"), "scan.refuse_severity: %q is not a severity; use one of %s%s",
			s.RefuseSeverity, strings.Join(Severities, ", "), suggest(strings.ToUpper(s.RefuseSeverity), Severities))
	}
	switch s.OnError {
	case "", ScanOnErrorAllow, ScanOnErrorRefuse:
	default:
		ps.add(p, lineOf(n, "scan", "on_error"), "scan.on_error: %q is not a policy; use allow (default: a failed scan lets the image start, with a warning) or refuse", s.OnError)
	}
	seen := map[string]bool{}
	for i := range s.Ignore {
		e := &s.Ignore[i]
		e.File, e.Line = p, lineOf(n, "scan", "ignore", fmt.Sprint(i))
		where := fmt.Sprintf("scan.ignore[%d]", i)
		if e.ID == "" {
			ps.add(p, e.Line, "%s: id is required (the finding to accept, e.g. CVE-2024-1234 or GHSA-xxxx-xxxx-xxxx)", where)
		} else {
			where += " (" + e.ID + ")"
			if seen[e.ID] {
				ps.add(p, e.Line, "%s: listed twice; keep one entry", where)
			}
			seen[e.ID] = true
		}
		switch {
		case e.Until == "":
			ps.add(p, e.Line, "%s: until is required: the date (YYYY-MM-DD) this acceptance runs out and the finding counts again", where)
		case e.Expires().IsZero():
			ps.add(p, lineOf(n, "scan", "ignore", fmt.Sprint(i), "until"), "%s: until: %q is not a date; write YYYY-MM-DD", where, e.Until)
		}
		if strings.TrimSpace(e.Reason) == "" {
			ps.add(p, e.Line, "%s: reason is required: why this risk is accepted, for the review", where)
		}
	}
}
