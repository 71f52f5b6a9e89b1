package status

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/syncd-dev/syncd/internal/escape"
	"github.com/syncd-dev/syncd/internal/rollout"
	"github.com/syncd-dev/syncd/internal/source"
)

// ErrNoBranch means no host has reported yet: the status branches do not
// exist.
var ErrNoBranch = source.ErrNoStatus

// Branches are where a fleet's status documents are read from: every
// host's file, as its exact bytes (source.StatusBranches).
type Branches interface {
	Read(ctx context.Context) ([]source.StatusFile, error)
}

// ReadAll reads every host's document from b and parses it. A file that
// cannot be read or parsed is named in the joined error, and the others
// are still returned, sorted by host. Nothing is judged yet (Reader).
func ReadAll(ctx context.Context, b Branches) ([]Host, error) {
	files, err := b.Read(ctx)
	if errors.Is(err, source.ErrNoStatus) {
		return nil, ErrNoBranch
	}
	errs := []error{err}
	var hosts []Host
	for _, f := range files {
		h, err := parseFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:hosts/%s.yaml: %w", f.Branch, f.Host, err))
			continue
		}
		hosts = append(hosts, h)
	}
	slices.SortFunc(hosts, func(a, b Host) int { return strings.Compare(a.Host, b.Host) })
	return hosts, errors.Join(errs...)
}

func parseFile(f source.StatusFile) (Host, error) {
	h, err := unmarshal(f.Doc)
	if err != nil {
		return Host{}, err
	}
	if h.Host != f.Host {
		return Host{}, fmt.Errorf("names host %q, not %q", h.Host, f.Host)
	}
	// The exact bytes, for the signature: escaping below changes only the
	// fields shown.
	h.raw = f.Doc
	h.sig = string(f.Sig)
	// Every host can push any status branch: its text is another party's,
	// escaped here, where it enters, for every view that shows it.
	escape.Strings(&h)
	return h, nil
}

// Table writes hosts as a fixed-width table sorted by wave then host:
// HOST WAVE APPLIED STATE AGE SIGNATURE. A host whose applied commit is
// not its desired commit is marked with "*" after the applied commit; AGE
// is the time since its last document ("+3d" for one dated ahead of now);
// SIGNATURE is what the reader made of it (Judge). Notes below say why a
// document does not count, and which are dated ahead of the clock.
func Table(w io.Writer, hosts []Host, now time.Time) {
	hosts = slices.Clone(hosts)
	slices.SortStableFunc(hosts, func(a, b Host) int {
		if a.Wave != b.Wave {
			return a.Wave - b.Wave
		}
		return strings.Compare(a.Host, b.Host)
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tWAVE\tAPPLIED\tSTATE\tAGE\tSIGNATURE")
	behind := false
	var notes []string
	for _, h := range hosts {
		applied := short(h.AppliedCommit)
		if h.AppliedCommit != h.DesiredCommit {
			applied += "*"
			behind = true
		}
		st := string(h.State)
		if st == "" {
			st = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", h.Host, h.Wave, applied, st, age(now, h.UpdatedAt), cmp.Or(string(h.Trust), "-"))
		if h.Trust == Unverified {
			notes = append(notes, fmt.Sprintf("! %s: unverified: %s", h.Host, h.Why))
		}
		if h.Ahead(now) {
			notes = append(notes, fmt.Sprintf("! %s: dated %s ahead of this clock (more than %s): not fresh", h.Host, h.UpdatedAt.Sub(now).Round(time.Second), rollout.MaxSkew))
		}
	}
	tw.Flush()
	if behind {
		fmt.Fprintln(w, "* applied commit differs from the desired commit")
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
}

// age is how long ago t was, in its largest whole unit: 42s, 5m, 3h, 2d;
// "+2d" for a time ahead of now.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d, sign := now.Sub(t), ""
	if d < 0 {
		d, sign = -d, "+"
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%s%ds", sign, int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%s%dm", sign, int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%s%dh", sign, int(d/time.Hour))
	}
	return fmt.Sprintf("%s%dd", sign, int(d/(24*time.Hour)))
}
