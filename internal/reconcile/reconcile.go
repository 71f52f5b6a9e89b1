// Package reconcile runs one cycle: render the desired state of a host,
// observe the engine, plan, and apply the plan project by project with a
// health gate and rollback to the last-known-good commit.
//
// It owns the order of those steps and what is remembered between cycles,
// each step in its file: prepare.go (render, decrypt, observe, plan),
// admit.go (the scan gate), apply.go, rollback.go and record.go. It must
// not import the source or the agent. The engine sits behind the
// small Engine interface below.
package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"path/filepath"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

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

// ErrInvalid marks a repository that cannot be rendered: a person must fix
// it; nothing was changed.
var ErrInvalid = errors.New("the repository is invalid; nothing was changed")

// ErrSecrets marks a cycle stopped because the host's secrets cannot be
// decrypted (no key, the wrong key, a file that fails its MAC); nothing was
// changed.
var ErrSecrets = errors.New("cannot decrypt the host's secrets; nothing was changed")

// ErrOtherSyncd marks a host whose projects another syncd, with another
// state directory, manages on this engine: a person must stop one.
var ErrOtherSyncd = errors.New("another syncd manages this host's projects")

func (r *Reconciler) stateDir() string {
	dir, err := filepath.Abs(r.Store.Dir())
	if err != nil {
		return r.Store.Dir()
	}
	return dir
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
