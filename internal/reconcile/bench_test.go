package reconcile

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/state"
	"github.com/syncd-dev/syncd/internal/testenv"
)

const benchImage = "syncd-demoweb:1.0.0"

// benchFleet is a repository of n one-service apps on one host, all on one
// external network (an engine's default address pools hold ~30 networks).
type benchFleet struct {
	dir, host, network string
	apps               []string
	r                  *Reconciler
}

func newBenchFleet(b *testing.B, n int) *benchFleet {
	b.Helper()
	testenv.DemoImage(b, benchImage, false)
	f := &benchFleet{dir: b.TempDir(), host: fmt.Sprintf("bench%d", time.Now().UnixNano()%1e6)}
	f.network = testenv.ProjectName(b)
	testenv.DockerCLI(b, "network", "create", f.network)
	b.Cleanup(func() { exec.Command("docker", "network", "rm", f.network).Run() })
	// Fifty healthchecks a second are more execs than a 2-core engine
	// keeps up with; the no-op cycle does not wait for health anyway.
	interval := "1s"
	if n > 10 {
		interval = "15s"
	}
	// No soak: the baseline, docker compose up, has none.
	write(b, filepath.Join(f.dir, "syncd.yaml"), "defaults:\n  soak: 0s\n")
	for i := 0; i < n; i++ {
		name := testenv.ProjectName(b)
		f.apps = append(f.apps, name)
		write(b, filepath.Join(f.dir, "apps", name, "compose.yaml"), fmt.Sprintf(`services:
  web:
    image: %s
    environment:
      DEMO_MESSAGE: app %d
    healthcheck:
      test: ["CMD", "/demoweb", "healthcheck"]
      interval: %s
      retries: 5
      start_period: 30s
networks:
  default:
    name: %s
    external: true
`, benchImage, i, interval, f.network))
	}
	write(b, filepath.Join(f.dir, "hosts", f.host, "host.yaml"), "apps: ["+strings.Join(f.apps, ", ")+"]\n")
	eng, err := engine.New(context.Background(), engine.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close() })
	store, err := state.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	f.r = &Reconciler{Host: f.host, Engine: eng, Store: store}
	return f
}

func write(b *testing.B, p, s string) {
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		b.Fatal(err)
	}
}

func (f *benchFleet) sync(b *testing.B) Report {
	rev, err := source.Local{Dir: f.dir}.Revision()
	if err != nil {
		b.Fatal(err)
	}
	rep, err := f.r.Sync(context.Background(), Source{Dir: f.dir, Commit: rev})
	if err != nil {
		b.Fatal(err)
	}
	return rep
}

// BenchmarkNoOpCycle: a cycle with nothing to do, for 1, 10 and 50
// projects, against what a user would otherwise run from cron: `git pull`
// then `docker compose up -d` for each project (the Compose CLI v5.5.1
// built from tools/compose), measured in the same run.
func BenchmarkNoOpCycle(b *testing.B) {
	compose := testenv.Tool(b, "docker-compose")
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("projects=%d", n), func(b *testing.B) {
			f := newBenchFleet(b, n)
			f.sync(b) // deploy once
			if rep := f.sync(b); rep.Plan.Changes() {
				b.Fatalf("second cycle still has changes:\n%s", rep.Plan)
			}
			// The baseline's checkout: a clone it pulls from.
			origin := b.TempDir()
			testenv.Git(b, origin, "init", "-q", "-b", "main")
			testenv.Git(b, origin, "commit", "-q", "--allow-empty", "-m", "x")
			clone := filepath.Join(b.TempDir(), "clone")
			testenv.Git(b, "", "clone", "-q", origin, clone)

			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if rep := f.sync(b); rep.Plan.Changes() {
					b.Fatalf("no-op cycle changed something:\n%s", rep.Plan)
				}
			}
			syncd := time.Since(start) / time.Duration(b.N)
			b.StopTimer()

			start = time.Now()
			for i := 0; i < b.N; i++ {
				testenv.Git(b, clone, "pull", "-q")
				for _, app := range f.apps {
					cmd := exec.Command(compose, "-p", app, "-f", filepath.Join(f.dir, "apps", app, "compose.yaml"), "up", "-d", "--quiet-pull")
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("docker compose up -d: %v\n%s", err, out)
					}
				}
			}
			baseline := time.Since(start) / time.Duration(b.N)
			b.ReportMetric(float64(syncd.Microseconds())/1000, "syncd-ms/cycle")
			b.ReportMetric(float64(baseline.Microseconds())/1000, "baseline-ms/cycle")
			b.ReportMetric(float64(baseline)/float64(syncd), "x-cheaper")
		})
	}
}

// BenchmarkFirstDeploy: a cycle that deploys one new service, against the
// engine's bare Compose Up (create, start, wait for health) of the same
// project, measured in the same run.
func BenchmarkFirstDeploy(b *testing.B) {
	f := newBenchFleet(b, 1)
	app := f.apps[0]
	down := func() {
		if err := f.r.Engine.Remove(context.Background(), app); err != nil {
			b.Fatal(err)
		}
		os.Remove(filepath.Join(f.r.Store.Dir(), "projects.json"))
	}
	var syncd, bare time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		rep := f.sync(b)
		syncd += time.Since(start)
		if got := rep.Outcomes[0].Result; got != Applied {
			b.Fatalf("first deploy: %s", got)
		}
		b.StopTimer()
		// The same rendered project, straight to the SDK.
		prep, err := f.r.Prepare(context.Background(), Source{Dir: f.dir, Commit: "bare"})
		if err != nil {
			b.Fatal(err)
		}
		down()
		p := prep.projects[app].project.Compose
		b.StartTimer()
		start = time.Now()
		if err := f.r.Engine.Apply(context.Background(), p, engine.ApplyOptions{Timeout: time.Minute}); err != nil {
			b.Fatal(err)
		}
		bare += time.Since(start)
		b.StopTimer()
		down()
		b.StartTimer()
	}
	b.ReportMetric(float64(syncd.Microseconds())/1000/float64(b.N), "syncd-ms/deploy")
	b.ReportMetric(float64(bare.Microseconds())/1000/float64(b.N), "bare-up-ms/deploy")
	b.ReportMetric(float64(syncd)/float64(bare), "ratio")
}
