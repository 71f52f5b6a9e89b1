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
		if req.Run != "" {
			return j.Files(ctx, r, from, req.App, req.Run)
		}
		snaps, elsewhere, err := j.snapshots(ctx, r, from, req.App)
		if err != nil {
			return "", err
		}
		return snapshotTable(snaps, from, elsewhere), nil
	case RequestRestore:
		return j.Restore(ctx, r, req.App, req.Snapshot, req.To, from, req.Paths...)
	case RequestDrill:
		return j.Drill(ctx, r, req.App, req.Snapshot)
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
				s.Summary.FilesNew, s.Summary.FilesChanged, backup.Bytes(s.Summary.DataAdded))
		}
		if !res.Complete() && res.Run != "" {
			fmt.Fprintf(w, "%s\t%s\t(%d of %d parts saved: incomplete)\t\t\t\t\n", res.App, res.Run, len(res.Saved), res.Parts)
		}
	}
	w.Flush()
	return b.String()
}

// snapshotTable lists snapshots by run, newest first, whether each run is
// complete, and the runs made in this host's name elsewhere.
func snapshotTable(snaps []backup.Snapshot, host string, elsewhere map[string]bool) string {
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
				if elsewhere[run.ID] {
					extra = append(extra, "made-elsewhere")
				}
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

// maxListed caps the files `syncd backup --list --run` shows: the rest are
// counted.
const maxListed = 10000

// Files lists the files of the run sel names among those host made of
// app: part, type, size, mtime and the path restore --path takes.
func (j *Runner) Files(ctx context.Context, r *reconcile.Rendered, host, app, sel string) (string, error) {
	runner, err := j.runner(r)
	if err != nil {
		return "", err
	}
	run, err := runner.Pick(ctx, host, app, sel)
	if err != nil {
		return "", err
	}
	list, err := runner.Files(ctx, run, maxListed)
	if err != nil {
		return "", err
	}
	return fileTable(run, list), nil
}

// fileTable lists a run's files as Backrest's browser shows a snapshot's.
// Its text was escaped where it entered (package backup).
func fileTable(run backup.Run, list backup.FileList) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PART\tTYPE\tSIZE\tMODIFIED\tPATH")
	var total uint64
	for _, f := range list.Files {
		size := ""
		if f.Type == "file" {
			size = backup.Bytes(int64(f.Size))
			total += f.Size
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", f.Part, f.Type, size, f.Mtime.Local().Format(time.DateTime), f.Path)
	}
	w.Flush()
	fmt.Fprintf(&b, "run %s of %s: %d entries, %s in files", run.ID, run.App, len(list.Files)+list.More, backup.Bytes(int64(total+list.MoreBytes)))
	if list.More > 0 {
		fmt.Fprintf(&b, "; %d more entries (%s) not shown: the list stops at %d; restore a directory of it with `syncd restore --path DIR --to DIR`", list.More, backup.Bytes(int64(list.MoreBytes)), maxListed)
	}
	b.WriteString("\n")
	return b.String()
}
