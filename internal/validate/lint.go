package validate

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/syncd-dev/syncd/internal/desired"
)

// rule is one hardening check of a service; ok reports whether the service
// meets it.
type rule struct {
	id  string
	ok  func(s types.ServiceConfig) bool
	fix string
}

// rules follow seed 001's container hardening: what every managed
// container enforces unless a documented deviation says why not.
var rules = []rule{
	{"no-new-privileges", func(s types.ServiceConfig) bool {
		return slices.ContainsFunc(s.SecurityOpt, func(o string) bool {
			o = strings.ReplaceAll(o, "=", ":")
			return o == "no-new-privileges" || o == "no-new-privileges:true"
		})
	}, `add security_opt: ["no-new-privileges:true"]`},
	{"cap-drop-all", func(s types.ServiceConfig) bool {
		return slices.ContainsFunc(s.CapDrop, func(c string) bool { return strings.EqualFold(c, "ALL") })
	}, "add cap_drop: [ALL] and cap_add only what the image needs"},
	{"pids-limit", func(s types.ServiceConfig) bool {
		return s.PidsLimit > 0 || s.Deploy != nil && s.Deploy.Resources.Limits != nil && s.Deploy.Resources.Limits.Pids > 0
	}, "set pids_limit"},
	{"memory-limit", func(s types.ServiceConfig) bool {
		return s.MemLimit > 0 || s.Deploy != nil && s.Deploy.Resources.Limits != nil && s.Deploy.Resources.Limits.MemoryBytes > 0
	}, "set mem_limit or deploy.resources.limits.memory"},
	{"healthcheck", func(s types.ServiceConfig) bool {
		return s.HealthCheck != nil && !s.HealthCheck.Disable && len(s.HealthCheck.Test) > 0
	}, "add a healthcheck: syncd waits for it before calling a deploy good"},
	{"read-only", func(s types.ServiceConfig) bool { return s.ReadOnly }, "set read_only: true (with tmpfs: for the paths it writes)"},
	{"privileged", func(s types.ServiceConfig) bool { return !s.Privileged }, "remove privileged: true"},
	{"docker-socket", func(s types.ServiceConfig) bool {
		return !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
			return strings.HasSuffix(v.Source, "/docker.sock")
		})
	}, "do not mount the Docker socket (it is root on the host); use a socket proxy"},
}

// Lint checks the images and hardening of a rendered project. An unpinned
// image is an error: a host must run what the commit says. The rest are
// warnings unless the app documents a deviation.
func Lint(p *desired.Project) desired.Problems {
	var ps desired.Problems
	settings := fmt.Sprintf("apps/%s/app.yaml", p.App.Name)
	for _, name := range slices.Sorted(maps.Keys(p.Compose.Services)) {
		s := p.Compose.Services[name]
		loc := p.ServiceLocation(name)
		// An image made of an undefined variable is reported as that.
		if msg := unpinned(s); msg != "" && !p.Unresolved(name, "image") {
			at := p.Location(name, "image")
			ps = append(ps, desired.Problem{Path: at.Path, Line: at.Line, Msg: fmt.Sprintf("service %q: %s", name, msg)})
		}
		if msg := unwritable(p.Compose, s); msg != "" {
			ps = append(ps, desired.Problem{Path: loc.Path, Line: loc.Line, Msg: fmt.Sprintf("service %q: %s", name, msg)})
		}
		for _, m := range p.Mounts {
			if m.Data() || !m.Writable || m.Config != "" || !slices.Contains(m.Services, name) {
				continue
			}
			rel, _ := filepath.Rel(p.Dir, m.Path)
			ps = append(ps, desired.Problem{Path: loc.Path, Line: loc.Line, Severity: desired.Warning,
				Msg: fmt.Sprintf("service %q mounts ./%s read-write, and the repository holds it: syncd copies the repository's files there before every apply, over what the container changed in them; mount it read-only (:ro), or keep the container's data in a path the repository does not have", name, filepath.ToSlash(rel))})
		}
		for _, r := range rules {
			if r.ok(s) || p.App.Deviates(r.id, name) {
				continue
			}
			ps = append(ps, desired.Problem{Path: loc.Path, Line: loc.Line, Severity: desired.Warning, Rule: r.id,
				Msg: fmt.Sprintf("service %q: %s, or document a deviation (rule %s, with a reason) in %s", name, r.fix, r.id, settings)})
		}
	}
	return ps
}

// unwritable reports a read_only service given a secret or config that
// Compose must write into the container (an environment: or content:
// source): Compose refuses to create it, so the deploy would fail.
func unwritable(p *types.Project, s types.ServiceConfig) string {
	if !s.ReadOnly {
		return ""
	}
	var bad []string
	for _, ref := range s.Secrets {
		if o, ok := p.Secrets[ref.Source]; ok && (o.Environment != "" || o.Content != "") {
			bad = append(bad, "secret "+ref.Source)
		}
	}
	for _, ref := range s.Configs {
		if o, ok := p.Configs[ref.Source]; ok && (o.Environment != "" || o.Content != "") {
			bad = append(bad, "config "+ref.Source)
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return fmt.Sprintf("is read_only but uses %s, which Compose writes into the container and cannot in a read-only one; drop read_only (document the read-only deviation) or mount the file from a volume", strings.Join(bad, ", "))
}

// unpinned says what is wrong with a service's image reference, or "".
func unpinned(s types.ServiceConfig) string {
	if s.Image == "" {
		if s.Build != nil {
			return "has build: but no image; syncd deploys images: build and push it in CI, then pin it here"
		}
		return "has no image"
	}
	if strings.Contains(s.Image, "@sha256:") {
		return ""
	}
	ref := s.Image
	if i := strings.LastIndex(ref, "/"); i >= 0 {
		ref = ref[i+1:]
	}
	_, tag, ok := strings.Cut(ref, ":")
	switch {
	case !ok:
		return fmt.Sprintf("image %q is not pinned; name a version tag (%s:1.2.3) or a digest", s.Image, s.Image)
	case !strings.ContainsAny(tag, "0123456789"):
		// latest, stable, nightly, release, lts, alpine, latest-debug:
		// a tag without a version number moves.
		return fmt.Sprintf("image %q uses the moving tag %q (it names no version); pin a version tag (%s:1.2.3) or a digest", s.Image, tag, strings.TrimSuffix(s.Image, ":"+tag))
	}
	return ""
}
