package desired

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severity says whether a problem refuses the repository.
type Severity int

const (
	// Error refuses the whole repository: nothing is applied.
	Error Severity = iota
	// Warning is reported; `syncd validate --strict` turns it into an error.
	Warning
)

// Problem is one thing wrong with the desired-state repository, located as
// precisely as is known.
type Problem struct {
	Path     string // slash-separated, relative to the repository root
	Line     int    // 1-based; 0 when unknown
	Severity Severity
	Rule     string // the rule id of a warning that a deviation can acknowledge
	Msg      string
}

// String formats the problem as "path:line: severity: message", the form CI
// problem matchers and editors understand.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Path)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	if p.Severity == Warning {
		b.WriteString(": warning")
		if p.Rule != "" {
			fmt.Fprintf(&b, "[%s]", p.Rule)
		}
	} else {
		b.WriteString(": error")
	}
	b.WriteString(": ")
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found, so a user fixes them in one round. It is
// an error when it holds at least one Error.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Err returns ps as an error when it holds an Error, else nil.
func (ps Problems) Err() error {
	if ps.HasErrors() {
		return ps
	}
	return nil
}

// HasErrors reports whether any problem refuses the repository.
func (ps Problems) HasErrors() bool {
	return slices.ContainsFunc(ps, func(p Problem) bool { return p.Severity == Error })
}

// Sorted returns the problems by path, then line, without duplicates.
func (ps Problems) Sorted() Problems {
	out := slices.Clone(ps)
	slices.SortStableFunc(out, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Msg, b.Msg))
	})
	return slices.Compact(out)
}

func (ps *Problems) add(path string, line int, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Line: line, Severity: Error, Msg: fmt.Sprintf(format, args...)})
}

func (ps *Problems) warn(path string, line int, rule, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Line: line, Severity: Warning, Rule: rule, Msg: fmt.Sprintf(format, args...)})
}
