package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/state"
)

// fakeEngine keeps projects in memory: enough for the decisions of a cycle.
// The real engine is exercised end to end in cmd/syncd.
type fakeEngine struct {
	mu       sync.Mutex
	projects map[string]*plan.ObservedProject
	calls    []string
	down     bool
	// fail, when set, is what Apply returns before it changes anything;
	// onApply runs inside each Apply (a fault during the apply).
	fail    error
	onApply func()
}

func newFake() *fakeEngine { return &fakeEngine{projects: map[string]*plan.ObservedProject{}} }

func (f *fakeEngine) Observe(_ context.Context, host string) (plan.Observed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := plan.Observed{Projects: map[string]*plan.ObservedProject{}, Images: map[string]string{}}
	for n, p := range f.projects {
		cp := *p
		cp.Containers = slices.Clone(p.Containers)
		o.Projects[n] = &cp
	}
	return o, nil
}

// Pull records the pull; an image's ID is made from its reference.
func (f *fakeEngine) Pull(_ context.Context, p *types.Project) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "pull "+p.Name+" "+images(p))
	if f.down {
		return nil, fmt.Errorf("%w: connection refused", engine.ErrEngine)
	}
	ids := map[string]string{}
	for _, s := range p.Services {
		ids[s.Image] = fakeImageID(s.Image)
	}
	return ids, nil
}

func fakeImageID(ref string) string { return "sha256:" + strings.Repeat("0", 10) + ref }

func (f *fakeEngine) Apply(_ context.Context, p *types.Project, opts engine.ApplyOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "apply "+p.Name+" "+images(p))
	if f.down {
		return fmt.Errorf("%w: connection refused", engine.ErrEngine)
	}
	if f.fail != nil {
		return f.fail
	}
	if f.onApply != nil {
		f.onApply()
	}
	hashes, err := engine.ServiceHashes(p)
	if err != nil {
		return err
	}
	op := &plan.ObservedProject{Name: p.Name, Owned: true}
	var bad error
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		op.Containers = append(op.Containers, plan.Container{
			ID: name + "-id", Name: p.Name + "-" + name + "-1", Service: name, State: "running",
			ConfigHash: hashes[name], SecretsHash: s.CustomLabels[plan.LabelSecrets], Image: s.Image, ImageID: fakeImageID(s.Image),
		})
		if strings.HasSuffix(s.Image, ":bad") {
			bad = fmt.Errorf("%w: service %s is unhealthy", engine.ErrUnhealthy, name)
		}
	}
	f.projects[p.Name] = op
	return bad
}

func (f *fakeEngine) Remove(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "remove "+name)
	delete(f.projects, name)
	return nil
}

func (f *fakeEngine) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	slices.Sort(c)
	return c
}

func images(p *types.Project) string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		out = append(out, p.Services[name].Image)
	}
	return strings.Join(out, ",")
}

// fixture is a desired-state repository in a temp dir with apps db and web
// (web after db) on host h1.
type fixture struct {
	t   *testing.T
	dir string
	eng *fakeEngine
	r   *Reconciler
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, dir: t.TempDir(), eng: newFake()}
	f.write("apps/db/compose.yaml", "services:\n  db:\n    image: postgres:${PG_VERSION}\n")
	f.write("apps/web/app.yaml", "after: [db]\n")
	f.write("apps/web/compose.yaml", "services:\n  app:\n    image: demoweb:${WEB_VERSION}\n    environment:\n      MSG: ${MSG}\n")
	f.host("1.0.0", "hello")
	store, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f.r = &Reconciler{Host: "h1", Engine: f.eng, Store: store}
	return f
}

func (f *fixture) write(p, s string) {
	f.t.Helper()
	full := filepath.Join(f.dir, p)
	os.MkdirAll(filepath.Dir(full), 0o755)
	if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) host(webVersion, msg string, apps ...string) {
	if apps == nil {
		apps = []string{"db", "web"}
	}
	f.write("hosts/h1/host.yaml", fmt.Sprintf("apps: [%s]\nvars:\n  PG_VERSION: 16.6-alpine\n  WEB_VERSION: %q\n  MSG: %q\n", strings.Join(apps, ", "), webVersion, msg))
}

func (f *fixture) sync() (Report, error) {
	f.t.Helper()
	rev, err := source.Local{Dir: f.dir}.Revision()
	if err != nil {
		f.t.Fatal(err)
	}
	return f.r.Sync(context.Background(), Source{Dir: f.dir, Commit: rev})
}

func results(rep Report) string {
	var out []string
	for _, o := range rep.Outcomes {
		out = append(out, o.Project+"="+string(o.Result))
	}
	return strings.Join(out, " ")
}

func TestFirstSyncThenNoOp(t *testing.T) {
	f := newFixture(t)
	rep, err := f.sync()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := results(rep), "db=applied web=applied"; got != want {
		t.Errorf("first sync: %s, want %s", got, want)
	}
	f.eng.takeCalls()
	rep, err = f.sync()
	if err != nil {
		t.Fatal(err)
	}
	if calls := f.eng.takeCalls(); len(calls) != 0 {
		t.Errorf("no-op sync called the engine: %v", calls)
	}
	if rep.Plan.Changes() {
		t.Errorf("no-op plan has changes:\n%s", rep.Plan)
	}
}

func TestVariableChangeAppliesOnlyItsProject(t *testing.T) {
	f := newFixture(t)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	f.eng.takeCalls()
	f.host("1.0.0", "changed")
	rep, err := f.sync()
	if err != nil {
		t.Fatal(err)
	}
	if calls := f.eng.takeCalls(); !slices.Equal(calls, []string{"apply web demoweb:1.0.0"}) {
		t.Errorf("calls %v, want only web", calls)
	}
	if !strings.Contains(rep.Plan.String(), "app: recreate (configuration changed)") {
		t.Errorf("plan does not say why:\n%s", rep.Plan)
	}
}

func TestFailedReleaseRollsBackAndIsHeld(t *testing.T) {
	f := newFixture(t)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	f.eng.takeCalls()
	f.host("bad", "hello")
	rep, err := f.sync()
	if !errors.Is(err, ErrReleaseFailed) {
		t.Fatalf("err = %v, want ErrReleaseFailed", err)
	}
	if got := results(rep); got != "db=unchanged web=rolled back" {
		t.Errorf("outcomes %s", got)
	}
	if calls := f.eng.takeCalls(); !slices.Equal(calls, []string{"apply web demoweb:1.0.0", "apply web demoweb:bad"}) {
		t.Errorf("calls %v, want the bad apply then the rollback", calls)
	}
	if img := f.eng.projects["web"].Containers[0].Image; img != "demoweb:1.0.0" {
		t.Errorf("web runs %s after rollback", img)
	}
	// The same commit again: held, nothing tried.
	rep, err = f.sync()
	if err != nil {
		t.Fatalf("held cycle failed: %v", err)
	}
	if calls := f.eng.takeCalls(); len(calls) != 0 {
		t.Errorf("held commit retried: %v", calls)
	}
	if got := results(rep); got != "db=unchanged web=held" {
		t.Errorf("outcomes %s", got)
	}
	// A newer commit is tried.
	f.host("1.1.0", "hello")
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	if calls := f.eng.takeCalls(); !slices.Equal(calls, []string{"apply web demoweb:1.1.0"}) {
		t.Errorf("calls %v", calls)
	}
}

func TestFirstReleaseFailingIsTakenDownAndFollowersSkipped(t *testing.T) {
	f := newFixture(t)
	f.write("apps/db/compose.yaml", "services:\n  db:\n    image: postgres:bad\n")
	rep, err := f.sync()
	if !errors.Is(err, ErrReleaseFailed) {
		t.Fatalf("err = %v", err)
	}
	if got := results(rep); got != "db=taken down web=skipped" {
		t.Errorf("outcomes %s", got)
	}
	if _, ok := f.eng.projects["db"]; ok {
		t.Error("failed first release left running")
	}
	if _, ok := f.eng.projects["web"]; ok {
		t.Error("follower of a failed project applied")
	}
}

func TestEngineDownBlamesNoCommit(t *testing.T) {
	f := newFixture(t)
	f.eng.down = true
	_, err := f.sync()
	if !errors.Is(err, engine.ErrEngine) {
		t.Fatalf("err = %v, want ErrEngine", err)
	}
	recs, _ := f.r.Store.Projects()
	for n, r := range recs {
		if r.FailedCommit != "" {
			t.Errorf("%s: commit blamed for the engine: %+v", n, r)
		}
	}
	f.eng.down = false
	if _, err := f.sync(); err != nil {
		t.Fatalf("recovery: %v", err)
	}
}

func TestInvalidRepositoryChangesNothing(t *testing.T) {
	f := newFixture(t)
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	f.eng.takeCalls()
	f.write("apps/web/compose.yaml", "services:\n  app:\n    image: demoweb:${UNDEFINED_THING}\n")
	_, err := f.sync()
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "UNDEFINED_THING") {
		t.Fatalf("err = %v", err)
	}
	if calls := f.eng.takeCalls(); len(calls) != 0 {
		t.Errorf("invalid repository reached the engine: %v", calls)
	}
}

func TestPruneRemovesAndForgets(t *testing.T) {
	f := newFixture(t)
	f.write("apps/extra/compose.yaml", "services:\n  x:\n    image: demoweb:1.0.0\n")
	f.host("1.0.0", "hi", "db", "web", "extra")
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	f.host("1.0.0", "hi", "db", "web")
	rep, err := f.sync()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(results(rep), "extra=removed") {
		t.Errorf("outcomes %s", results(rep))
	}
	recs, _ := f.r.Store.Projects()
	if _, ok := recs["extra"]; ok {
		t.Error("removed project still recorded")
	}
}

func TestConfigContentChangeRecreatesByForce(t *testing.T) {
	f := newFixture(t)
	f.write("apps/web/compose.yaml", "services:\n  app:\n    image: demoweb:1.0.0\n    configs: [motd]\nconfigs:\n  motd:\n    content: ${MSG}\n")
	if _, err := f.sync(); err != nil {
		t.Fatal(err)
	}
	f.host("1.0.0", "changed")
	rep, err := f.sync()
	if err != nil {
		t.Fatal(err)
	}
	var web plan.Project
	for _, p := range rep.Plan.Projects {
		if p.Name == "web" {
			web = p
		}
	}
	if !slices.Equal(web.Force, []string{"app"}) || !strings.Contains(rep.Plan.String(), "app: recreate (content changed: config motd)") {
		t.Errorf("force %v, plan:\n%s", web.Force, rep.Plan)
	}
}
