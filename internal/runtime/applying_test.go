package runtime

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/syncd-dev/syncd/internal/agent"
	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/state"
	"github.com/syncd-dev/syncd/internal/status"
)

// blocking is a stand-in engine whose Apply waits until it is let go, and
// says when it has started.
type blocking struct {
	standIn
	started chan struct{}
	release chan struct{}
}

func (e *blocking) Apply(ctx context.Context, p *types.Project, o engine.ApplyOptions) error {
	close(e.started)
	<-e.release
	return e.standIn.Apply(ctx, p, o)
}

// TestStatusShowsApplyingWhileAnApplyRuns: while a cycle changes what runs
// (a pull, a health wait, a soak can take minutes), `syncd status` on the
// host reads the local document: it says applying, at which commit and
// which projects; once the apply ends, the cycle's own document replaces
// it.
func TestStatusShowsApplyingWhileAnApplyRuns(t *testing.T) {
	repo := t.TempDir()
	for name, content := range map[string]string{
		"syncd.yaml":            "defaults:\n  soak: 0s\n",
		"hosts/h1/host.yaml":    "apps: [web]\n",
		"apps/web/compose.yaml": "services:\n  web:\n    image: registry.invalid/web:1\n",
	} {
		p := filepath.Join(repo, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	store, err := state.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	eng := &blocking{standIn: standIn{projects: map[string]*plan.ObservedProject{}}, started: make(chan struct{}), release: make(chan struct{})}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec := &reconcile.Reconciler{Host: "h1", Engine: eng, Store: store, Logger: quiet}
	w := &status.Writer{StateDir: store.Dir(), Host: "h1"}
	run := New(Deps{Host: "h1", Source: source.Local{Dir: repo}, Reconciler: rec, Engine: eng, Status: w, Log: quiet})

	done := make(chan error, 1)
	go func() {
		_, err := run.Cycle(context.Background(), agent.ReasonStart)
		done <- err
	}()
	<-eng.started
	doc, err := status.ReadLocal(store.Dir())
	close(eng.release)
	if err != nil {
		t.Fatalf("no local status while the apply runs: %v", err)
	}
	if doc.State != status.Applying || !strings.Contains(doc.Message, "applying ") || !strings.Contains(doc.Message, "web") || doc.DesiredCommit == "" {
		t.Errorf("while the apply runs the local status is %s, %q (desired %q); want applying, naming the project", doc.State, doc.Message, doc.DesiredCommit)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if doc, err := status.ReadLocal(store.Dir()); err != nil || doc.State != status.Converged || doc.Message != "" {
		t.Errorf("after the apply: %s %q, %v; want converged", doc.State, doc.Message, err)
	}
}
