package desired

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/syncd-dev/syncd/internal/schedule"
)

// Fleet is syncd.yaml: settings shared by every host of the fleet.
type Fleet struct {
	Defaults struct {
		Vars          map[string]string `yaml:"vars"`
		HealthTimeout time.Duration     `yaml:"health_timeout"`
		// Soak is how long a release must stay healthy after it first is.
		Soak *time.Duration `yaml:"soak"`
	} `yaml:"defaults"`
	Waves struct {
		// BakeTime is how long every host of the lower waves must have
		// been converged and healthy at a commit before a higher wave
		// applies it: a soak on top of their health, not instead of it.
		BakeTime time.Duration `yaml:"bake_time"`
		// Skip are hosts the wave gate passes over: decommissioned, or
		// down for repair, they would hold the rollout forever.
		Skip     []string `yaml:"skip"`
		skipLine []int
	} `yaml:"waves"`
	Prune struct {
		// AllowMassRemoval lets one cycle remove more than half of a
		// host's projects, or all of them.
		AllowMassRemoval bool `yaml:"allow_mass_removal"`
	} `yaml:"prune"`
	Status struct {
		Branch string `yaml:"branch"`
	} `yaml:"status"`
	Notify []NotifySink `yaml:"notify"`
}

// DefaultHealthTimeout bounds how long apply waits for a project to become
// healthy when neither app.yaml nor syncd.yaml says otherwise.
const DefaultHealthTimeout = 3 * time.Minute

// DefaultSoak is how long a release must stay healthy after its first
// healthy check before it counts as good (and becomes the rollback target),
// unless app.yaml or syncd.yaml says otherwise: a release that turns
// unhealthy seconds after starting is caught by its own apply.
const DefaultSoak = 10 * time.Second

// Host is hosts/<name>/host.yaml and the files beside it.
type Host struct {
	Name   string            `yaml:"-"`
	Apps   []string          `yaml:"apps"`
	Wave   int               `yaml:"wave"`
	Vars   map[string]string `yaml:"vars"`
	Backup *HostBackup       `yaml:"backup"`
	Scan   *HostScan         `yaml:"scan"`
	// Profiles enables Compose profiles per app: {nextcloud: [cron]}.
	Profiles map[string][]string `yaml:"profiles"`
	// StatusKey is the public half of the key the host signs its status
	// documents with ("ssh-ed25519 AAAA…"), enrolled here by `syncd
	// enroll` or by hand: only documents that verify against it count.
	// "" keeps the host's documents unsigned (counted, with a warning).
	StatusKey string `yaml:"status_key"`
	// Suspended leaves every app of the host as it runs (flux suspend):
	// no apply, no drift heal, no prune, until the key is removed.
	Suspended *Suspended `yaml:"suspended"`

	// SecretsFile is the repository-relative path of the host's SOPS file,
	// or "" when it has none.
	SecretsFile string `yaml:"-"`
	// Overrides maps an app to the repository-relative path of this host's
	// Compose override for it.
	Overrides map[string]string `yaml:"-"`
	node      *yaml.Node
}

// Line is the line of host.yaml at keys ("backup", "password_secret"), or
// of the nearest of their parents that exists.
func (h *Host) Line(keys ...string) int { return lineOf(h.node, keys...) }

// HostBackup is the restic configuration of a host. Credentials are named,
// never written: they are keys of the host's secrets file.
type HostBackup struct {
	RepositorySecret string    `yaml:"repository_secret"`
	PasswordSecret   string    `yaml:"password_secret"`
	Schedule         string    `yaml:"schedule"`
	CheckSchedule    string    `yaml:"check_schedule"`
	Retention        Retention `yaml:"retention"`
	// Env maps restic's other environment variables (AWS_ACCESS_KEY_ID,
	// B2_ACCOUNT_KEY...) to keys of the host's secrets file.
	Env map[string]string `yaml:"env"`
}

// Retention is how many snapshots `restic forget` keeps.
type Retention struct {
	Daily   int `yaml:"daily"`
	Weekly  int `yaml:"weekly"`
	Monthly int `yaml:"monthly"`
}

// HostScan is the Trivy configuration of a host.
type HostScan struct {
	Schedule string `yaml:"schedule"`
	// AppScan is the host's policy; an app's app.yaml adds to it (ignore)
	// or overrides it (the other fields).
	AppScan `yaml:",inline"`
}

// App is apps/<name>/app.yaml plus where its compose file lives.
type App struct {
	Name          string        `yaml:"-"`
	After         []string      `yaml:"after"`
	Drift         string        `yaml:"drift"`
	HealthTimeout time.Duration `yaml:"health_timeout"`
	// Soak: see DefaultSoak; 0s turns it off.
	Soak       *time.Duration `yaml:"soak"`
	Backup     *AppBackup     `yaml:"backup"`
	Probes     []Probe        `yaml:"probes"`
	Deviations []Deviation    `yaml:"deviations"`
	Scan       *AppScan       `yaml:"scan"`
	// Suspended leaves the app as it runs on every host: no apply, no
	// drift heal, no prune, until the key is removed.
	Suspended *Suspended `yaml:"suspended"`

	// ComposeFile is the repository-relative path of the app's compose file.
	ComposeFile string `yaml:"-"`
	// settingsFile is app.yaml's path, or "" when the app has none.
	settingsFile string
	afterLine    map[string]int
	node         *yaml.Node
}

// SettingsFile is app.yaml's repository path, or "" when the app has none.
func (a *App) SettingsFile() string { return a.settingsFile }

// Line is the line of app.yaml at keys ("backup", "volumes", "0"), or of
// the nearest of their parents that exists; 0 without app.yaml.
func (a *App) Line(keys ...string) int { return lineOf(a.node, keys...) }

// Suspended is `suspended: {reason: …}` in host.yaml or app.yaml, for
// incident response: a person says why, so the status can show it.
type Suspended struct {
	Reason string `yaml:"reason"`
}

// Drift policies.
const (
	DriftHeal   = "heal"
	DriftReport = "report"
)

// AppBackup says what of an app restic saves.
type AppBackup struct {
	Schedule string `yaml:"schedule"`
	// Volumes are named volumes of the compose file, read where the
	// engine keeps them.
	Volumes []string `yaml:"volumes"`
	// Paths are directories of the host; a relative one (./data) is in the
	// app's project directory, as in its bind mounts.
	Paths []string `yaml:"paths"`
	Dumps []Dump   `yaml:"dumps"`
	// Stop stops the app's services while its volumes and paths are read
	// (after the dumps), in reverse depends_on order, and starts again
	// those that were running.
	Stop bool `yaml:"stop"`
	// BeforeUpgrade backs the app up before a cycle recreates one of its
	// services for a new image; default true for an app with dumps.
	BeforeUpgrade *bool `yaml:"before_upgrade"`
	// Drill is how `syncd drill` proves a run restorable; nil: no checks
	// beyond the drill project's healthchecks.
	Drill *Drill `yaml:"drill"`
}

// DefaultDrillTimeout bounds a whole drill when backup.drill.timeout is
// not set.
const DefaultDrillTimeout = 30 * time.Minute

// Drill is backup.drill: the checks run inside a throwaway project
// restored from a run, how long the whole drill may take, and when the
// agent drills the app's latest run on its own.
type Drill struct {
	// Schedule, when set, is when the agent drills the app's latest
	// complete run (cron, as backup.schedule); "": only `syncd drill`.
	Schedule string        `yaml:"schedule"`
	Verify   []DrillCheck  `yaml:"verify"`
	Timeout  time.Duration `yaml:"timeout"`
}

// TimeoutOr is the drill's timeout, DefaultDrillTimeout when unset.
func (d *Drill) TimeoutOr() time.Duration {
	if d == nil || d.Timeout <= 0 {
		return DefaultDrillTimeout
	}
	return d.Timeout
}

// DrillCheck is one command run inside a drill's service container: it
// must exit Exit and, with Output, print something that matches it.
type DrillCheck struct {
	Service string   `yaml:"service"`
	Command []string `yaml:"command"`
	Exit    int      `yaml:"exit"`
	// Output is a regular expression (Go syntax) the command's standard
	// output must match somewhere; "" checks the exit code alone.
	Output string `yaml:"output"`
}

// UpgradeBackup reports whether the app is backed up before an image
// change.
func (b *AppBackup) UpgradeBackup() bool {
	if b == nil {
		return false
	}
	if b.BeforeUpgrade != nil {
		return *b.BeforeUpgrade
	}
	return len(b.Dumps) > 0
}

// Dump is a command run inside a service's container whose output is
// streamed into restic as one file.
type Dump struct {
	Service  string   `yaml:"service"`
	Command  []string `yaml:"command"`
	Filename string   `yaml:"filename"`
	// RestoreCommand reads the file on its stdin to restore it (syncd
	// restore), run in the same service's container.
	RestoreCommand []string `yaml:"restore_command"`
}

// Probe is one health probe of an app; exactly one of HTTP, TCP and
// Container is set. In a rendered Project, its ${NAME}s are filled in (see
// Project.Probes); a value may then hold a secret: show it only redacted.
type Probe struct {
	Name     string `yaml:"name"`
	Schedule string `yaml:"schedule"`
	// Timeout bounds one check; 0 means DefaultProbeTimeout.
	Timeout time.Duration `yaml:"timeout"`
	// FailureThreshold is how many failed checks in a row make the probe
	// down; 0 means DefaultFailureThreshold.
	FailureThreshold int `yaml:"failure_threshold"`
	// SuccessThreshold is how many passed checks in a row make it up again
	// and pass the deploy gate; 0 means DefaultSuccessThreshold.
	SuccessThreshold int `yaml:"success_threshold"`
	// Gate says whether a release must pass this probe after its apply;
	// nil means true for http and tcp, false for container (the Compose
	// healthcheck already gates).
	Gate      *bool           `yaml:"gate"`
	HTTP      *HTTPProbe      `yaml:"http"`
	TCP       *TCPProbe       `yaml:"tcp"`
	Container *ContainerProbe `yaml:"container"`
}

// Probe defaults.
const (
	DefaultProbeSchedule    = "@every 1m"
	DefaultProbeTimeout     = 10 * time.Second
	DefaultFailureThreshold = 3
	DefaultSuccessThreshold = 2
)

// Kind is "http", "tcp" or "container" ("" when none is set).
func (p Probe) Kind() string {
	switch {
	case p.HTTP != nil:
		return "http"
	case p.TCP != nil:
		return "tcp"
	case p.Container != nil:
		return "container"
	}
	return ""
}

// TimeoutOr is the probe's timeout or DefaultProbeTimeout.
func (p Probe) TimeoutOr() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return DefaultProbeTimeout
}

// FailuresOr is the probe's failure threshold or DefaultFailureThreshold.
func (p Probe) FailuresOr() int {
	if p.FailureThreshold > 0 {
		return p.FailureThreshold
	}
	return DefaultFailureThreshold
}

// SuccessesOr is the probe's success threshold or DefaultSuccessThreshold.
func (p Probe) SuccessesOr() int {
	if p.SuccessThreshold > 0 {
		return p.SuccessThreshold
	}
	return DefaultSuccessThreshold
}

// ScheduleOr is the probe's schedule or DefaultProbeSchedule.
func (p Probe) ScheduleOr() string {
	if p.Schedule != "" {
		return p.Schedule
	}
	return DefaultProbeSchedule
}

// Gates reports whether a release must pass the probe after its apply.
func (p Probe) Gates() bool {
	if p.Gate != nil {
		return *p.Gate
	}
	return p.HTTP != nil || p.TCP != nil
}

// HTTPProbe checks a URL's status, body and TLS certificate.
type HTTPProbe struct {
	URL string `yaml:"url"`
	// Status is the status code expected; 0 means any 2xx.
	Status int `yaml:"status"`
	// Body is a substring the response body must contain.
	Body string `yaml:"body"`
	// CertDays warns when the server's certificate expires in fewer days.
	CertDays int `yaml:"cert_days"`
	// TLSSkipVerify accepts a certificate that does not verify (a
	// self-signed one); validate warns.
	TLSSkipVerify bool `yaml:"tls_skip_verify"`
}

// TCPProbe checks that an address accepts connections.
type TCPProbe struct {
	Address string `yaml:"address"`
}

// ContainerProbe reports a service's own Compose healthcheck.
type ContainerProbe struct {
	Service string `yaml:"service"`
}

// Deviation acknowledges a hardening rule an app cannot meet, with a reason,
// as seed fleets document theirs.
type Deviation struct {
	Rule    string `yaml:"rule"`
	Service string `yaml:"service"`
	Reason  string `yaml:"reason"`
}

// Rules are the ids of the hardening warnings `syncd validate` gives.
var Rules = []string{
	"no-new-privileges", "cap-drop-all", "pids-limit", "memory-limit", "healthcheck",
	"read-only", "secret-in-env", "privileged", "docker-socket",
}

// Severities Trivy reports, lowest first.
var Severities = []string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

// ValidName reports whether name can be an app's or a host's name (a
// directory under apps/ or hosts/, a Compose project name).
func ValidName(name string) bool { return nameRE.MatchString(name) }

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	varRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	envNameRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	lineRE    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	typeErrRE = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.*)$")
)

// decodeStrict decodes one YAML document into v. Unknown fields are reported
// at their line with the fields that are known; type errors at theirs.
// It returns the document's root node (nil for an empty document).
func decodeStrict(path string, data []byte, v any, ps *Problems) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := splitYAMLError(err.Error())
		ps.add(path, line, "invalid YAML: %s", msg)
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	checkFields(path, root, reflect.TypeOf(v).Elem(), "", ps)
	if err := root.Decode(v); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, e := range te.Errors {
				line, msg := splitYAMLError(e)
				key := keyAtLine(root, line, "")
				if m := typeErrRE.FindStringSubmatch(msg); m != nil {
					got := fmt.Sprintf("%q", m[2])
					switch m[1] {
					case "seq":
						got, key = "a list", keyOfKindAt(root, line, yaml.SequenceNode, "")
					case "map":
						got, key = "a mapping", keyOfKindAt(root, line, yaml.MappingNode, "")
					}
					msg = fmt.Sprintf("expected %s, got %s", friendlyType(m[3]), got)
				}
				if key != "" {
					msg = key + ": " + msg
				}
				ps.add(path, line, "%s", msg)
			}
		} else {
			line, msg := splitYAMLError(err.Error())
			ps.add(path, line, "%s", msg)
		}
	}
	return root
}

// keyAtLine returns the dotted path of the mapping key whose value starts
// on line, or "".
func keyAtLine(n *yaml.Node, line int, where string) string {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(where, k.Value)
			if v.Kind == yaml.ScalarNode && v.Line == line {
				return p
			}
			if got := keyAtLine(v, line, p); got != "" {
				return got
			}

		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", where, i)
			if c.Kind == yaml.ScalarNode && c.Line == line {
				return p
			}
			if got := keyAtLine(c, line, p); got != "" {
				return got
			}
		}
	}
	return ""
}

// keyOfKindAt returns the dotted path of the mapping key whose value is a
// node of kind starting on line, or "".
func keyOfKindAt(n *yaml.Node, line int, kind yaml.Kind, where string) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := join(where, k.Value)
		if v.Kind == kind && v.Line == line {
			return p
		}
		if got := keyOfKindAt(v, line, kind, p); got != "" {
			return got
		}
	}
	return ""
}

func friendlyType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"):
		return "a whole number"
	case goType == "bool":
		return "true or false"
	case goType == "time.Duration":
		return "a duration like 90s, 5m or 1h"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["), strings.Contains(goType, "."):
		return "a mapping"
	}
	return goType
}

func splitYAMLError(s string) (int, string) {
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n")
	s = strings.TrimSpace(s)
	if m := lineRE.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, strings.TrimPrefix(s, "yaml: ")
}

// checkFields walks n against the yaml tags of t and reports every mapping
// key that t does not know.
func checkFields(path string, n *yaml.Node, t reflect.Type, where string, ps *Problems) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == reflect.TypeOf(time.Duration(0)) || n.Kind != yaml.MappingNode {
			return // Decode reports the type mismatch
		}
		known := map[string]reflect.Type{}
		var names []string
		var fields func(reflect.Type)
		fields = func(t reflect.Type) {
			for f := range t.Fields() {
				name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
				if name == "" && opts == "inline" && f.Type.Kind() == reflect.Struct {
					fields(f.Type) // its fields are the mapping's own
					continue
				}
				if name == "" || name == "-" {
					continue
				}
				known[name] = f.Type
				names = append(names, name)
			}
		}
		fields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := known[k.Value]
			if !ok {
				ps.add(path, k.Line, "unknown field %q%s%s; known fields: %s",
					k.Value, in(where), suggest(k.Value, names), strings.Join(names, ", "))
				continue
			}
			checkFields(path, v, ft, join(where, k.Value), ps)
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for i, item := range n.Content {
				checkFields(path, item, t.Elem(), fmt.Sprintf("%s[%d]", where, i), ps)
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				checkFields(path, n.Content[i+1], t.Elem(), join(where, n.Content[i].Value), ps)
			}
		}
	}
}

func in(where string) string {
	if where == "" {
		return ""
	}
	return " in " + where
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// suggest returns `, did you mean "x"?` for the closest known name, if any
// is close enough to be a likely typo.
func suggest(got string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(got, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(` (did you mean %q?)`, best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// lineOf returns the line of the value at the dotted key path below n, or
// of the closest ancestor found.
func lineOf(n *yaml.Node, keys ...string) int {
	if n == nil {
		return 0
	}
	line := n.Line
	for _, k := range keys {
		found := false
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					n, found = n.Content[i+1], true
					line = n.Line
					break
				}
			}
		} else if n.Kind == yaml.SequenceNode {
			if idx, err := strconv.Atoi(k); err == nil && idx < len(n.Content) {
				n, found = n.Content[idx], true
				line = n.Line
			}
		}
		if !found {
			break
		}
	}
	return line
}

// checkSchedule checks the schedule of a backup, backup check or scan:
// at most once every schedule.MinJobPeriod.
func checkSchedule(path string, root *yaml.Node, spec string, ps *Problems, keys ...string) {
	checkScheduleFloor(path, root, spec, schedule.MinJobPeriod, ps, keys...)
}

// checkScheduleFloor refuses a spec the scheduler cannot run: one it
// cannot parse, one that never fires (30 February), or one more often
// than minPeriod (0: no floor). It returns the parsed schedule, nil when
// refused or empty.
func checkScheduleFloor(path string, root *yaml.Node, spec string, minPeriod time.Duration, ps *Problems, keys ...string) cron.Schedule {
	if spec == "" {
		return nil
	}
	sc, err := schedule.Check(spec, minPeriod)
	if err != nil {
		hint := "use 5 cron fields (\"0 3 * * *\") or a descriptor (\"@daily\", \"@every 1h\")"
		if minPeriod > 0 {
			hint += fmt.Sprintf(", at most once every %s", minPeriod)
		}
		ps.add(path, lineOf(root, keys...), "%s: invalid schedule %q: %v; %s", strings.Join(keys, "."), spec, err, hint)
		return nil
	}
	return sc
}

func checkVars(path string, root *yaml.Node, vars map[string]string, ps *Problems, keys ...string) {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if !varRE.MatchString(k) {
			ps.add(path, lineOf(root, append(keys, k)...), "variable name %q is not valid: use letters, digits and _, not starting with a digit", k)
		}
		if strings.HasPrefix(k, "SYNCD_") {
			ps.add(path, lineOf(root, append(keys, k)...), "variable %q: names starting with SYNCD_ are reserved for syncd", k)
		}
	}
}
