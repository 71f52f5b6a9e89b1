package validate

import (
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/syncd-dev/syncd/internal/desired"
)

// hardened is a service that meets every rule.
func hardened() types.ServiceConfig {
	return types.ServiceConfig{
		Name:        "web",
		Image:       "nginx:1.27.3",
		SecurityOpt: []string{"no-new-privileges:true"},
		CapDrop:     []string{"ALL"},
		PidsLimit:   64,
		MemLimit:    64 << 20,
		HealthCheck: &types.HealthCheckConfig{Test: []string{"CMD", "true"}},
		ReadOnly:    true,
	}
}

func project(s types.ServiceConfig, deviations ...desired.Deviation) *desired.Project {
	return &desired.Project{
		App:     &desired.App{Name: "web", ComposeFile: "apps/web/compose.yaml", Deviations: deviations},
		Compose: &types.Project{Name: "web", Services: types.Services{s.Name: s}},
	}
}

func rulesOf(ps desired.Problems) []string {
	var out []string
	for _, p := range ps {
		if p.Severity == desired.Warning {
			out = append(out, p.Rule)
		}
	}
	slices.Sort(out)
	return out
}

func TestLintHardeningRules(t *testing.T) {
	cases := []struct {
		name   string
		change func(*types.ServiceConfig)
		want   []string // the rules that warn
	}{
		{"hardened", func(*types.ServiceConfig) {}, nil},
		{"no-new-privileges missing", func(s *types.ServiceConfig) { s.SecurityOpt = nil }, []string{"no-new-privileges"}},
		{"no-new-privileges with =", func(s *types.ServiceConfig) { s.SecurityOpt = []string{"no-new-privileges=true"} }, nil},
		{"no-new-privileges bare", func(s *types.ServiceConfig) { s.SecurityOpt = []string{"no-new-privileges"} }, nil},
		{"no-new-privileges false", func(s *types.ServiceConfig) { s.SecurityOpt = []string{"no-new-privileges:false"} }, []string{"no-new-privileges"}},
		{"cap_drop lowercase all", func(s *types.ServiceConfig) { s.CapDrop = []string{"all"} }, nil},
		{"cap_drop some", func(s *types.ServiceConfig) { s.CapDrop = []string{"NET_RAW"} }, []string{"cap-drop-all"}},
		{"no pids limit", func(s *types.ServiceConfig) { s.PidsLimit = 0 }, []string{"pids-limit"}},
		{"pids limit in deploy", func(s *types.ServiceConfig) {
			s.PidsLimit = 0
			s.Deploy = &types.DeployConfig{Resources: types.Resources{Limits: &types.Resource{Pids: 100}}}
		}, nil},
		{"no memory limit", func(s *types.ServiceConfig) { s.MemLimit = 0 }, []string{"memory-limit"}},
		{"memory limit in deploy", func(s *types.ServiceConfig) {
			s.MemLimit = 0
			s.Deploy = &types.DeployConfig{Resources: types.Resources{Limits: &types.Resource{MemoryBytes: 1 << 30}}}
		}, nil},
		{"no healthcheck", func(s *types.ServiceConfig) { s.HealthCheck = nil }, []string{"healthcheck"}},
		{"healthcheck disabled", func(s *types.ServiceConfig) { s.HealthCheck = &types.HealthCheckConfig{Disable: true} }, []string{"healthcheck"}},
		{"privileged", func(s *types.ServiceConfig) { s.Privileged = true }, []string{"privileged"}},
		{"docker socket", func(s *types.ServiceConfig) {
			s.Volumes = []types.ServiceVolumeConfig{{Type: "bind", Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"}}
		}, []string{"docker-socket"}},
		{"everything wrong", func(s *types.ServiceConfig) {
			*s = types.ServiceConfig{Name: "web", Image: "nginx:1.27.3", Privileged: true}
		}, []string{"cap-drop-all", "healthcheck", "memory-limit", "no-new-privileges", "pids-limit", "privileged", "read-only"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := hardened()
			c.change(&s)
			ps := Lint(project(s))
			if got := rulesOf(ps); !slices.Equal(got, c.want) {
				t.Errorf("rules = %v, want %v\n%v", got, c.want, ps)
			}
			if ps.HasErrors() {
				t.Errorf("hardening rules are warnings, got errors: %v", ps)
			}
			for _, p := range ps {
				if p.Path != "apps/web/compose.yaml" || !strings.Contains(p.Msg, `service "web"`) || !strings.Contains(p.Msg, "apps/web/app.yaml") {
					t.Errorf("problem does not name the file, the service and where to document a deviation: %v", p)
				}
			}
		})
	}
}

func TestLintDeviations(t *testing.T) {
	s := hardened()
	s.Privileged, s.HealthCheck = true, nil
	cases := []struct {
		name string
		devs []desired.Deviation
		want []string
	}{
		{"none", nil, []string{"healthcheck", "privileged"}},
		{"for every service", []desired.Deviation{{Rule: "privileged", Reason: "it needs it"}}, []string{"healthcheck"}},
		{"for this service", []desired.Deviation{{Rule: "healthcheck", Service: "web", Reason: "no shell"}}, []string{"privileged"}},
		{"for another service", []desired.Deviation{{Rule: "healthcheck", Service: "db", Reason: "no shell"}}, []string{"healthcheck", "privileged"}},
	}
	for _, c := range cases {
		if got := rulesOf(Lint(project(s, c.devs...))); !slices.Equal(got, c.want) {
			t.Errorf("%s: rules = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestLintImages(t *testing.T) {
	cases := []struct {
		image string
		build bool
		want  string // part of the error; "" when pinned
	}{
		{"nginx:1.27.3", false, ""},
		{"nginx:1.27.3-alpine", false, ""},
		{"ghcr.io/tecnativa/docker-socket-proxy:v0.4.0", false, ""},
		{"registry.example.org:5000/team/app:2.1", false, ""},
		{"nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", false, ""},
		{"nginx:1.27@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", false, ""},
		{"nginx", false, `image "nginx" is not pinned; name a version tag (nginx:1.2.3) or a digest`},
		{"registry.example.org:5000/team/app", false, `image "registry.example.org:5000/team/app" is not pinned`},
		{"nginx:latest", false, `uses the moving tag "latest"`},
		{"traefik:stable", false, `uses the moving tag "stable"`},
		{"ghcr.io/x/y:edge", false, `uses the moving tag "edge"`},
		{"ghcr.io/x/y:main", false, `uses the moving tag "main"`},
		{"", true, "has build: but no image"},
		{"", false, "has no image"},
	}
	for _, c := range cases {
		s := hardened()
		s.Image = c.image
		if c.build {
			s.Build = &types.BuildConfig{Context: "."}
		}
		ps := Lint(project(s))
		var errs []string
		for _, p := range ps {
			if p.Severity == desired.Error {
				errs = append(errs, p.Msg)
			}
		}
		switch {
		case c.want == "" && len(errs) > 0:
			t.Errorf("%q: %v", c.image, errs)
		case c.want != "" && (len(errs) != 1 || !strings.Contains(errs[0], c.want)):
			t.Errorf("%q: errors %v, want one with %q", c.image, errs, c.want)
		}
	}
}
