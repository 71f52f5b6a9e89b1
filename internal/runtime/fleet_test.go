package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/agent"
	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/state"
	"github.com/syncd-dev/syncd/internal/status"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// standIn is the engine of a simulated host: it keeps what it was told
// to run, and fails a release whose image is tagged "bad" (the commit the
// canaries must stop). The fleet is about Git, the gate and the status
// branch; the real engine is exercised in cmd/syncd.
type standIn struct {
	mu       sync.Mutex
	projects map[string]*plan.ObservedProject
	images   []string // every image it was asked to run
}

func (e *standIn) Observe(context.Context, string) (plan.Observed, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	o := plan.Observed{Projects: map[string]*plan.ObservedProject{}, Images: map[string]string{}}
	for n, p := range e.projects {
		o.Projects[n] = &plan.ObservedProject{Name: p.Name, Owned: true, Containers: slices.Clone(p.Containers)}
	}
	return o, nil
}

func (e *standIn) Apply(_ context.Context, p *types.Project, _ engine.ApplyOptions) error {
	hashes, err := engine.ServiceHashes(p)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	op := &plan.ObservedProject{Name: p.Name, Owned: true}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		e.images = append(e.images, s.Image)
		if strings.HasSuffix(s.Image, ":bad") {
			return fmt.Errorf("%w: service %s is unhealthy", engine.ErrUnhealthy, name)
		}
		op.Containers = append(op.Containers, plan.Container{ID: p.Name + name, Service: name, State: "running", Image: s.Image,
			ConfigHash: hashes[name], SecretsHash: s.CustomLabels[plan.LabelSecrets]})
	}
	e.projects[p.Name] = op
	return nil
}

// Pull is never asked for: the simulated hosts have no scan policy.
func (e *standIn) Pull(context.Context, *types.Project) (map[string]string, error) {
	return nil, errors.New("the stand-in does not pull")
}

func (e *standIn) Remove(_ context.Context, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.projects, name)
	return nil
}

func (e *standIn) ran(image string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Contains(e.images, image)
}

// simClock is the fleet's clock: it moves by a poll interval per round.
type simClock struct{ ns atomic.Int64 }

func (c *simClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *simClock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func newSimClock(t time.Time) *simClock { c := &simClock{}; c.ns.Store(t.UnixNano()); return c }

type simHost struct {
	name string
	wave int
	eng  *standIn
	run  *Runtime
}

// sim is a fleet of in-process hosts on one loopback Git server.
type sim struct {
	tb       testing.TB
	server   *testenv.GitServer
	url      string
	work     string
	clock    *simClock
	hosts    []*simHost
	bake     time.Duration
	poll     time.Duration
	mu       sync.Mutex
	pushes   map[string]int // status pushes per host
	branches []*source.StatusBranches
	latency  []time.Duration
}

// waveOf puts 5% of the hosts (at least 2) in wave 0, 30% in wave 1 and
// the rest in wave 2.
func waveOf(i, n int) int {
	switch {
	case i < max(2, n/20):
		return 0
	case i < max(2, n/20)+n*3/10:
		return 1
	}
	return 2
}

func newSim(tb testing.TB, n int, bake, poll time.Duration) *sim {
	s := &sim{tb: tb, server: testenv.NewGitServer(tb), work: tb.TempDir(), clock: newSimClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)),
		bake: bake, poll: poll, pushes: map[string]int{}}
	s.url = s.server.InitBare(tb, "fleet")
	testenv.Git(tb, s.work, "init", "-q", "-b", "main")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := range n {
		name := fmt.Sprintf("h%03d", i)
		h := &simHost{name: name, wave: waveOf(i, n), eng: &standIn{projects: map[string]*plan.ObservedProject{}}}
		dir := tb.TempDir()
		store, err := state.Open(filepath.Join(dir, "state"))
		if err != nil {
			tb.Fatal(err)
		}
		// Every host signs its documents; every other one has its key
		// enrolled in main, the others' count unsigned, as before status
		// keys: a fleet half way through enrolling them.
		key, _, err := status.OpenKey(store.Dir(), name)
		if err != nil {
			tb.Fatal(err)
		}
		hostYAML := fmt.Sprintf("apps: [web]\nwave: %d\n", h.wave)
		if i%2 == 0 {
			hostYAML += "status_key: " + key.Public() + "\n"
		}
		s.write(filepath.Join("hosts", name, "host.yaml"), hostYAML)
		src := &source.Git{URL: s.url, Dir: filepath.Join(dir, "state")}
		b := &source.StatusBranches{Git: src}
		s.branches = append(s.branches, b)
		w := &status.Writer{Publisher: b, Branches: b, Dir: filepath.Join(dir, "state", "status-repo"), StateDir: store.Dir(), Host: name,
			Now: s.clock.Now, Key: key, Pushed: func(took time.Duration) { s.pushed(name, took) }}
		rec := &reconcile.Reconciler{Host: name, Engine: h.eng, Store: store, Logger: quiet, Now: s.clock.Now}
		h.run = New(Deps{Host: name, Source: src, Reconciler: rec, Engine: h.eng, Status: w, History: src, Now: s.clock.Now, Log: quiet})
		s.hosts = append(s.hosts, h)
	}
	return s
}

func (s *sim) pushed(host string, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pushes[host]++
	s.latency = append(s.latency, took)
}

func (s *sim) write(rel, content string) {
	p := filepath.Join(s.work, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		s.tb.Fatal(err)
	}
}

// release commits a release of web tagged tag and pushes it.
func (s *sim) release(tag string) string {
	s.write("syncd.yaml", fmt.Sprintf("defaults:\n  soak: 0s\nwaves:\n  bake_time: %s\n", s.bake))
	s.write("apps/web/compose.yaml", "services:\n  web:\n    image: registry.invalid/web:"+tag+"\n")
	testenv.Git(s.tb, s.work, "add", "-A")
	testenv.Git(s.tb, s.work, "commit", "-q", "-m", "release "+tag)
	testenv.Git(s.tb, s.work, "push", "-q", s.url, "HEAD:main")
	return testenv.Git(s.tb, s.work, "rev-parse", "HEAD")
}

// round moves the clock by a poll interval and polls every host, a few
// at a time as hosts of a real fleet would overlap.
func (s *sim) round(reason string) {
	s.clock.Add(s.poll)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, h := range s.hosts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			h.run.Cycle(context.Background(), reason)
		}()
	}
	wg.Wait()
}

// until runs rounds until every host satisfies ok, at most limit rounds;
// it returns the rounds it took.
func (s *sim) until(limit int, ok func(*simHost) bool) int {
	for r := 1; r <= limit; r++ {
		s.round(agent.ReasonPoll)
		if !slices.ContainsFunc(s.hosts, func(h *simHost) bool { return !ok(h) }) {
			return r
		}
	}
	s.tb.Fatalf("the fleet did not get there in %d rounds", limit)
	return 0
}

func (h *simHost) runs(commit string) bool {
	return h.run.appliedCommit() == commit
}

// statusCommits counts the commits on the hosts' status branches.
func (s *sim) statusCommits() int {
	out, err := exec.Command("git", "-C", filepath.Join(s.server.Root, "fleet.git"), "rev-list", "--count", "--branches="+status.DefaultBranch+"-*").Output()
	if err != nil {
		s.tb.Fatal(err)
	}
	var n int
	fmt.Sscan(string(out), &n)
	return n
}

// check asserts that nothing was lost: every push counted is a commit on
// the status branch, each host's last document there is its own and says
// what it runs, and every commit touches exactly one host's file, its
// author's.
func (s *sim) check() {
	s.tb.Helper()
	total := 0
	for _, n := range s.pushes {
		total += n
	}
	if got := s.statusCommits(); got != total {
		s.tb.Errorf("the status branch has %d commits, the hosts pushed %d", got, total)
	}
	docs, err := status.ReadAll(context.Background(), &source.StatusBranches{Git: &source.Git{URL: s.url}})
	if err != nil || len(docs) != len(s.hosts) {
		s.tb.Fatalf("status branch: %d documents (%v), want %d", len(docs), err, len(s.hosts))
	}
	for i, d := range docs {
		h := s.hosts[i]
		if d.Host != h.name || d.AppliedCommit != h.run.appliedCommit() || d.Wave != h.wave {
			s.tb.Errorf("%s's document on the status branch: host %s wave %d applied %s; it runs %s", h.name, d.Host, d.Wave, d.AppliedCommit, h.run.appliedCommit())
		}
	}
	out, err := exec.Command("git", "-C", filepath.Join(s.server.Root, "fleet.git"), "log", "--format=%x00%an", "--name-only", "--branches="+status.DefaultBranch+"-*").Output()
	if err != nil {
		s.tb.Fatal(err)
	}
	for _, c := range strings.Split(string(out), "\x00")[1:] {
		f := strings.Fields(c) // syncd HOST hosts/HOST.yaml hosts/HOST.yaml.sig
		if len(f) != 4 || f[2] != "hosts/"+f[1]+".yaml" || f[3] != "hosts/"+f[1]+".yaml.sig" {
			s.tb.Errorf("a status commit touches another host's file, or not the document and its signature: %q", c)
		}
	}
}

type simFigures struct {
	hosts                           int
	bake                            time.Duration
	pushesPerHost                   float64
	goodRounds, badRounds           int
	goodWall                        time.Duration
	retriesPerHost                  float64
	quietRequestsPerHostPerMinute   float64
	p50, p99                        time.Duration
	badReachedWave1, badReachedMore int
}

// runSim rolls a good commit through the three waves past the bake time,
// then a bad one that the canaries fail, and measures.
func runSim(tb testing.TB, n int, bake time.Duration) simFigures {
	poll := time.Minute
	s := newSim(tb, n, bake, poll)
	f := simFigures{hosts: n, bake: bake}
	c0 := s.release("1")
	s.until(3*int(bake/poll)+6, func(h *simHost) bool { return h.runs(c0) })

	// Quiet: every host at the head; a poll is one ls-remote.
	before := s.server.Requests.Load()
	const quietRounds = 3
	for range quietRounds {
		s.round(agent.ReasonPoll)
	}
	f.quietRequestsPerHostPerMinute = float64(s.server.Requests.Load()-before) / float64(n) / (quietRounds * poll.Minutes())

	start := time.Now()
	good := s.release("2")
	f.goodRounds = s.until(3*int(bake/poll)+6, func(h *simHost) bool { return h.runs(good) })
	f.goodWall = time.Since(start)
	if min := 2 * int(bake/poll); f.goodRounds < min {
		tb.Errorf("the good commit reached the last wave in %d polls, before two bake times (%d)", f.goodRounds, min)
	}

	bad := s.release("bad")
	for range int(bake/poll) + 3 {
		s.round(agent.ReasonPoll)
	}
	for _, h := range s.hosts {
		switch {
		case h.wave == 0 && !h.eng.ran("registry.invalid/web:bad"):
			tb.Errorf("canary %s never tried the bad commit", h.name)
		case h.wave > 0 && h.eng.ran("registry.invalid/web:bad"):
			if h.wave == 1 {
				f.badReachedWave1++
			} else {
				f.badReachedMore++
			}
		}
		if h.wave > 0 && (h.run.rollout != agent.RolloutHalted || !h.runs(good)) {
			tb.Errorf("%s (wave %d): rollout %q, runs %s; want halted on %s", h.name, h.wave, h.run.rollout, h.run.appliedCommit(), abbrev.Commit(good))
		}
	}
	if f.badReachedWave1+f.badReachedMore > 0 {
		tb.Errorf("the bad commit reached %d host(s) of wave 1 and %d of wave 2", f.badReachedWave1, f.badReachedMore)
	}
	_ = bad
	s.check()
	retries, pushes := 0, 0
	for _, b := range s.branches {
		retries += int(b.Rejected.Load())
	}
	for _, n := range s.pushes {
		pushes += n
	}
	f.retriesPerHost = float64(retries) / float64(n)
	f.pushesPerHost = float64(pushes) / float64(n)
	slices.Sort(s.latency)
	f.p50, f.p99 = s.latency[len(s.latency)/2], s.latency[len(s.latency)*99/100]
	return f
}

func (f simFigures) String() string {
	return fmt.Sprintf("%d hosts: good commit at the last wave after %d polls (bake %s, poll 1m; %s wall), bad commit reached wave 1: %d, wave 2: %d; %.1f status pushes per host, %.2f retried per host; quiet: %.2f Git requests per host per minute; status push p50 %s p99 %s",
		f.hosts, f.goodRounds, f.bake, f.goodWall.Round(time.Millisecond), f.badReachedWave1, f.badReachedMore, f.pushesPerHost, f.retriesPerHost, f.quietRequestsPerHostPerMinute,
		f.p50.Round(time.Millisecond), f.p99.Round(time.Millisecond))
}

// TestFleetSimulation is the short version of BenchmarkFleet: 12 hosts,
// a shorter bake time.
func TestFleetSimulation(t *testing.T) {
	f := runSim(t, 12, 3*time.Minute)
	t.Log(f)
	if f.quietRequestsPerHostPerMinute > 1.01 {
		t.Errorf("a quiet poll costs %.2f requests, want 1", f.quietRequestsPerHostPerMinute)
	}
}

// fleetRuns keeps each size's figures: the testing package calls a
// benchmark once with b.N 1 and again with -benchtime's count, and one
// simulation of a fleet (minutes to an hour) says what there is to say.
var fleetRuns = map[int]simFigures{}

// BenchmarkFleet runs the simulation once for 100 hosts (bake 10 min) and
// once for 500 (bake 5 min: half the polls).
func BenchmarkFleet(b *testing.B) {
	for _, n := range []int{100, 500} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			bake := 10 * time.Minute
			if n > 100 {
				bake = 5 * time.Minute
			}
			f, ok := fleetRuns[n]
			if !ok {
				f = runSim(b, n, bake)
				fleetRuns[n] = f
			}
			b.ReportMetric(float64(f.goodRounds), "polls-to-last-wave")
			b.ReportMetric(f.retriesPerHost, "push-retries/host")
			b.ReportMetric(f.quietRequestsPerHostPerMinute, "quiet-requests/host/min")
			b.ReportMetric(float64(f.p50.Milliseconds()), "push-p50-ms")
			b.ReportMetric(float64(f.p99.Milliseconds()), "push-p99-ms")
			b.Log(f)
		})
	}
}
