package engine_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/redact"
	"github.com/syncd-dev/syncd/internal/testenv"
)

const (
	healthyImage   = "syncdtest-demoweb:healthy"
	unhealthyImage = "syncdtest-demoweb:unhealthy"
	host           = "test-host"
)

// The tests share one Engine: the SDK's logrus output is routed
// process-wide, to the last Engine made.
var (
	sharedOnce   sync.Once
	sharedEngine *engine.Engine
	sharedErr    error
)

func newEngine(t *testing.T) *engine.Engine {
	t.Helper()
	testenv.Docker(t)
	sharedOnce.Do(func() {
		sharedEngine, sharedErr = engine.New(context.Background(), engine.Options{})
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedEngine
}

// load renders compose YAML as package desired does: compose-go's loader,
// project name forced, variables from env.
func load(t *testing.T, name, yaml string, env map[string]string) *types.Project {
	t.Helper()
	yaml = strings.NewReplacer("HEALTHY_IMAGE", healthyImage, "UNHEALTHY_IMAGE", unhealthyImage).Replace(yaml)
	p, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  t.TempDir(),
		ConfigFiles: []types.ConfigFile{{Filename: "compose.yaml", Content: []byte(yaml)}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName(name, true) })
	if err != nil {
		t.Fatalf("load compose: %v", err)
	}
	return p
}

// healthcheck makes the demo's health decide within a second.
const healthcheck = `
    healthcheck:
      test: ["CMD", "/demoweb", "healthcheck"]
      interval: 200ms
      timeout: 2s
      retries: 2
    stop_grace_period: 2s`

func apply(t *testing.T, e *engine.Engine, p *types.Project, opts engine.ApplyOptions) {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = time.Minute
	}
	if err := e.Apply(t.Context(), p, opts); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func observe(t *testing.T, e *engine.Engine, name string) *plan.ObservedProject {
	t.Helper()
	obs, err := e.Observe(t.Context(), host)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	return obs.Projects[name]
}

// ids returns the container ID of each service.
func ids(t *testing.T, p *plan.ObservedProject) map[string]string {
	t.Helper()
	out := map[string]string{}
	if p == nil {
		return out
	}
	for _, c := range p.Containers {
		if _, dup := out[c.Service]; dup {
			t.Fatalf("service %s has two containers", c.Service)
		}
		out[c.Service] = c.ID
	}
	return out
}

func TestUnreachableEngine(t *testing.T) {
	for _, dockerHost := range []string{"unix:///nonexistent", "tcp://syncd:hunter2pw@127.0.0.1:1"} {
		t.Run(dockerHost[:3], func(t *testing.T) {
			t.Setenv("DOCKER_HOST", dockerHost)
			t.Setenv("DOCKER_CONTEXT", "")
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			e, err := engine.New(ctx, engine.Options{})
			if err != nil {
				t.Fatalf("New must succeed without an engine: %v", err)
			}
			defer e.Close()
			p := load(t, "syncdtest-unreachable", "services:\n  web:\n    image: "+healthyImage+"\n", nil)
			checks := map[string]error{
				"Ping":   e.Ping(ctx),
				"Apply":  e.Apply(ctx, p, engine.ApplyOptions{Timeout: time.Second}),
				"Remove": e.Remove(ctx, "syncdtest-unreachable"),
			}
			_, checks["Observe"] = e.Observe(ctx, host)
			for op, err := range checks {
				t.Logf("%s: %v", op, err)
				if !errors.Is(err, engine.ErrEngine) {
					t.Errorf("%s: got %v, want an error wrapping ErrEngine", op, err)
				}
				if err != nil && strings.Contains(err.Error(), "hunter2pw") {
					t.Errorf("%s: the error shows the URL's password: %v", op, err)
				}
			}
		})
	}
}

func TestApplyRejectsUnknownForce(t *testing.T) {
	e, err := engine.New(t.Context(), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	p := load(t, "syncdtest-force", "services:\n  web:\n    image: "+healthyImage+"\n", nil)
	err = e.Apply(t.Context(), p, engine.ApplyOptions{Force: []string{"nope"}})
	if err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("got %v, want an error naming the unknown service", err)
	}
}

func TestObserveOwnership(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	img := testenv.DemoImage(t, healthyImage, false)
	web := "services:\n  web:\n    image: HEALTHY_IMAGE" + healthcheck + "\n"

	// A project someone else started by hand: Compose's labels, not syncd's.
	foreign := testenv.ProjectName(t)
	testenv.DockerCLI(t, "run", "-d", "--label", "com.docker.compose.project="+foreign,
		"--label", "com.docker.compose.service=web", img)

	other := testenv.ProjectName(t)
	p := load(t, other, web, nil)
	engine.Label(p, "other-host", "c0ffee", nil)
	apply(t, e, p, engine.ApplyOptions{})

	mine := testenv.ProjectName(t)
	p = load(t, mine, web, nil)
	engine.Label(p, host, "abc123", map[string]string{"web": "secrets-hash"})
	apply(t, e, p, engine.ApplyOptions{})
	// A one-off `compose run` container of mine, not syncd's: not counted.
	testenv.DockerCLI(t, "create", "--label", "com.docker.compose.project="+mine,
		"--label", "com.docker.compose.service=web", "--label", "com.docker.compose.oneoff=True", img)

	obs, err := e.Observe(t.Context(), host)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{foreign: false, other: false, mine: true} {
		got := obs.Projects[name]
		if got == nil {
			t.Errorf("project %s not observed", name)
			continue
		}
		if got.Owned != want {
			t.Errorf("project %s: Owned = %t, want %t", name, got.Owned, want)
		}
	}
	obsOther, err := e.Observe(t.Context(), "other-host")
	if err != nil {
		t.Fatal(err)
	}
	if !obsOther.Projects[other].Owned {
		t.Errorf("project %s is not owned by the host it was labelled for", other)
	}

	hashes, err := engine.ServiceHashes(p)
	if err != nil {
		t.Fatal(err)
	}
	got := obs.Projects[mine].Containers
	if len(got) != 1 {
		t.Fatalf("project %s: %d containers, want 1 (the one-off left out): %+v", mine, len(got), got)
	}
	c := got[0]
	want := plan.Container{
		ID: c.ID, Name: mine + "-web-1", Service: "web", ConfigHash: hashes["web"],
		SecretsHash: "secrets-hash", Commit: "abc123", Image: img, ImageID: obs.Images[img],
		State: "running", Health: "healthy",
	}
	if c != want || c.ImageID == "" {
		t.Errorf("container:\n got %+v\nwant %+v", c, want)
	}
}

func TestApplyConverges(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	testenv.DemoImage(t, healthyImage, false)
	name := testenv.ProjectName(t)
	compose := func(workerMessage string, withWorker bool) *types.Project {
		yaml := "services:\n  web:\n    image: HEALTHY_IMAGE\n    environment:\n      DEMO_MESSAGE: web" + healthcheck + "\n"
		if withWorker {
			yaml += "  worker:\n    image: HEALTHY_IMAGE\n    environment:\n      DEMO_MESSAGE: " + workerMessage + healthcheck + "\n"
		}
		p := load(t, name, yaml, nil)
		engine.Label(p, host, "commit-1", nil)
		return p
	}
	checkHashes := func(p *types.Project) {
		t.Helper()
		hashes, err := engine.ServiceHashes(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range observe(t, e, name).Containers {
			if c.ConfigHash != hashes[c.Service] {
				t.Errorf("service %s: config-hash label %s, ServiceHashes says %s", c.Service, c.ConfigHash, hashes[c.Service])
			}
		}
	}

	p := compose("one", true)
	apply(t, e, p, engine.ApplyOptions{})
	if _, ok := p.Services["web"].CustomLabels["com.docker.compose.project"]; ok {
		t.Errorf("Apply changed the project it was given")
	}
	first := ids(t, observe(t, e, name))
	if len(first) != 2 {
		t.Fatalf("after the first Apply: containers %v, want web and worker", first)
	}
	checkHashes(p)

	// The same project again, even with a new commit label: nothing changes.
	p = compose("one", true)
	engine.Label(p, host, "commit-2", nil)
	apply(t, e, p, engine.ApplyOptions{})
	if again := ids(t, observe(t, e, name)); again["web"] != first["web"] || again["worker"] != first["worker"] {
		t.Errorf("a second Apply of the same project recreated containers: %v, then %v", first, again)
	}

	// A changed variable recreates that service only.
	p = compose("two", true)
	apply(t, e, p, engine.ApplyOptions{})
	changed := ids(t, observe(t, e, name))
	if changed["web"] != first["web"] || changed["worker"] == first["worker"] {
		t.Errorf("changing worker's environment: containers %v, then %v; want worker alone recreated", first, changed)
	}
	checkHashes(p)

	// Force recreates a service whose hash did not change, and only it.
	apply(t, e, p, engine.ApplyOptions{Force: []string{"web"}})
	forced := ids(t, observe(t, e, name))
	if forced["web"] == changed["web"] || forced["worker"] != changed["worker"] {
		t.Errorf("forcing web: containers %v, then %v; want web alone recreated", changed, forced)
	}

	// A service dropped from the project goes.
	apply(t, e, compose("", false), engine.ApplyOptions{})
	if left := ids(t, observe(t, e, name)); len(left) != 1 || left["web"] != forced["web"] {
		t.Errorf("dropping worker: containers %v, then %v; want web alone, untouched", forced, left)
	}
}

// TestServiceHashesMatchCompose covers what Up changes in a service before
// hashing it: use_api_socket, service references, and the fields Compose
// leaves out of the hash (depends_on, pull_policy, scale).
func TestServiceHashesMatchCompose(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	testenv.DemoImage(t, healthyImage, false)
	name := testenv.ProjectName(t)
	p := load(t, name, `
services:
  web:
    image: HEALTHY_IMAGE
    pull_policy: missing`+healthcheck+`
  sock:
    image: HEALTHY_IMAGE
    use_api_socket: true
    depends_on:
      web:
        condition: service_healthy`+healthcheck+`
  sidecar:
    image: HEALTHY_IMAGE
    network_mode: service:web
    volumes_from: [web]
    environment:
      PORT: "8081"
    depends_on: [web]`+healthcheck+`
`, nil)
	apply(t, e, p, engine.ApplyOptions{})
	obs := observe(t, e, name)
	plain, err := engine.ServiceHashes(p)
	if err != nil {
		t.Fatal(err)
	}
	resolved, err := engine.ServiceHashesObserved(p, obs)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range obs.Containers {
		if c.ConfigHash != resolved[c.Service] {
			t.Errorf("service %s: config-hash label %s, ServiceHashesObserved says %s", c.Service, c.ConfigHash, resolved[c.Service])
		}
		if c.Service != "sidecar" && c.ConfigHash != plain[c.Service] {
			t.Errorf("service %s: config-hash label %s, ServiceHashes says %s", c.Service, c.ConfigHash, plain[c.Service])
		}
	}
	if len(obs.Containers) != 3 {
		t.Errorf("containers: %+v, want 3", obs.Containers)
	}
}

func TestApplyHealthFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		yaml     string
		timeout  time.Duration
		want     map[string]string
		timedOut bool
	}{{
		name: "unhealthy",
		yaml: "services:\n  web:\n    image: UNHEALTHY_IMAGE" + healthcheck + "\n",
		// Far beyond what the test takes: failing before it is the point.
		timeout: 10 * time.Minute,
		// The verdict carries what the healthcheck said last.
		want: map[string]string{"web": "unhealthy (last healthcheck: exit 1: demoweb healthcheck: /healthz answered 500 Internal Server Error)"},
	}, {
		name:    "exits",
		yaml:    "services:\n  web:\n    image: HEALTHY_IMAGE\n    command: [no-such-subcommand]\n",
		timeout: 10 * time.Minute,
		want:    map[string]string{"web": "exited (2)"},
	}, {
		name: "undecided",
		yaml: "services:\n  web:\n    image: HEALTHY_IMAGE\n    healthcheck:\n      test: [CMD, /demoweb, healthcheck]\n      interval: 1h\n    stop_grace_period: 2s\n",
		// The first check would run after an hour.
		timeout:  2 * time.Second,
		want:     map[string]string{"web": "starting"},
		timedOut: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t)
			testenv.DemoImage(t, healthyImage, false)
			testenv.DemoImage(t, unhealthyImage, true)
			name := testenv.ProjectName(t)
			err := e.Apply(t.Context(), load(t, name, tt.yaml, nil), engine.ApplyOptions{Timeout: tt.timeout})
			if !errors.Is(err, engine.ErrUnhealthy) {
				t.Fatalf("got %v, want an error wrapping ErrUnhealthy", err)
			}
			var ue *engine.UnhealthyError
			if !errors.As(err, &ue) {
				t.Fatalf("got %T, want *engine.UnhealthyError", err)
			}
			if ue.TimedOut != tt.timedOut || len(ue.Services) != len(tt.want) {
				t.Fatalf("got %+v, want services %v, TimedOut %t", ue, tt.want, tt.timedOut)
			}
			for svc, seen := range tt.want {
				if ue.Services[svc] != seen {
					t.Errorf("service %s: seen %q, want %q", svc, ue.Services[svc], seen)
				}
			}
			if !strings.Contains(err.Error(), "service web") {
				t.Errorf("the error does not name the service: %v", err)
			}
		})
	}
}

func TestSecretArrivesAsFile(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	testenv.DemoImage(t, healthyImage, false)
	name := testenv.ProjectName(t)
	value := "s3cret-" + name
	p := load(t, name, `
services:
  web:
    image: HEALTHY_IMAGE
    environment:
      DEMO_SECRET: token
    secrets: [token]
    ports: ["127.0.0.1::8080"]`+healthcheck+`
secrets:
  token:
    environment: TOKEN
`, map[string]string{"TOKEN": value})
	apply(t, e, p, engine.ApplyOptions{})

	id := ids(t, observe(t, e, name))["web"]
	if inspect := testenv.DockerCLI(t, "inspect", id); strings.Contains(inspect, value) {
		t.Errorf("docker inspect shows the secret value")
	}
	addr := testenv.DockerCLI(t, "port", id, "8080/tcp")
	addr, _, _ = strings.Cut(addr, "\n")
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(page), "secret token: present") {
		t.Errorf("the service does not see /run/secrets/token; its page:\n%s", page)
	}
}

func TestRemoveKeepsVolumes(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	testenv.DemoImage(t, healthyImage, false)
	name := testenv.ProjectName(t)
	p := load(t, name, `
services:
  web:
    image: HEALTHY_IMAGE
    volumes: [data:/data]`+healthcheck+`
volumes:
  data: {}
`, nil)
	apply(t, e, p, engine.ApplyOptions{})
	if err := e.Remove(t.Context(), name); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if left := observe(t, e, name); left != nil {
		t.Errorf("containers left after Remove: %+v", left.Containers)
	}
	filter := "label=com.docker.compose.project=" + name
	if nets := testenv.DockerCLI(t, "network", "ls", "-q", "--filter", filter); nets != "" {
		t.Errorf("networks left after Remove: %s", nets)
	}
	if vols := testenv.DockerCLI(t, "volume", "ls", "-q", "--filter", filter); vols != name+"_data" {
		t.Errorf("volumes after Remove: %q, want %s_data kept", vols, name)
	}
	if err := e.Remove(t.Context(), name); err != nil {
		t.Errorf("removing a project that is gone: %v", err)
	}
}

// TestErrorsAreRedactedByTheCaller: the engine knows no secret; the
// caller, which does, redacts its error (the one redaction, package
// redact) and still tells its kind apart, and nothing unwraps to the
// engine's own text.
func TestErrorsAreRedactedByTheCaller(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	testenv.DemoImage(t, healthyImage, false)
	name := testenv.ProjectName(t)
	// The engine refuses the container name, quoting it: the value of a
	// secret, here, through ${TOKEN}.
	value := "not a name " + name
	p := load(t, name, `
services:
  web:
    image: HEALTHY_IMAGE
    container_name: ${TOKEN}
    secrets: [token]
secrets:
  token:
    environment: TOKEN
`, map[string]string{"TOKEN": value})
	err := e.Apply(t.Context(), p, engine.ApplyOptions{Timeout: time.Minute})
	if err == nil {
		t.Fatal("Apply accepted an invalid container name")
	}
	if errors.Unwrap(err) != nil {
		t.Errorf("the engine's error unwraps to its cause: %v", errors.Unwrap(err))
	}
	err = redact.New(map[string]string{"TOKEN": value}).OutsideErr(err)
	t.Log(err)
	if strings.Contains(err.Error(), value) || !strings.Contains(err.Error(), "<redacted>") {
		t.Errorf("the error does not hide the secret value: %v", err)
	}
	if errors.Is(err, engine.ErrEngine) || errors.Is(err, engine.ErrUnhealthy) {
		t.Errorf("a refused request is neither the engine's fault nor a health verdict: %v", err)
	}
}

// TestApplyAfterAnInterruptedRecreate: Compose recreates a service by
// creating the new container under "<old ID[:12]>_<name>", then removing the
// old one and renaming. Killed in between, that container blocks the next
// recreate; Apply must get past it.
func TestApplyAfterAnInterruptedRecreate(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	testenv.DemoImage(t, healthyImage, false)
	name := testenv.ProjectName(t)
	compose := `
services:
  web:
    image: HEALTHY_IMAGE
    environment:
      DEMO_MESSAGE: ${MSG}` + healthcheck + "\n"
	apply(t, e, load(t, name, compose, map[string]string{"MSG": "one"}), engine.ApplyOptions{})
	old := observe(t, e, name).Containers[0]
	labels := testenv.DockerCLI(t, "inspect", "--format", `{{range $k, $v := .Config.Labels}}--label={{$k}}={{$v}} {{end}}`, old.ID)
	args := append([]string{"create", "--name", old.ID[:12] + "_" + old.Name}, strings.Fields(labels)...)
	testenv.DockerCLI(t, append(args, healthyImage)...)

	apply(t, e, load(t, name, compose, map[string]string{"MSG": "two"}), engine.ApplyOptions{})
	got := observe(t, e, name)
	if len(got.Containers) != 1 || got.Containers[0].ID == old.ID || got.Containers[0].State != "running" {
		t.Fatalf("after the interrupted recreate: %+v", got.Containers)
	}
}

// TestApplyAfterADuplicateNetwork: killed while the engine still creates a
// project's network, syncd's next run lists no network and creates a second
// one of the same name; the engine then finishes both, and Compose refuses
// the project ("network ... is ambiguous"). Apply must get past it and leave
// one network.
func TestApplyAfterADuplicateNetwork(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	testenv.DemoImage(t, healthyImage, false)
	name := testenv.ProjectName(t)
	compose := `
services:
  web:
    image: HEALTHY_IMAGE` + healthcheck + "\n"
	net := name + "_default"
	t.Cleanup(func() { e.Remove(context.Background(), name) })
	// The engine checks a new network's name, but not atomically: creates
	// that run at once may all succeed, as the killed run's and the next
	// one's did. Try until two do.
	netCount := func() int {
		return len(strings.Fields(testenv.DockerCLI(t, "network", "ls", "-q", "--filter", "name=^"+net+"$")))
	}
	for try := 0; netCount() < 2; try++ {
		if try == 20 {
			t.Fatalf("the engine made no two networks named %s from 20 rounds of concurrent creates; the test needs 2", net)
		}
		// A network already there makes the engine refuse every create:
		// start each round with none.
		for _, id := range strings.Fields(testenv.DockerCLI(t, "network", "ls", "-q", "--filter", "name=^"+net+"$")) {
			testenv.DockerCLI(t, "network", "rm", id)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				exec.Command("docker", "network", "create", "--label", "com.docker.compose.project="+name,
					"--label", "com.docker.compose.network=default", "--label", "com.docker.compose.version=5.0.0", net).Run()
			})
		}
		wg.Wait()
	}
	apply(t, e, load(t, name, compose, nil), engine.ApplyOptions{})
	nets := strings.Fields(testenv.DockerCLI(t, "network", "ls", "-q", "--filter", "name=^"+net+"$"))
	if len(nets) != 1 {
		t.Fatalf("after apply, %d networks named %s, want 1", len(nets), net)
	}
	if got := observe(t, e, name); got == nil || len(got.Containers) != 1 || got.Containers[0].State != "running" {
		t.Fatalf("after apply over a duplicate network: %+v", got)
	}
}

// TestCreateBindVolumeRefusesAnExistingVolume: the engine answers a create
// of an existing name with the existing volume; a drill must never take
// it for its own (it would restore into an app's data).
func TestCreateBindVolumeRefusesAnExistingVolume(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	name := testenv.ProjectName(t) + "_data"
	testenv.DockerCLI(t, "volume", "create", name)
	t.Cleanup(func() { testenv.DockerCLI(t, "volume", "rm", "-f", name) })
	dir := t.TempDir()
	err := e.CreateBindVolume(ctx, name, dir, map[string]string{"dev.syncd.drill": "x"})
	if err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("err = %v, want the existing volume refused", err)
	}

	mine := testenv.ProjectName(t) + "_drill"
	if err := e.CreateBindVolume(ctx, mine, dir, map[string]string{"dev.syncd.drill": "x"}); err != nil {
		t.Fatal(err)
	}
	n, err := e.RemoveLabelled(ctx, "dev.syncd.drill", "x", mine)
	if err != nil || n != 1 {
		t.Errorf("RemoveLabelled = %d, %v; want the one volume", n, err)
	}
	if out := testenv.DockerCLI(t, "volume", "ls", "-q", "--filter", "name="+name); !strings.Contains(out, name) {
		t.Error("the existing volume was removed")
	}
}
