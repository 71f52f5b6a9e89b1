package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/jobs/scan"
)

// scanner is the image scanner of the host: trivy from --trivy, its
// results cached in the state directory.
// trivy's DB and own cache go to the state directory unless
// TRIVY_CACHE_DIR says otherwise: the unit's hardening (ProtectHome)
// leaves trivy's default, ~/.cache/trivy, read-only.
func (f *cycleFlags) scanner(log *slog.Logger) *scan.Scanner {
	return &scan.Scanner{Trivy: f.trivy, StateDir: filepath.Join(f.stateDir, "scan"), CacheDir: filepath.Join(f.stateDir, "trivy"),
		MaxReport: f.trivyMaxReport << 20, Logger: log.With("component", "scan")}
}

// runScan scans the images this host's projects run now and judges them by
// the repository's scan policy at its head.
func runScan(ctx context.Context, c *cli, args []string) int {
	var f cycleFlags
	var g gitFlags
	fs := newFlags(c, "scan", "--repo DIR|URL --host NAME [--app APP] [--trivy PATH] [--state-dir DIR] [git flags]")
	f.register(fs)
	g.register(fs)
	app := fs.String("app", "", "scan only this `app`'s images")
	if code, ok := f.parse(c, fs, args); !ok {
		return code
	}
	if !f.check(c, "scan") {
		return exitUsage
	}
	if *app != "" && !desired.ValidName(*app) {
		fmt.Fprintf(c.stderr, "syncd scan: --app %q is not an app name\n", *app)
		return exitUsage
	}
	log, err := newLogger(c, f.logFormat)
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd scan: %v\n", err)
		return exitUsage
	}
	running, err := f.runningImages(ctx, g, *app)
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd scan: %v\n", err)
		return exitFailure
	}
	s := f.scanner(log)
	if st, err := os.Stat(f.stateDir); err != nil || !st.IsDir() {
		s.StateDir, s.CacheDir = "", "" // no state directory here: trivy's own default
	}
	results := s.Check(ctx, running)
	return printScan(c.stdout, c.stderr, results)
}

// runningImages returns every image the host's projects (or app's) run,
// with each project's scan policy from the repository's head.
func (f *cycleFlags) runningImages(ctx context.Context, g gitFlags, app string) ([]scan.Running, error) {
	dir, _, done, err := tempCheckout(ctx, f.repo, "syncd-scan-", g)
	if err != nil {
		return nil, err
	}
	defer done()
	repo, ps := desired.Load(dir)
	if ps.HasErrors() {
		return nil, fmt.Errorf("the repository is invalid:\n%s", ps.Err())
	}
	h, ok := repo.Hosts[f.host]
	if !ok {
		return nil, fmt.Errorf("host %q is not in the repository (hosts/%s/host.yaml)", f.host, f.host)
	}
	if app != "" && !slices.Contains(h.Apps, app) {
		return nil, fmt.Errorf("host %q does not run app %q", f.host, app)
	}
	eng, err := engine.New(ctx, engine.Options{})
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	observed, err := eng.Observe(ctx, f.host)
	if err != nil {
		return nil, err
	}
	out := scan.RunningOf(observed, func(project string) desired.ScanPolicy { return repo.ScanPolicyOf(h, project) })
	// An image reference may be made of a secret: shown through the host's
	// redaction, or, without a key that opens the host's secrets here, as
	// its image ID alone.
	if h.SecretsFile != "" {
		secrets, err := repo.HostSecrets(h, &lazyDecrypter{path: f.ageKey})
		red := secrets.Redactor()
		for i := range out {
			if err != nil {
				out[i].Image.Ref = ""
			} else {
				out[i].Image.Ref = red.Text(out[i].Image.Ref)
			}
		}
	}
	if app != "" {
		out = slices.DeleteFunc(out, func(r scan.Running) bool { return r.Project != app })
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("host %q runs no project of syncd's here (nothing to scan)", f.host)
	}
	return out, nil
}

// printScan prints the table and returns exit 1 when an image violates
// its policy or could not be scanned.
func printScan(stdout, stderr io.Writer, results []scan.Result) int {
	if scan.WriteTable(stdout, results) {
		fmt.Fprintln(stderr, "syncd scan: an image that runs violates its scan policy or could not be scanned")
		return exitFailure
	}
	return exitOK
}
