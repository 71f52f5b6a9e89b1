package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// The agent's benchmarks run the real binary (built once per benchmark with
// the flags of `make build`) as a subprocess, so its own RSS and CPU time
// are what /proc says, against a Git server on loopback and the local
// Docker engine. Each compares with what a user would otherwise run, in the
// same run: `git pull`, and `docker compose up -d --wait` (the Compose CLI
// built from tools/compose).

const benchAgentImage = "syncd-demoweb:1.0.0"

// benchFleet is a desired-state repository pushed to a loopback Git server:
// one host running n one-service apps, every project on one external
// network (an engine's default address pools hold only ~30 networks).
type benchFleet struct {
	server  *testenv.GitServer
	url     string
	work    string // the Git work tree commits are made in
	host    string
	network string
	apps    []string
}

// newBenchRepo makes the repository with n apps and pushes a first commit
// with vars; it needs no Docker (the network is made by withNetwork).
func newBenchRepo(b *testing.B, n int, network string, vars map[string]string) *benchFleet {
	b.Helper()
	f := &benchFleet{server: testenv.NewGitServer(b), work: b.TempDir(), host: "bench" + benchRandom(3), network: network}
	f.url = f.server.InitBare(b, "fleet")
	testenv.Git(b, f.work, "init", "-q", "-b", "main")
	for i := 0; i < n; i++ {
		app := "app" + strconv.Itoa(i)
		if network != "" {
			app = testenv.ProjectName(b) // removed when the benchmark ends
		}
		f.apps = append(f.apps, app)
		benchWrite(b, filepath.Join(f.work, "apps", app, "compose.yaml"), benchCompose(network))
	}
	// No soak: the baseline, docker compose up --wait, has none.
	benchWrite(b, filepath.Join(f.work, "syncd.yaml"), "defaults:\n  soak: 0s\n")
	f.commit(b, vars)
	return f
}

// newBenchFleet is newBenchRepo on Docker: the demo image and the network.
func newBenchFleet(b *testing.B, n int, vars map[string]string) *benchFleet {
	b.Helper()
	testenv.DemoImage(b, benchAgentImage, false)
	network := testenv.ProjectName(b)
	testenv.DockerCLI(b, "network", "create", network)
	// Registered before the apps' names: it runs after their containers are gone.
	b.Cleanup(func() { exec.Command("docker", "network", "rm", network).Run() })
	return newBenchRepo(b, n, network, vars)
}

// benchCompose is every app's compose file: DEMO_MESSAGE comes from the
// host variable MSG, so changing MSG recreates the service.
func benchCompose(network string) string {
	s := `services:
  web:
    image: ` + benchAgentImage + `
    environment:
      DEMO_MESSAGE: ${MSG}
    healthcheck:
      test: ["CMD", "/demoweb", "healthcheck"]
      interval: 1s
      timeout: 2s
      retries: 3
`
	if network != "" {
		s += "networks:\n  default:\n    name: " + network + "\n    external: true\n"
	}
	return s
}

// commit writes host.yaml with vars, commits and pushes; it returns the
// commit.
func (f *benchFleet) commit(b *testing.B, vars map[string]string) string {
	b.Helper()
	var y strings.Builder
	fmt.Fprintf(&y, "apps: [%s]\nvars:\n", strings.Join(f.apps, ", "))
	for k, v := range vars {
		fmt.Fprintf(&y, "  %s: %q\n", k, v)
	}
	benchWrite(b, filepath.Join(f.work, "hosts", f.host, "host.yaml"), y.String())
	testenv.Git(b, f.work, "add", ".")
	testenv.Git(b, f.work, "commit", "-q", "--allow-empty", "-m", "bench")
	testenv.Git(b, f.work, "push", "-q", f.url, "HEAD:main")
	return testenv.Git(b, f.work, "rev-parse", "HEAD")
}

// buildSyncd builds the syncd binary as `make build` does.
func buildSyncd(b testing.TB) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "syncd")
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(gobin, "build", "-trimpath", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build syncd: %v\n%s", err, out)
	}
	return bin
}

// benchAgent is `syncd agent` running as a subprocess.
type benchAgent struct {
	cmd    *exec.Cmd
	state  string
	addr   string // of /metrics, /healthz, /webhook
	secret string
	log    *lockedBuffer
	exited chan struct{}
}

var listeningAddr = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startBenchAgent runs the agent on f's Git URL with the status kept local,
// an empty settings file, a webhook secret, and the extra flags.
func startBenchAgent(b *testing.B, bin string, f *benchFleet, extra ...string) *benchAgent {
	b.Helper()
	dir := b.TempDir()
	a := &benchAgent{state: filepath.Join(dir, "state"), secret: benchRandom(16), log: &lockedBuffer{}, exited: make(chan struct{})}
	config, secretFile := filepath.Join(dir, "syncd.yaml"), filepath.Join(dir, "webhook.secret")
	benchWrite(b, config, "")
	benchWrite(b, secretFile, a.secret+"\n")
	args := append([]string{"agent", "--repo", f.url, "--host", f.host, "--state-dir", a.state, "--age-key", filepath.Join(dir, "age.key"), "--config", config,
		"--status-branch", "", "--listen", "127.0.0.1:0", "--webhook-secret-file", secretFile}, extra...)
	a.cmd = exec.Command(bin, args...)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { a.cmd.Wait(); close(a.exited) }()
	b.Cleanup(func() {
		a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.exited:
		case <-time.After(30 * time.Second):
			a.cmd.Process.Kill()
			<-a.exited
		}
	})
	deadline := time.Now().Add(time.Minute)
	for a.addr == "" {
		if m := listeningAddr.FindStringSubmatch(a.log.String()); m != nil {
			a.addr = m[1]
			break
		}
		a.alive(b, "the agent to listen")
		if time.Now().After(deadline) {
			b.Fatalf("the agent did not listen within a minute:\n%s", a.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return a
}

func (a *benchAgent) alive(b *testing.B, waitingFor string) {
	select {
	case <-a.exited:
		b.Fatalf("the agent exited (%v) while waiting for %s:\n%s", a.cmd.ProcessState, waitingFor, a.log)
	default:
	}
}

// webhook sends GitHub's push notification, signed.
func (a *benchAgent) webhook(b *testing.B, commit string) {
	body := []byte(`{"ref":"refs/heads/main","after":"` + commit + `"}`)
	mac := hmac.New(sha256.New, []byte(a.secret))
	mac.Write(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.addr+"/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatalf("webhook: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b.Fatalf("webhook: %s\n%s", resp.Status, a.log)
	}
}

// waitApplied waits until `syncd status --json` says the host runs commit,
// converged.
func (a *benchAgent) waitApplied(b *testing.B, commit string) {
	b.Helper()
	var doc struct {
		DesiredCommit string `json:"desired_commit"`
		AppliedCommit string `json:"applied_commit"`
		State         string `json:"state"`
	}
	var out, errOut bytes.Buffer
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		out.Reset()
		errOut.Reset()
		if run(context.Background(), []string{"status", "--json", "--state-dir", a.state}, os.Getenv, &out, &errOut) == exitOK &&
			json.Unmarshal(out.Bytes(), &doc) == nil && doc.AppliedCommit == commit && doc.State == "converged" {
			return
		}
		a.alive(b, "commit "+commit)
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("the agent did not converge to %s; status: %s%s\nlog:\n%s", commit, out.String(), errOut.String(), a.log)
}

// healthWatch follows the engine's health_status events: the instant a
// container turns healthy is when it runs its new configuration.
type healthWatch struct {
	events chan healthEvent
}

type healthEvent struct {
	project, id string
	at          time.Time // when the event reached this process
}

func watchHealth(b *testing.B) *healthWatch {
	b.Helper()
	cmd := exec.Command("docker", "events", "--format", "{{json .}}", "--filter", "type=container", "--filter", "event=health_status")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	w := &healthWatch{events: make(chan healthEvent, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			at := time.Now()
			var ev struct {
				Action string
				Actor  struct {
					ID         string
					Attributes map[string]string
				}
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Action == "health_status: healthy" {
				select {
				case w.events <- healthEvent{ev.Actor.Attributes["com.docker.compose.project"], ev.Actor.ID, at}:
				default: // nobody reads: a benchmark that has ended
				}
			}
		}
	}()
	b.Cleanup(func() { cmd.Process.Kill(); <-done; cmd.Wait() })
	return w
}

// wait returns the next event of a container of project other than old
// turning healthy.
func (w *healthWatch) wait(b *testing.B, project, old string, a *benchAgent) healthEvent {
	b.Helper()
	timeout := time.After(3 * time.Minute)
	for {
		select {
		case ev := <-w.events:
			if ev.project == project && ev.id != old {
				return ev
			}
		case <-timeout:
			msg := ""
			if a != nil {
				msg = a.log.String()
			}
			b.Fatalf("no new container of %s turned healthy within 3 minutes\n%s", project, msg)
		}
	}
}

// benchEnv is the value of name in a container's environment.
func benchEnv(b *testing.B, id, name string) string {
	b.Helper()
	var env []string
	json.Unmarshal([]byte(testenv.DockerCLI(b, "inspect", "--format", "{{json .Config.Env}}", id)), &env)
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// BenchmarkCommitToRunning: from `git push` done to the changed service
// running its new configuration and healthy, with the agent woken by the
// signed webhook (trigger) or finding the commit by polling every 200 ms
// (poll). The baseline, in the same iterations: `docker compose up -d
// --wait` of the same compose file with the same change, in a project of
// its own, from the command's start to its new container healthy. Both
// ends are the engine's health_status event, so the difference is syncd's
// own cost: ls-remote, shallow clone, render, plan, and the Compose SDK.
// ns/op is syncd's latency (push and baseline run with the timer stopped).
func BenchmarkCommitToRunning(b *testing.B) {
	testenv.Docker(b)
	compose := testenv.Tool(b, "docker-compose")
	bin := buildSyncd(b)
	for _, mode := range []string{"trigger", "poll"} {
		b.Run(mode, func(b *testing.B) {
			watch := watchHealth(b)
			f := newBenchFleet(b, 1, map[string]string{"MSG": "first"})
			app := f.apps[0]
			poll := "1h" // the webhook alone wakes it
			if mode == "poll" {
				poll = "200ms"
			}
			a := startBenchAgent(b, bin, f, "--poll", poll, "--drift", "1h")
			cur := watch.wait(b, app, "", a).id
			a.waitApplied(b, testenv.Git(b, f.work, "rev-parse", "HEAD"))

			// The baseline's project, up before the clock starts.
			base := testenv.ProjectName(b)
			baseFile := filepath.Join(b.TempDir(), "compose.yaml")
			benchWrite(b, baseFile, benchCompose(f.network))
			up := func(msg string) time.Duration {
				cmd := exec.Command(compose, "-p", base, "-f", baseFile, "up", "-d", "--wait", "--quiet-pull")
				cmd.Env = append(os.Environ(), "MSG="+msg)
				start := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("docker compose up -d --wait: %v\n%s", err, out)
				}
				return time.Since(start)
			}
			up("first")
			baseCur := watch.wait(b, base, "", nil).id

			var syncdSum, baseSum, cliSum time.Duration
			var each []string
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				msg := fmt.Sprintf("release %d %s", i, benchRandom(3))
				commit := f.commit(b, map[string]string{"MSG": msg})
				pushed := time.Now()
				b.StartTimer()
				if mode == "trigger" {
					a.webhook(b, commit)
				}
				ev := watch.wait(b, app, cur, a)
				b.StopTimer()
				lat := ev.at.Sub(pushed)
				if got := benchEnv(b, ev.id, "DEMO_MESSAGE"); got != msg {
					b.Fatalf("the new container of %s has DEMO_MESSAGE %q, want %q", app, got, msg)
				}
				a.waitApplied(b, commit) // the cycle has ended: the next push starts a fresh one
				cur = ev.id

				start := time.Now()
				cli := up(msg)
				bev := watch.wait(b, base, baseCur, nil)
				if got := benchEnv(b, bev.id, "DEMO_MESSAGE"); got != msg {
					b.Fatalf("the baseline's new container has DEMO_MESSAGE %q, want %q", got, msg)
				}
				baseCur = bev.id
				syncdSum += lat
				baseSum += bev.at.Sub(start)
				cliSum += cli
				each = append(each, fmt.Sprintf("%d/%d", lat.Milliseconds(), bev.at.Sub(start).Milliseconds()))
				b.StartTimer()
			}
			n := float64(b.N)
			syncdMS := float64(syncdSum.Microseconds()) / 1000 / n
			baseMS := float64(baseSum.Microseconds()) / 1000 / n
			b.ReportMetric(syncdMS, "syncd-ms")
			b.ReportMetric(baseMS, "baseline-ms")
			b.ReportMetric(syncdMS-baseMS, "diff-ms")
			b.ReportMetric(float64(cliSum.Microseconds())/1000/n, "baseline-cli-ms")
			b.Logf("%s: push to healthy %.0f ms, compose up -d --wait to healthy %.0f ms (command returned after %.0f ms); syncd is %+.0f ms (goal: within 1200); per iteration syncd/baseline ms: %s",
				mode, syncdMS, baseMS, float64(cliSum.Microseconds())/1000/n, syncdMS-baseMS, strings.Join(each, " "))
		})
	}
}

// BenchmarkQuietPoll: what the agent pays when nothing changed, one
// ls-remote (source.Git.Head), against `git pull` in a clone, both over
// the loopback Git server, whose counters give the bytes and requests.
// The repository has main and the status branch, as a fleet's has.
// ns/op is Head's; server-floor-ms is a plain GET of the same
// advertisement, what any client pays this server (a `git http-backend`
// process per request).
func BenchmarkQuietPoll(b *testing.B) {
	f := newBenchRepo(b, 10, "", map[string]string{"MSG": "hello"})
	testenv.Git(b, f.work, "push", "-q", f.url, "HEAD:refs/heads/syncd/status")
	g := &source.Git{URL: f.url, Dir: b.TempDir()}
	clone := filepath.Join(b.TempDir(), "clone")
	testenv.Git(b, "", "clone", "-q", "--branch", "main", f.url, clone)
	ctx := context.Background()

	var headTime, pullTime, floorTime time.Duration
	var headBytes, headReqs, pullBytes, pullReqs int64
	for b.Loop() {
		req0, bytes0 := f.server.Requests.Load(), f.server.ResponseBytes.Load()
		start := time.Now()
		if _, err := g.Head(ctx); err != nil {
			b.Fatal(err)
		}
		headTime += time.Since(start)
		req1, bytes1 := f.server.Requests.Load(), f.server.ResponseBytes.Load()
		headReqs += req1 - req0
		headBytes += bytes1 - bytes0

		b.StopTimer()
		start = time.Now()
		testenv.Git(b, clone, "pull", "-q", "--ff-only")
		pullTime += time.Since(start)
		pullReqs += f.server.Requests.Load() - req1
		pullBytes += f.server.ResponseBytes.Load() - bytes1

		// The floor: the same request by hand, which costs the server a
		// `git http-backend` process as it costs Head.
		start = time.Now()
		resp, err := http.Get(f.url + "/info/refs?service=git-upload-pack")
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET info/refs: %s %v", resp.Status, err)
		}
		floorTime += time.Since(start)
		b.StartTimer()
	}
	n := float64(b.N)
	headMS, pullMS := float64(headTime.Microseconds())/1000/n, float64(pullTime.Microseconds())/1000/n
	floorMS := float64(floorTime.Microseconds()) / 1000 / n
	b.ReportMetric(floorMS, "server-floor-ms/op")
	b.ReportMetric(headMS, "head-ms/op")
	b.ReportMetric(float64(headBytes)/n, "head-bytes/op")
	b.ReportMetric(float64(headReqs)/n, "head-requests/op")
	b.ReportMetric(pullMS, "pull-ms/op")
	b.ReportMetric(float64(pullBytes)/n, "pull-bytes/op")
	b.ReportMetric(float64(pullReqs)/n, "pull-requests/op")
	b.Logf("quiet poll: ls-remote %.1f ms, %.0f bytes, %.0f request(s) (goal: under 10 ms and 4 KB); git pull %.1f ms, %.0f bytes, %.0f request(s); the server's own floor (one plain GET of info/refs) %.1f ms",
		headMS, float64(headBytes)/n, float64(headReqs)/n, pullMS, float64(pullBytes)/n, float64(pullReqs)/n, floorMS)
}

// BenchmarkAgentIdle: the agent with 10 healthy projects, converged, left
// idle (--poll 1m --drift 5m) for 5 minutes (SYNCD_BENCH_IDLE, e.g. 30s,
// for a quick look); /proc is sampled every second for its RSS and CPU
// time. The measurement is made once, in the first iteration: ns/op means
// nothing here, the reported metrics are the figures. RSS splits into anon
// (what the Go runtime holds) and file (the binary's pages mapped in:
// shared, and dropped first under memory pressure); hwm-MB is the peak RSS
// since the start, the first deploy of the 10 projects included.
func BenchmarkAgentIdle(b *testing.B) {
	period := 5 * time.Minute
	if s := os.Getenv("SYNCD_BENCH_IDLE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("SYNCD_BENCH_IDLE=%q: %v", s, err)
		}
		period = d
	}
	testenv.Docker(b)
	bin := buildSyncd(b)
	f := newBenchFleet(b, 10, map[string]string{"MSG": "idle"})
	commit := testenv.Git(b, f.work, "rev-parse", "HEAD")
	a := startBenchAgent(b, bin, f, "--poll", "1m", "--drift", "5m")
	a.waitApplied(b, commit)
	for _, app := range f.apps {
		if out := testenv.DockerCLI(b, "ps", "-q", "--filter", "label=com.docker.compose.project="+app, "--filter", "health=healthy"); out == "" {
			b.Fatalf("%s is not healthy after the agent converged:\n%s", app, a.log)
		}
	}
	pid := a.cmd.Process.Pid

	for i := 0; b.Loop(); i++ {
		if i > 0 {
			continue
		}
		var peak benchMem // each field's maximum
		var sumRSS int64
		samples := 0
		cpu0 := benchCPUTicks(b, pid)
		start := time.Now()
		tick := time.NewTicker(time.Second)
		for time.Since(start) < period {
			<-tick.C
			a.alive(b, "the idle period to end")
			m := benchMemory(b, pid)
			peak = benchMem{max(peak.rss, m.rss), max(peak.anon, m.anon), max(peak.file, m.file), m.hwm}
			sumRSS += m.rss
			samples++
		}
		tick.Stop()
		elapsed := time.Since(start)
		cpu := float64(benchCPUTicks(b, pid)-cpu0) / 100 // USER_HZ is 100 on Linux
		const mb = 1 << 20
		meanRSS := float64(sumRSS) / float64(samples) / mb
		b.ReportMetric(float64(peak.rss)/mb, "max-rss-MB")
		b.ReportMetric(meanRSS, "mean-rss-MB")
		b.ReportMetric(float64(peak.anon)/mb, "max-anon-MB")
		b.ReportMetric(float64(peak.file)/mb, "max-file-MB")
		b.ReportMetric(float64(peak.hwm)/mb, "hwm-MB")
		b.ReportMetric(cpu, "cpu-s")
		b.ReportMetric(100*cpu/elapsed.Seconds(), "cpu-%")
		b.Logf("idle %s with %d projects: RSS max %.1f MB (anon %.1f, file %.1f), mean %.1f MB (goal: under 40), peak since start %.1f MB; CPU %.2f s (%.3f%%); Go runtime: %s",
			elapsed.Round(time.Second), len(f.apps), float64(peak.rss)/mb, float64(peak.anon)/mb, float64(peak.file)/mb, meanRSS, float64(peak.hwm)/mb,
			cpu, 100*cpu/elapsed.Seconds(), a.goMemory())
	}
}

// benchMem is what /proc/<pid>/status says of a process's memory, in
// bytes: RSS is anon (the Go heap, stacks, runtime) plus file (pages of
// the binary mapped in, shared and reclaimable); HWM is the peak RSS.
type benchMem struct{ rss, anon, file, hwm int64 }

func benchMemory(b *testing.B, pid int) benchMem {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	var m benchMem
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			m.rss = kb << 10
		case "RssAnon:":
			m.anon = kb << 10
		case "RssFile:":
			m.file = kb << 10
		case "VmHWM:":
			m.hwm = kb << 10
		}
	}
	return m
}

// benchCPUTicks is utime+stime of pid, in clock ticks.
func benchCPUTicks(b *testing.B, pid int) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// After "pid (comm)": state is field 3; utime and stime are 14 and 15.
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return utime + stime
}

// goMemory is what the agent's Go runtime says of its memory on /metrics:
// where the RSS goes.
func (a *benchAgent) goMemory() string {
	resp, err := http.Get("http://" + a.addr + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	want := []string{"go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes",
		"go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes", "go_goroutines"}
	got := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if name, value, ok := strings.Cut(sc.Text(), " "); ok {
			got[name] = value
		}
	}
	var parts []string
	for _, name := range want {
		v, err := strconv.ParseFloat(got[name], 64)
		if err != nil {
			continue
		}
		if strings.HasSuffix(name, "_bytes") {
			parts = append(parts, fmt.Sprintf("%s %.1f MB", strings.TrimPrefix(strings.TrimSuffix(name, "_bytes"), "go_memstats_"), v/(1<<20)))
		} else {
			parts = append(parts, fmt.Sprintf("%s %.0f", strings.TrimPrefix(name, "go_"), v))
		}
	}
	return strings.Join(parts, ", ")
}

func benchWrite(b *testing.B, path, content string) {
	b.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		b.Fatal(err)
	}
}

func benchRandom(n int) string {
	p := make([]byte, n)
	rand.Read(p)
	return hex.EncodeToString(p)
}
