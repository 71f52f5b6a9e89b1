package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/escape"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/redact"
)

func runLogs(ctx context.Context, c *cli, args []string) int {
	var f cycleFlags
	var g gitFlags
	fs := newFlags(c, "logs", "--repo DIR|URL --host NAME [--app APP] [--service SERVICE] [-f] [--since DURATION|TIME] [--tail N]")
	f.register(fs)
	g.register(fs)
	app := fs.String("app", "", "only this `app`'s containers (default: every app of the host)")
	service := fs.String("service", "", "only this `service`'s containers")
	follow := fs.Bool("f", false, "follow: go on printing what the containers write, until interrupted")
	fs.BoolVar(follow, "follow", false, "the same as -f")
	since := fs.String("since", "", "only lines since this `time`: a duration back from now (10m, 2h) or a time (2026-01-02T15:04:05Z, 2026-01-02)")
	tail := fs.Int("tail", -1, "only the last `N` lines of each container (-1: all of them)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if !f.check(c, "logs") {
		return exitUsage
	}
	if *tail < -1 {
		fmt.Fprintf(c.stderr, "syncd logs: --tail %d: give a number of lines, or -1 for all of them\n", *tail)
		return exitUsage
	}
	from, err := parseSince(*since, c.now())
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd logs: --since %q: %v\n", *since, err)
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(c.stderr, "syncd logs: %v\n", err)
		return exitFailure
	}
	// Read only, as plan: a running agent or sync owns the state directory.
	h, err := f.open(ctx, c, false, nil)
	if err != nil {
		return fail(err)
	}
	defer h.close()
	r, err := func() (*reconcile.Rendered, error) {
		dir, head, done, err := tempCheckout(ctx, f.repo, "syncd-logs-", g)
		if err != nil {
			return nil, err
		}
		defer done()
		prep, err := h.rec.Prepare(ctx, reconcile.Source{Dir: dir, Commit: head})
		if err != nil {
			return nil, err
		}
		return prep.Rendered(), nil
	}()
	if err != nil {
		return fail(err)
	}
	apps := r.Host.Apps
	if *app != "" {
		if !slices.Contains(apps, *app) {
			return fail(fmt.Errorf("host %s does not run app %q: hosts/%s/host.yaml apps: [%s]", f.host, *app, f.host, strings.Join(apps, ", ")))
		}
		apps = []string{*app}
		if p := r.Projects[*app]; p != nil && *service != "" {
			if _, ok := p.Compose.Services[*service]; !ok {
				return fail(fmt.Errorf("app %s has no service %q: apps/%s/compose.yaml services: [%s]", *app, *service, *app, strings.Join(slices.Sorted(maps.Keys(p.Compose.Services)), ", ")))
			}
		}
	}
	type source struct{ id, prefix string }
	var sources []source
	width := 0
	for _, a := range apps {
		cs, err := h.eng.Containers(ctx, a)
		if err != nil {
			return fail(err)
		}
		for _, ctr := range cs {
			if *service != "" && ctr.Service != *service {
				continue
			}
			prefix := strings.TrimPrefix(ctr.Name, a+"-") // web-1, as docker compose logs shows it
			if *app == "" {
				prefix = a + "/" + prefix
			}
			sources = append(sources, source{ctr.ID, prefix})
			width = max(width, len(prefix))
		}
	}
	if len(sources) == 0 {
		fmt.Fprintf(c.stderr, "syncd logs: no container of %s runs on host %s\n", strings.Join(apps, ", "), f.host)
		return exitOK
	}
	// Container text is another program's: every line is redacted whole
	// (a secret split across two reads of the stream is in one line) and
	// escaped.
	red := r.Redactor()
	print := func(i int, l engine.LogLine) {
		fmt.Fprintf(c.stdout, "%-*s | %s\n", width, sources[i].prefix, logText(red, l))
	}
	open := func(o engine.LogOptions) ([]*engine.LogStream, error) {
		var ss []*engine.LogStream
		for _, s := range sources {
			st, err := h.eng.Logs(ctx, s.id, o)
			if err != nil {
				for _, st := range ss {
					st.Close()
				}
				return nil, err
			}
			ss = append(ss, st)
		}
		return ss, nil
	}
	streamErr := func(ss []*engine.LogStream) error {
		var errs []error
		for _, s := range ss {
			errs = append(errs, s.Err())
		}
		return errors.Join(errs...)
	}
	// What was written up to now, interleaved by time; then, with -f, what
	// comes after, as it comes.
	now := time.Now()
	o := engine.LogOptions{Since: from, Tail: *tail}
	if *follow {
		o.Until = now
	}
	ss, err := open(o)
	if err != nil {
		return fail(err)
	}
	engine.MergeLogs(ss, print)
	if err := streamErr(ss); err != nil {
		return fail(err)
	}
	if !*follow {
		return exitOK
	}
	ss, err = open(engine.LogOptions{Since: now.Add(time.Nanosecond), Tail: -1, Follow: true})
	if err != nil {
		return fail(err)
	}
	engine.FollowLogs(ss, print)
	if err := streamErr(ss); err != nil && ctx.Err() == nil {
		return fail(err)
	}
	return exitOK
}

// parseSince reads --since: "" (from the start), a duration back from
// now, or a time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("give a duration back from now (10m, 2h) or a time (2026-01-02T15:04:05Z, 2026-01-02T15:04:05 in local time, 2026-01-02)")
}

// logText is a container's log line as shown: redacted whole (the margin
// past engine.MaxLogLine included, so no part of a secret the cut goes
// through is shown), then cut to MaxLogLine, then escaped.
func logText(red *redact.Redactor, l engine.LogLine) string {
	text, cut := red.Outside(l.Text), l.Cut
	if len(text) > engine.MaxLogLine {
		shown := abbrev.Text(text, engine.MaxLogLine)
		cut += int64(len(text) - len(strings.TrimSuffix(shown, "…")))
		text = strings.TrimSuffix(shown, "…")
	}
	text = escape.Text(text)
	if cut > 0 {
		text += fmt.Sprintf(" … (%d more bytes of this line not shown)", cut)
	}
	return text
}
