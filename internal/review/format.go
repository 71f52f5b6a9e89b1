package review

import (
	"fmt"
	"io"
	"strings"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/escape"
	"github.com/syncd-dev/syncd/internal/plan"
)

// Summary is the diff in one line.
func (r *Report) Summary() string {
	changed := 0
	for _, h := range r.Hosts {
		if h.State != Unchanged {
			changed++
		}
	}
	s := fmt.Sprintf("%d of %d host(s) change", changed, len(r.Hosts))
	if changed == 0 {
		s = fmt.Sprintf("no change on any of %d host(s)", len(r.Hosts))
	}
	errs, warns := r.problemCounts()
	switch {
	case r.HeadInvalid:
		s += fmt.Sprintf("; head is INVALID (%d error(s)): no host would apply it", errs)
	case warns > 0:
		s += fmt.Sprintf("; head brings %d new warning(s)", warns)
	}
	if n := r.failedHosts(); n > 0 {
		s += fmt.Sprintf("; %d host(s) could not be diffed completely", n)
	}
	return s
}

func (r *Report) problemCounts() (errs, warns int) {
	for _, p := range r.Problems {
		if p.Severity == 0 {
			errs++
		} else {
			warns++
		}
	}
	return errs, warns
}

func (r *Report) failedHosts() int {
	n := 0
	for _, h := range r.Hosts {
		if len(h.Errors) > 0 {
			n++
		}
	}
	return n
}

// WriteJSON writes the report as JSON, no control character raw in it.
func (r *Report) WriteJSON(w io.Writer) error { return escape.JSON(w, r) }

// WriteText writes the report for a terminal: hosts by wave, a host without
// change on one line.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "syncd diff %s → %s: %s\n", rev(r.BaseRev, r.Base), rev(r.HeadRev, r.Head), r.Summary())
	if !r.KeyUsed {
		fmt.Fprintln(w, "(without --age-key: secret values are not compared)")
	}
	for _, h := range r.Hosts {
		if h.State != Unchanged {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s (wave %s): %s\n", h.Name, wave(h), h.headline())
		for _, l := range h.lines() {
			indent := strings.Repeat(" ", 2+len(l)-len(strings.TrimLeft(l, " "))+2)
			fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(l, "\n", "\n"+indent))
		}
	}
	if len(r.Problems) > 0 {
		fmt.Fprintln(w, "\nproblems at head (every error, and the warnings base does not have):")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s\n", p.Text)
		}
	}
}

func wave(h Host) string {
	if h.State != Added && h.State != Removed && h.Wave != h.BaseWave {
		return fmt.Sprintf("%d → %d", h.BaseWave, h.Wave)
	}
	return fmt.Sprint(h.Wave)
}

// headline says in a few words what happens on the host.
func (h Host) headline() string {
	switch h.State {
	case Unchanged:
		return "no change"
	case Removed:
		return "removed from the repository"
	}
	var parts []string
	if h.State == Added {
		parts = append(parts, "new host")
	}
	if h.State == Failed {
		parts = append(parts, "ERROR")
	}
	counts := map[plan.Action]int{}
	for _, pr := range h.Plan.Projects {
		if pr.Action != plan.Keep {
			counts[pr.Action]++
		}
	}
	for _, a := range []plan.Action{plan.Apply, plan.Remove, plan.Guarded, plan.Refuse, plan.Hold, plan.Suspend} {
		if n := counts[a]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d project(s) %s", n, verb(a)))
		}
	}
	if len(parts) == 0 || (len(parts) == 1 && h.State == Added) {
		switch {
		case len(h.Settings) > 0 || h.Wave != h.BaseWave:
			parts = append(parts, "settings only, no container changes")
		case len(h.AppsAdded)+len(h.AppsRemoved) > 0:
			parts = append(parts, "apps changed in host.yaml, nothing rendered changes")
		case h.Secrets != nil && h.Secrets.MayHaveChanged:
			parts = append(parts, "secret values may have changed")
		case h.Secrets != nil:
			parts = append(parts, "secrets changed, no container changes")
		}
	}
	return strings.Join(parts, ", ")
}

func verb(a plan.Action) string {
	switch a {
	case plan.Apply:
		return "to change"
	case plan.Remove:
		return "to remove (volumes kept)"
	case plan.Guarded:
		return "to remove, REFUSED by the prune guard"
	case plan.Suspend:
		return "suspended, left as they run"
	}
	return string(a)
}

// lines are the host's details, one item a line, for text and markdown.
func (h Host) lines() []string {
	var out []string
	for _, e := range h.Errors {
		out = append(out, "error: "+e)
	}
	if len(h.AppsAdded) > 0 && h.State != Added {
		out = append(out, "apps added: "+strings.Join(h.AppsAdded, ", "))
	}
	if len(h.AppsRemoved) > 0 {
		out = append(out, "apps removed: "+strings.Join(h.AppsRemoved, ", "))
	}
	for _, pr := range h.Plan.Projects {
		if pr.Action == plan.Keep {
			continue
		}
		l := fmt.Sprintf("%s: %s", pr.Name, pr.Action)
		if pr.Reason != "" {
			l += " (" + pr.Reason + ")"
		}
		if pr.Action == plan.Apply && len(pr.After) > 0 {
			l += " after " + strings.Join(pr.After, ", ")
		}
		out = append(out, l)
		for _, c := range pr.Changes {
			out = append(out, fmt.Sprintf("  %s: %s (%s)", c.Service, c.Action, c.Reason))
			for _, f := range c.Fields {
				if strings.HasPrefix(f.Path, desired.ContentPrefix) {
					out = append(out, "    "+contentDiff(f))
					continue
				}
				out = append(out, "    "+f.String())
			}
		}
	}
	for _, s := range h.Settings {
		out = append(out, "setting "+s)
	}
	if s := h.Secrets; s != nil {
		l := "secrets " + s.File + ":"
		if len(s.Added) > 0 {
			l += " keys added: " + strings.Join(s.Added, ", ") + ";"
		}
		if len(s.Removed) > 0 {
			l += " keys removed: " + strings.Join(s.Removed, ", ") + ";"
		}
		if len(s.Changed) > 0 {
			l += " values changed: " + strings.Join(s.Changed, ", ") + ";"
		}
		switch {
		case s.MayHaveChanged && s.KeyFailed:
			l += " the file changed; values may have changed (the key cannot open both versions: see the error);"
		case s.MayHaveChanged:
			l += " the file changed; values may have changed (diff with --age-key to see which);"
		}
		l = strings.TrimSuffix(l, ";")
		out = append(out, l)
		if s.MayHaveChanged && len(s.Readers) > 0 {
			out = append(out, "  read by: "+strings.Join(s.Readers, ", "))
		}
	}
	for _, n := range h.Notes {
		out = append(out, "note: "+n)
	}
	return out
}

// Marker is the hidden line that finds syncd's comment on a pull request
// again, so each push updates it instead of adding another.
const Marker = "<!-- syncd-diff -->"

// MaxComment is what a comment may hold (GitHub refuses more than 65536
// characters); the markdown leaves host details out beyond it, and says so.
const MaxComment = 60000

// maxProblemText is what the comment shows of one problem.
const maxProblemText = 1000

// WriteMarkdown writes the report for a pull request comment: a table of
// the hosts that change, by wave; their details; the hosts without change
// folded away. Beyond limit bytes (0: MaxComment) host details are left
// out, with a line saying how many and how to see them.
func (r *Report) WriteMarkdown(w io.Writer, limit int) {
	if limit <= 0 {
		limit = MaxComment
	}
	var head strings.Builder
	fmt.Fprintf(&head, "%s\n### syncd diff: %s\n\n", Marker, escape.Markdown(r.Summary()))
	fmt.Fprintf(&head, "%s → %s", escape.Code(rev(r.BaseRev, r.Base)), escape.Code(rev(r.HeadRev, r.Head)))
	if !r.KeyUsed {
		head.WriteString(" · secret values not compared (no operator key)")
	}
	head.WriteString("\n\n")
	if len(r.Problems) > 0 {
		errs, warns := r.problemCounts()
		title := fmt.Sprintf("%d new warning(s) at head", warns)
		if errs > 0 {
			title = fmt.Sprintf("❌ head does not validate: %d error(s), %d new warning(s)", errs, warns)
		}
		fmt.Fprintf(&head, "**%s**\n\n", title)
		// A pull request can make as many problems, as long, as it likes:
		// the comment keeps to its size and says what it left out.
		for i, p := range r.Problems {
			if head.Len() > limit/4 {
				fmt.Fprintf(&head, "- … and %d more: `syncd validate` at head lists them all\n", len(r.Problems)-i)
				break
			}
			fmt.Fprintf(&head, "- %s\n", escape.Code(abbrev.Text(p.Text, maxProblemText)))
		}
		head.WriteString("\n")
	}
	var changed, same []Host
	for _, h := range r.Hosts {
		if h.State == Unchanged {
			same = append(same, h)
		} else {
			changed = append(changed, h)
		}
	}
	if len(changed) > 0 {
		head.WriteString("| wave | host | what happens |\n|---:|---|---|\n")
		for i, h := range changed {
			if head.Len() > limit/3 {
				fmt.Fprintf(&head, "| | … | and %d more host(s), below |\n", len(changed)-i)
				break
			}
			fmt.Fprintf(&head, "| %s | **%s** | %s |\n", wave(h), escape.Markdown(h.Name), escape.Markdown(h.headline()))
		}
		head.WriteString("\n")
	}
	var tail strings.Builder
	if len(same) > 0 {
		fmt.Fprintf(&tail, "<details><summary>%d host(s) without change</summary>\n\n", len(same))
		for i, h := range same {
			if tail.Len() > limit/6 {
				fmt.Fprintf(&tail, " and %d more", len(same)-i)
				break
			}
			if i > 0 {
				tail.WriteString(", ")
			}
			fmt.Fprintf(&tail, "%s (wave %d)", escape.Markdown(h.Name), h.Wave)
		}
		tail.WriteString("\n\n</details>\n")
	}
	out := head.String()
	groups := group(changed)
	left := 0
	for i, g := range groups {
		sec := groupMarkdown(g)
		if len(out)+len(sec)+tail.Len()+300 > limit {
			for _, g := range groups[i:] {
				left += len(g)
			}
			break
		}
		out += sec
	}
	if left > 0 {
		out += fmt.Sprintf("\n**The details of %d host(s) are left out: the comment would be too long.** Run `syncd diff --base %s --head %s` (or see the job summary) for all of them.\n\n", left, abbrev.Commit(r.Base), abbrev.Commit(r.Head))
	}
	io.WriteString(w, out+tail.String())
}

// group puts together the hosts (in wave order) on which head does the
// very same, so a change to a hundred hosts reads once.
func group(hosts []Host) [][]Host {
	var order []string
	by := map[string][]Host{}
	for _, h := range hosts {
		k := h.headline() + "\x00" + strings.Join(h.lines(), "\x00")
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], h)
	}
	out := make([][]Host, len(order))
	for i, k := range order {
		out[i] = by[k]
	}
	return out
}

func groupMarkdown(g []Host) string {
	if len(g) == 1 {
		return hostMarkdown(g[0])
	}
	var names []string
	n := 0
	for i, h := range g {
		if n > 6000 {
			names = append(names, fmt.Sprintf("and %d more", len(g)-i))
			break
		}
		names = append(names, fmt.Sprintf("%s (wave %s)", h.Name, wave(h)))
		n += len(names[len(names)-1]) + 2
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#### %d hosts · %s\n\n%s\n\n", len(g), escape.Markdown(g[0].headline()), escape.Markdown(strings.Join(names, ", ")))
	writeLines(&b, g[0].lines())
	return b.String()
}

func hostMarkdown(h Host) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#### %s · wave %s · %s\n\n", escape.Markdown(h.Name), wave(h), escape.Markdown(h.headline()))
	writeLines(&b, h.lines())
	return b.String()
}

func writeLines(b *strings.Builder, lines []string) {
	for _, l := range lines {
		indent := len(l) - len(strings.TrimLeft(l, " "))
		body := strings.TrimLeft(l, " ")
		fmt.Fprintf(b, "%s- %s\n", strings.Repeat(" ", indent), mdLine(body, strings.Repeat(" ", indent+2)))
	}
	b.WriteString("\n")
}

// mdLine shows a detail line: what is repository content (a pull request
// from a fork is another party's) goes in code spans and fenced blocks that
// it cannot close, so nothing in it is read as markdown or HTML.
func mdLine(l, indent string) string {
	if strings.Contains(l, "\n") {
		first, rest, _ := strings.Cut(l, "\n")
		rest = escape.Lines(rest)
		fence := escape.Fence(rest)
		return escape.Code(first) + "\n\n" + indent + fence + "diff\n" + indent + strings.ReplaceAll(rest, "\n", "\n"+indent) + "\n" + indent + fence
	}
	return escape.Code(l)
}

// rev names a commit as the user did, with its hash.
func rev(name, commit string) string {
	if name == "" || strings.HasPrefix(commit, name) {
		return abbrev.Commit(commit)
	}
	return name + " (" + abbrev.Commit(commit) + ")"
}
