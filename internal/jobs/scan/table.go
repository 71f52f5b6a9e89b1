package scan

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteTable prints one row per image (findings by severity, whether it is
// refused) and then the refusing findings, expired ignore entries and
// trivy's warnings, and reports whether an image violates its policy or
// could not be scanned. What trivy reported was escaped where it entered.
func WriteTable(w io.Writer, results []Result) (violated bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tIMAGE\tCRITICAL\tHIGH\tMEDIUM\tLOW\tUNKNOWN\tREFUSED")
	var details []string
	db := DB{}
	for _, r := range results {
		if r.Err != nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\tscan failed\n", r.Project, r.Image)
			details = append(details, fmt.Sprintf("%s: %v", r.Project, r.Err))
			violated = true
			continue
		}
		if r.Report.DB.UpdatedAt.After(db.UpdatedAt) {
			db = r.Report.DB
		}
		c := r.Verdict.Counts
		refused := "no"
		if p := r.Policy.RefuseSeverity; p == "" {
			refused = "no (no refuse_severity)"
		}
		if r.Verdict.Refused() {
			refused = "yes: " + strings.Join(IDs(r.Verdict.Refusing), ", ")
			violated = true
			for _, f := range r.Verdict.Refusing {
				details = append(details, fmt.Sprintf("%s: %s: %s", r.Project, r.Image, f))
			}
			for _, x := range r.Verdict.Expired {
				details = append(details, fmt.Sprintf("%s: the ignore entry for %s (%s:%d) ran out on %s", r.Project, x.ID, x.File, x.Line, x.Until))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", r.Project, r.Image, c["CRITICAL"], c["HIGH"], c["MEDIUM"], c["LOW"], c["UNKNOWN"], refused)
		for _, warn := range r.Report.Warnings {
			if !slices.Contains(details, "warning: "+warn) {
				details = append(details, "warning: "+warn)
			}
		}
	}
	tw.Flush()
	if !db.UpdatedAt.IsZero() {
		fmt.Fprintf(w, "vulnerability DB built %s\n", db.UpdatedAt.Format("2006-01-02 15:04 UTC"))
	}
	for _, d := range details {
		fmt.Fprintln(w, d)
	}
	return violated
}
