package notify

import "slices"

// Kind names a failure condition; its recovery has a name of its own
// (Recovery) that a sink subscribes to separately.
type Kind string

// The events syncd emits.
const (
	BackupFailed Kind = "backup_failed"
	CheckFailed  Kind = "check_failed"
	CycleFailed  Kind = "cycle_failed"
	RolledBack   Kind = "rolled_back"
	Drift        Kind = "drift"
	// Probes (internal/jobs/probe).
	ProbeDown     Kind = "probe_down"
	ProbeFlapping Kind = "probe_flapping"
	CertExpiring  Kind = "cert_expiring"
	EngineDown    Kind = "engine_down"
	// Scans (internal/jobs/scan).
	ImageRefused Kind = "image_refused"
	NewFindings  Kind = "new_findings"
	// Waves (internal/rollout).
	RolloutHalted Kind = "rollout_halted"
)

// recoveries maps a failure to the name of its recovery; a kind without one
// (rolled_back) has nothing to recover from.
var recoveries = map[Kind]string{
	BackupFailed:  "backup_recovered",
	CheckFailed:   "check_recovered",
	CycleFailed:   "cycle_recovered",
	Drift:         "drift_resolved",
	RolledBack:    "",
	ProbeDown:     "probe_up",
	ProbeFlapping: "",
	CertExpiring:  "",
	EngineDown:    "engine_up",
	ImageRefused:  "",
	NewFindings:   "",
	RolloutHalted: "rollout_resumed",
}

// Recovery is the event name of k's recovery, or "" when k has none.
func Recovery(k Kind) string { return recoveries[k] }

// EventNames is every name syncd.yaml `notify[].events` accepts, sorted.
func EventNames() []string {
	var names []string
	for k, r := range recoveries {
		names = append(names, string(k))
		if r != "" {
			names = append(names, r)
		}
	}
	slices.Sort(names)
	return names
}

// KnownEvent reports whether name is in EventNames.
func KnownEvent(name string) bool { return slices.Contains(EventNames(), name) }

// Event is one observation of a condition. Notify is called on every
// observation (every failed cycle, say); deduplication decides what is sent.
type Event struct {
	Kind Kind
	// Key tells one instance of a condition from another: the app whose
	// backup failed, the commit that was rolled back.
	Key     string
	Title   string
	Message string
	// Recovered says the condition Kind+Key is over.
	Recovered bool
}

// name is the event name e is sent under.
func (e Event) name() string {
	if e.Recovered {
		return Recovery(e.Kind)
	}
	return string(e.Kind)
}
