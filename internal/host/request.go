package host

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/syncd-dev/syncd/internal/jobs/backup"
	"github.com/syncd-dev/syncd/internal/reconcile"
)

// A job request, as `syncd backup` and `syncd restore` make it (to the
// running agent over its socket, or to Jobs of their own): args["job"] is
// backup, list or restore; app, snapshot and to are their flags.

// Request runs the job args ask for with r (nil: what the last cycle
// rendered) and returns what to print.
func (j *Jobs) Request(ctx context.Context, r *reconcile.Rendered, args map[string]string) (string, error) {
	if r == nil {
		var err error
		if r, err = j.current(); err != nil {
			return "", err
		}
	}
	out, err := j.request(ctx, r, args)
	// What reaches the caller (the terminal, the socket) passes the host's
	// redaction: a dump's or restore_command's stderr, a path, may hold a
	// secret value.
	if err != nil {
		err = errors.New(r.Secrets.RedactFragments(err.Error()))
	}
	return r.Secrets.RedactFragments(out), err
}

func (j *Jobs) request(ctx context.Context, r *reconcile.Rendered, args map[string]string) (string, error) {
	app := args["app"]
	switch args["job"] {
	case "backup":
		results, err := j.Backup(ctx, r, app)
		return backupTable(results), err
	case "list":
		snaps, err := j.Snapshots(ctx, r, app)
		if err != nil {
			return "", err
		}
		return snapshotTable(snaps, j.Host), nil
	case "restore":
		if app == "" {
			return "", errors.New("restore: --app is required")
		}
		return j.Restore(ctx, r, app, args["snapshot"], args["to"])
	}
	return "", fmt.Errorf("unknown job %q", args["job"])
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
