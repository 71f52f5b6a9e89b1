package review

import (
	"fmt"
	"strings"

	"github.com/syncd-dev/syncd/internal/plan"
)

// Bounds of a config file's content diff: what is compared and shown.
const (
	maxContentLines = 2000
	maxDiffLines    = 40
)

// contentDiff shows how a config's text changed: changed lines with one
// line of context, bounded.
func contentDiff(c plan.FieldChange) string {
	head := c.Path + " content changed"
	if c.Kind != "changed" {
		return c.String()
	}
	a, b := strings.Split(c.Before, "\n"), strings.Split(c.After, "\n")
	if len(a) > maxContentLines || len(b) > maxContentLines {
		return fmt.Sprintf("%s (%d → %d lines, too long to compare here)", head, len(a), len(b))
	}
	ops := lineDiff(a, b)
	changed := map[int]bool{}
	for i, op := range ops {
		if op.kind != ' ' {
			changed[i] = true
		}
	}
	if len(changed) == 0 {
		return head + " (a secret value in it)"
	}
	var out []string
	last := -2
	for i, op := range ops {
		if !changed[i] && !changed[i-1] && !changed[i+1] {
			continue
		}
		if last >= 0 && i > last+1 {
			out = append(out, "  …")
		}
		if len(out) == maxDiffLines {
			out = append(out, fmt.Sprintf("  … (%d more changed lines)", countFrom(ops, i)))
			break
		}
		out = append(out, string(op.kind)+" "+op.line)
		last = i
	}
	return head + ":\n" + strings.Join(out, "\n")
}

func countFrom(ops []diffOp, i int) int {
	n := 0
	for _, op := range ops[i:] {
		if op.kind != ' ' {
			n++
		}
	}
	return n
}

type diffOp struct {
	kind byte // ' ', '-', '+'
	line string
}

// lineDiff is a longest-common-subsequence diff of two short texts.
func lineDiff(a, b []string) []diffOp {
	n, m := len(a), len(b)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []diffOp
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case a[i] == b[j]:
			ops = append(ops, diffOp{' ', a[i]})
			i, j = i+1, j+1
		case lcs[i+1][j] >= lcs[i][j+1]:
			ops = append(ops, diffOp{'-', a[i]})
			i++
		default:
			ops = append(ops, diffOp{'+', b[j]})
			j++
		}
	}
	for ; i < n; i++ {
		ops = append(ops, diffOp{'-', a[i]})
	}
	for ; j < m; j++ {
		ops = append(ops, diffOp{'+', b[j]})
	}
	return ops
}
