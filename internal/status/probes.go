package status

import (
	"slices"
	"strings"
	"time"
)

// Probe is the state of one health probe of a project (app.yaml probes:),
// as the host's probe monitor last saw it. Equal compares it whole: it
// changes when a probe changes state, not at every check.
type Probe struct {
	Name string `yaml:"name" json:"name"`
	Kind string `yaml:"kind" json:"kind"` // http, tcp or container
	// State is up, down or unknown (not checked yet).
	State    string    `yaml:"state" json:"state"`
	Since    time.Time `yaml:"since,omitempty" json:"since,omitzero"`
	Flapping bool      `yaml:"flapping,omitempty" json:"flapping,omitempty"`
	// LastError is the last failed check's reason, redacted.
	LastError string `yaml:"last_error,omitempty" json:"last_error,omitempty"`
	// CertDaysLeft is how many days the server's certificate has left
	// (https probes).
	CertDaysLeft *int `yaml:"cert_days_left,omitempty" json:"cert_days_left,omitempty"`
}

// normaliseProbes sorts a project's probes by name, times in UTC to the
// second.
func normaliseProbes(ps []Probe) []Probe {
	ps = slices.Clone(ps)
	for i := range ps {
		ps[i].Since = ps[i].Since.UTC().Truncate(time.Second)
	}
	slices.SortStableFunc(ps, func(a, b Probe) int { return strings.Compare(a.Name, b.Name) })
	return ps
}

// redactProbes applies redact to the probes' errors (ps is a copy).
func redactProbes(ps []Probe, redact func(string) string) {
	for i := range ps {
		if ps[i].LastError != "" {
			ps[i].LastError = redact(ps[i].LastError)
		}
	}
}
