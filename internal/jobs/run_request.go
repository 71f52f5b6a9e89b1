package jobs

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/jobs/backup"
	"github.com/syncd-dev/syncd/internal/reconcile"
)

// Request runs the job req asks for (`syncd backup` and `syncd restore`,
// to the running agent over its socket or to Jobs of their own) with r
// (nil: what the last cycle rendered) and returns what to print.
func (j *Runner) Request(ctx context.Context, r *reconcile.Rendered, req Request) (string, error) {
	if r == nil {
		var err error
		if r, err = j.current(); err != nil {
			return "", err
		}
	}
	out, err := j.request(ctx, r, req)
	// What reaches the caller (the terminal, the socket) passes the host's
	// redaction once: a path or a name may hold a secret value. Text from
	// restic or a container was redacted (Outside) where it entered; the
	// user's own words (a --to directory) are shown as given.
	red := r.Redactor()
	return red.Text(out), red.Err(err)
}

func (j *Runner) request(ctx context.Context, r *reconcile.Rendered, req Request) (string, error) {
	if err := req.Validate(); err != nil {
		return "", err
	}
	if req.App != "" && !desired.ValidName(req.App) {
		return "", fmt.Errorf("job request: app %q is not an app name (lowercase letters, digits, - and _)", req.App)
	}
	from := j.Host
	if req.FromHost != "" {
		if !desired.ValidName(req.FromHost) {
			return "", fmt.Errorf("job request: from_host %q is not a host name (lowercase letters, digits, - and _)", req.FromHost)
		}
		from = req.FromHost
	}
	switch req.Kind {
	case RequestBackup:
		results, err := j.Backup(ctx, r, req.App)
		return backupTable(results), err
	case RequestList:
		snaps, err := j.Snapshots(ctx, r, from, req.App)
		if err != nil {
			return "", err
		}
		return snapshotTable(snaps, from), nil
	case RequestRestore:
		return j.Restore(ctx, r, req.App, req.Snapshot, req.To, from)
	}
	return "", fmt.Errorf("unknown request kind %q", req.Kind) // Validate refused it already
}

// backupTable prints each snapshot a backup saved.
func backupTable(results []backup.RunResult) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "APP\tRUN\tPART\tSNAPSHOT\tFILES NEW\tFILES CHANGED\tADDED")
	for _, res := range results {
		for _, s := range res.Saved {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", res.App, res.Run, s.Kind, s.Summary.SnapshotID[:min(8, len(s.Summary.SnapshotID))],
				s.Summary.FilesNew, s.Summary.FilesChanged, bytesString(s.Summary.DataAdded))
		}
		if !res.Complete() && res.Run != "" {
			fmt.Fprintf(w, "%s\t%s\t(%d of %d parts saved: incomplete)\t\t\t\t\n", res.App, res.Run, len(res.Saved), res.Parts)
		}
	}
	w.Flush()
	return b.String()
}

// snapshotTable lists snapshots by run, newest first, and whether each run
// is complete.
func snapshotTable(snaps []backup.Snapshot, host string) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "APP\tRUN\tTIME\tCOMPLETE\tPART\tSNAPSHOT\tTAGS")
	apps := map[string]bool{}
	var order []string
	for _, s := range snaps {
		if a := s.Tag("app"); a != "" && !apps[a] {
			apps[a] = true
			order = append(order, a)
		}
	}
	for _, app := range order {
		for _, run := range backup.Runs(snaps, host, app) {
			complete := "yes"
			if !run.Complete() {
				complete = "NO"
			}
			for _, s := range run.Snapshots {
				var extra []string
				for _, t := range s.Tags {
					if t == backup.TagPreRestore || t == backup.TagPreUpgrade || t == "partial" {
						extra = append(extra, t)
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", app, run.ID, s.Time.Local().Format(time.DateTime), complete,
					s.Kind(), s.ShortID, strings.Join(extra, ","))
			}
		}
	}
	w.Flush()
	return b.String()
}
