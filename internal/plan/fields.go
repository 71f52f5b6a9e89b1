package plan

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Field is one setting of a rendered service as a reviewer reads it, under
// a path such as "environment.LOG_LEVEL", "ports", "healthcheck.test". Text
// is what may be shown; Sum, when set, is compared instead of Text: it
// stands for a value that must never be shown (a secret inside a setting),
// and Text then names it without its value.
type Field struct {
	Text string `json:"text"`
	Sum  string `json:"sum,omitempty"`
}

// Fields are a service's settings by path. A list whose order does not
// matter (ports, volumes, networks) is one field per item, its path
// "ports[<item>]", so an added or removed item is one change.
type Fields map[string]Field

// FieldChange is one setting that differs between what runs and what is
// desired.
type FieldChange struct {
	Path   string `json:"path"`
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
	// Kind is "added", "removed" or "changed"; "changed" with Before equal
	// to After is a secret value that changed, shown by name only.
	Kind string `json:"kind"`
}

// String is the change in one line: `environment.LOG_LEVEL: info → debug`.
func (c FieldChange) String() string {
	switch {
	case c.Kind == "added" && isItem(c.Path):
		return c.Path + " added"
	case c.Kind == "removed" && isItem(c.Path):
		return c.Path + " removed"
	case c.Kind == "added":
		return fmt.Sprintf("%s added: %s", c.Path, c.After)
	case c.Kind == "removed":
		return fmt.Sprintf("%s removed (was %s)", c.Path, c.Before)
	case c.Before == c.After:
		return fmt.Sprintf("%s: %s changed", c.Path, c.After)
	}
	return fmt.Sprintf("%s: %s → %s", c.Path, c.Before, c.After)
}

func isItem(path string) bool { return strings.HasSuffix(path, "]") }

// Compare lists the settings that differ from before to after, sorted by
// path. The image is left out: a service change names it on its own.
func Compare(before, after Fields) []FieldChange {
	var out []FieldChange
	for _, p := range slices.Sorted(maps.Keys(union(textOf(before), textOf(after)))) {
		if p == "image" {
			continue
		}
		b, inB := before[p]
		a, inA := after[p]
		switch {
		case inA && !inB:
			out = append(out, FieldChange{Path: p, After: a.Text, Kind: "added"})
		case inB && !inA:
			out = append(out, FieldChange{Path: p, Before: b.Text, Kind: "removed"})
		case a != b:
			out = append(out, FieldChange{Path: p, Before: b.Text, After: a.Text, Kind: "changed"})
		}
	}
	return out
}

func textOf(f Fields) map[string]string {
	out := make(map[string]string, len(f))
	for k, v := range f {
		out[k] = v.Text
	}
	return out
}

// withFields lists the setting changes of a recreate when both sides know
// their settings (syncd diff); a cycle's plan has none.
func withFields(ch *ServiceChange, ds DesiredService, last AppliedService) *ServiceChange {
	if ch == nil || ds.Fields == nil || last.Fields == nil || ch.Action != Recreate {
		return ch
	}
	ch.Fields = Compare(last.Fields, ds.Fields)
	// A rotated secret or a changed config file behind a changed setting
	// is named too: the reviewer sees every cause, not the first.
	if !maps.Equal(ds.Secrets, last.Secrets) && !strings.Contains(ch.Reason, "secret rotated") && !strings.Contains(ch.Reason, "content changed") {
		ch.Reason += "; " + rotated(ds.Secrets, last.Secrets)
	}
	return ch
}

// Converged is how a host looks that applied d and converged: every
// service of every project running, owned by syncd, and remembered as
// applied. Planning another Desired against it says what applying that
// one instead of d would do (syncd diff), by the rules a cycle applies.
// Container IDs are stand-ins derived from the names.
func Converged(d Desired) (Observed, Memory) {
	o := Observed{Projects: map[string]*ObservedProject{}, Images: map[string]string{}}
	mem := Memory{}
	for _, dp := range d.Projects {
		op := &ObservedProject{Name: dp.Name, Owned: true}
		a := Applied{Commit: d.Commit, Services: map[string]AppliedService{}}
		for _, ds := range dp.Services {
			op.Containers = append(op.Containers, Container{
				ID:          StandInID(dp.Name, ds.Name),
				Name:        dp.Name + "-" + ds.Name + "-1",
				Service:     ds.Name,
				ConfigHash:  ds.ConfigHash,
				SecretsHash: ds.SecretsHash,
				Commit:      d.Commit,
				Image:       ds.Image,
				State:       "running",
			})
			a.Services[ds.Name] = AppliedService{ConfigHash: ds.ConfigHash, Image: ds.Image, Secrets: ds.Secrets, Fields: ds.Fields}
		}
		o.Projects[dp.Name] = op
		mem[dp.Name] = a
	}
	return o, mem
}

// StandInID is the container ID Converged gives a service.
func StandInID(project, service string) string {
	return "converged-" + project + "-" + service
}
