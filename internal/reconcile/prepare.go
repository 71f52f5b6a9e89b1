package reconcile

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/redact"
	"github.com/syncd-dev/syncd/internal/state"
)

// The prepare step: render the host at a commit, decrypt its secrets, look
// at the engine, and plan (pure, package plan).

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
			if r.Store.ReadOnly() {
				// plan, logs: nothing is taken over by a command that writes nothing.
				continue
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
