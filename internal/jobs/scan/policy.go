package scan

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
)

// Finding is one vulnerability trivy found in an image.
type Finding struct {
	ID        string `json:"id"`
	Package   string `json:"package"`
	Installed string `json:"installed"`
	// Fixed lists the versions that fix it; "" when there is no fix.
	Fixed    string `json:"fixed,omitempty"`
	Severity string `json:"severity"`
}

func (f Finding) String() string {
	fix := "no fix yet"
	if f.Fixed != "" {
		fix = "fixed in " + f.Fixed
	}
	return fmt.Sprintf("%s (%s) in %s %s, %s", f.ID, f.Severity, f.Package, f.Installed, fix)
}

// sortFindings orders findings by severity (highest first), then ID and
// package.
func sortFindings(fs []Finding) {
	slices.SortFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(desired.SeverityRank(b.Severity), desired.SeverityRank(a.Severity)),
			cmp.Compare(a.ID, b.ID), cmp.Compare(a.Package, b.Package), cmp.Compare(a.Installed, b.Installed))
	})
}

// Verdict is a scan judged by a policy.
type Verdict struct {
	// Counts are all findings by severity, before the policy.
	Counts map[string]int
	// Refusing are the findings at or above the policy's refuse_severity
	// that no active ignore entry hides (and, with ignore_unfixed, that
	// have a fix).
	Refusing []Finding
	// Ignored are the findings an active ignore entry hides.
	Ignored []Finding
	// Expired are the ignore entries that would hide a finding of the
	// image but have run out: it counts again.
	Expired []desired.ScanIgnore
}

// Refused reports whether the image violates the policy.
func (v Verdict) Refused() bool { return len(v.Refusing) > 0 }

// Judge applies policy to findings at now.
func Judge(policy desired.ScanPolicy, findings []Finding, now time.Time) Verdict {
	v := Verdict{Counts: map[string]int{}}
	threshold := desired.SeverityRank(policy.RefuseSeverity)
	for _, f := range findings {
		v.Counts[f.Severity]++
		var active, expired *desired.ScanIgnore
		for i := range policy.Ignore {
			if e := &policy.Ignore[i]; strings.EqualFold(e.ID, f.ID) {
				if e.Active(now) {
					active = e
				} else {
					expired = e
				}
			}
		}
		switch {
		case active != nil:
			v.Ignored = append(v.Ignored, f)
			continue
		case expired != nil && !slices.ContainsFunc(v.Expired, func(e desired.ScanIgnore) bool { return e.ID == expired.ID }):
			v.Expired = append(v.Expired, *expired)
		}
		if threshold < 0 || desired.SeverityRank(f.Severity) < threshold {
			continue
		}
		if policy.IgnoreUnfixed && f.Fixed == "" {
			continue
		}
		v.Refusing = append(v.Refusing, f)
	}
	return v
}

// IDs returns the distinct finding IDs of fs, in order.
func IDs(fs []Finding) []string {
	var ids []string
	for _, f := range fs {
		if !slices.Contains(ids, f.ID) {
			ids = append(ids, f.ID)
		}
	}
	return ids
}

// RefusedError is the gate's refusal of a project's new images: every
// image with its refusing findings. A newer commit must change the image
// or accept the risk (scan.ignore).
type RefusedError struct {
	Project  string
	Severity string
	Images   []RefusedImage
}

// RefusedImage is one refused image with the findings that refuse it.
type RefusedImage struct {
	Image    Image
	Findings []Finding
	Expired  []desired.ScanIgnore
}

func (e *RefusedError) Error() string {
	var b strings.Builder
	for i, img := range e.Images {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "image %s refused: %d finding(s) at or above %s: ", img.Image, len(img.Findings), e.Severity)
		for j, f := range img.Findings {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(f.String())
		}
		for _, x := range img.Expired {
			fmt.Fprintf(&b, " (the ignore entry for %s in %s:%d ran out on %s)", x.ID, x.File, x.Line, x.Until)
		}
	}
	b.WriteString("; no container was created from it: update the image, or accept a finding with scan.ignore (id, until, reason) in host.yaml or app.yaml")
	return b.String()
}
