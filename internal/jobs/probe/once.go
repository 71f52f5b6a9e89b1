package probe

import (
	"context"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
)

// Outcome is one probe checked once (`syncd probe`).
type Outcome struct {
	Project string
	Probe   desired.Probe
	Result  Result
}

// Once checks every probe of projects once, in parallel, and returns the
// outcomes in the projects' order, then the probes'.
func Once(ctx context.Context, c *Checker, projects []*desired.Project, redact func(string) string) []Outcome {
	var out []Outcome
	for _, p := range projects {
		for _, pr := range p.Probes {
			out = append(out, Outcome{Project: p.Name(), Probe: pr})
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i].Result = c.Check(ctx, out[i].Project, out[i].Probe, redact)
		}()
	}
	wg.Wait()
	return out
}

// Target is what a probe checks: its URL, address or service.
func Target(p desired.Probe) string {
	switch {
	case p.HTTP != nil:
		return p.HTTP.URL
	case p.TCP != nil:
		return p.TCP.Address
	case p.Container != nil:
		return "service " + p.Container.Service
	}
	return ""
}

// WriteTable prints outcomes as a table; redact scrubs secret values from
// the targets (errors are redacted already).
func WriteTable(w io.Writer, outcomes []Outcome, redact func(string) string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tPROBE\tKIND\tGATE\tTARGET\tRESULT\tLATENCY\tDETAIL")
	for _, o := range outcomes {
		result, detail := "ok", ""
		if !o.Result.OK {
			result, detail = "FAIL", o.Result.Error
		}
		if d := o.Result.CertDays; d != nil {
			note := fmt.Sprintf("certificate: %d days left", *d)
			if cd := o.Probe.HTTP.CertDays; cd > 0 && *d < cd {
				note += fmt.Sprintf(" (expiring: cert_days %d)", cd)
			}
			detail = join(detail, note)
		}
		gate := "no"
		if o.Probe.Gates() {
			gate = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.Project, o.Probe.Name, o.Probe.Kind(), gate,
			redactWith(redact, Target(o.Probe)), result, o.Result.Latency.Round(time.Millisecond), detail)
	}
	return tw.Flush()
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
