package plan

import (
	"fmt"
	"io"
	"strings"

	"github.com/syncd-dev/syncd/internal/abbrev"
)

// Write prints the plan for people: one line per project, one indented line
// per service change with its reason.
func (p Plan) Write(w io.Writer) {
	changes := 0
	for _, pr := range p.Projects {
		line := fmt.Sprintf("%s: %s", pr.Name, pr.Action)
		if pr.Reason != "" {
			line += " (" + pr.Reason + ")"
		}
		fmt.Fprintln(w, line)
		for _, c := range pr.Changes {
			s := fmt.Sprintf("  %s: %s (%s)", c.Service, c.Action, c.Reason)
			if c.Drift {
				s += " [drift]"
			}
			fmt.Fprintln(w, s)
			for _, f := range c.Fields {
				fmt.Fprintf(w, "    %s\n", f)
			}
		}
		if pr.Action == Apply || pr.Action == Remove {
			changes++
		}
	}
	// A plan that changes nothing is not "nothing to do" while a project
	// stays off its desired state: say how many, next to the count.
	suffix := ""
	if n := len(p.Blocked()); n > 0 {
		suffix = fmt.Sprintf("; %d project(s) held, refused or guarded (see above)", n)
	}
	switch {
	case changes == 0 && suffix == "":
		fmt.Fprintf(w, "nothing to do at %s\n", abbrev.Commit(p.Commit))
		return
	case changes == 0:
		fmt.Fprintf(w, "nothing to apply at %s%s\n", abbrev.Commit(p.Commit), suffix)
		return
	}
	fmt.Fprintf(w, "%d project(s) to change at %s%s\n", changes, abbrev.Commit(p.Commit), suffix)
}

// String is Write into a string.
func (p Plan) String() string {
	var b strings.Builder
	p.Write(&b)
	return b.String()
}
