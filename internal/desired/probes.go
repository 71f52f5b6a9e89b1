package desired

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/template"
	"gopkg.in/yaml.v3"

	"github.com/syncd-dev/syncd/internal/schedule"
)

// checkProbes reports what is wrong with app.yaml's probes: names, kinds,
// thresholds, URLs and addresses (with their ${NAME}s standing in as
// words, since Load knows no values yet).
func checkProbes(p string, n *yaml.Node, probes []Probe, ps *Problems) {
	seen := map[string]bool{}
	for i, pr := range probes {
		idx := fmt.Sprint(i)
		line := lineOf(n, "probes", idx)
		at := func(keys ...string) int { return lineOf(n, append([]string{"probes", idx}, keys...)...) }
		field := fmt.Sprintf("probes[%d]", i)
		if pr.Name != "" {
			field = fmt.Sprintf("probes[%d] (%s)", i, pr.Name)
		}
		switch {
		case pr.Name == "":
			ps.add(p, line, "probes[%d]: name is required", i)
		case seen[pr.Name]:
			ps.add(p, line, "probes[%d]: name %q is used twice", i, pr.Name)
		case !nameRE.MatchString(pr.Name):
			ps.add(p, at("name"), "%s: name: use lowercase letters, digits, - and _ (it names the probe in the status and in metrics)", field)
		}
		seen[pr.Name] = true
		kinds := 0
		for _, set := range []bool{pr.HTTP != nil, pr.TCP != nil, pr.Container != nil} {
			if set {
				kinds++
			}
		}
		if kinds != 1 {
			ps.add(p, line, "%s: set exactly one of http, tcp or container (found %d)", field, kinds)
		}
		if pr.Timeout < 0 || zeroAt(n, "probes", idx, "timeout") {
			ps.add(p, at("timeout"), "%s: timeout must be positive, like 5s (default %s)", field, DefaultProbeTimeout)
		}
		for _, th := range []struct {
			key string
			v   int
			def int
		}{{"failure_threshold", pr.FailureThreshold, DefaultFailureThreshold}, {"success_threshold", pr.SuccessThreshold, DefaultSuccessThreshold}} {
			if th.v < 0 || th.v > maxResults || zeroAt(n, "probes", idx, th.key) {
				ps.add(p, at(th.key), "%s: %s must be between 1 and %d (default %d)", field, th.key, maxResults, th.def)
			}
		}
		if h := pr.HTTP; h != nil {
			switch {
			case h.URL == "":
				ps.add(p, at("http"), "%s: http.url is required", field)
			default:
				if msg := checkURL(standIns(h.URL)); msg != "" {
					ps.add(p, at("http", "url"), "%s: http.url: %s", field, msg)
				}
			}
			if h.Status != 0 && (h.Status < 100 || h.Status > 599) {
				ps.add(p, at("http", "status"), "%s: http.status %d is not an HTTP status code (100 to 599)", field, h.Status)
			}
			if h.CertDays < 0 {
				ps.add(p, at("http", "cert_days"), "%s: http.cert_days must not be negative", field)
			}
			if h.CertDays > 0 && !strings.HasPrefix(strings.ToLower(h.URL), "https://") {
				ps.add(p, at("http", "cert_days"), "%s: http.cert_days needs an https:// URL: a plain http server has no certificate", field)
			}
			if h.TLSSkipVerify {
				ps.warn(p, at("http", "tls_skip_verify"), "", "%s: http.tls_skip_verify accepts any certificate, a forged one too; prefer a certificate the host trusts", field)
			}
		}
		if t := pr.TCP; t != nil {
			if t.Address == "" {
				ps.add(p, at("tcp"), "%s: tcp.address is required", field)
			} else if _, port, err := net.SplitHostPort(standIns(t.Address)); err != nil || !validPort(port) {
				ps.add(p, at("tcp", "address"), "%s: tcp.address %q is not host:port (such as db:5432 or ${DOMAIN}:443)", field, t.Address)
			}
		}
		if c := pr.Container; c != nil && c.Service == "" {
			ps.add(p, at("container"), "%s: container.service is required", field)
		}
		sc := checkScheduleFloor(p, n, pr.Schedule, 0, ps, "probes", idx, "schedule")
		if pr.Schedule == "" {
			sc, _ = schedule.Parse(DefaultProbeSchedule)
		}
		if sc != nil && pr.Timeout > 0 {
			if every := schedule.Interval(sc, time.Now()); every > 0 && pr.Timeout > every {
				ps.warn(p, at("timeout"), "", "%s: timeout %s is longer than the probe's interval (%s, schedule %q): a check that takes its whole timeout is due again before it ends; set a timeout under %s, or a longer schedule",
					field, pr.Timeout, every, pr.ScheduleOr(), every)
			}
		}
	}
}

// maxResults is how many results of a probe are kept; a threshold above it
// could never be reached in the window flapping is judged on.
const maxResults = 20

// MaxProbeResults is how many results of each probe syncd keeps.
const MaxProbeResults = maxResults

// zeroAt reports whether the value at the key path is written as zero
// (0, 0s): a threshold or timeout set to zero, not left out.
func zeroAt(n *yaml.Node, keys ...string) bool {
	v := nodeAt(n, keys...)
	return v != nil && v.Kind == yaml.ScalarNode && zeroRE.MatchString(v.Value)
}

var zeroRE = regexp.MustCompile(`^0+(\.0*)?(ns|us|µs|ms|s|m|h)?$`)

func nodeAt(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		if n == nil {
			return nil
		}
		switch n.Kind {
		case yaml.MappingNode:
			n = child(n, k)
		case yaml.SequenceNode:
			i, err := strconv.Atoi(k)
			if err != nil || i >= len(n.Content) {
				return nil
			}
			n = n.Content[i]
		default:
			return nil
		}
	}
	return n
}

// standIns replaces each ${NAME} (and $NAME) of s by a word, to check the
// shape of a value whose variables are not known yet.
func standIns(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch c := s[i+1]; {
		case c == '$':
			b.WriteByte('$')
			i++
		case c == '{':
			end := closingBrace(s, i+1)
			if end < 0 {
				b.WriteByte(s[i])
				continue
			}
			b.WriteString("1")
			i = end
		case isNameChar(c, true):
			j := i + 1
			for j < len(s) && isNameChar(s[j], false) {
				j++
			}
			b.WriteString("1")
			i = j - 1
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// checkURL says what is wrong with a probe URL, or "".
func checkURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err.Error()
		}
		return err.Error()
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("%q is not an http:// or https:// URL", raw)
	}
	if u.Hostname() == "" {
		return fmt.Sprintf("%q has no host", raw)
	}
	if p := u.Port(); p != "" && !validPort(p) {
		return fmt.Sprintf("%q: port %s is not 1 to 65535", raw, p)
	}
	return ""
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// renderProbes fills the ${NAME}s of the app's probes from the names its
// compose files may use (host vars, fleet defaults, secrets, SYNCD_HOST,
// the app's .env), as Compose interpolates. An undefined name is a problem
// at its line of app.yaml; a value made of a secret is never quoted.
func (s *scan) renderProbes() []Probe {
	if len(s.app.Probes) == 0 {
		return nil
	}
	f := s.app.settingsFile
	if f == "" {
		f = path.Join("apps", s.app.Name, "app.yaml")
	}
	var root *yaml.Node
	if data, err := s.repo.ReadFile(f); err == nil {
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) == nil && len(doc.Content) > 0 {
			root = doc.Content[0]
		}
	}
	mapping := func(name string) (string, bool) {
		b, ok := s.env[name]
		return b.value, ok
	}
	secrets := s.secrets()
	out := make([]Probe, 0, len(s.app.Probes))
	for i, pr := range s.app.Probes {
		idx := fmt.Sprint(i)
		fill := func(v string, keys ...string) string {
			line := lineOf(root, append([]string{"probes", idx}, keys...)...)
			for _, ref := range scanVars(v) {
				if _, defined := s.env[ref.Name]; !defined && ref.required() {
					s.ps.add(f, line, "probes[%d] (%s): %s: variable ${%s} is not defined for host %q; define it under vars in hosts/%s/host.yaml, under defaults.vars in syncd.yaml, or as a key of the host's secrets file",
						i, pr.Name, strings.Join(keys, "."), ref.Name, s.host.Name, s.host.Name)
				}
			}
			out, err := template.SubstituteWithOptions(v, mapping, template.WithoutLogging)
			if err != nil {
				s.ps.add(f, line, "probes[%d] (%s): %s: %s", i, pr.Name, strings.Join(keys, "."), secrets.RedactFragments(err.Error()))
				return v
			}
			return out
		}
		q := pr
		if h := pr.HTTP; h != nil {
			c := *h
			c.URL = fill(h.URL, "http", "url")
			c.Body = fill(h.Body, "http", "body")
			if !s.placeholdersUsed() || !strings.Contains(c.URL, "<secret:") {
				if msg := checkURL(c.URL); msg != "" {
					s.ps.add(f, lineOf(root, "probes", idx, "http", "url"), "probes[%d] (%s): http.url for host %q: %s", i, pr.Name, s.host.Name, secrets.Redactor().Named().Text(msg))
				}
			}
			q.HTTP = &c
		}
		if t := pr.TCP; t != nil {
			c := *t
			c.Address = fill(t.Address, "tcp", "address")
			q.TCP = &c
		}
		if ct := pr.Container; ct != nil {
			c := *ct
			c.Service = fill(ct.Service, "container", "service")
			q.Container = &c
		}
		out = append(out, q)
	}
	return out
}
