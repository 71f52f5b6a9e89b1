// Package plan decides what a cycle changes: a pure function of the desired
// projects, what the engine reports, and what syncd remembers of its last
// applies. `syncd plan` prints its result and reconcile executes it, so a dry
// run is never a second implementation.
//
// It must not import the engine, the source, the state store or anything
// that does I/O.
package plan

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/escape"
)

// Desired is what the repository asks of the host, in apply order.
type Desired struct {
	Commit   string
	Projects []DesiredProject
	// AllowMassRemoval lifts the prune guard (syncd.yaml prune.allow_mass_removal).
	AllowMassRemoval bool
	// Suspended are projects suspended on the host (`syncd suspend`):
	// those that are no longer desired are not pruned either.
	Suspended map[string]Suspension
}

// Suspension leaves a project as it runs: no apply, no drift heal, no
// prune. By is who suspended it: a file of the repository, or a person on
// the host (then until Until, when set).
type Suspension struct {
	By     string    `yaml:"by" json:"by"`
	Reason string    `yaml:"reason" json:"reason"`
	Until  time.Time `yaml:"until,omitempty" json:"until,omitzero"`
}

// String says who suspended it, until when and why ("by … until …: …"),
// on one line: the reason is a pull request's or a person's text, and a
// newline in it would write lines of a plan or a diff of its own.
func (s Suspension) String() string {
	until := ""
	if !s.Until.IsZero() {
		until = " until " + s.Until.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("by %s%s: %s", escape.Text(s.By), until, escape.Text(s.Reason))
}

// DesiredProject is one app's rendered project.
type DesiredProject struct {
	Name     string
	After    []string
	Drift    string // "heal" (default) or "report"
	Services []DesiredService
	// Suspended, when set, leaves the project as it runs.
	Suspended *Suspension
	// BackupBeforeUpgrade: a recreate for another image is preceded by a
	// backup of the app (app.yaml backup.before_upgrade).
	BackupBeforeUpgrade bool `json:",omitempty"`
}

// DesiredService is one service of a desired project.
type DesiredService struct {
	Name       string
	ConfigHash string
	Image      string
	// Secrets maps each secret key the service uses to a keyed hash of its
	// value; SecretsHash combines them and is what the container's label holds.
	Secrets     map[string]string
	SecretsHash string
	// Fields, when set on both sides (syncd diff), let a recreate name
	// the settings that changed; a cycle's plan leaves them nil.
	Fields Fields `json:",omitempty"`
}

// Memory is what syncd recorded of its own last applies, per project.
type Memory map[string]Applied

// Applied is the last apply of one project.
type Applied struct {
	Commit   string
	Services map[string]AppliedService
	// FailedCommit is a commit whose release failed for this project; it is
	// not tried again until the desired commit moves on.
	FailedCommit string
	FailedError  string
}

// AppliedService is a service as syncd last created it.
type AppliedService struct {
	ConfigHash string
	Image      string
	Secrets    map[string]string
	Fields     Fields `json:",omitempty"`
}

// Action is what happens to a project or a service.
type Action string

// Project actions.
const (
	Keep    Action = "keep"      // nothing to do
	Apply   Action = "apply"     // converge the project (its services say what changes)
	Remove  Action = "remove"    // take the project down, volumes kept
	Hold    Action = "hold"      // its release failed at this commit: wait for a newer one
	Refuse  Action = "refuse"    // a project of that name exists and syncd does not own it
	Guarded Action = "guarded"   // a removal stopped by the prune guard
	Suspend Action = "suspended" // left as it runs: suspended in Git or on the host
)

// Service actions.
const (
	Create   Action = "create"
	Recreate Action = "recreate"
	Start    Action = "start"
	Orphan   Action = "remove-orphan"
	Report   Action = "report" // drift seen under `drift: report`: left as it is
)

// ServiceChange is one service that differs, and why.
type ServiceChange struct {
	Service string
	Action  Action
	Reason  string
	// Drift marks a change made outside syncd (stopped, removed, edited).
	Drift bool
	// Image marks a recreate for another image (a new reference, or the
	// tag moved): what a backup before upgrade is for.
	Image bool `json:",omitempty"`
	// Fields are the settings that changed, when both sides know them
	// (syncd diff).
	Fields []FieldChange `json:",omitempty"`
}

// Project is the plan for one project.
type Project struct {
	Name    string
	Action  Action
	Reason  string
	Changes []ServiceChange
	// Force lists the services to recreate although Compose's config hash
	// did not change (a rotated secret, a tag moved to another image).
	Force []string
	After []string
	// Suspended is who suspended the project (Action Suspend), why, and
	// until when.
	Suspended *Suspension `json:",omitempty"`
}

// Plan is the whole cycle's decision.
type Plan struct {
	Commit   string
	Projects []Project
}

// Changes reports whether applying the plan would change anything.
func (p Plan) Changes() bool {
	for _, pr := range p.Projects {
		if pr.Action == Apply || pr.Action == Remove {
			return true
		}
	}
	return false
}

// Blocked lists the projects a cycle would not converge: held at their last
// good release, refused (not syncd's) or guarded (a removal the prune guard
// stopped). Each carries its reason.
func (p Plan) Blocked() []Project {
	var out []Project
	for _, pr := range p.Projects {
		if pr.Action == Hold || pr.Action == Refuse || pr.Action == Guarded {
			out = append(out, pr)
		}
	}
	return out
}

// Drift counts the service changes made outside syncd, healed or reported.
func (p Plan) Drift() int {
	n := 0
	for _, pr := range p.Projects {
		for _, c := range pr.Changes {
			if c.Drift {
				n++
			}
		}
	}
	return n
}

// Make computes the plan. It is pure: same inputs, same plan.
func Make(d Desired, o Observed, mem Memory) Plan {
	pl := Plan{Commit: d.Commit}
	wanted := make(map[string]bool, len(d.Projects))
	for _, dp := range d.Projects {
		wanted[dp.Name] = true
		pl.Projects = append(pl.Projects, project(d.Commit, dp, o, mem[dp.Name]))
	}
	pl.Projects = append(pl.Projects, prune(d, o, wanted)...)
	return pl
}

func project(commit string, dp DesiredProject, o Observed, mem Applied) Project {
	pr := Project{Name: dp.Name, Action: Keep, After: dp.After}
	op := o.Projects[dp.Name]
	if op != nil && !op.Owned {
		pr.Action = Refuse
		pr.Reason = fmt.Sprintf("a Compose project named %q already runs on this host and syncd did not create it; rename or remove it by hand", dp.Name)
		return pr
	}
	if s := dp.Suspended; s != nil {
		pr.Action, pr.Reason, pr.Suspended = Suspend, s.String(), s
		return pr
	}
	if mem.FailedCommit != "" && mem.FailedCommit == commit {
		pr.Action = Hold
		pr.Reason = fmt.Sprintf("release of %s failed (%s); waiting for a newer commit", abbrev.Commit(commit), mem.FailedError)
		return pr
	}
	byService := map[string][]Container{}
	if op != nil {
		for _, c := range op.Containers {
			byService[c.Service] = append(byService[c.Service], c)
		}
	}
	report := dp.Drift == "report"
	for _, ds := range dp.Services {
		ch, force := service(ds, byService[ds.Name], o.Images, mem.Services[ds.Name], op != nil)
		ch = withFields(ch, ds, mem.Services[ds.Name])
		delete(byService, ds.Name)
		if ch == nil {
			continue
		}
		if ch.Drift && report {
			ch.Action = Report
			force = false
		}
		if force {
			pr.Force = append(pr.Force, ds.Name)
		}
		pr.Changes = append(pr.Changes, *ch)
	}
	for _, name := range slices.Sorted(maps.Keys(byService)) {
		pr.Changes = append(pr.Changes, ServiceChange{Service: name, Action: Orphan, Reason: "no longer in the compose file"})
	}
	for _, c := range pr.Changes {
		if c.Action != Report {
			pr.Action = Apply
			break
		}
	}
	if pr.Action == Apply && dp.BackupBeforeUpgrade && slices.ContainsFunc(pr.Changes, func(c ServiceChange) bool { return c.Action == Recreate && c.Image }) {
		pr.Reason = "backed up first, for the new image: backup.before_upgrade"
	}
	return pr
}

// service compares one desired service with its containers. force is true
// when Compose's config hash cannot see the difference.
func service(ds DesiredService, cs []Container, images map[string]string, last AppliedService, projectExists bool) (*ServiceChange, bool) {
	change := func(a Action, drift bool, format string, args ...any) *ServiceChange {
		return &ServiceChange{Service: ds.Name, Action: a, Drift: drift, Reason: fmt.Sprintf(format, args...)}
	}
	if len(cs) == 0 {
		if last.ConfigHash != "" {
			return change(Create, true, "container removed by hand"), false
		}
		if projectExists {
			return change(Create, false, "new service"), false
		}
		return change(Create, false, "new project"), false
	}
	slices.SortFunc(cs, func(a, b Container) int { return cmp.Compare(a.Name, b.Name) })
	c := cs[0]
	// Docker reports an image ID instead of the reference once the tag
	// has moved to another image.
	movedTag := strings.HasPrefix(c.Image, "sha256:")
	switch {
	case c.Image != ds.Image && !movedTag:
		sc := change(Recreate, false, "image changed %s → %s", c.Image, ds.Image)
		sc.Image = true
		return sc, false
	case c.ConfigHash != ds.ConfigHash:
		if last.ConfigHash != "" && last.ConfigHash == ds.ConfigHash {
			return change(Recreate, true, "configuration changed by hand"), false
		}
		return change(Recreate, false, "configuration changed"), false
	case c.SecretsHash != ds.SecretsHash:
		return change(Recreate, false, "%s", rotated(ds.Secrets, last.Secrets)), true
	}
	if id, ok := images[ds.Image]; ok && c.ImageID != "" && id != c.ImageID {
		sc := change(Recreate, false, "%s now points to another image (%s → %s)", ds.Image, abbrev.ID(c.ImageID), abbrev.ID(id))
		sc.Image = true
		return sc, true
	}
	for _, c := range cs {
		switch c.State {
		case "running", "restarting", "removing":
		case "paused":
			return change(Start, true, "container %s paused by hand", c.Name), false
		case "created":
			// Never started: an apply (of syncd's) stopped between create
			// and start, by a kill or a lost engine. Not drift.
			return change(Start, false, "container %s created but never started (an interrupted apply)", c.Name), false
		default:
			return change(Start, true, "container %s %s", c.Name, c.State), false
		}
	}
	return nil, false
}

// rotated names the secrets, configs and files whose content changed since
// the last apply.
func rotated(now, before map[string]string) string {
	if before == nil {
		return "secrets or config contents changed"
	}
	var secrets, files []string
	for _, k := range slices.Sorted(maps.Keys(union(now, before))) {
		if now[k] == before[k] {
			continue
		}
		if strings.HasPrefix(k, "config ") || strings.HasPrefix(k, "file ") || strings.HasPrefix(k, "mount ") {
			files = append(files, k)
		} else {
			secrets = append(secrets, k)
		}
	}
	var parts []string
	if len(secrets) > 0 {
		parts = append(parts, "secret rotated: "+strings.Join(secrets, ", "))
	}
	if len(files) > 0 {
		parts = append(parts, "content changed: "+strings.Join(files, ", "))
	}
	if len(parts) == 0 {
		return "secrets or config contents changed"
	}
	return strings.Join(parts, "; ")
}

func union(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}

// prune lists the owned projects no longer desired, refused as a whole when
// they are more than half of the host's projects, or all of them.
func prune(d Desired, o Observed, wanted map[string]bool) []Project {
	owned, gone := 0, []string{}
	for name, op := range o.Projects {
		if !op.Owned {
			continue
		}
		owned++
		if !wanted[name] {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	var out []Project
	gone = slices.DeleteFunc(gone, func(name string) bool {
		s, ok := d.Suspended[name]
		if ok {
			out = append(out, Project{Name: name, Action: Suspend, Reason: s.String() + "; no longer in host.yaml, removed once resumed", Suspended: &s})
		}
		return ok
	})
	guard := len(gone) > 0 && (2*len(gone) > owned || len(gone) == owned) && !d.AllowMassRemoval
	for _, name := range gone {
		pr := Project{Name: name, Action: Remove, Reason: "no longer in host.yaml; volumes kept"}
		if guard {
			pr.Action = Guarded
			pr.Reason = fmt.Sprintf("would remove %d of the host's %d projects (%s); if that is intended, set `prune: {allow_mass_removal: true}` in syncd.yaml for that commit",
				len(gone), owned, strings.Join(gone, ", "))
		}
		out = append(out, pr)
	}
	return out
}
