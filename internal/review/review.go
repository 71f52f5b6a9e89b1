// Package review owns pull-request review: what applying one commit of the
// desired-state repository instead of another would do on every host (syncd
// diff), and posting that as one comment on the pull request.
//
// A diff is not a second planner: both commits are rendered by the cycle's
// own renderer (reconcile.Desire), and head is planned by package plan
// against a host converged on base (plan.Converged). Secret values are read
// only through a Decrypter, compared as keyed hashes and shown by name;
// text of a rendered setting passes through desired's redaction first.
//
// It must not import the engine, the agent, the state store or the source
// (the caller hands it two directories); it reaches the cycle's rendering
// through reconcile.Desire only, which needs neither an engine nor a store.
package review

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/validate"
)

// Side is one commit of the repository, its tree written out in Dir.
type Side struct {
	Dir    string
	Commit string
	// Rev is the name the user gave (main, HEAD~1), for messages.
	Rev string
}

// Options tune a diff.
type Options struct {
	// Hosts limits the diff to these hosts; nil means every host of base
	// and head.
	Hosts []string
	// Decrypter, when set (an operator key that can open the secrets
	// files), lets the diff say which secret values changed, by name.
	Decrypter desired.Decrypter
	// NotRecipient is the error Decrypter wraps when the key is not one
	// of a file's recipients.
	NotRecipient error
	// Inspector reads the key names of a secrets file without a key
	// (required).
	Inspector validate.Inspector
	// Parallel bounds how many hosts are diffed at once (default: CPUs).
	Parallel int
}

// Report is the whole diff.
type Report struct {
	Base string `json:"base"`
	Head string `json:"head"`
	// BaseRev and HeadRev are the names the user gave them.
	BaseRev string `json:"base_rev,omitempty"`
	HeadRev string `json:"head_rev,omitempty"`
	Hosts   []Host `json:"hosts"`
	// Problems are every error of head and the warnings head brings that
	// base does not have.
	Problems []Problem `json:"problems,omitempty"`
	// HeadInvalid: head does not validate; no host would apply it.
	HeadInvalid bool `json:"head_invalid"`
	// KeyUsed: secret values were compared with an operator key.
	KeyUsed bool `json:"key_used"`
}

// Problem is one validate problem of head.
type Problem struct {
	desired.Problem
	Text string `json:"text"`
}

// Host states.
const (
	Unchanged = "unchanged"
	Changed   = "changed"
	Added     = "added"   // a new host: everything is created
	Removed   = "removed" // gone from the repository: its agent refuses head
	Failed    = "error"   // head (or a secrets file) cannot be read for it
)

// Host is what head would do on one host.
type Host struct {
	Name     string    `json:"name"`
	State    string    `json:"state"`
	Wave     int       `json:"wave"`
	BaseWave int       `json:"base_wave"`
	Plan     plan.Plan `json:"plan"`
	// AppsAdded and AppsRemoved are the changes of host.yaml's apps.
	AppsAdded   []string `json:"apps_added,omitempty"`
	AppsRemoved []string `json:"apps_removed,omitempty"`
	// Settings are changes of an app's settings that change no container:
	// after: order, drift policy, health timeout.
	Settings []string       `json:"settings,omitempty"`
	Secrets  *SecretsChange `json:"secrets,omitempty"`
	// Notes say what the diff could not see, or why.
	Notes []string `json:"notes,omitempty"`
	// Errors are why this host's diff is incomplete; they fail the diff.
	Errors []string `json:"errors,omitempty"`
}

// SecretsChange is what changed in a host's secrets file.
type SecretsChange struct {
	File    string   `json:"file"`
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	// Changed names the keys whose value changed (with an operator key).
	Changed []string `json:"changed,omitempty"`
	// MayHaveChanged: the file changed and there was no key to tell which
	// values did; Readers are the services that read it at head.
	MayHaveChanged bool     `json:"may_have_changed,omitempty"`
	Readers        []string `json:"readers,omitempty"`
	// KeyFailed: there was a key, and it could not open both versions.
	KeyFailed bool `json:"key_failed,omitempty"`
}

// Changes reports whether head would change anything on any host.
func (r *Report) Changes() bool {
	for _, h := range r.Hosts {
		if h.State != Unchanged && h.State != Failed {
			return true
		}
		if h.State == Failed && (h.Plan.Changes() || len(h.AppsAdded)+len(h.AppsRemoved) > 0) {
			return true
		}
	}
	return false
}

// Failed reports whether the diff is incomplete or head is invalid.
func (r *Report) Failed() bool {
	if r.HeadInvalid {
		return true
	}
	for _, h := range r.Hosts {
		if len(h.Errors) > 0 {
			return true
		}
	}
	return false
}

// ErrUnknownHost: --host names a host in neither commit.
var ErrUnknownHost = errors.New("unknown host")

// Diff says, for every host of base or head, what applying head instead of
// base would do. It fails only when it cannot start (a repository that
// cannot be read at all, an unknown --host); what goes wrong for one host
// is in that host's Errors, and the rest is still reported.
func Diff(ctx context.Context, base, head Side, opts Options) (*Report, error) {
	if opts.Inspector == nil {
		return nil, errors.New("review: Options.Inspector is required")
	}
	baseRepo, _ := desired.Load(base.Dir)
	headRepo, headLoad := desired.Load(head.Dir)
	if headRepo == nil {
		return nil, fmt.Errorf("head %s: %w", head.Rev, headLoad.Err())
	}
	if baseRepo == nil {
		baseRepo = &desired.Repo{Root: base.Dir, Apps: map[string]*desired.App{}, Hosts: map[string]*desired.Host{}}
	}
	names, err := hostNames(baseRepo, headRepo, opts.Hosts)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32) // hashes compare within this run only
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	rep := &Report{Base: base.Commit, Head: head.Commit, BaseRev: base.Rev, HeadRev: head.Rev, KeyUsed: opts.Decrypter != nil}

	// Validating head renders every host of it: the host diffs take those
	// renderings as validate hands them over instead of rendering again.
	renderings := map[string]*rendering{}
	for _, n := range names {
		renderings[n] = &rendering{done: make(chan struct{})}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		rendered := func(host string, secrets desired.Secrets, projects []*desired.Project) {
			if r := renderings[host]; r != nil {
				r.give(secrets, projects)
			}
		}
		rep.Problems, rep.HeadInvalid = problems(ctx, base, head, opts, rendered)
		for _, r := range renderings {
			r.give(nil, nil) // hosts validate did not render
		}
	})
	hosts := make([]Host, len(names))
	// A host none of whose inputs changed is not rendered twice to find
	// that out: every file outside hosts/ and its own directory the same.
	shared := sameTree(base.Dir, head.Dir, "hosts")
	sem := make(chan struct{}, opts.parallel())
	for i, name := range names {
		if bh, hh := baseRepo.Hosts[name], headRepo.Hosts[name]; shared && bh != nil && hh != nil && sameTree(filepath.Join(base.Dir, "hosts", name), filepath.Join(head.Dir, "hosts", name), "") {
			hosts[i] = Host{Name: name, State: Unchanged, Wave: hh.Wave, BaseWave: bh.Wave, Plan: plan.Plan{Commit: head.Commit}}
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d := differ{ctx: ctx, key: key, opts: opts, base: base, head: head, baseRepo: baseRepo, headRepo: headRepo, headRendering: renderings[name]}
			hosts[i] = d.host(name)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range hosts {
		hostProblems(&hosts[i], rep.Problems)
	}
	slices.SortStableFunc(hosts, func(a, b Host) int {
		if a.Wave != b.Wave {
			return a.Wave - b.Wave
		}
		return strings.Compare(a.Name, b.Name)
	})
	rep.Hosts = hosts
	return rep, nil
}

func (o Options) parallel() int {
	if o.Parallel > 0 {
		return o.Parallel
	}
	return max(1, runtime.GOMAXPROCS(0))
}

func hostNames(base, head *desired.Repo, only []string) ([]string, error) {
	all := map[string]bool{}
	for n := range base.Hosts {
		all[n] = true
	}
	for n := range head.Hosts {
		all[n] = true
	}
	if len(only) == 0 {
		return slices.Sorted(maps.Keys(all)), nil
	}
	var errs []error
	for _, n := range only {
		if !all[n] {
			errs = append(errs, fmt.Errorf("--host %s: %w: it is in neither commit; hosts: %s", n, ErrUnknownHost, strings.Join(slices.Sorted(maps.Keys(all)), ", ")))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out := slices.Clone(only)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// problems validates head, and base too when head has warnings, to tell
// which of them head brings.
func problems(ctx context.Context, base, head Side, opts Options, rendered func(string, desired.Secrets, []*desired.Project)) ([]Problem, bool) {
	vopts := validate.Options{Decrypter: opts.Decrypter, NotRecipient: opts.NotRecipient, Rendered: rendered}
	after := validate.Check(ctx, head.Dir, opts.Inspector, vopts)
	vopts.Rendered = nil
	seen := map[string]bool{}
	if slices.ContainsFunc(after, func(p desired.Problem) bool { return p.Severity == desired.Warning }) {
		for _, p := range validate.Check(ctx, base.Dir, opts.Inspector, vopts) {
			seen[problemKey(p)] = true
		}
	}
	var out []Problem
	invalid := false
	for _, p := range after {
		if p.Severity == desired.Error {
			invalid = true
		} else if seen[problemKey(p)] {
			continue
		}
		out = append(out, Problem{Problem: p, Text: p.String()})
	}
	return out, invalid
}

// problemKey identifies a problem across commits: lines move.
func problemKey(p desired.Problem) string {
	return fmt.Sprintf("%s\x00%d\x00%s\x00%s", p.Path, p.Severity, p.Rule, p.Msg)
}

// differ diffs one host.
type differ struct {
	ctx                context.Context
	key                []byte
	opts               Options
	base, head         Side
	baseRepo, headRepo *desired.Repo
	headRendering      *rendering
}

// rendering is one host's head as validate rendered it.
type rendering struct {
	once     sync.Once
	done     chan struct{}
	secrets  desired.Secrets
	projects []*desired.Project
}

func (r *rendering) give(secrets desired.Secrets, projects []*desired.Project) {
	r.once.Do(func() {
		r.secrets, r.projects = secrets, projects
		close(r.done)
	})
}

// take returns the projects validate rendered with exactly secrets, or nil.
func (r *rendering) take(ctx context.Context, secrets desired.Secrets) []*desired.Project {
	if r == nil {
		return nil
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil
	}
	if r.projects == nil || !maps.Equal(r.secrets, secrets) {
		return nil
	}
	p := r.projects
	r.projects = nil // labelled once
	return p
}

// side is one commit's rendering of the host.
type side struct {
	host    *desired.Host
	secrets desired.Secrets
	keys    []string // the secrets file's key names
	file    []byte   // the secrets file as committed (encrypted)
	// placeholders: secrets holds <secret:KEY>, not values.
	placeholders bool
	desired      plan.Desired
	projects     map[string]*desired.Project
	err          error
}

func (d *differ) host(name string) Host {
	bh, hh := d.baseRepo.Hosts[name], d.headRepo.Hosts[name]
	h := Host{Name: name}
	switch {
	case hh == nil:
		h.State, h.Wave, h.BaseWave = Removed, bh.Wave, bh.Wave
		h.AppsRemoved = slices.Sorted(slices.Values(bh.Apps))
		h.Notes = append(h.Notes, fmt.Sprintf("hosts/%s is gone at head: its agent refuses head as invalid (unknown host) and keeps running what it runs; take its apps off first (empty them from host.yaml in an earlier commit), then decommission the host", name))
		return h
	case bh == nil:
		h.State, h.Wave, h.BaseWave = Added, hh.Wave, hh.Wave
	default:
		h.Wave, h.BaseWave = hh.Wave, bh.Wave
		h.AppsAdded, h.AppsRemoved = added(bh.Apps, hh.Apps), added(hh.Apps, bh.Apps)
	}

	var b, hs side
	if bh != nil {
		b = d.open(d.baseRepo, bh, "base", &h)
	}
	hs = d.open(d.headRepo, hh, "head", &h)
	if b.placeholders || hs.placeholders {
		// One side without values would look like every secret rotated.
		b.secrets, hs.secrets = desired.Placeholders(b.keys), desired.Placeholders(hs.keys)
	}
	if bh != nil && b.err == nil {
		d.render(d.baseRepo, &b, d.base, plan.Observed{}, nil)
		if b.err == nil && referencesServices(b.projects) {
			// Compose hashes a service reference with the running
			// container's ID: hash base as the host that runs it would.
			obs, _ := plan.Converged(b.desired)
			d.render(d.baseRepo, &b, d.base, obs, nil)
		}
	}
	if bh != nil && b.err != nil {
		h.Notes = append(h.Notes, fmt.Sprintf("base does not render for this host (%s), so the host still runs an older commit; head is shown as on a host running nothing", abbrev.Line(b.err.Error())))
		b.desired = plan.Desired{}
	}
	obs, _ := plan.Converged(b.desired)
	if hs.err == nil {
		d.render(d.headRepo, &hs, d.head, obs, d.headRendering.take(d.ctx, hs.secrets))
	}
	if hs.err == nil {
		hs.err = d.addFields(&b, &hs)
	}
	obs, mem := plan.Converged(b.desired) // with the settings added
	h.Secrets = d.secretsChange(bh, hh, b, hs, &h)
	if hs.err != nil {
		h.State = Failed
		h.Errors = append(h.Errors, fmt.Sprintf("head does not render for this host; nothing would be applied there:\n%s", hs.err))
		return h
	}
	h.Plan = plan.Make(hs.desired, obs, mem)
	// The planner quotes what it compares (an image reference), which may
	// be made of a secret: every text passes desired's redaction.
	scrubPlan(&h.Plan, b.secrets, hs.secrets)
	for i := range h.Plan.Projects {
		// Only an app the host runs orders its apply.
		h.Plan.Projects[i].After = runs(hh, h.Plan.Projects[i].After)
	}
	h.Settings = settings(b, hs)
	if h.State == "" {
		h.State = Unchanged
		if h.Plan.Changes() || len(h.AppsAdded)+len(h.AppsRemoved) > 0 || h.Wave != h.BaseWave || len(h.Settings) > 0 || guarded(h.Plan) || h.Secrets != nil {
			h.State = Changed
		}
	}
	if len(h.Errors) > 0 {
		h.State = Failed
	}
	return h
}

func guarded(p plan.Plan) bool {
	return slices.ContainsFunc(p.Projects, func(pr plan.Project) bool { return pr.Action == plan.Guarded })
}

// open reads the host's secrets file at one commit: its key names, and
// its values when there is a key that opens it. A file the key cannot
// open is an error of the host; the diff goes on with key names only.
func (d *differ) open(repo *desired.Repo, h *desired.Host, which string, out *Host) side {
	sd := side{host: h}
	if h.SecretsFile == "" {
		sd.secrets = desired.Secrets{}
		return sd
	}
	data, err := repo.ReadFile(h.SecretsFile)
	if err == nil {
		sd.file = data
		sd.keys, err = d.opts.Inspector.Keys(h.SecretsFile, data)
	}
	if err != nil {
		sd.err = fmt.Errorf("%s at %s: %s", h.SecretsFile, which, trimPath(err.Error(), h.SecretsFile))
		return sd
	}
	sd.secrets, sd.placeholders = desired.Placeholders(sd.keys), true
	if d.opts.Decrypter == nil {
		return sd
	}
	values, err := repo.HostSecrets(h, d.opts.Decrypter)
	switch {
	case err == nil:
		sd.secrets, sd.placeholders = values, false
	case d.opts.NotRecipient != nil && errors.Is(err, d.opts.NotRecipient):
		out.Errors = append(out.Errors, fmt.Sprintf("%s at %s: the --age-key is not one of its recipients, so its values cannot be compared; add your recipient to its rule in .sops.yaml and run `sops updatekeys %s`, or diff without --age-key", h.SecretsFile, which, h.SecretsFile))
	default:
		out.Errors = append(out.Errors, fmt.Sprintf("%s at %s: %s; its values cannot be compared", h.SecretsFile, which, trimPath(err.Error(), h.SecretsFile)))
	}
	return sd
}

// trimPath drops a leading "path: " from a message that names path anyway.
func trimPath(msg, path string) string {
	return strings.TrimPrefix(msg, path+": ")
}

// render renders the host at one commit as a cycle would, with the
// settings of every service as a reviewer reads them.
func (d *differ) render(repo *desired.Repo, sd *side, s Side, observed plan.Observed, rendered []*desired.Project) {
	var err error
	sd.desired, sd.projects, err = reconcile.Desire(d.ctx, repo, sd.host.Name, sd.secrets, s.Commit, d.key, observed, rendered)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), reconcile.ErrInvalid.Error())
		sd.err = errors.New(strings.TrimSpace(sd.secrets.RedactFragments(msg)))
		return
	}
}

// addFields gives the services of the projects that differ between the
// commits (a config hash or an image) their settings, on both sides, so
// the planner can name what changed; rendering them as YAML costs, and an
// unchanged project needs none. (A rotated secret counts as a difference:
// a config file's content is hashed with the secrets.)
func (d *differ) addFields(b, h *side) error {
	baseProjects := map[string]*plan.DesiredProject{}
	for i := range b.desired.Projects {
		baseProjects[b.desired.Projects[i].Name] = &b.desired.Projects[i]
	}
	for i := range h.desired.Projects {
		hp := &h.desired.Projects[i]
		bp := baseProjects[hp.Name]
		if bp == nil || sameServices(*bp, *hp) {
			continue
		}
		for _, x := range []struct {
			dp *plan.DesiredProject
			sd *side
		}{{bp, b}, {hp, h}} {
			fields, err := x.sd.projects[x.dp.Name].Fields(x.sd.secrets, d.key)
			if err != nil {
				return err
			}
			for j := range x.dp.Services {
				x.dp.Services[j].Fields = fields[x.dp.Services[j].Name]
			}
		}
	}
	return nil
}

func sameServices(a, b plan.DesiredProject) bool {
	return slices.EqualFunc(a.Services, b.Services, func(x, y plan.DesiredService) bool {
		return x.Name == y.Name && x.ConfigHash == y.ConfigHash && x.Image == y.Image && x.SecretsHash == y.SecretsHash
	})
}

// referencesServices reports whether a service shares a namespace or the
// volumes of another service, which Compose hashes by container ID.
func referencesServices(projects map[string]*desired.Project) bool {
	for _, p := range projects {
		for _, s := range p.Compose.Services {
			for _, m := range []string{s.NetworkMode, s.Ipc, s.Pid} {
				if strings.HasPrefix(m, "service:") {
					return true
				}
			}
			if len(s.VolumesFrom) > 0 {
				return true
			}
		}
	}
	return false
}

// secretsChange compares the host's secrets file between the commits.
func (d *differ) secretsChange(bh, hh *desired.Host, b, h side, out *Host) *SecretsChange {
	if hh == nil || (bh == nil && hh.SecretsFile == "") || (bh != nil && bh.SecretsFile == "" && hh.SecretsFile == "") {
		return nil
	}
	sc := &SecretsChange{File: hh.SecretsFile}
	if sc.File == "" {
		sc.File = bh.SecretsFile
	}
	sc.Added, sc.Removed = added(b.keys, h.keys), added(h.keys, b.keys)
	if bytes.Equal(b.file, h.file) && len(sc.Added)+len(sc.Removed) == 0 {
		return nil
	}
	if d.opts.Decrypter != nil && !b.placeholders && !h.placeholders {
		for _, k := range h.keys {
			if bv, ok := b.secrets[k]; ok && bv != h.secrets[k] {
				sc.Changed = append(sc.Changed, k)
			}
		}
	} else if len(b.file) > 0 && len(h.file) > 0 {
		sc.MayHaveChanged, sc.KeyFailed = true, d.opts.Decrypter != nil
	}
	readers := map[string]bool{}
	for _, p := range h.projects {
		for svc, keys := range p.SecretKeys {
			if len(keys) > 0 {
				readers[p.Name()+"/"+svc+" ("+strings.Join(keys, ", ")+")"] = true
			}
		}
	}
	sc.Readers = slices.Sorted(maps.Keys(readers))
	if len(sc.Added)+len(sc.Removed)+len(sc.Changed) == 0 && !sc.MayHaveChanged {
		if out.State == "" {
			// Re-encrypted (new recipients, sops updatekeys): no value changed.
			out.Notes = append(out.Notes, sc.File+" was re-encrypted; no key or value changed")
		}
		return nil
	}
	return sc
}

// settings lists the app settings that changed without changing a
// container: after: order, drift policy, health timeout.
func settings(b, h side) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(h.projects)) {
		hp, bp := h.projects[name], b.projects[name]
		if bp == nil {
			continue
		}
		ha, ba := hp.App, bp.App
		if before, after := runs(b.host, ba.After), runs(h.host, ha.After); !slices.Equal(before, after) {
			out = append(out, fmt.Sprintf("%s: after: [%s] → [%s] (apply order)", name, strings.Join(before, ", "), strings.Join(after, ", ")))
		}
		if ba.Drift != ha.Drift {
			out = append(out, fmt.Sprintf("%s: drift: %s → %s", name, ba.Drift, ha.Drift))
		}
		if ba.HealthTimeout != ha.HealthTimeout {
			out = append(out, fmt.Sprintf("%s: health_timeout: %s → %s", name, ba.HealthTimeout, ha.HealthTimeout))
		}
	}
	return out
}

// runs returns the apps of list that h runs, sorted.
func runs(h *desired.Host, list []string) []string {
	var out []string
	for _, a := range list {
		if h != nil && slices.Contains(h.Apps, a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// added returns the items of b not in a, sorted.
func added(a, b []string) []string {
	var out []string
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// scrubPlan redacts every text of p with the values of both commits, each
// value named by its key.
func scrubPlan(p *plan.Plan, sets ...desired.Secrets) {
	all := desired.Secrets{}
	for _, s := range sets {
		for k, v := range s {
			if _, ok := all[k]; ok && all[k] != v {
				all[k+" (base)"] = all[k] // both values are redacted
			}
			all[k] = v
		}
	}
	if len(all) == 0 {
		return
	}
	scrub := func(text string) string {
		return strings.ReplaceAll(all.RedactNamed(text), " (base)>", ">")
	}
	for i := range p.Projects {
		pr := &p.Projects[i]
		pr.Reason = scrub(pr.Reason)
		for j := range pr.Changes {
			c := &pr.Changes[j]
			c.Reason = scrub(c.Reason)
			for k := range c.Fields {
				c.Fields[k].Before, c.Fields[k].After = scrub(c.Fields[k].Before), scrub(c.Fields[k].After)
			}
		}
	}
}

// sameTree reports whether directories a and b hold the same files with the
// same contents (and links to the same targets), leaving out the top-level
// entry skip.
func sameTree(a, b, skip string) bool {
	list := func(root string) (map[string]string, bool) {
		out := map[string]string{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if skip != "" && rel == skip {
				return filepath.SkipDir
			}
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				t, err := os.Readlink(p)
				out[rel] = "link:" + t
				return err
			case d.Type().IsRegular():
				data, err := os.ReadFile(p)
				out[rel] = "file:" + string(data)
				return err
			case d.IsDir():
				out[rel] = "dir"
			}
			return nil
		})
		return out, err == nil
	}
	ta, okA := list(a)
	tb, okB := list(b)
	return okA && okB && maps.Equal(ta, tb)
}

// hostProblems makes head's errors in a host's own directory that host's
// errors: whatever its diff shows, the host would not apply head.
func hostProblems(h *Host, ps []Problem) {
	prefix := "hosts/" + h.Name + "/"
	named := strings.Join(h.Errors, "\n")
	for _, p := range ps {
		// A file the diff already names as the host's error is not named twice.
		if p.Severity == desired.Error && strings.HasPrefix(p.Path, prefix) && !strings.Contains(named, p.Path+" at ") {
			h.Errors = append(h.Errors, "head does not validate: "+p.Text)
		}
	}
	if len(h.Errors) > 0 {
		h.State = Failed
	}
}
