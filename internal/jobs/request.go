package jobs

import (
	"errors"
	"fmt"
	"path/filepath"
)

// RequestKind is what a request asks for.
type RequestKind string

// The requests `syncd backup` and `syncd restore` make.
const (
	RequestBackup  RequestKind = "backup"  // back up one app now, or all
	RequestList    RequestKind = "list"    // list the snapshots by run
	RequestRestore RequestKind = "restore" // restore one app, in place or into To
	RequestDrill   RequestKind = "drill"   // restore one app's run into a throwaway project and check it
)

// Request asks for a job to run now: as JSON on the agent's socket, or in
// the process of `syncd backup`/`syncd restore` itself.
type Request struct {
	Kind RequestKind `json:"kind"`
	// App is the app ("" for every app with a backup: of a backup or a
	// list; a restore needs one).
	App string `json:"app,omitempty"`
	// Snapshot is what a restore (or a drill) restores: a run, a snapshot
	// ID, "" or latest.
	Snapshot string `json:"snapshot,omitempty"`
	// To, an absolute directory, makes a restore an extraction into it.
	To string `json:"to,omitempty"`
	// FromHost, for a list or a restore, takes the snapshots another
	// host made ("": this host's), to move an app to a new host.
	FromHost string `json:"from_host,omitempty"`
	// Run, for a list of one app, lists that run's files instead.
	Run string `json:"run,omitempty"`
	// Paths, for a restore into To, restores only these of the run, named
	// as the list of its files names them.
	Paths []string `json:"paths,omitempty"`
}

// Validate says everything that is wrong with r at once; r is checked
// where it enters (the socket, the host's jobs), before anything runs.
func (r Request) Validate() error {
	var errs []error
	text := func(field, v string) {
		if err := checkText(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	switch r.Kind {
	case RequestBackup, RequestList, RequestRestore, RequestDrill:
	default:
		errs = append(errs, fmt.Errorf("unknown request kind %q (backup, list, restore or drill)", r.Kind))
	}
	if r.App != "" || r.Kind == RequestRestore || r.Kind == RequestDrill {
		if err := checkApp(r.App); err != nil {
			errs = append(errs, fmt.Errorf("app: %w", err))
		}
	}
	text("snapshot", r.Snapshot)
	text("to", r.To)
	switch {
	case r.Kind == RequestDrill && (r.To != "" || r.FromHost != ""):
		errs = append(errs, errors.New("to and from_host go with a restore, not a drill: a drill restores this host's runs into a project of its own"))
	case r.Kind != RequestRestore && r.Kind != RequestDrill && (r.Snapshot != "" || r.To != ""):
		errs = append(errs, fmt.Errorf("snapshot and to go with a restore, not a %s", r.Kind))
	}
	text("run", r.Run)
	if r.Run != "" && (r.Kind != RequestList || r.App == "") {
		errs = append(errs, fmt.Errorf("run goes with a list of one app, not a %s", r.Kind))
	}
	for _, p := range r.Paths {
		text("paths", p)
	}
	if len(r.Paths) > 0 && (r.Kind != RequestRestore || r.To == "") {
		errs = append(errs, errors.New("paths go with a restore into a directory (to): an in-place restore puts back the whole run"))
	}
	if r.FromHost != "" {
		if r.Kind == RequestBackup {
			errs = append(errs, errors.New("from_host goes with a list or a restore: a backup is this host's"))
		}
		if err := checkApp(r.FromHost); err != nil {
			errs = append(errs, fmt.Errorf("from_host: %w", err))
		}
	}
	if r.To != "" && !filepath.IsAbs(r.To) {
		errs = append(errs, fmt.Errorf("to: %q is not an absolute directory", r.To))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("job request: %w", err)
	}
	return nil
}
