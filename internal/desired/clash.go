package desired

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// checkClashes reports what two projects of one host cannot both have: a
// container_name, or a published host port on overlapping addresses.
// Compose would find out only when the second one is created, half-way
// through an apply.
func checkClashes(host string, projects []*Project, secrets Secrets, ps *Problems) {
	type claim struct {
		project, service, ip string
		loc                  Location
	}
	names := map[string]claim{}
	type port struct {
		n     int
		proto string
	}
	ports := map[port][]claim{}
	for _, p := range projects {
		for _, svcName := range slices.Sorted(maps.Keys(p.Compose.Services)) {
			svc := p.Compose.Services[svcName]
			c := claim{project: p.Name(), service: svcName, loc: p.ServiceLocation(svcName)}
			if n := svc.ContainerName; n != "" {
				if other, ok := names[n]; !ok {
					names[n] = c
				} else if other.project != c.project {
					// A name or a port may be made of a secret.
					ps.add(c.loc.Path, c.loc.Line, "%s", secrets.Redact(fmt.Sprintf("service %q of %s has container_name %q, as service %q of %s (%s) has; on host %q two containers cannot have one name: change one",
						svcName, c.project, n, other.service, other.project, other.loc.Path, host)))
				}
			}
			for _, pc := range svc.Ports {
				lo, hi, ok := portRange(pc.Published)
				if !ok {
					continue
				}
				c.ip = pc.HostIP
				if c.ip == "0.0.0.0" || c.ip == "::" {
					c.ip = ""
				}
				proto := cmp.Or(pc.Protocol, "tcp")
				for n := lo; n <= hi; n++ {
					k := port{n, proto}
					clash := slices.IndexFunc(ports[k], func(o claim) bool {
						return o.project != c.project && (o.ip == "" || c.ip == "" || o.ip == c.ip)
					})
					if clash >= 0 {
						o := ports[k][clash]
						ps.add(c.loc.Path, c.loc.Line, "%s", secrets.Redact(fmt.Sprintf("service %q of %s publishes host port %d/%s, as service %q of %s (%s) does; on host %q only one can bind it: change one",
							svcName, c.project, n, proto, o.service, o.project, o.loc.Path, host)))
						break
					}
					ports[k] = append(ports[k], c)
				}
			}
		}
	}
}

// portRange parses a published port, "8080" or "8000-8010".
func portRange(s string) (int, int, bool) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, false
	}
	hi := lo
	if isRange {
		if hi, err = strconv.Atoi(b); err != nil || hi < lo || hi > 65535 {
			return 0, 0, false
		}
	}
	return lo, hi, true
}
