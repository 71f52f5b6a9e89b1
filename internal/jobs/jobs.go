// Package jobs is the host's day-2 job runner (DESIGN §3): which jobs a
// host has (backups per app, the repository check, the scan of what runs)
// as the last cycle rendered them, their schedules (package schedule),
// their runs (jobs/backup, jobs/scan), the last result of each kept in
// state/jobs.json for the status and for catch-up after a restart, their
// metrics and their notifications; and the requests to run one now
// (`syncd backup`, `syncd restore`, `syncd drill`, in-process or over the
// agent's socket). A drill's verdict, by hand or on its app's
// backup.drill.schedule, is its app's last_drill, on the app's backup job.
//
// A job is a kind and an app (ID), never a string: its string form keys
// jobs.json, the scheduler and the status, and no app name can produce
// another job's. A Request is validated where it enters.
//
// Adapters stay behind the packages that own them: jobs must not import
// the engine, the source, go-git, the Compose SDK or os/exec, nor the
// runtime or the agent that call it.
package jobs

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Kind is what a job does.
type Kind string

// The kinds of job. A kind that runs per app (PerApp) has its app in its
// ID; the others run once per host.
const (
	KindBackup Kind = "backup" // one app's backup run
	KindDrill  Kind = "drill"  // one app's scheduled restore drill
	KindCheck  Kind = "check"  // the repository's prune and restic check
	KindScan   Kind = "scan"   // the images that run, scanned
)

// PerApp reports whether a job of kind k is one app's.
func (k Kind) PerApp() bool { return k == KindBackup || k == KindDrill }

func (k Kind) known() bool {
	return k == KindBackup || k == KindDrill || k == KindCheck || k == KindScan
}

// ID is one job: its kind and, for a per-app kind, the app.
type ID struct {
	Kind Kind
	App  string
}

// The host-wide jobs.
var (
	Check = ID{Kind: KindCheck}
	Scan  = ID{Kind: KindScan}
)

// Backup is the backup job of app.
func Backup(app string) ID { return ID{Kind: KindBackup, App: app} }

// Drill is the scheduled restore drill of app (backup.drill.schedule);
// its verdict is kept as the last_drill of Backup(app).
func Drill(app string) ID { return ID{Kind: KindDrill, App: app} }

// String is the ID's stable form: "<kind>/<app>" for a per-app kind
// ("backup/check"), the kind alone otherwise ("check"). An app name holds
// no "/", so no app can take another job's name.
func (id ID) String() string {
	if id.Kind.PerApp() {
		return string(id.Kind) + "/" + id.App
	}
	return string(id.Kind)
}

// Validate says what is wrong with id, if anything.
func (id ID) Validate() error {
	switch {
	case !id.Kind.known():
		return fmt.Errorf("unknown job kind %q (backup, drill, check or scan)", id.Kind)
	case id.Kind.PerApp():
		if err := checkApp(id.App); err != nil {
			return fmt.Errorf("job %s: app: %w", id.Kind, err)
		}
	case id.App != "":
		return fmt.Errorf("job %s is the host's, not an app's (%q)", id.Kind, id.App)
	}
	return nil
}

// ParseID reads an ID's String form.
func ParseID(s string) (ID, error) {
	kind, app, perApp := strings.Cut(s, "/")
	id := ID{Kind: Kind(kind), App: app}
	if perApp != id.Kind.PerApp() && id.Kind.known() {
		if perApp {
			return ID{}, fmt.Errorf("job %q: %s is the host's job, not an app's", s, kind)
		}
		return ID{}, fmt.Errorf("job %q: %s needs its app (%s/<app>)", s, kind, kind)
	}
	if err := id.Validate(); err != nil {
		return ID{}, fmt.Errorf("job %q: %w", s, err)
	}
	return id, nil
}

// MarshalText writes the String form.
func (id ID) MarshalText() ([]byte, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	return []byte(id.String()), nil
}

// UnmarshalText reads the String form.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// checkApp says why s cannot be the app of an ID: the String form needs
// it non-empty and without "/" (the repository's own rule for app names,
// which is stricter, is the host's to apply).
func checkApp(s string) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case strings.Contains(s, "/"):
		return fmt.Errorf("%q holds a /", s)
	}
	return checkText(s)
}

// checkText says why s, a value that is shown or compared but never a
// path element, cannot be one: a control character (NUL included) or not
// UTF-8.
func checkText(s string) error {
	switch {
	case !utf8.ValidString(s):
		return fmt.Errorf("%q is not UTF-8", s)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%q holds a control character", s)
	}
	return nil
}
