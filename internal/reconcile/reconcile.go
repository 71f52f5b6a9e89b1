// Package reconcile runs one cycle: render the desired state of a host,
// observe the engine, plan, and apply the plan project by project with a
// health gate and rollback to the last-known-good commit.
//
// It owns the order of those steps and what is remembered between cycles;
// it must not import the source or the agent. The engine sits behind the
// small Engine interface below.
package reconcile

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/redact"
	"github.com/syncd-dev/syncd/internal/state"
)

// Engine is what a cycle needs of Docker.
type Engine interface {
	Observe(ctx context.Context, host string) (plan.Observed, error)
	// Pull brings p's images without creating a container and returns
	// the ID of each image reference (used with a Gate only).
	Pull(ctx context.Context, p *types.Project) (map[string]string, error)
	Apply(ctx context.Context, p *types.Project, opts engine.ApplyOptions) error
	Remove(ctx context.Context, name string) error
}

// Gate admits a release's new images after they are pulled and before any
// container is created from them (the scan gate). It is asked only for
// projects whose policy has a refuse_severity.
type Gate interface {
	// Admit returns nil to let images (reference → image ID) start. An
	// error refuses them: the project keeps what it runs and the commit
	// is held for it, unless the error says Temporary() (the gate could
	// not decide; a later cycle tries again).
	Admit(ctx context.Context, project string, policy desired.ScanPolicy, images map[string]string) error
}

// ErrImageRefused marks a project whose new images the Gate refused: it
// runs what it ran, and the commit is held for it.
var ErrImageRefused = errors.New("image refused")

// Reconciler runs cycles for one host.
type Reconciler struct {
	Host      string
	Engine    Engine
	Store     *state.Store
	Decrypter desired.Decrypter
	Logger    *slog.Logger
	// Redaction, when set, is given the host's Redactor of each cycle, for
	// what outlives it (the log handler).
	Redaction *redact.Current
	// Parallel bounds how many independent projects apply at once (default 4).
	Parallel int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Enrolling, when set, lets a host whose own age key is not yet a
	// recipient of its secrets file run the apps that need no secret.
	Enrolling Enrolling
	// Gate, when set, admits the new images of each release before any
	// container is created from them.
	Gate Gate
	// Probes, when set, verifies a release after Compose's healthchecks
	// and the soak passed: the app's gating probes (jobs/probe.Gate). A
	// release that fails it is rolled back as an unhealthy one is.
	Probes Verifier
	// Locks, when set, are the project locks the host's jobs hold: a
	// project a job (a backup) holds is left as it is this cycle (Waiting),
	// so an apply never changes what a job reads or restores.
	Locks Locker
	// BeforeUpgrade, when set, runs before a cycle recreates a service of
	// an app for another image, when the app asks for it (app.yaml
	// backup.before_upgrade, default for apps with dumps). When it fails
	// the project waits (Waiting) and the next cycle tries again.
	BeforeUpgrade func(ctx context.Context, r *Rendered, app string) error

	// unsaved holds the records a cycle could not write (the state disk
	// full): they describe what runs, so the next cycle plans from them
	// and writes them first.
	unsaved state.Projects
	// tookOver are the projects of a stopped syncd this one took over,
	// logged once.
	tookOver map[string]bool
}

// Verifier checks a release that Compose reports healthy by the app's own
// probes, within timeout (the app's health_timeout). redact scrubs the
// host's secret values from what it says.
type Verifier interface {
	Verify(ctx context.Context, p *desired.Project, redact func(string) string, timeout time.Duration) error
}

// Locker hands out project locks without waiting.
type Locker interface {
	TryLock(project string) (unlock func(), ok bool)
}

// Enrolling is asked about a host's secrets that cannot be decrypted.
type Enrolling interface {
	// Pending reports whether err, from decrypting the host's secrets,
	// only means that the host's key is not enrolled yet.
	Pending(err error) bool
	// Keys returns the key names of a secrets file without decrypting it.
	Keys(name string, data []byte) ([]string, error)
}

// records are what syncd last applied: the ones a failed write kept in
// memory, else the state directory's.
func (r *Reconciler) records() (state.Projects, error) {
	if r.unsaved != nil {
		if err := r.Store.SaveProjects(r.unsaved); err != nil {
			return maps.Clone(r.unsaved), nil
		}
		r.unsaved = nil
	}
	return r.Store.Projects()
}

// Source is one checkout of the desired state.
type Source struct {
	Dir    string
	Commit string
}

// Prepared is a planned cycle, ready to apply.
type Prepared struct {
	Plan   plan.Plan
	Commit string
	// Wave is the host's rollout ring from host.yaml.
	Wave int
	// SecretsPending is set when the host's key cannot decrypt its secrets
	// yet (Enrolling); Pending lists the projects that need them, left as
	// they are.
	SecretsPending bool
	Pending        []string
	dir            string
	host           string
	// running are the image IDs each project's containers run now: an
	// image already running is not new to the Gate.
	running map[string][]string
	repo    *desired.Repo
	secrets desired.Secrets
	// redact is the one redaction of secrets, made once per cycle.
	redact   *redact.Redactor
	projects map[string]*target
}

// Rendered is what a cycle rendered for the host, for the jobs that run
// between cycles (backups): the commit, the fleet's and the host's
// settings, each app's project and the host's secrets. It holds secret
// values: never print it.
type Rendered struct {
	Commit   string
	Repo     *desired.Repo
	Fleet    desired.Fleet
	Host     *desired.Host
	Projects map[string]*desired.Project
	Secrets  desired.Secrets
	// SecretsPending: the host's key cannot open its secrets yet, so
	// Secrets are placeholders.
	SecretsPending bool

	redact *redact.Redactor
}

// Redactor is the one redaction of the rendered secrets.
func (r *Rendered) Redactor() *redact.Redactor {
	if r == nil {
		return nil
	}
	if r.redact == nil {
		return r.Secrets.Redactor() // made by hand (a test): not kept, no race
	}
	return r.redact
}

// Rendered returns what the prepared cycle rendered.
func (p *Prepared) Rendered() *Rendered {
	out := &Rendered{Commit: p.Commit, Repo: p.repo, Fleet: p.repo.Fleet, Host: p.repo.Hosts[p.host], Projects: map[string]*desired.Project{},
		Secrets: p.secrets, SecretsPending: p.SecretsPending, redact: p.redact}
	for name, t := range p.projects {
		out.Projects[name] = t.project
	}
	return out
}

// target is one desired project with what a cycle needs to apply and record it.
type target struct {
	project *desired.Project
	hashes  map[string]string
	secrets map[string]map[string]string // service → key → keyed hash
	// fields are the services' settings (desired.Project.Fields), made
	// only for a project whose configuration changed: what the plan names.
	fields map[string]plan.Fields
}

// ErrInvalid marks a repository that cannot be rendered: a person must fix
// it; nothing was changed.
var ErrInvalid = errors.New("the repository is invalid; nothing was changed")

// ErrSecrets marks a cycle stopped because the host's secrets cannot be
// decrypted (no key, the wrong key, a file that fails its MAC); nothing was
// changed.
var ErrSecrets = errors.New("cannot decrypt the host's secrets; nothing was changed")

// Prepare loads and renders src for the host, observes the engine and plans.
// It changes nothing.
func (r *Reconciler) Prepare(ctx context.Context, src Source) (*Prepared, error) {
	repo, ps := desired.Load(src.Dir)
	if ps.HasErrors() {
		return nil, fmt.Errorf("%w\n%s", ErrInvalid, ps.Err())
	}
	repo.ProjectsDir = r.Store.ProjectsDir()
	h, ok := repo.Hosts[r.Host]
	if !ok {
		_, ps := repo.Render(ctx, r.Host, nil)
		return nil, fmt.Errorf("%w\n%s", ErrInvalid, ps.Err())
	}
	secrets, err := repo.HostSecrets(h, r.Decrypter)
	pendingSecrets := false
	if err != nil {
		if secrets, err = r.placeholders(repo, h, err); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSecrets, err)
		}
		pendingSecrets = true
	}
	observed, err := r.Engine.Observe(ctx, r.Host)
	if err != nil {
		return nil, err
	}
	if err := r.checkOwner(observed); err != nil {
		return nil, err
	}
	targets, err := r.targets(ctx, repo, secrets, src.Commit, observed)
	if err != nil {
		return nil, err
	}
	records, err := r.records()
	if err != nil {
		return nil, err
	}
	var pending []string
	if pendingSecrets {
		// What needs a secret is neither applied nor pruned: the plan does
		// not see it at all until the key can decrypt.
		// An app that follows a waiting one waits with it.
		waits := func(t *target) bool {
			if len(t.project.SecretKeys) > 0 || len(t.project.StandIns) > 0 {
				return true
			}
			return slices.ContainsFunc(t.project.App.After, func(dep string) bool { return slices.Contains(pending, dep) })
		}
		for again := true; again; {
			again = false
			for name, t := range targets {
				if waits(t) {
					pending, again = append(pending, name), true
					delete(targets, name)
					delete(observed.Projects, name)
					delete(records, name)
				}
			}
		}
		slices.Sort(pending)
	}
	if err := r.changedFields(targets, observed, records, secrets); err != nil {
		return nil, err
	}
	d := desiredOf(repo, h, src.Commit, targets)
	if err := r.suspended(&d); err != nil {
		return nil, err
	}
	running := map[string][]string{}
	for name, op := range observed.Projects {
		for _, c := range op.Containers {
			if c.ImageID != "" && !slices.Contains(running[name], c.ImageID) {
				running[name] = append(running[name], c.ImageID)
			}
		}
	}
	red := secrets.Redactor()
	r.Redaction.Set(red)
	return &Prepared{
		running:        running,
		Plan:           redactPlan(plan.Make(d, observed, memory(records)), red),
		Commit:         src.Commit,
		Wave:           h.Wave,
		SecretsPending: pendingSecrets,
		Pending:        pending,
		dir:            src.Dir,
		host:           r.Host,
		repo:           repo,
		secrets:        secrets,
		redact:         red,
		projects:       targets,
	}, nil
}

// placeholders stands in for the host's secrets when decryptErr only
// means its key is not enrolled yet, and returns decryptErr otherwise.
func (r *Reconciler) placeholders(repo *desired.Repo, h *desired.Host, decryptErr error) (desired.Secrets, error) {
	if r.Enrolling == nil || !r.Enrolling.Pending(decryptErr) {
		return nil, decryptErr
	}
	data, err := repo.ReadFile(h.SecretsFile)
	if err != nil {
		return nil, decryptErr
	}
	keys, err := r.Enrolling.Keys(h.SecretsFile, data)
	if err != nil {
		return nil, err
	}
	return desired.Placeholders(keys), nil
}

// ErrOtherSyncd marks a host whose projects another syncd, with another
// state directory, manages on this engine: a person must stop one.
var ErrOtherSyncd = errors.New("another syncd manages this host's projects")

// checkOwner refuses a cycle when this host's containers were created by a
// syncd with another state directory that still runs: two of them would
// remove each other's containers and report each other's changes as drift.
// One whose state directory is there but not locked has stopped: its
// projects are taken over.
func (r *Reconciler) checkOwner(observed plan.Observed) error {
	mine := r.stateDir()
	for _, name := range slices.Sorted(maps.Keys(observed.Projects)) {
		op := observed.Projects[name]
		if !op.Owned {
			continue
		}
		for _, c := range op.Containers {
			if c.Owner == "" || c.Owner == mine {
				continue
			}
			running, err := state.InUse(c.Owner)
			switch {
			case err != nil:
				return fmt.Errorf("%w: host %q's project %s was created by the syncd of state directory %s, which this one (state directory %s) cannot see: stop that syncd; if it is gone for good, run this one with --state-dir %s", ErrOtherSyncd, r.Host, name, c.Owner, mine, c.Owner)
			case running:
				return fmt.Errorf("%w: host %q's project %s belongs to the syncd running with state directory %s; this one (state directory %s) refuses to run beside it: stop one of them", ErrOtherSyncd, r.Host, name, c.Owner, mine)
			}
			if !r.tookOver[name] {
				r.log().Warn("taking over the project of a syncd that stopped", "project", name, "its_state_dir", c.Owner)
				if r.tookOver == nil {
					r.tookOver = map[string]bool{}
				}
				r.tookOver[name] = true
			}
		}
	}
	return nil
}

func (r *Reconciler) stateDir() string {
	dir, err := filepath.Abs(r.Store.Dir())
	if err != nil {
		return r.Store.Dir()
	}
	return dir
}

// redactPlan scrubs secret values from the plan's reasons: an image
// reference may be made of a secret (${REGISTRY_TOKEN}), and reasons quote
// images; the plan is printed and logged.
func redactPlan(p plan.Plan, r *redact.Redactor) plan.Plan {
	for i := range p.Projects {
		pr := &p.Projects[i]
		pr.Reason = r.Text(pr.Reason)
		for j := range pr.Changes {
			pr.Changes[j].Reason = r.Text(pr.Changes[j].Reason)
		}
	}
	return p
}

// targets renders every project of the host at commit, labels it and
// computes its hashes.
func (r *Reconciler) targets(ctx context.Context, repo *desired.Repo, secrets desired.Secrets, commit string, observed plan.Observed) (map[string]*target, error) {
	key, err := r.Store.HashKey()
	if err != nil {
		return nil, err
	}
	ts, err := targets(ctx, r.Host, repo, secrets, commit, observed, key)
	for _, t := range ts {
		engine.LabelOwner(t.project.Compose, r.stateDir())
	}
	return ts, err
}

// targets is Reconciler.targets with the host and the hash key given.
func targets(ctx context.Context, host string, repo *desired.Repo, secrets desired.Secrets, commit string, observed plan.Observed, key []byte) (map[string]*target, error) {
	projects, ps := repo.Render(ctx, host, secrets)
	if ps.HasErrors() {
		return nil, fmt.Errorf("%w\n%s", ErrInvalid, ps.Err())
	}
	return targetsOf(host, projects, secrets, commit, observed, key)
}

// targetsOf labels rendered projects and computes their hashes.
func targetsOf(host string, projects []*desired.Project, secrets desired.Secrets, commit string, observed plan.Observed, key []byte) (map[string]*target, error) {
	var err error
	out := make(map[string]*target, len(projects))
	for _, p := range projects {
		t := &target{project: p, secrets: map[string]map[string]string{}}
		labels := map[string]string{}
		for svc, keys := range p.SecretKeys {
			m := map[string]string{}
			for _, k := range keys {
				m[k] = keyedHash(key, k+"\x00"+secrets[k])
			}
			t.secrets[svc] = m
		}
		// Compose's config hash leaves out what a config or file secret
		// holds, so a change of content alone would go unseen.
		if err := fileContents(p, key, t.secrets); err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name(), err)
		}
		for svc, m := range t.secrets {
			labels[svc] = combined(key, m)
		}
		engine.Label(p.Compose, host, commit, labels)
		// Compose hashes a reference to another service's container with
		// that container's ID, so the running containers take part.
		if t.hashes, err = engine.ServiceHashesObserved(p.Compose, observed.Projects[p.Name()]); err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name(), secrets.Redactor().OutsideErr(err))
		}
		out[p.Name()] = t
	}
	return out, nil
}

// fileContents adds, per service, a keyed hash of the content of each
// config it mounts, of each secret it reads from a file, and of each
// repository file or directory it bind-mounts from the project directory,
// under the key "config NAME", "file NAME" or "mount PATH".
func fileContents(dp *desired.Project, key []byte, into map[string]map[string]string) error {
	p := dp.Compose
	content := func(o types.FileObjectConfig) (string, error) {
		switch {
		case o.Content != "":
			return o.Content, nil
		case o.Environment != "":
			return p.Environment[o.Environment], nil
		case o.File != "":
			data, err := os.ReadFile(dp.SourceOf(o.File))
			if err != nil {
				return "", err
			}
			return string(data), nil
		}
		return "", nil
	}
	for name, svc := range p.Services {
		add := func(k, v string) {
			if into[name] == nil {
				into[name] = map[string]string{}
			}
			into[name][k] = keyedHash(key, k+"\x00"+v)
		}
		for _, ref := range svc.Configs {
			c, ok := p.Configs[ref.Source]
			if !ok || bool(c.External) {
				continue
			}
			v, err := content(types.FileObjectConfig(c))
			if err != nil {
				return fmt.Errorf("config %s: %w", ref.Source, err)
			}
			add("config "+ref.Source, v)
		}
		for _, ref := range svc.Secrets {
			s, ok := p.Secrets[ref.Source]
			if !ok || bool(s.External) || s.File == "" {
				continue // environment-sourced secrets are the host's: hashed above
			}
			v, err := content(types.FileObjectConfig(s))
			if err != nil {
				return fmt.Errorf("secret %s: %w", ref.Source, err)
			}
			add("file "+ref.Source, v)
		}
	}
	for _, m := range dp.Mounts {
		if m.Data() || m.Config != "" {
			continue // data is not content; configs are hashed above
		}
		digest, err := state.Digest(m.Source, m.Dir)
		if err != nil {
			return fmt.Errorf("%s: %w", m.Rel, err)
		}
		rel, _ := filepath.Rel(dp.Dir, m.Path)
		for _, svc := range m.Services {
			if into[svc] == nil {
				into[svc] = map[string]string{}
			}
			into[svc]["mount ./"+filepath.ToSlash(rel)] = keyedHash(key, "mount\x00"+digest)
		}
	}
	return nil
}

// materialise makes a project's directory ready: the repository's files
// copied in, data directories created (and moved in from an older syncd's
// checkout).
func (r *Reconciler) materialise(p *desired.Project) error {
	for _, m := range p.Mounts {
		if err := r.Store.Materialise(m.Path, m.Rel, m.Source, m.Dir); err != nil {
			return fmt.Errorf("project directory of %s: %w", p.Name(), err)
		}
	}
	return nil
}

func desiredProject(t *target) plan.DesiredProject {
	p := t.project
	dp := plan.DesiredProject{Name: p.Name(), After: p.App.After, Drift: p.App.Drift, BackupBeforeUpgrade: p.App.Backup.UpgradeBackup()}
	switch {
	case p.App.Suspended != nil:
		dp.Suspended = &plan.Suspension{By: p.App.SettingsFile(), Reason: p.App.Suspended.Reason}
	case p.Host != nil && p.Host.Suspended != nil:
		dp.Suspended = &plan.Suspension{By: "hosts/" + p.Host.Name + "/host.yaml", Reason: p.Host.Suspended.Reason}
	}
	for _, name := range slices.Sorted(maps.Keys(p.Compose.Services)) {
		s := p.Compose.Services[name]
		ds := plan.DesiredService{Name: name, ConfigHash: t.hashes[name], Image: s.Image, Secrets: t.secrets[name], Fields: t.fields[name]}
		if len(ds.Secrets) > 0 {
			ds.SecretsHash = s.CustomLabels[plan.LabelSecrets]
		}
		dp.Services = append(dp.Services, ds)
	}
	return dp
}

// changedFields gives each target whose configuration changed since its
// last apply (a service's config hash is not the running container's) and
// whose record holds the settings it was applied with, its settings now:
// the plan then names the settings that changed. Others are not
// flattened: a cycle that changes nothing pays nothing for it.
func (r *Reconciler) changedFields(targets map[string]*target, observed plan.Observed, records state.Projects, secrets desired.Secrets) error {
	var key []byte
	for name, t := range targets {
		rec, op := records[name], observed.Projects[name]
		if rec == nil || op == nil {
			continue
		}
		changed := false
		for _, c := range op.Containers {
			if h, ok := t.hashes[c.Service]; ok && h != c.ConfigHash && rec.Services[c.Service].Fields != nil {
				changed = true
			}
		}
		if !changed {
			continue
		}
		if key == nil {
			var err error
			if key, err = r.Store.HashKey(); err != nil {
				return err
			}
		}
		fields, err := t.project.Fields(secrets, key)
		if err != nil {
			continue // the plan says "configuration changed" without naming it
		}
		t.fields = fields
	}
	return nil
}

// suspended adds to d the suspensions made on the host (`syncd suspend`)
// that have not run out: a suspension in Git says more (it is reviewed),
// and wins.
func (r *Reconciler) suspended(d *plan.Desired) error {
	all, err := r.Store.Suspensions()
	if err != nil {
		return err
	}
	now := r.now()
	for app, s := range all {
		if s.Expired(now) {
			continue
		}
		sus := plan.Suspension{By: s.By, Reason: s.Reason, Until: s.Until}
		i := slices.IndexFunc(d.Projects, func(p plan.DesiredProject) bool { return p.Name == app })
		switch {
		case i < 0:
			if d.Suspended == nil {
				d.Suspended = map[string]plan.Suspension{}
			}
			d.Suspended[app] = sus
		case d.Projects[i].Suspended == nil:
			d.Projects[i].Suspended = &sus
		}
	}
	return nil
}

func memory(records state.Projects) plan.Memory {
	m := plan.Memory{}
	for name, rec := range records {
		a := plan.Applied{Commit: rec.Commit, FailedCommit: rec.FailedCommit, FailedError: rec.FailedError, Services: map[string]plan.AppliedService{}}
		for svc, s := range rec.Services {
			a.Services[svc] = plan.AppliedService{ConfigHash: s.ConfigHash, Image: s.Image, Secrets: s.Secrets, Fields: s.Fields}
		}
		m[name] = a
	}
	return m
}

func keyedHash(key []byte, s string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(s))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

func combined(key []byte, hashes map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(hashes)) {
		fmt.Fprintf(&b, "%s=%s\n", k, hashes[k])
	}
	return keyedHash(key, b.String())
}

// Outcome is what became of one project in a cycle.
type Outcome struct {
	Project string
	Result  Result
	// Err is the redacted reason of a failure.
	Err error
}

// Result of one project in a cycle.
type Result string

// Results.
const (
	Unchanged  Result = "unchanged"
	Applied    Result = "applied"
	Removed    Result = "removed"
	RolledBack Result = "rolled back"
	TakenDown  Result = "taken down" // failed and had no healthy release to go back to
	Failed     Result = "failed"
	Held       Result = "held"
	Skipped    Result = "skipped"
	Refused    Result = "refused"
	// Waiting: left as it is this cycle (a job holds it, or its backup
	// before upgrade failed); the next cycle tries again.
	Waiting Result = "waiting"
)

// Waiting reports whether a project of the cycle was left for the next one.
func (rep Report) Waiting() bool {
	for _, o := range rep.Outcomes {
		if o.Result == Waiting {
			return true
		}
	}
	return false
}

// Report is a cycle's result.
type Report struct {
	Commit   string
	Wave     int
	Plan     plan.Plan
	Outcomes []Outcome
	// SecretsPending and Pending are the Prepared's: the host's key is not
	// enrolled yet, and these projects wait for it.
	SecretsPending bool
	Pending        []string
	// Redact scrubs the host's secret values from text that leaves the
	// cycle (an image reference may be made of one); nil before a cycle
	// got as far as decrypting.
	Redact func(string) string
	// Rendered is what the cycle rendered; nil when it stopped before.
	Rendered *Rendered
}

// ErrReleaseFailed marks a cycle in which a project's release failed (and
// was rolled back); the commit is held for that project.
var ErrReleaseFailed = errors.New("a release failed")

// Sync prepares and applies one cycle.
func (r *Reconciler) Sync(ctx context.Context, src Source) (Report, error) {
	prep, err := r.Prepare(ctx, src)
	if err != nil {
		return Report{Commit: src.Commit}, err
	}
	return r.Apply(ctx, prep)
}

// Apply executes a prepared plan: projects in `after:` order, independent
// ones in parallel (bounded), removals last. A project whose release fails
// is rolled back; projects that follow it are skipped.
func (r *Reconciler) Apply(ctx context.Context, prep *Prepared) (Report, error) {
	rep := Report{Commit: prep.Commit, Wave: prep.Wave, Plan: prep.Plan, SecretsPending: prep.SecretsPending, Pending: prep.Pending,
		Redact: prep.redact.Text, Rendered: prep.Rendered()}
	records, err := r.records()
	if err != nil {
		return rep, err
	}
	var (
		mu       sync.Mutex
		outcomes = map[string]Outcome{}
		done     = map[string]chan struct{}{}
		wg       sync.WaitGroup
		sem      = make(chan struct{}, r.parallel())
	)
	for _, pr := range prep.Plan.Projects {
		if pr.Action == plan.Apply {
			done[pr.Name] = make(chan struct{})
		}
	}
	record := func(o Outcome, rec *state.Project) error {
		mu.Lock()
		defer mu.Unlock()
		outcomes[o.Project] = o
		if rec != nil {
			records[o.Project] = rec
		} else if o.Result == Removed {
			delete(records, o.Project)
		}
		if err := r.Store.SaveProjects(records); err != nil {
			// What runs changed: keep the record in memory, so neither the
			// rollback target nor the plan is lost, and write it next cycle.
			r.unsaved = maps.Clone(records)
			return fmt.Errorf("record what %s runs in the state directory (kept in memory, written again next cycle): %w", o.Project, err)
		}
		return nil
	}
	var saveErr error
	for _, pr := range prep.Plan.Projects {
		if pr.Action != plan.Apply {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[pr.Name])
			for _, dep := range pr.After {
				ch, ok := done[dep]
				if !ok {
					continue
				}
				<-ch
				mu.Lock()
				o := outcomes[dep]
				mu.Unlock()
				if o.Result != Applied {
					r.log().Warn("skipped", "project", pr.Name, "after", dep, "because", o.Result)
					record(Outcome{Project: pr.Name, Result: Skipped, Err: fmt.Errorf("skipped: %s, which it follows, %s", dep, o.Result)}, nil)
					return
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				record(Outcome{Project: pr.Name, Result: Skipped, Err: ctx.Err()}, nil)
				return
			}
			defer func() { <-sem }()
			unlock, ok := r.tryLock(pr.Name)
			if !ok {
				record(Outcome{Project: pr.Name, Result: Waiting, Err: fmt.Errorf("%s: a job (a backup or restore) is running on it; applied next cycle", pr.Name)}, nil)
				return
			}
			defer unlock()
			mu.Lock()
			prev := records[pr.Name]
			mu.Unlock()
			o, rec := r.applyProject(ctx, prep, pr, prev)
			if err := record(o, rec); err != nil {
				mu.Lock()
				saveErr = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if saveErr != nil {
		return rep, saveErr
	}
	var errs []error
	for _, pr := range prep.Plan.Projects {
		var o Outcome
		switch pr.Action {
		case plan.Apply:
			o = outcomes[pr.Name]
		case plan.Remove:
			o = Outcome{Project: pr.Name, Result: Removed}
			unlock, ok := r.tryLock(pr.Name)
			if !ok {
				o = Outcome{Project: pr.Name, Result: Waiting, Err: fmt.Errorf("%s: a job (a backup or restore) is running on it; removed next cycle", pr.Name)}
				break
			}
			err := r.Engine.Remove(ctx, pr.Name)
			unlock()
			if err != nil {
				o = Outcome{Project: pr.Name, Result: Failed, Err: fmt.Errorf("remove %s: %w", pr.Name, err)}
			} else {
				r.log().Info("removed", "project", pr.Name, "reason", pr.Reason)
				if err := record(o, nil); err != nil {
					return rep, err
				}
			}
		case plan.Hold:
			o = Outcome{Project: pr.Name, Result: Held, Err: errors.New(pr.Reason)}
		case plan.Refuse, plan.Guarded:
			o = Outcome{Project: pr.Name, Result: Refused, Err: fmt.Errorf("%s: %s", pr.Name, pr.Reason)}
		default:
			o = Outcome{Project: pr.Name, Result: Unchanged}
		}
		rep.Outcomes = append(rep.Outcomes, o)
		switch o.Result {
		case Failed, Refused, Skipped:
			errs = append(errs, o.Err)
		case RolledBack, TakenDown:
			errs = append(errs, fmt.Errorf("%w: %s: %v", ErrReleaseFailed, pr.Name, o.Err))
		}
	}
	if err := r.Store.PruneSnapshots(lastGood(records)); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// applyProject converges one project and, when its release fails, rolls it
// back. It returns the record to keep, or nil to keep the previous one.
func (r *Reconciler) applyProject(ctx context.Context, prep *Prepared, pr plan.Project, prev *state.Project) (Outcome, *state.Project) {
	t := prep.projects[pr.Name]
	log := r.log().With("project", pr.Name, "commit", prep.Commit)
	for _, c := range pr.Changes {
		log.Info("change", "service", c.Service, "action", c.Action, "reason", c.Reason, "drift", c.Drift)
	}
	timeout := t.project.App.HealthTimeoutOr(prep.repo.Fleet)
	// The snapshot first: a release that cannot be rolled back is not
	// started (the state disk full changes nothing in Docker).
	if err := r.Store.SaveSnapshot(prep.Commit, prep.dir); err != nil {
		log.Error("cannot write the rollback snapshot; nothing changed", "err", err)
		return Outcome{Project: pr.Name, Result: Failed, Err: fmt.Errorf("state directory: %w", err)}, nil
	}
	if err := r.materialise(t.project); err != nil {
		// The host's disk, not the release: nothing was changed in Docker.
		log.Error("cannot prepare the project directory", "err", err)
		return Outcome{Project: pr.Name, Result: Failed, Err: err}, nil
	}
	pulled := false
	// Only a policy that can refuse costs a scan (and a pull of its own).
	// Before the backup of an upgrade: a refused image changes nothing.
	if policy := prep.repo.ScanPolicyOf(prep.repo.Hosts[r.Host], pr.Name); r.Gate != nil && policy.RefuseSeverity != "" {
		if o, rec, stop := r.admit(ctx, prep, pr, prev, policy, log); stop {
			return o, rec
		}
		pulled = true
	}
	if r.BeforeUpgrade != nil && t.project.App.Backup.UpgradeBackup() && upgrades(pr) {
		log.Info("backing up before the upgrade")
		if err := r.BeforeUpgrade(ctx, prep.Rendered(), pr.Name); err != nil {
			err = fmt.Errorf("the backup before its upgrade failed, so the upgrade waits (tried again next cycle; app.yaml backup.before_upgrade: false turns it off): %w", prep.redact.Err(err))
			log.Error("upgrade waits", "err", err)
			return Outcome{Project: pr.Name, Result: Waiting, Err: err}, nil
		}
	}
	err := r.Engine.Apply(ctx, t.project.Compose, engine.ApplyOptions{Force: pr.Force, Timeout: timeout, Soak: t.project.App.SoakOr(prep.repo.Fleet), Pulled: pulled})
	if err == nil && r.Probes != nil {
		err = r.Probes.Verify(ctx, t.project, prep.redact.Text, timeout)
	}
	if err == nil {
		log.Info("applied")
		return Outcome{Project: pr.Name, Result: Applied}, r.recordOf(prep, prep.Commit, t)
	}
	if isEngineDown(ctx, err) {
		// Not the release's fault: keep everything as it is and retry.
		err = fmt.Errorf("%w: %w", engine.ErrEngine, prep.redact.OutsideErr(err))
		log.Warn("engine unavailable; will retry", "err", err)
		return Outcome{Project: pr.Name, Result: Failed, Err: err}, nil
	}
	if errors.Is(err, engine.ErrResources) {
		// The host is short of something: never the commit's fault, so it
		// is not held; the next cycle tries again (after the backoff).
		err = fmt.Errorf("%w: %w", engine.ErrResources, prep.redact.OutsideErr(err))
		log.Error("engine out of resources; will retry", "err", err)
		return Outcome{Project: pr.Name, Result: Failed, Err: err}, nil
	}
	err = prep.redact.OutsideErr(err)
	log.Error("release failed", "err", err)
	rec := r.rollback(ctx, prep, pr, prev, log)
	rec.FailedCommit, rec.FailedError, rec.FailedAt = prep.Commit, abbrev.Line(err.Error()), r.now()
	if rec.LastGood == "" {
		return Outcome{Project: pr.Name, Result: TakenDown, Err: err}, rec
	}
	return Outcome{Project: pr.Name, Result: RolledBack, Err: err}, rec
}

// admit pulls a project's images and asks the Gate about the new ones,
// before any container is created. stop is set when the release must not
// go on: a refusal holds the commit for the project (as a failed release
// is) and changes nothing in Docker; an engine or gate that cannot answer
// now is retried next cycle.
func (r *Reconciler) admit(ctx context.Context, prep *Prepared, pr plan.Project, prev *state.Project, policy desired.ScanPolicy, log *slog.Logger) (o Outcome, rec *state.Project, stop bool) {
	t := prep.projects[pr.Name]
	ids, err := r.Engine.Pull(ctx, t.project.Compose)
	if err != nil {
		err = prep.redact.OutsideErr(err)
		if isEngineDown(ctx, err) || errors.Is(err, engine.ErrResources) {
			log.Warn("pull failed; will retry", "err", err)
			return Outcome{Project: pr.Name, Result: Failed, Err: err}, nil, true
		}
		log.Error("pull failed; nothing changed", "err", err)
		return Outcome{Project: pr.Name, Result: Failed, Err: err}, held(prev, prep.Commit, err, r.now()), true
	}
	fresh := map[string]string{}
	for ref, id := range ids {
		if !slices.Contains(prep.running[pr.Name], id) {
			// The reference only names the image in messages and logs;
			// it may be made of a secret.
			fresh[prep.redact.Text(ref)] = id
		}
	}
	err = r.Gate.Admit(ctx, pr.Name, policy, fresh)
	if err == nil {
		return Outcome{}, nil, false
	}
	err = prep.redact.OutsideErr(err)
	var tmp interface{ Temporary() bool }
	if ctx.Err() != nil || (errors.As(err, &tmp) && tmp.Temporary()) {
		log.Warn("the gate cannot decide; will retry", "err", err)
		return Outcome{Project: pr.Name, Result: Failed, Err: err}, nil, true
	}
	err = fmt.Errorf("%w: %w", ErrImageRefused, err)
	log.Error("release refused; the project keeps running what it ran", "err", err)
	return Outcome{Project: pr.Name, Result: Refused, Err: err}, held(prev, prep.Commit, err, r.now()), true
}

// held returns prev (what runs, unchanged) with commit marked failed.
func held(prev *state.Project, commit string, err error, at time.Time) *state.Project {
	rec := &state.Project{Services: map[string]state.Service{}}
	if prev != nil {
		c := *prev
		c.Services = maps.Clone(prev.Services)
		rec = &c
	}
	rec.FailedCommit, rec.FailedError, rec.FailedAt = commit, abbrev.Line(err.Error()), at
	return rec
}

// upgrades reports whether pr recreates an existing service for another
// image.
func upgrades(pr plan.Project) bool {
	for _, c := range pr.Changes {
		if c.Action == plan.Recreate && c.Image {
			return true
		}
	}
	return false
}

func (r *Reconciler) tryLock(project string) (func(), bool) {
	if r.Locks == nil {
		return func() {}, true
	}
	return r.Locks.TryLock(project)
}

// rollback brings a failed project back to its last-known-good commit's
// rendering, or takes it down (volumes kept) when it never had one.
func (r *Reconciler) rollback(ctx context.Context, prep *Prepared, pr plan.Project, prev *state.Project, log *slog.Logger) *state.Project {
	name := pr.Name
	if prev != nil && prev.LastGood != "" {
		if dir, ok := r.Store.Snapshot(prev.LastGood); ok {
			t, err := r.renderAt(ctx, dir, prev.LastGood, name)
			if err == nil {
				err = r.materialise(t.project)
			}
			if err == nil {
				// Recreate what the failed release touched; Compose's hashes
				// cannot see a secret or a moved tag going back.
				var force []string
				for _, c := range pr.Changes {
					if _, ok := t.project.Compose.Services[c.Service]; ok {
						force = append(force, c.Service)
					}
				}
				// No soak: going back is the best there is.
				err = r.Engine.Apply(ctx, t.project.Compose, engine.ApplyOptions{Force: force, Timeout: t.project.App.HealthTimeoutOr(prep.repo.Fleet)})
			}
			if err == nil {
				log.Warn("rolled back", "to", prev.LastGood)
				return r.recordOf(prep, prev.LastGood, t)
			}
			log.Error("rollback failed; taking the project down", "to", prev.LastGood, "err", prep.redact.OutsideErr(err))
		}
	}
	if err := r.Engine.Remove(ctx, name); err != nil {
		log.Error("take down failed", "err", prep.redact.OutsideErr(err))
	} else {
		log.Warn("taken down; volumes kept")
	}
	return &state.Project{Services: map[string]state.Service{}}
}

// renderAt renders one project of the host from a snapshot, with the
// secrets decrypted from that commit.
func (r *Reconciler) renderAt(ctx context.Context, dir, commit, name string) (*target, error) {
	repo, ps := desired.Load(dir)
	if ps.HasErrors() {
		return nil, ps.Err()
	}
	repo.ProjectsDir = r.Store.ProjectsDir()
	h, ok := repo.Hosts[r.Host]
	if !ok {
		return nil, fmt.Errorf("host %s not in snapshot %s", r.Host, commit)
	}
	secrets, err := repo.HostSecrets(h, r.Decrypter)
	if err != nil {
		return nil, err
	}
	targets, err := r.targets(ctx, repo, secrets, commit, plan.Observed{})
	if err != nil {
		return nil, err
	}
	t, ok := targets[name]
	if !ok {
		return nil, fmt.Errorf("%s not in snapshot %s", name, commit)
	}
	return t, nil
}

func (r *Reconciler) recordOf(prep *Prepared, commit string, t *target) *state.Project {
	rec := &state.Project{Commit: commit, AppliedAt: r.now(), LastGood: commit, Services: map[string]state.Service{}}
	// The settings as applied, for the next plan to name what changed; a
	// project that cannot say them is recorded without.
	fields := t.fields
	if key, err := r.Store.HashKey(); fields == nil && err == nil {
		fields, _ = t.project.Fields(prep.secrets, key)
	}
	for _, m := range t.project.Mounts {
		if m.Data() {
			rec.Data = append(rec.Data, m.Path)
		}
	}
	for name, s := range t.project.Compose.Services {
		rec.Services[name] = state.Service{ConfigHash: t.hashes[name], Image: s.Image, Secrets: t.secrets[name], Fields: fields[name]}
	}
	return rec
}

func lastGood(records state.Projects) []string {
	var keep []string
	for _, rec := range records {
		if rec.LastGood != "" {
			keep = append(keep, rec.LastGood)
		}
	}
	return keep
}

func isEngineDown(ctx context.Context, err error) bool {
	return errors.Is(err, engine.ErrEngine) || ctx.Err() != nil
}

func (r *Reconciler) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

func (r *Reconciler) parallel() int {
	if r.Parallel <= 0 {
		return 4
	}
	return r.Parallel
}

func (r *Reconciler) now() time.Time {
	if r.Now == nil {
		return time.Now().UTC()
	}
	return r.Now()
}
