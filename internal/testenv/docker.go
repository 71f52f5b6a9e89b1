package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// dockerTimeout bounds one docker CLI call made by these helpers.
const dockerTimeout = 2 * time.Minute

// Once per test binary: whether an engine answers, and each demo image.
var (
	dockerOnce sync.Once
	dockerErr  error

	demoMu     sync.Mutex
	demoImages = map[string]*demoImage{}
)

type demoImage struct {
	once       sync.Once
	unhealthy  bool
	vulnerable bool
	err        error
}

// Docker ends the test unless a Docker engine answers `docker info`: Fatal
// when Strict, a loud Skip otherwise.
func Docker(t testing.TB) {
	t.Helper()
	dockerOnce.Do(func() {
		if _, err := exec.LookPath("docker"); err != nil {
			dockerErr = errors.New("the docker CLI is not on PATH")
			return
		}
		_, dockerErr = docker(context.Background(), "info", "--format", "{{.ServerVersion}}")
	})
	if dockerErr != nil {
		Missing(t, "this test needs a Docker engine and `docker info` failed: %v", dockerErr)
	}
}

// DockerCLI runs the docker CLI with args and returns its trimmed standard
// output; a failure fails the test with the CLI's error output.
func DockerCLI(t testing.TB, args ...string) string {
	t.Helper()
	out, err := docker(context.Background(), args...)
	if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func docker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// DemoImage makes sure the demo app's image (testdata/images/demoweb, a Go
// HTTP server in a FROM scratch image, built from this repository's
// sources, so no registry is needed) is tagged tag, and returns tag. With
// unhealthy, the image's /healthz fails (DEMO_UNHEALTHY=1 is baked in), so
// its healthcheck turns the container unhealthy. Each tag is built once
// per test binary; asking for one tag both ways fails the test.
func DemoImage(t testing.TB, tag string, unhealthy bool) string {
	t.Helper()
	return demoImageOf(t, tag, unhealthy, false)
}

// VulnerableDemoImage is DemoImage (healthy) whose binary also links
// VulnerableModule at VulnerableVersion, for the scan tests: a DB with an
// Advisory for that module finds it here and not in DemoImage's.
func VulnerableDemoImage(t testing.TB, tag string) string {
	t.Helper()
	return demoImageOf(t, tag, false, true)
}

func demoImageOf(t testing.TB, tag string, unhealthy, vulnerable bool) string {
	t.Helper()
	Docker(t)
	demoMu.Lock()
	img := demoImages[tag]
	if img == nil {
		img = &demoImage{unhealthy: unhealthy, vulnerable: vulnerable}
		demoImages[tag] = img
	}
	demoMu.Unlock()
	if img.unhealthy != unhealthy || img.vulnerable != vulnerable {
		t.Fatalf("DemoImage: %s was already built with unhealthy=%t, vulnerable=%t", tag, img.unhealthy, img.vulnerable)
	}
	img.once.Do(func() { img.err = buildDemoImage(tag, unhealthy, vulnerable) })
	if img.err != nil {
		t.Fatalf("DemoImage %s: %v", tag, img.err)
	}
	return tag
}

func buildDemoImage(tag string, unhealthy, vulnerable bool) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "testdata", "images", "demoweb", "Dockerfile"))
	if err != nil {
		return err
	}
	if unhealthy {
		dockerfile = append(dockerfile, "\nENV DEMO_UNHEALTHY=1\n"...)
	}
	// An image built from the same sources is kept as it is: rebuilding
	// would move the tag to a new image ID (the build time is part of it),
	// which running tests would see as "the tag points to another image".
	src, err := os.ReadFile(filepath.Join(root, "testdata", "images", "demoweb", "main.go"))
	if err != nil {
		return err
	}
	if vulnerable {
		extra, err := os.ReadFile(filepath.Join(root, "testdata", "images", "demoweb", "vulnerable.go"))
		if err != nil {
			return err
		}
		src = append(append(src, 0), extra...)
	}
	sum := sha256.Sum256(append(append(src, 0), dockerfile...))
	source := hex.EncodeToString(sum[:8])
	if got, err := docker(context.Background(), "image", "inspect", "--format", `{{index .Config.Labels "dev.syncd.test.source"}}`, tag); err == nil && strings.TrimSpace(got) == source {
		return nil
	}
	dockerfile = append(dockerfile, "\nLABEL dev.syncd.test.source="+source+"\n"...)
	// The build context: the binary (Go's build cache makes a second
	// compile cheap) and the Dockerfile.
	ctxDir, err := os.MkdirTemp("", "syncd-demoweb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(ctxDir)
	if err := buildDemoBinary(root, filepath.Join(ctxDir, "demoweb"), vulnerable); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), dockerfile, 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", "build", "-q", "-t", tag, ctxDir)
	// The classic builder: enough for FROM scratch, and present where
	// buildx is not.
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("docker build: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// buildDemoBinary compiles testdata/images/demoweb to out, statically
// (CGO_ENABLED=0), for a FROM scratch image.
func buildDemoBinary(root, out string, vulnerable bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	var output bytes.Buffer
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out}
	if vulnerable {
		args = append(args, "-tags", "syncd_vulnerable")
	}
	cmd := exec.CommandContext(ctx, goBinary(), append(args, "./testdata/images/demoweb")...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build demoweb: %w: %s", err, strings.TrimSpace(output.String()))
	}
	return nil
}

// goBinary is the go command: from PATH, else from the GOROOT this test
// binary was built with.
func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// moduleRoot is the directory of the go.mod above the working directory
// (a package's directory, under go test).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

var notNameChar = regexp.MustCompile(`[^a-z0-9]+`)

// ProjectName returns a Compose project name unique to this test run
// ("syncdtest-<test>-<random>"), and removes, when the test ends, whatever
// carries it: containers, networks and volumes.
func ProjectName(t testing.TB) string {
	t.Helper()
	Docker(t)
	base := strings.Trim(notNameChar.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 30 {
		base = strings.Trim(base[:30], "-")
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	name := "syncdtest-" + base + "-" + hex.EncodeToString(b[:])
	t.Cleanup(func() { removeProject(t, name) })
	return name
}

// removeProject removes every container, network and volume labelled with
// Compose project name.
func removeProject(t testing.TB, name string) {
	t.Helper()
	ctx := context.Background()
	filter := "label=com.docker.compose.project=" + name
	steps := []struct {
		list   []string
		remove []string
	}{
		{[]string{"ps", "-aq", "--filter", filter}, []string{"rm", "-f", "-v"}},
		{[]string{"network", "ls", "-q", "--filter", filter}, []string{"network", "rm"}},
		{[]string{"volume", "ls", "-q", "--filter", filter}, []string{"volume", "rm", "-f"}},
	}
	for _, s := range steps {
		out, err := docker(ctx, s.list...)
		if err != nil {
			t.Errorf("clean up project %s: docker %s: %v", name, strings.Join(s.list, " "), err)
			continue
		}
		if ids := strings.Fields(out); len(ids) > 0 {
			if _, err := docker(ctx, append(s.remove, ids...)...); err != nil {
				t.Errorf("clean up project %s: docker %s: %v", name, strings.Join(s.remove, " "), err)
			}
		}
	}
}
