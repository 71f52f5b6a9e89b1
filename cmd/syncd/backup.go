package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"

	"github.com/syncd-dev/syncd/internal/agent"
	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/jobs"
	"github.com/syncd-dev/syncd/internal/jobs/backup"
	"github.com/syncd-dev/syncd/internal/reconcile"
)

func runBackup(ctx context.Context, c *cli, args []string) int {
	var f cycleFlags
	var g gitFlags
	fs := newFlags(c, "backup", "--repo DIR|URL --host NAME [--app APP] [--list [--from-host HOST] [--run RUN|ID]]")
	f.register(fs)
	g.register(fs)
	app := fs.String("app", "", "back up (or list) only this `app`")
	list := fs.Bool("list", false, "list the host's snapshots instead, by run")
	from := fs.String("from-host", "", "with --list: list the snapshots this other `host` made (to move an app here)")
	run := fs.String("run", "", "with --list and --app: list the files of this `run` (a run, a snapshot ID, or latest), as restore --path names them")
	if code, ok := f.parse(c, fs, args); !ok {
		return code
	}
	req := jobs.Request{Kind: jobs.RequestBackup, App: *app}
	if *list {
		req.Kind, req.FromHost, req.Run = jobs.RequestList, *from, *run
	} else if *from != "" || *run != "" {
		fmt.Fprintln(c.stderr, "syncd backup: --from-host and --run go with --list: a backup is this host's, and makes a new run")
		return exitUsage
	}
	if *run != "" && *app == "" {
		fmt.Fprintln(c.stderr, "syncd backup: --run needs --app: a run is one app's (`syncd backup --list` shows the runs by app)")
		return exitUsage
	}
	if !checkFromHost(c, "backup", *from) {
		return exitUsage
	}
	return runJob(ctx, c, fs, &f, g, req)
}

func runRestore(ctx context.Context, c *cli, args []string) int {
	var f cycleFlags
	var g gitFlags
	fs := newFlags(c, "restore", "--repo DIR|URL --host NAME --app APP [--snapshot RUN|ID|latest] [--to DIR [--path P]...] [--from-host HOST]")
	f.register(fs)
	g.register(fs)
	app := fs.String("app", "", "the `app` to restore (required)")
	snapshot := fs.String("snapshot", "latest", "what to restore: a backup `run`, a snapshot ID, or latest (the newest complete run)")
	to := fs.String("to", "", "extract the run's volumes, paths and dumps into this `directory` instead, touching nothing that runs")
	from := fs.String("from-host", "", "restore a run this other `host` made (to move an app here); default: this host's runs only")
	var paths []string
	fs.Func("path", "with --to: extract only this `path` of the run (a file or a directory, as `syncd backup --list --run` shows it); repeat it for more", func(p string) error {
		paths = append(paths, p)
		return nil
	})
	if code, ok := f.parse(c, fs, args); !ok {
		return code
	}
	if len(paths) > 0 && *to == "" {
		fmt.Fprintln(c.stderr, "syncd restore: --path restores into a directory: add --to DIR (in place, a restore puts back the whole run, never part of it)")
		return exitUsage
	}
	if *app == "" {
		fmt.Fprintln(c.stderr, "syncd restore: --app is required")
		return exitUsage
	}
	if !checkFromHost(c, "restore", *from) {
		return exitUsage
	}
	if *to != "" {
		abs, err := filepath.Abs(*to)
		if err != nil {
			fmt.Fprintf(c.stderr, "syncd restore: --to: %v\n", err)
			return exitUsage
		}
		*to = abs
	}
	return runJob(ctx, c, fs, &f, g, jobs.Request{Kind: jobs.RequestRestore, App: *app, Snapshot: *snapshot, To: *to, FromHost: *from, Paths: paths})
}

func runDrill(ctx context.Context, c *cli, args []string) int {
	var f cycleFlags
	var g gitFlags
	fs := newFlags(c, "drill", "--repo DIR|URL --host NAME --app APP [--snapshot RUN|ID|latest]")
	f.register(fs)
	g.register(fs)
	app := fs.String("app", "", "the `app` whose backup run to drill (required)")
	snapshot := fs.String("snapshot", "latest", "the `run` to drill: a backup run, a snapshot ID, or latest (the newest complete run this host made)")
	if code, ok := f.parse(c, fs, args); !ok {
		return code
	}
	if *app == "" {
		fmt.Fprintln(c.stderr, "syncd drill: --app is required")
		return exitUsage
	}
	return runJob(ctx, c, fs, &f, g, jobs.Request{Kind: jobs.RequestDrill, App: *app, Snapshot: *snapshot})
}

// checkFromHost checks --from-host as --host is checked.
func checkFromHost(c *cli, cmd, host string) bool {
	if host != "" && !desired.ValidName(host) {
		fmt.Fprintf(c.stderr, "syncd %s: --from-host %q is not a host name: use lowercase letters, digits, - and _, as the directories under hosts/\n", cmd, host)
		return false
	}
	return true
}

// runJob runs a backup, list or restore: by the running agent when there
// is one (two syncd side by side would fight over the apps), else here,
// with the state directory taken and the repository rendered at its head.
func runJob(ctx context.Context, c *cli, fs *flag.FlagSet, f *cycleFlags, g gitFlags, req jobs.Request) int {
	name := "syncd " + fs.Name()
	if !f.check(c, fs.Name()) || !f.checkStateDirHost(c, fs) {
		return exitUsage
	}
	if err := req.Validate(); err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", name, err)
		return exitUsage
	}
	asked := map[string]string{}
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "repo" || fl.Name == "host" || fl.Name == "age-key" {
			asked[fl.Name] = f.setting(fl.Name)
		}
	})
	if out, err, running := agent.RequestJob(ctx, socketPath(f.stateDir), asked, req); running {
		fmt.Fprint(c.stdout, out)
		if err != nil {
			fmt.Fprintf(c.stderr, "%s (by the running agent): %v\n", name, err)
			if errors.Is(err, agent.ErrOtherSettings) {
				return exitUsage
			}
			return exitFailure
		}
		return exitOK
	}
	fail := func(err error) int {
		fmt.Fprintf(c.stderr, "%s: %v\n", name, err)
		return exitFailure
	}
	h, err := f.open(ctx, c, true, nil)
	if err != nil {
		return fail(err)
	}
	defer h.close()
	h.jobs.Recover(ctx) // what a killed job left stopped: this process holds the state directory
	h.jobs.Progress = func(p backup.Progress) { fmt.Fprintln(c.stderr, p) }
	r := h.rec
	rendered, err := func() (*reconcile.Rendered, error) {
		dir, head, done, err := tempCheckout(ctx, f.repo, "syncd-job-", g)
		if err != nil {
			return nil, err
		}
		defer done()
		prep, err := r.Prepare(ctx, reconcile.Source{Dir: dir, Commit: head})
		if err != nil {
			return nil, err
		}
		return prep.Rendered(), nil
	}()
	if err != nil {
		return fail(err)
	}
	out, err := h.jobs.Request(ctx, rendered, req)
	fmt.Fprint(c.stdout, out)
	if err != nil {
		return fail(err)
	}
	return exitOK
}
