package scan

import (
	"context"
	"os/exec"
	"testing"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// BenchmarkGate: the gate's cost on a deploy. "first" scans the image
// with an empty result cache (trivy runs), against "bare", the same
// `trivy image` run by hand; "cached" is a re-deploy of an image already
// scanned with the same DB (goal: under 5 ms).
func BenchmarkGate(b *testing.B) {
	bin, cache := testenv.Trivy(b, critical)
	env := testenv.TrivyEnv(cache)
	tag := testenv.VulnerableDemoImage(b, vulnerableTag)
	id := testenv.DockerCLI(b, "image", "inspect", "--format", "{{.ID}}", tag)
	images := map[string]string{tag: id}
	policy := desired.ScanPolicy{RefuseSeverity: "CRITICAL", Ignore: []desired.ScanIgnore{{ID: critical.ID, Until: "2999-01-01", Reason: "bench"}}}
	ctx := context.Background()
	b.Run("bare", func(b *testing.B) {
		for b.Loop() {
			cmd := exec.Command(bin, "image", "--format", "json", "--scanners", "vuln", "--image-src", "docker", id)
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			s := &Scanner{Trivy: bin, Env: env, StateDir: b.TempDir()}
			if err := s.Admit(ctx, "app", policy, images); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		s := &Scanner{Trivy: bin, Env: env, StateDir: b.TempDir()}
		if err := s.Admit(ctx, "app", policy, images); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := s.Admit(ctx, "app", policy, images); err != nil {
				b.Fatal(err)
			}
		}
	})
}
