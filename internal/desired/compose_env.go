package desired

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"
)

// dotEnv adds the variables of apps/<app>/.env to env where nothing else
// defines them: Compose reads that file as the lowest-precedence source,
// below the host's vars and the fleet's defaults. Its values may use
// ${NAME} of the names defined above it, as Compose allows.
func (r *Repo) dotEnv(app *App, env map[string]binding, ps *Problems) {
	p := path.Join(path.Dir(app.ComposeFile), dotenv.DotEnv)
	data, err := r.ReadFile(p)
	if err != nil {
		var pp Problems
		if errors.As(err, &pp) && len(pp) == 1 && pp[0].Msg == "missing; create it" {
			return
		}
		if errors.As(err, &pp) {
			*ps = append(*ps, pp...)
		} else if !errors.Is(err, fs.ErrNotExist) {
			ps.add(p, 0, "cannot read: %v", err)
		}
		return
	}
	// Secrets stay out of .env: a value made of one would not be known as
	// a secret, and would be shown.
	lookup := func(k string) (string, bool) {
		b, ok := env[k]
		if b.secret {
			return "", false
		}
		return b.value, ok
	}
	vals, err := dotenv.UnmarshalBytesWithLookup(data, lookup)
	if err != nil {
		line, msg := splitDotenvError(err.Error())
		ps.add(p, line, "%s", msg)
		return
	}
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		if _, ok := env[k]; !ok {
			env[k] = binding{value: vals[k], dotenv: true}
		}
	}
}

// splitDotenvError finds the line in a dotenv parse error.
func splitDotenvError(msg string) (int, string) {
	var line int
	if i := strings.Index(msg, "line "); i >= 0 {
		fmt.Sscanf(msg[i+len("line "):], "%d", &line)
	}
	return line, "invalid .env file: " + msg
}

// profiles are the Compose profiles enabled for app on h: the host's
// host.yaml `profiles:` for that app, and COMPOSE_PROFILES (comma
// separated) from the variables, as the Compose CLI reads it.
func (r *Repo) profiles(h *Host, app *App, env map[string]binding) []string {
	var out []string
	if b, ok := env["COMPOSE_PROFILES"]; ok {
		for _, p := range strings.Split(b.value, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	out = append(out, h.Profiles[app.Name]...)
	slices.Sort(out)
	return slices.Compact(out)
}

// checkProfiles reports the services a profile that is not enabled leaves
// out, and a project that would run nothing at all.
func (s *scan) checkProfiles(proj *types.Project, enabled []string) {
	how := fmt.Sprintf("enable it under profiles: {%s: [...]} in hosts/%s/host.yaml (or COMPOSE_PROFILES in its vars)", s.app.Name, s.host.Name)
	for _, name := range slices.Sorted(maps.Keys(proj.DisabledServices)) {
		svc := proj.DisabledServices[name]
		l := s.services[name]
		s.ps.warn(l.Path, l.Line, "", "service %q is not deployed on host %q: its profiles (%s) are not enabled; %s",
			name, s.host.Name, strings.Join(svc.Profiles, ", "), how)
	}
	if len(proj.Services) == 0 {
		msg := "deploys nothing on host %q: every service has a profile that is not enabled; %s"
		if len(proj.DisabledServices) == 0 {
			msg = "deploys nothing on host %q: it has no services%.0s"
		}
		s.ps.add(s.app.ComposeFile, 0, msg, s.host.Name, how)
	}
	for _, p := range enabled {
		known := false
		for _, svc := range proj.AllServices() {
			known = known || slices.Contains(svc.Profiles, p)
		}
		if !known && p != "*" {
			s.ps.warn(s.app.ComposeFile, 0, "", "profile %q is enabled on host %q but no service of %s has it", p, s.host.Name, s.app.Name)
		}
	}
}
