package desired

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"
)

// Repo is a loaded desired-state repository.
type Repo struct {
	// Root is the absolute directory of the checkout.
	Root string
	// ProjectsDir holds each project's stable directory (ProjectsDir/<app>),
	// where relative paths of its compose files resolve; "" means
	// DefaultProjectsDir. Rendering only names paths there; the caller that
	// applies creates them.
	ProjectsDir string
	Fleet       Fleet
	Apps        map[string]*App
	Hosts       map[string]*Host
}

// maxFileSize caps every file syncd reads from a repository, so a hostile
// or broken commit cannot exhaust memory.
const maxFileSize = 4 << 20

// secretsFileNames are the names a host's SOPS file may have; the ending
// tells its format.
var secretsFileNames = []string{"secrets.sops.yaml", "secrets.sops.yml", "secrets.sops.json", "secrets.sops.env"}

// Load reads and checks the repository at dir. It reports every problem it
// finds; the Repo it returns is usable for the parts without problems, so
// validation can go on to render, but a caller that applies must refuse a
// repository whose problems hold an Error.
func Load(dir string) (*Repo, Problems) {
	var ps Problems
	abs, err := filepath.Abs(dir)
	if err != nil {
		ps.add(dir, 0, "%v", err)
		return nil, ps
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		ps.add(dir, 0, "cannot open the repository: %v", unwrapPath(err))
		return nil, ps
	}
	defer root.Close()

	r := &Repo{Root: abs, Apps: map[string]*App{}, Hosts: map[string]*Host{}}
	r.loadFleet(root, &ps)
	r.loadApps(root, &ps)
	r.loadHosts(root, &ps)
	r.checkAfter(&ps)
	r.checkSkip(&ps)
	return r, ps.Sorted()
}

func (r *Repo) loadFleet(root *os.Root, ps *Problems) {
	const p = "syncd.yaml"
	data, ok := readFile(root, p, false, ps)
	if !ok {
		return
	}
	n := decodeStrict(p, data, &r.Fleet, ps)
	checkVars(p, n, r.Fleet.Defaults.Vars, ps, "defaults", "vars")
	if r.Fleet.Defaults.HealthTimeout < 0 {
		ps.add(p, lineOf(n, "defaults", "health_timeout"), "defaults.health_timeout must be positive")
	}
	if s := r.Fleet.Defaults.Soak; s != nil && *s < 0 {
		ps.add(p, lineOf(n, "defaults", "soak"), "defaults.soak must be 0s (off) or more")
	}
	if r.Fleet.Waves.BakeTime < 0 {
		ps.add(p, lineOf(n, "waves", "bake_time"), "waves.bake_time must be positive")
	}
	for i := range r.Fleet.Waves.Skip {
		r.Fleet.Waves.skipLine = append(r.Fleet.Waves.skipLine, lineOf(n, "waves", "skip", fmt.Sprint(i)))
	}
	checkNotify(p, n, r.Fleet.Notify, ps)
}

func (r *Repo) loadApps(root *os.Root, ps *Problems) {
	entries, err := fs.ReadDir(root.FS(), "apps")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			ps.add("apps", 0, "the repository has no apps/ directory; add apps/<app>/compose.yaml for each app")
		} else {
			ps.add("apps", 0, "%v", unwrapPath(err))
		}
		return
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		dir := path.Join("apps", name)
		if !nameRE.MatchString(name) {
			ps.add(dir, 0, "app name %q is not valid: use lowercase letters, digits, - and _, starting with a letter or digit (it becomes the Compose project name)", name)
			continue
		}
		app := &App{Name: name}
		app.ComposeFile = composeFileOf(root, dir)
		if app.ComposeFile == "" {
			ps.add(dir, 0, "app %q has no compose file; add %s/compose.yaml", name, dir)
			continue
		}
		settings := path.Join(dir, "app.yaml")
		if data, ok := readFile(root, settings, false, ps); ok {
			app.settingsFile = settings
			n := decodeStrict(settings, data, app, ps)
			app.check(settings, n, ps)
		}
		r.Apps[name] = app
	}
}

// composeFileOf finds an app's compose file by the names Compose itself
// accepts, preferring compose.yaml.
func composeFileOf(root *os.Root, dir string) string {
	for _, n := range []string{"compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"} {
		p := path.Join(dir, n)
		if st, err := root.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

func (a *App) check(p string, n *yaml.Node, ps *Problems) {
	switch a.Drift {
	case "":
		a.Drift = DriftHeal
	case DriftHeal, DriftReport:
	default:
		ps.add(p, lineOf(n, "drift"), "drift: %q is not a drift policy; use heal (default) or report", a.Drift)
	}
	if a.HealthTimeout < 0 {
		ps.add(p, lineOf(n, "health_timeout"), "health_timeout must be positive")
	}
	checkSuspended(p, n, a.Suspended, ps)
	if a.Soak != nil && *a.Soak < 0 {
		ps.add(p, lineOf(n, "soak"), "soak must be 0s (off) or more")
	}
	a.node = n
	a.afterLine = map[string]int{}
	for i, dep := range a.After {
		a.afterLine[dep] = lineOf(n, "after", fmt.Sprint(i))
	}
	if b := a.Backup; b != nil {
		checkSchedule(p, n, b.Schedule, ps, "backup", "schedule")
		files := map[string]bool{}
		for i, d := range b.Dumps {
			line := lineOf(n, "backup", "dumps", fmt.Sprint(i))
			switch {
			case d.Service == "" || len(d.Command) == 0 || d.Filename == "":
				ps.add(p, line, "backup.dumps[%d]: service, command and filename are all required", i)
			case files[d.Filename]:
				ps.add(p, lineOf(n, "backup", "dumps", fmt.Sprint(i), "filename"), "backup.dumps[%d].filename: %q is used by another dump; give each dump its own file", i, d.Filename)
			case strings.ContainsAny(d.Filename, "/\\") || d.Filename == "." || d.Filename == "..":
				ps.add(p, lineOf(n, "backup", "dumps", fmt.Sprint(i), "filename"), "backup.dumps[%d].filename: %q must be a plain file name such as db.sql", i, d.Filename)
			}
			files[d.Filename] = true
		}
		for i, v := range b.Paths {
			if v == "" || v == "/" {
				ps.add(p, lineOf(n, "backup", "paths", fmt.Sprint(i)), "backup.paths[%d]: %q: name a directory of the app (./data) or of the host (/srv/app)", i, v)
			}
		}
		checkDrill(p, n, b.Drill, ps)
	}
	checkProbes(p, n, a.Probes, ps)
	if a.Scan != nil {
		checkScan(p, n, *a.Scan, ps)
	}
	for i, d := range a.Deviations {
		line := lineOf(n, "deviations", fmt.Sprint(i))
		if !slices.Contains(Rules, d.Rule) {
			ps.add(p, line, "deviations[%d]: unknown rule %q%s; rules: %s", i, d.Rule, suggest(d.Rule, Rules), strings.Join(Rules, ", "))
		}
		if strings.TrimSpace(d.Reason) == "" {
			ps.add(p, line, "deviations[%d] (%s): reason is required: say why this app cannot meet the rule", i, d.Rule)
		}
	}
}

// checkDrill checks backup.drill: its schedule is one the scheduler can
// run, each verify check names a service and a
// command, expects an exit code a process can have, and has an output
// pattern that compiles.
func checkDrill(p string, n *yaml.Node, d *Drill, ps *Problems) {
	if d == nil {
		return
	}
	checkSchedule(p, n, d.Schedule, ps, "backup", "drill", "schedule")
	if d.Timeout < 0 {
		ps.add(p, lineOf(n, "backup", "drill", "timeout"), "backup.drill.timeout must be positive (default %s)", DefaultDrillTimeout)
	}
	for i, c := range d.Verify {
		at := func(key string) int { return lineOf(n, "backup", "drill", "verify", fmt.Sprint(i), key) }
		if c.Service == "" || len(c.Command) == 0 {
			ps.add(p, at(""), "backup.drill.verify[%d]: service and command are both required: the command runs in that service's drill container", i)
		}
		if c.Exit < 0 || c.Exit > 255 {
			ps.add(p, at("exit"), "backup.drill.verify[%d].exit: %d is no exit code: use 0 to 255 (default 0)", i, c.Exit)
		}
		if c.Output != "" {
			if _, err := regexp.Compile(c.Output); err != nil {
				ps.add(p, at("output"), "backup.drill.verify[%d].output: %q is not a regular expression: %v", i, c.Output, err)
			}
		}
	}
}

// Deviates reports whether the app acknowledges rule for service.
func (a *App) Deviates(rule, service string) bool {
	return slices.ContainsFunc(a.Deviations, func(d Deviation) bool {
		return d.Rule == rule && (d.Service == "" || d.Service == service)
	})
}

// SoakOr returns how long the app's release must stay healthy: app.yaml's
// soak, else the fleet default, else DefaultSoak.
func (a *App) SoakOr(f Fleet) time.Duration {
	switch {
	case a.Soak != nil:
		return *a.Soak
	case f.Defaults.Soak != nil:
		return *f.Defaults.Soak
	}
	return DefaultSoak
}

// HealthTimeoutOr returns the app's health timeout, else the fleet default,
// else DefaultHealthTimeout.
func (a *App) HealthTimeoutOr(f Fleet) time.Duration {
	switch {
	case a.HealthTimeout > 0:
		return a.HealthTimeout
	case f.Defaults.HealthTimeout > 0:
		return f.Defaults.HealthTimeout
	}
	return DefaultHealthTimeout
}

func (r *Repo) loadHosts(root *os.Root, ps *Problems) {
	entries, err := fs.ReadDir(root.FS(), "hosts")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			ps.add("hosts", 0, "the repository has no hosts/ directory; add hosts/<host>/host.yaml for each host")
		} else {
			ps.add("hosts", 0, "%v", unwrapPath(err))
		}
		return
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		dir := path.Join("hosts", name)
		if !nameRE.MatchString(name) {
			ps.add(dir, 0, "host name %q is not valid: use lowercase letters, digits, - and _", name)
			continue
		}
		h := &Host{Name: name, Overrides: map[string]string{}}
		if r.loadHost(root, dir, h, ps) {
			r.Hosts[name] = h
		}
	}
}

func (r *Repo) loadHost(root *os.Root, dir string, h *Host, ps *Problems) bool {
	p := path.Join(dir, "host.yaml")
	data, ok := readFile(root, p, true, ps)
	if !ok {
		return false
	}
	before := len(*ps)
	n := decodeStrict(p, data, h, ps)
	h.node = n
	invalidYAML := n == nil && len(*ps) > before
	if len(h.Apps) == 0 && !invalidYAML {
		ps.add(p, lineOf(n, "apps"), "apps: list the apps this host runs, e.g. apps: [traefik]; an empty list would remove every project (see prune in syncd.yaml)")
	}
	seen := map[string]bool{}
	for i, app := range h.Apps {
		line := lineOf(n, "apps", fmt.Sprint(i))
		if seen[app] {
			ps.add(p, line, "app %q is listed twice", app)
		}
		seen[app] = true
		if _, ok := r.Apps[app]; !ok {
			ps.add(p, line, "unknown app %q%s: there is no apps/%s/compose.yaml; known apps: %s",
				app, suggest(app, slices.Sorted(maps.Keys(r.Apps))), app, strings.Join(slices.Sorted(maps.Keys(r.Apps)), ", "))
		}
	}
	for _, app := range slices.Sorted(maps.Keys(h.Profiles)) {
		if !seen[app] {
			ps.add(p, lineOf(n, "profiles", app), "profiles: host %q does not run app %q; add it to apps or remove its profiles", h.Name, app)
		}
	}
	if h.Wave < 0 {
		ps.add(p, lineOf(n, "wave"), "wave must be 0 (canaries) or more")
	}
	checkSuspended(p, n, h.Suspended, ps)
	if h.StatusKey != "" {
		if err := checkStatusKey(h.StatusKey); err != nil {
			ps.add(p, lineOf(n, "status_key"), "status_key: %v; copy the host's key from `syncd status` on it, or let `syncd enroll --token FILE` write it", err)
		}
	}
	checkVars(p, n, h.Vars, ps, "vars")
	if b := h.Backup; b != nil {
		if b.RepositorySecret == "" || b.PasswordSecret == "" {
			ps.add(p, lineOf(n, "backup"), "backup: repository_secret and password_secret are required: name the keys of %s/secrets.sops.yaml that hold the restic repository and its password", dir)
		}
		checkSchedule(p, n, b.Schedule, ps, "backup", "schedule")
		checkSchedule(p, n, b.CheckSchedule, ps, "backup", "check_schedule")
		if b.Retention.Daily < 0 || b.Retention.Weekly < 0 || b.Retention.Monthly < 0 {
			ps.add(p, lineOf(n, "backup", "retention"), "backup.retention: counts must not be negative")
		}
		for _, name := range slices.Sorted(maps.Keys(b.Env)) {
			if !envNameRE.MatchString(name) {
				ps.add(p, lineOf(n, "backup", "env", name), "backup.env: %q is not an environment variable name; use upper-case letters, digits and _ (such as AWS_ACCESS_KEY_ID)", name)
			} else if b.Env[name] == "" {
				ps.add(p, lineOf(n, "backup", "env", name), "backup.env.%s: name the key of %s/secrets.sops.yaml that holds it", name, dir)
			}
		}
	}
	if s := h.Scan; s != nil {
		checkSchedule(p, n, s.Schedule, ps, "scan", "schedule")
		checkScan(p, n, s.AppScan, ps)
	}

	files, err := fs.ReadDir(root.FS(), dir)
	if err != nil {
		ps.add(dir, 0, "%v", unwrapPath(err))
		return true
	}
	for _, f := range files {
		name, fp := f.Name(), path.Join(dir, f.Name())
		switch {
		case name == "host.yaml" || f.IsDir():
		case slices.Contains(secretsFileNames, name):
			if h.SecretsFile != "" {
				ps.add(fp, 0, "host %q has two secrets files (%s and %s); keep one", h.Name, path.Base(h.SecretsFile), name)
				continue
			}
			h.SecretsFile = fp
		case strings.HasSuffix(name, ".override.yaml") || strings.HasSuffix(name, ".override.yml"):
			app := strings.TrimSuffix(strings.TrimSuffix(name, ".yaml"), ".yml")
			app = strings.TrimSuffix(app, ".override")
			if !seen[app] {
				ps.add(fp, 0, "override for app %q, which host %q does not run; add %q to apps in %s or remove the file", app, h.Name, app, p)
				continue
			}
			h.Overrides[app] = fp
		case strings.Contains(name, "secret") || strings.HasSuffix(name, ".env"):
			ps.add(fp, 0, "this looks like a plaintext secrets file; put secrets in %s/secrets.sops.yaml, encrypted with sops", dir)
		default:
			ps.warn(fp, 0, "", "file is not used by syncd (a host directory holds host.yaml, secrets.sops.yaml and <app>.override.yaml)")
		}
	}
	if b := h.Backup; b != nil && h.SecretsFile == "" && (b.RepositorySecret != "" || b.PasswordSecret != "") {
		ps.add(p, lineOf(n, "backup"), "backup names secrets but host %q has no %s/secrets.sops.yaml", h.Name, dir)
	}
	return true
}

// checkAfter reports `after:` entries that name no app and cycles.
func (r *Repo) checkAfter(ps *Problems) {
	for _, name := range slices.Sorted(maps.Keys(r.Apps)) {
		a := r.Apps[name]
		for _, dep := range a.After {
			if _, ok := r.Apps[dep]; !ok {
				ps.add(a.settingsFile, a.afterLine[dep], "after: unknown app %q%s", dep, suggest(dep, slices.Sorted(maps.Keys(r.Apps))))
			}
			if dep == name {
				ps.add(a.settingsFile, a.afterLine[dep], "after: app %q cannot come after itself", name)
			}
		}
	}
	if cycle := findCycle(r.Apps); len(cycle) > 0 {
		a := r.Apps[cycle[0]]
		ps.add(a.settingsFile, a.afterLine[cycle[1]], "after: cycle %s; remove one of these dependencies", strings.Join(cycle, " → "))
	}
}

// checkSkip refuses a waves.skip entry that names no host: a typo would
// leave the host it meant holding the rollout.
func (r *Repo) checkSkip(ps *Problems) {
	hosts := slices.Sorted(maps.Keys(r.Hosts))
	for i, name := range r.Fleet.Waves.Skip {
		if _, ok := r.Hosts[name]; !ok {
			ps.add("syncd.yaml", r.Fleet.Waves.skipLine[i], "waves.skip: unknown host %q%s: there is no hosts/%s/host.yaml; remove it from waves.skip", name, suggest(name, hosts), name)
		}
	}
}

func findCycle(apps map[string]*App) []string {
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(string) []string
	visit = func(n string) []string {
		state[n] = visiting
		stack = append(stack, n)
		for _, d := range apps[n].After {
			if _, ok := apps[d]; !ok || d == n {
				continue
			}
			switch state[d] {
			case visiting:
				i := slices.Index(stack, d)
				return append(slices.Clone(stack[i:]), d)
			case unvisited:
				if c := visit(d); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		return nil
	}
	for _, n := range slices.Sorted(maps.Keys(apps)) {
		if state[n] == unvisited {
			if c := visit(n); c != nil {
				return c
			}
		}
	}
	return nil
}

// readFile reads p below root, capped at maxFileSize. A missing file is a
// problem only when required.
func readFile(root *os.Root, p string, required bool, ps *Problems) ([]byte, bool) {
	// Only a regular file: opening a FIFO would block for ever, and a
	// device has no end.
	if st, err := root.Stat(p); err == nil && !st.Mode().IsRegular() {
		ps.add(p, 0, "is a %s, not a regular file; syncd reads only regular files of at most %d bytes", kindOf(st.Mode()), maxFileSize)
		return nil, false
	}
	f, err := root.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if required {
				ps.add(p, 0, "missing; create it")
			}
			return nil, false
		}
		ps.add(p, 0, "cannot read: %v", unwrapPath(err))
		return nil, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		ps.add(p, 0, "cannot read: %v", unwrapPath(err))
		return nil, false
	}
	if st.Size() > maxFileSize {
		ps.add(p, 0, "file is %d bytes; syncd reads files of at most %d bytes", st.Size(), maxFileSize)
		return nil, false
	}
	data := make([]byte, st.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		ps.add(p, 0, "cannot read: %v", unwrapPath(err))
		return nil, false
	}
	return data, true
}

// unwrapPath drops the path from a *PathError: problems name the path
// themselves, relative to the repository.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ReadFile reads a repository-relative file, confined to the repository
// (a symlink out of it is refused) and capped in size.
func (r *Repo) ReadFile(p string) ([]byte, error) {
	root, err := os.OpenRoot(r.Root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var ps Problems
	data, ok := readFile(root, p, true, &ps)
	if !ok {
		return nil, ps
	}
	return data, nil
}

// checkSuspended wants a reason with every suspension: the status shows it
// to whoever wonders why an app does not follow main.
func checkSuspended(p string, n *yaml.Node, s *Suspended, ps *Problems) {
	if s != nil && strings.TrimSpace(s.Reason) == "" {
		ps.add(p, lineOf(n, "suspended"), "suspended: say why, e.g. suspended: {reason: \"incident 42: DB migration by hand\"}; remove the key to resume")
	}
}

// checkStatusKey accepts one ssh-ed25519 public key in authorized_keys
// form: what a host signs its status documents with.
func checkStatusKey(s string) error {
	key, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	switch {
	case err != nil:
		return fmt.Errorf("not an SSH public key (ssh-ed25519 AAAA…): %v", err)
	case len(options) > 0 || len(bytes.TrimSpace(rest)) > 0:
		return errors.New("one key, without options: ssh-ed25519 AAAA…")
	case key.Type() != ssh.KeyAlgoED25519:
		return fmt.Errorf("a %s key; a host signs its status with an ssh-ed25519 key", key.Type())
	}
	return nil
}
