package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/secrets"
	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/state"
)

// cycleFlags are the flags sync and plan share.
type cycleFlags struct {
	repo, host, ageKey, stateDir, logFormat string
}

func (f *cycleFlags) register(fs *flag.FlagSet) {
	hostname, _ := os.Hostname()
	fs.StringVar(&f.repo, "repo", ".", "the desired-state repository `directory`")
	fs.StringVar(&f.host, "host", hostname, "this host's `name` in the repository's hosts/")
	fs.StringVar(&f.ageKey, "age-key", "/etc/syncd/age.key", "the host's age identity `file` (needed when the host has secrets)")
	fs.StringVar(&f.stateDir, "state-dir", "/var/lib/syncd", "where syncd keeps what it applied (`directory`)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
}

// reconciler wires a Reconciler from the flags.
func (f *cycleFlags) reconciler(ctx context.Context, c *cli, lock bool) (*reconcile.Reconciler, func(), error) {
	log, err := newLogger(c, f.logFormat)
	if err != nil {
		return nil, nil, err
	}
	store, err := state.Open(f.stateDir)
	if err != nil {
		return nil, nil, err
	}
	unlock := func() {}
	if lock {
		if unlock, err = store.Lock(); err != nil {
			return nil, nil, err
		}
	}
	eng, err := engine.New(ctx, engine.Options{Logger: log.With("component", "engine")})
	if err != nil {
		unlock()
		return nil, nil, err
	}
	r := &reconcile.Reconciler{
		Host:      f.host,
		Engine:    eng,
		Store:     store,
		Decrypter: &lazyDecrypter{path: f.ageKey},
		Logger:    log,
	}
	return r, func() { eng.Close(); unlock() }, nil
}

func (f *cycleFlags) source() (reconcile.Source, error) {
	dir, err := filepath.Abs(f.repo)
	if err != nil {
		return reconcile.Source{}, err
	}
	rev, err := source.Local{Dir: dir}.Revision()
	return reconcile.Source{Dir: dir, Commit: rev}, err
}

func newLogger(c *cli, format string) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(c.stderr, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.stderr, nil)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

// lazyDecrypter reads the age identity only when a host has secrets, so a
// host without any needs no key.
type lazyDecrypter struct {
	path string
	once sync.Once
	id   *secrets.Identity
	err  error
}

func (d *lazyDecrypter) Decrypt(name string, data []byte) (map[string]string, error) {
	d.once.Do(func() { d.id, d.err = secrets.LoadIdentity(d.path) })
	if d.err != nil {
		return nil, d.err
	}
	return secrets.Decrypter{Identity: d.id}.Decrypt(name, data)
}

func runSync(ctx context.Context, c *cli, args []string) int {
	var f cycleFlags
	fs := newFlags(c, "sync", "--repo DIR --host NAME [--age-key FILE] [--state-dir DIR]")
	f.register(fs)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	r, closeEngine, err := f.reconciler(ctx, c, true)
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd sync: %v\n", err)
		return exitFailure
	}
	defer closeEngine()
	src, err := f.source()
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd sync: %v\n", err)
		return exitFailure
	}
	rep, err := r.Sync(ctx, src)
	rep.Plan.Write(c.stdout)
	for _, o := range rep.Outcomes {
		if o.Result != reconcile.Unchanged {
			fmt.Fprintf(c.stdout, "%s: %s\n", o.Project, o.Result)
		}
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd sync: host %s at %s: %v\n", f.host, src.Commit, err)
		return exitFailure
	}
	fmt.Fprintf(c.stdout, "host %s converged to %s\n", f.host, src.Commit)
	return exitOK
}

func runPlan(ctx context.Context, c *cli, args []string) int {
	var f cycleFlags
	fs := newFlags(c, "plan", "--repo DIR --host NAME [--age-key FILE] [--state-dir DIR] [--detailed-exitcode]")
	f.register(fs)
	detailed := fs.Bool("detailed-exitcode", false, "exit 0 when there is nothing to do, 2 when there are changes, 1 on error")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	r, closeEngine, err := f.reconciler(ctx, c, false)
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd plan: %v\n", err)
		return exitFailure
	}
	defer closeEngine()
	src, err := f.source()
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd plan: %v\n", err)
		return exitFailure
	}
	prep, err := r.Prepare(ctx, src)
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd plan: %v\n", err)
		return exitFailure
	}
	prep.Plan.Write(c.stdout)
	if *detailed && prep.Plan.Changes() {
		return exitUsage // 2: changes
	}
	return exitOK
}
