package main

import (
	"context"
	"fmt"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/jobs/probe"
)

// runProbe is `syncd probe`: every probe of the host's apps (or of one)
// checked once, as the agent would check it; exit 1 when one fails. It
// changes nothing: no state is written, no alert sent.
func runProbe(ctx context.Context, c *cli, args []string) int {
	var f cycleFlags
	var g gitFlags
	fs := newFlags(c, "probe", "--repo DIR|URL --host NAME [--age-key FILE] [--app APP]")
	f.register(fs)
	g.register(fs)
	only := fs.String("app", "", "check only this `app`'s probes")
	if code, ok := f.parse(c, fs, args); !ok {
		return code
	}
	if !f.check(c, "probe") {
		return exitUsage
	}
	quietLoaderLog()
	fail := func(err error) int {
		fmt.Fprintf(c.stderr, "syncd probe: %v\n", err)
		return exitFailure
	}
	dir, _, done, err := tempCheckout(ctx, f.repo, "syncd-probe-", g)
	if err != nil {
		return fail(err)
	}
	defer done()
	repo, ps := desired.Load(dir)
	if err := ps.Err(); err != nil {
		fmt.Fprintln(c.stderr, err)
		return fail(fmt.Errorf("%s is invalid; nothing checked", f.repo))
	}
	h, ok := repo.Hosts[f.host]
	if !ok {
		_, ps := repo.Render(ctx, f.host, nil)
		return fail(ps)
	}
	vals, err := repo.HostSecrets(h, &lazyDecrypter{path: f.ageKey})
	if err != nil {
		return fail(err)
	}
	projects, ps := repo.Render(ctx, f.host, vals)
	if err := ps.Err(); err != nil {
		fmt.Fprintln(c.stderr, err)
		return exitFailure
	}
	if *only != "" {
		var keep []*desired.Project
		for _, p := range projects {
			if p.Name() == *only {
				keep = append(keep, p)
			}
		}
		if len(keep) == 0 {
			return fail(fmt.Errorf("host %q does not run app %q", f.host, *only))
		}
		projects = keep
	}
	checker := &probe.Checker{}
	if eng, err := engine.New(ctx, engine.Options{}); err == nil {
		defer eng.Close()
		checker.Containers = eng
	}
	// A target is the user's words with secrets filled in: each value is
	// named where it shows whole, and nothing else is touched.
	shown := vals.Redactor().Named().Text
	outcomes := probe.Once(ctx, checker, projects, shown)
	if len(outcomes) == 0 {
		fmt.Fprintf(c.stdout, "host %s: no probes\n", f.host)
		return exitOK
	}
	if err := probe.WriteTable(c.stdout, outcomes, shown); err != nil {
		return fail(err)
	}
	for _, o := range outcomes {
		if !o.Result.OK {
			return exitFailure
		}
	}
	return exitOK
}
