package notify

import (
	"fmt"
	"slices"
	"strings"
)

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
	// Restore drills (internal/jobs).
	DrillFailed Kind = "drill_failed"
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
	DrillFailed:   "drill_recovered",
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
//
// What it is about is said in fields, not in a ready title: Text makes
// both the title and a body that stands alone (several shoutrrr services,
// generic among them, drop the title).
type Event struct {
	Kind Kind
	// Key tells one instance of a condition from another: the app whose
	// backup failed, the commit that was rolled back.
	Key string
	// Host is the host it happened on.
	Host string
	// App is the app it is about; "" for the host's own (a cycle, drift,
	// the engine, the repository check).
	App string
	// Subject names what, in the app or on the host: "probe healthz",
	// "backup", "release of commit 0123456789ab".
	Subject string
	// What says what happened, in syncd's words: "failed 2 checks in a
	// row", "recovered: 1 check passed", "was rolled back".
	What string
	// Detail says why: an error, a probe target's answer, a container's
	// output, the findings or the drifted services one a line. Text from
	// outside: redacted and escaped, like every part, when sent.
	Detail string
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

// Text is what a sink is sent of e, before redaction and escaping: a title
// ("syncd web-01: probe healthz of nextcloud failed 2 checks in a row")
// and a body that says it all again, with the detail ("probe healthz of
// app nextcloud on host web-01 failed 2 checks in a row: GET …: connection
// refused"), so that a sink that shows only the body loses nothing.
func (e Event) Text() (title, body string) {
	var t, b strings.Builder
	t.WriteString("syncd")
	if e.Host != "" {
		t.WriteString(" " + e.Host)
	}
	t.WriteString(":")
	b.WriteString(e.Subject)
	if e.Subject != "" {
		t.WriteString(" " + e.Subject)
	}
	if e.App != "" {
		t.WriteString(" of " + e.App)
		b.WriteString(" of app " + e.App)
	}
	if e.Host != "" {
		b.WriteString(" on host " + e.Host)
	}
	if e.What != "" {
		t.WriteString(" " + e.What)
		b.WriteString(" " + e.What)
	}
	switch {
	case e.Detail == "":
	case strings.Contains(e.Detail, "\n"):
		b.WriteString(":\n" + e.Detail)
	default:
		b.WriteString(": " + e.Detail)
	}
	return t.String(), strings.TrimSpace(b.String())
}

// Count is n of a regular noun, singular or plural: "1 check", "2 checks".
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
