package desired

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

// Project is one app on one host: a Compose project named after the app.
type Project struct {
	App  *App
	Host *Host
	// Compose is the final model: overrides merged, variables filled,
	// secrets attached. It holds secret values (in Environment and in the
	// Content of secrets): never print it without Redact.
	Compose *types.Project
	// Files are the repository-relative files merged into it, in order.
	Files []string
	// SecretKeys lists, per service, the keys of the host's secrets file it
	// uses, as a file under /run/secrets or as a ${NAME} value.
	SecretKeys map[string][]string
	// StandIns lists the secrets rendered as "1" instead of their
	// placeholder, because Compose refused the placeholder where it wants
	// a number, a size or a flag. Only without real values.
	StandIns []string
	// Dir is the project's stable directory, its Compose working directory.
	Dir string
	// Mounts are the paths in Dir that its services mount or read, sorted.
	Mounts []Mount
	// Probes are app.yaml's probes with their ${NAME}s filled in for this
	// host. They may hold secret values (a token in a URL): whatever of
	// them leaves syncd passes through the host's Secrets.Redact.
	Probes []Probe

	services map[string]Location
	// nodes, order and bases are the files as scanned, to locate a
	// setting; unresolved the settings that use undefined variables.
	nodes      map[string]*yaml.Node
	order      []string
	bases      map[string]extended
	unresolved map[string]map[string]bool
}

// Location is a place in the repository.
type Location struct {
	Path string
	Line int
}

// ServiceLocation says where a service is defined first, for messages.
func (p *Project) ServiceLocation(service string) Location {
	if l, ok := p.services[service]; ok {
		return l
	}
	return Location{Path: p.App.ComposeFile}
}

// Location says where a setting of a service (keys below services.NAME,
// such as "image") is written: in the last file, in merge order, that sets
// it, following extends: and merge keys; else where the service is.
func (p *Project) Location(service string, keys ...string) Location {
	for _, f := range slices.Backward(p.order) {
		if l, ok := p.locate(f, service, keys, 0); ok {
			return l
		}
	}
	return p.ServiceLocation(service)
}

func (p *Project) locate(f, service string, keys []string, depth int) (Location, bool) {
	n := child(child(p.nodes[f], "services"), service)
	if n == nil || depth > maxWalkDepth {
		return Location{}, false
	}
	if v := find(n, keys, 0); v != nil {
		return Location{Path: f, Line: v.Line}, true
	}
	if b, ok := p.bases[f+"\x00"+service]; ok {
		return p.locate(b.file, b.service, keys, depth+1)
	}
	return Location{}, false
}

// find follows keys below the mapping n, also into what n merges in with
// <<: *anchor, and returns the node of the last key.
func find(n *yaml.Node, keys []string, depth int) *yaml.Node {
	if len(keys) == 0 {
		return n
	}
	if depth > maxWalkDepth {
		return nil
	}
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	if v := keyNode(n, keys[0]); v != nil {
		if len(keys) == 1 {
			return v // the key's line: a block value starts below it
		}
		return find(child(n, keys[0]), keys[1:], depth+1)
	}
	if m := child(n, "<<"); m != nil {
		merged := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			merged = m.Content
		}
		for _, c := range merged {
			if v := find(c, keys, depth+1); v != nil {
				return v
			}
		}
	}
	return nil
}

// Unresolved reports whether a setting of a service (a top-level key of
// it, such as "image") uses a variable that is defined nowhere: reported
// as a problem, and its value in Compose is a stand-in.
func (p *Project) Unresolved(service, field string) bool {
	return p.unresolved[service][field]
}

// Name is the Compose project name.
func (p *Project) Name() string { return p.App.Name }

// Render returns the Compose projects host must run, ordered so that every
// app comes after the apps it names in `after:`. secrets are the host's
// decrypted values (or Placeholders). Every problem of every app is
// reported; no project is returned when there is one.
func (r *Repo) Render(ctx context.Context, host string, secrets Secrets) ([]*Project, Problems) {
	out, ps := r.Inspect(ctx, host, secrets)
	if ps.HasErrors() {
		return nil, ps
	}
	return out, ps
}

// Inspect renders as Render does, but returns every project that loads,
// also when there are problems, so that a check (syncd validate) goes on
// to what is in them and reports every problem in one run. A project of
// an app with a problem must never be applied: where a variable is
// undefined (see Unresolved), or a secret is missing, it holds stand-ins.
func (r *Repo) Inspect(ctx context.Context, host string, secrets Secrets) ([]*Project, Problems) {
	var ps Problems
	h, ok := r.Hosts[host]
	if !ok {
		ps.add("hosts", 0, "unknown host %q%s; hosts in this repository: %s",
			host, suggest(host, slices.Sorted(maps.Keys(r.Hosts))), strings.Join(slices.Sorted(maps.Keys(r.Hosts)), ", "))
		return nil, ps
	}
	env, envOK := r.environment(h, secrets, &ps)
	if !envOK {
		return nil, ps.Sorted()
	}
	var out []*Project
	for _, name := range r.ApplyOrder(h) {
		app := r.Apps[name]
		if app == nil {
			continue // reported by Load
		}
		p := r.renderApp(ctx, h, app, env, secrets, &ps)
		if p != nil {
			out = append(out, p)
		}
	}
	checkClashes(host, out, secrets, &ps)
	return out, ps.Sorted()
}

// ApplyOrder returns the host's apps ordered by `after:` (only among the
// apps the host runs), ties by name.
func (r *Repo) ApplyOrder(h *Host) []string {
	runs := map[string]bool{}
	for _, a := range h.Apps {
		runs[a] = true
	}
	done := map[string]bool{}
	var order []string
	var visit func(string, int)
	visit = func(n string, depth int) {
		if done[n] || depth > len(runs) {
			return
		}
		if a := r.Apps[n]; a != nil {
			for _, d := range slices.Sorted(slices.Values(a.After)) {
				if runs[d] {
					visit(d, depth+1)
				}
			}
		}
		if !done[n] {
			done[n] = true
			order = append(order, n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(runs)) {
		visit(n, 0)
	}
	return order
}

// binding is where a name used in ${NAME} gets its value.
type binding struct {
	value  string
	secret bool
	dotenv bool // from the app's .env
}

// environment merges, for one host, the names compose files may use:
// fleet defaults, host vars (which win), and secret keys. A name that is
// both a var and a secret is refused: which one a file meant is a guess.
func (r *Repo) environment(h *Host, secrets Secrets, ps *Problems) (map[string]binding, bool) {
	env := map[string]binding{}
	for k, v := range r.Fleet.Defaults.Vars {
		env[k] = binding{value: v}
	}
	maps.Copy(env, func() map[string]binding {
		m := map[string]binding{}
		for k, v := range h.Vars {
			m[k] = binding{value: v}
		}
		return m
	}())
	ok := true
	for _, k := range slices.Sorted(maps.Keys(secrets)) {
		if _, clash := env[k]; clash {
			where := fmt.Sprintf("hosts/%s/host.yaml vars", h.Name)
			if _, hostVar := h.Vars[k]; !hostVar {
				where = "syncd.yaml defaults.vars"
			}
			ps.add(h.SecretsFile, 0, "%q is both a secret key and a variable in %s; rename one", k, where)
			ok = false
		}
		env[k] = binding{value: secrets[k], secret: true}
	}
	return env, ok
}

// renderApp renders one app for one host; problems go to ps.
func (r *Repo) renderApp(ctx context.Context, h *Host, app *App, base map[string]binding, secrets Secrets, ps *Problems) *Project {
	env := maps.Clone(base)
	env["SYNCD_HOST"] = binding{value: h.Name}
	env["SYNCD_APP"] = binding{value: app.Name}
	// Compose always defines the project name; the CLI would take it from
	// the environment, but here the project is the app, whatever a var says.
	env["COMPOSE_PROJECT_NAME"] = binding{value: app.Name}
	// The CLI fills an unset PWD with its working directory; syncd's is
	// the project's directory, where the relative paths resolve: so
	// ${PWD}/state is ./state.
	if _, ok := env["PWD"]; !ok {
		env["PWD"] = binding{value: r.projectDir(app.Name)}
	}
	r.dotEnv(app, env, ps)
	profiles := r.profiles(h, app, env)

	files := []string{app.ComposeFile}
	if o, ok := h.Overrides[app.Name]; ok {
		files = append(files, o)
	}
	s := &scan{repo: r, host: h, app: app, env: env, ps: ps, uses: map[string]map[string]bool{}, used: map[string]bool{},
		svcSecrets: map[string][]secretRef{}, topSecrets: map[string]topSecret{}, nodes: map[string]*yaml.Node{},
		services: map[string]Location{}, bases: map[string]extended{}, undefined: map[string]bool{}, unresolved: map[string]map[string]bool{}}
	var configs []types.ConfigFile
	before := len(*ps)
	for _, f := range files {
		data, err := r.ReadFile(f)
		if err != nil {
			var pp Problems
			if errors.As(err, &pp) {
				*ps = append(*ps, pp...)
			} else {
				ps.add(f, 0, "cannot read: %v", err)
			}
			continue
		}
		if !s.file(f, data) {
			continue
		}
		configs = append(configs, types.ConfigFile{Filename: filepath.Join(r.Root, filepath.FromSlash(f)), Content: data})
	}
	injected := s.attachSecrets()
	// An undefined variable or a missing secret is reported, but the
	// files load with stand-ins all the same, so that what else is wrong
	// in them is reported in the same run; any other problem stops here.
	if errorsIn((*ps)[before:]) > s.soft {
		return nil
	}
	if len(injected) > 0 {
		configs = append(configs, types.ConfigFile{Filename: "syncd-secrets.yaml", Config: map[string]any{"secrets": injected}})
	}

	load := func(standIn string) (*types.Project, []string, error) {
		mapping := types.Mapping{}
		var stood []string
		for k, b := range env {
			mapping[k] = b.value
			if standIn != "" && b.secret && isPlaceholder(b.value) {
				mapping[k] = standIn
				if s.used[k] {
					stood = append(stood, k)
				}
			}
		}
		if standIn != "" {
			for k := range s.undefined {
				mapping[k] = standIn
				stood = append(stood, k)
			}
		}
		details := types.ConfigDetails{
			WorkingDir:  filepath.Join(r.Root, filepath.FromSlash(path.Dir(app.ComposeFile))),
			ConfigFiles: slices.Clone(configs),
			Environment: mapping,
		}
		proj, err := loader.LoadWithContext(ctx, details, func(o *loader.Options) {
			o.SetProjectName(app.Name, true)
			o.Profiles = profiles
		}, loader.WithDiscardEnvFiles) // as every command of the CLI: env_file's variables are in environment
		if err == nil {
			// As the CLI does before it creates anything: a network, volume,
			// config or secret no service uses is not created.
			proj = proj.WithoutUnnecessaryResources()
		}
		slices.Sort(stood)
		return proj, stood, err
	}
	proj, _, err := load("")
	var standIns []string
	note := ""
	if err != nil && (s.placeholdersUsed() || len(s.undefined) > 0) {
		// Without the host's key, a secret is "<secret:NAME>", which Compose
		// refuses where it wants a number, a size or a flag (a port, a
		// mem_limit) although the real value may fit; so is the "" of an
		// undefined variable. Load again with a stand-in that fits those:
		// what it refuses is wrong whatever the values are.
		proj, standIns, err = load("1")
		if err != nil && len(standIns) > 0 {
			how := "without the host's key"
			if len(s.undefined) > 0 {
				how = "with the undefined variables"
			}
			note = fmt.Sprintf(" (checked %s: %s stood in as 1)", how, strings.Join(standIns, ", "))
		}
		standIns = slices.DeleteFunc(standIns, func(k string) bool { return s.undefined[k] })
	}
	if err != nil {
		s.loaderProblem(files, err, note)
		return nil
	}
	s.checkProfiles(proj, h.Profiles[app.Name])
	probes := s.renderProbes()
	dir := r.projectDir(app.Name)
	mounts := s.relocate(proj, dir)
	p := &Project{App: app, Host: h, Compose: proj, Files: files, SecretKeys: map[string][]string{}, StandIns: standIns,
		Dir: dir, Mounts: mounts, Probes: probes, services: s.services, nodes: s.nodes, order: s.order, bases: s.bases,
		unresolved: s.unresolved}
	for svc, keys := range s.uses {
		if _, ok := proj.Services[svc]; ok {
			p.SecretKeys[svc] = slices.Sorted(maps.Keys(keys))
		}
	}
	return p
}

// scan walks an app's compose files before the Compose loader sees them,
// to report what the loader cannot: an undefined variable (the loader
// silently substitutes ""), a secret that is defined nowhere, and which
// secret keys each service uses.
type scan struct {
	repo  *Repo
	host  *Host
	app   *App
	env   map[string]binding
	ps    *Problems
	nodes map[string]*yaml.Node // file -> root node
	// uses: service -> secret keys it uses
	uses       map[string]map[string]bool
	used       map[string]bool // every secret key used as ${NAME}, in a service or not
	svcSecrets map[string][]secretRef
	topSecrets map[string]topSecret
	services   map[string]Location
	// followed are the files reached by include: and extends:, scanned once.
	followed map[string]bool
	// order lists the files read, in the order the loader merges them.
	order []string
	// bases links a service (file NUL name) to the one it extends.
	bases map[string]extended
	// undefined are the variables used but defined nowhere, unresolved
	// the settings (service -> top-level key) that use them.
	undefined  map[string]bool
	unresolved map[string]map[string]bool
	// soft counts the problems that still let the files load: undefined
	// variables and missing secrets.
	soft int
}

// extended is the service another extends.
type extended struct{ file, service string }

// errorsIn counts the errors among ps.
func errorsIn(ps Problems) int {
	n := 0
	for _, p := range ps {
		if p.Severity == Error {
			n++
		}
	}
	return n
}

type secretRef struct {
	source string
	file   string
	line   int
}

type topSecret struct {
	environment string
	file        string
	line        int
}

func (s *scan) file(f string, data []byte) bool {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := splitYAMLError(err.Error())
		line, msg = badIndentation(data, line, msg)
		s.ps.add(f, line, "invalid YAML: %s", s.redact(msg))
		return false
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		s.ps.add(f, 0, "a compose file must be a YAML mapping with a services: key")
		return false
	}
	root := doc.Content[0]
	s.nodes[f] = root
	s.order = append(s.order, f)
	if !s.composeChecks(f, root) {
		return false
	}
	s.locateServices(f, root)
	s.walk(f, root, nil)
	// Every -f file's relative paths resolve in the project directory, the
	// first file's: a host's override names the app's ./x, as with the CLI.
	s.follow(f, root, path.Dir(s.app.ComposeFile))
	if svcs := child(root, "services"); svcs != nil && svcs.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(svcs.Content); i += 2 {
			name := svcs.Content[i].Value
			list := child(svcs.Content[i+1], "secrets")
			if list == nil || list.Kind != yaml.SequenceNode {
				continue
			}
			for _, it := range list.Content {
				src := it.Value
				if it.Kind == yaml.MappingNode {
					if n := child(it, "source"); n != nil {
						src = n.Value
					}
				}
				s.svcSecrets[name] = append(s.svcSecrets[name], secretRef{source: src, file: f, line: it.Line})
			}
		}
	}
	if top := child(root, "secrets"); top != nil && top.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(top.Content); i += 2 {
			ts := topSecret{file: f, line: top.Content[i].Line}
			if n := child(top.Content[i+1], "environment"); n != nil {
				ts.environment = n.Value
			}
			s.topSecrets[top.Content[i].Value] = ts
		}
	}
	return true
}

// locateServices notes where the services of file f are defined, unless
// a file before it defines them.
func (s *scan) locateServices(f string, root *yaml.Node) {
	svcs := child(root, "services")
	if svcs == nil || svcs.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(svcs.Content); i += 2 {
		if name := svcs.Content[i].Value; s.services[name] == (Location{}) {
			s.services[name] = Location{Path: f, Line: svcs.Content[i].Line}
		}
	}
}

func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// maxWalkDepth bounds the walk, so aliases nested without end (a "billion
// laughs" file) cannot exhaust the stack.
const maxWalkDepth = 64

func (s *scan) walk(f string, n *yaml.Node, keys []string) {
	if len(keys) > maxWalkDepth {
		return
	}
	service, field := "", ""
	if len(keys) >= 2 && keys[0] == "services" {
		service = keys[1]
	}
	if service != "" && len(keys) >= 3 {
		field = keys[2]
	}
	// environment: of a service, also when merged in with <<: *anchor.
	inEnv := service != "" && len(keys) >= 3 && keys[len(keys)-1] == "environment"
	switch n.Kind {
	case yaml.AliasNode:
		// The anchor's content as it appears here, in this service.
		if n.Alias != nil {
			s.walk(f, n.Alias, keys)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if inEnv && v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				s.bareEnv(f, k.Line, service, k.Value)
			}
			s.walk(f, v, append(keys, k.Value))
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if inEnv && c.Kind == yaml.ScalarNode && !strings.Contains(c.Value, "=") {
				s.bareEnv(f, c.Line, service, c.Value)
			}
			s.walk(f, c, append(keys, fmt.Sprint(i)))
		}
	case yaml.ScalarNode:
		for _, ref := range scanVars(n.Value) {
			s.check(f, n.Line, service, field, ref)
		}
	}
}

// bareEnv handles `environment: [NAME]` (or NAME with no value): Compose
// fills it from the variables, so a secret key lands in the container's
// environment just as ${NAME} does.
func (s *scan) bareEnv(f string, line int, service, name string) {
	name = strings.TrimSpace(name)
	if b, ok := s.env[name]; ok && b.secret {
		s.check(f, line, service, "environment", varRef{Name: name, Op: ":-"})
	}
}

// check checks one ${NAME} of a value of field (a service's top-level key,
// or "") of service (or "").
func (s *scan) check(f string, line int, service, field string, ref varRef) {
	b, defined := s.env[ref.Name]
	if defined && b.secret {
		s.used[ref.Name] = true
		s.use(service, ref.Name)
		if service != "" && !s.app.Deviates("secret-in-env", service) {
			s.ps.warn(f, line, "secret-in-env",
				"service %q puts secret %q into its configuration as ${%s}, where `docker inspect` shows it; prefer `secrets: [%s]` and a *_FILE variable, or acknowledge it under deviations in %s",
				service, ref.Name, ref.Name, ref.Name, s.appSettings())
		}
	}
	if !defined && ref.required() {
		s.soft++
		s.undefined[ref.Name] = true
		if service != "" {
			if s.unresolved[service] == nil {
				s.unresolved[service] = map[string]bool{}
			}
			s.unresolved[service][field] = true
		}
		s.ps.add(f, line, "variable ${%s} is not defined for host %q; define it under vars in hosts/%s/host.yaml, under defaults.vars in syncd.yaml, or as a key of the host's secrets file (or write ${%s:-default})",
			ref.Name, s.host.Name, s.host.Name, ref.Name)
	}
	// Compose interpolates the text after the operator when it uses it: a
	// default when the name is unset (or empty, with :-), an alternative
	// when it is set (and not empty, with :+).
	used := false
	switch ref.Op {
	case "-":
		used = !defined
	case ":-":
		used = !defined || b.value == ""
	case "+":
		used = defined
	case ":+":
		used = defined && b.value != ""
	}
	if used {
		for _, inner := range scanVars(ref.Default) {
			s.check(f, line, service, field, inner)
		}
	}
}

func (s *scan) use(service, key string) {
	if service == "" {
		return
	}
	if s.uses[service] == nil {
		s.uses[service] = map[string]bool{}
	}
	s.uses[service][key] = true
}

func (s *scan) appSettings() string {
	return path.Join("apps", s.app.Name, "app.yaml")
}

// attachSecrets defines, for each secret a service lists that its compose
// files do not define, a Compose secret filled from the host's secrets
// file. It returns the definitions to merge.
func (s *scan) attachSecrets() map[string]any {
	injected := map[string]any{}
	secretsFile := s.host.SecretsFile
	if secretsFile == "" {
		secretsFile = path.Join("hosts", s.host.Name, "secrets.sops.yaml")
	}
	for _, svc := range slices.Sorted(maps.Keys(s.svcSecrets)) {
		for _, ref := range s.svcSecrets[svc] {
			if top, ok := s.topSecrets[ref.source]; ok {
				if top.environment == "" {
					continue // file: or external:, the loader checks those
				}
				b, defined := s.env[top.environment]
				switch {
				case !defined:
					s.soft++
					s.ps.add(top.file, top.line, "secret %q reads environment %q, which host %q does not define; add the key %q to %s",
						ref.source, top.environment, s.host.Name, top.environment, secretsFile)
				case b.secret:
					s.use(svc, top.environment)
				}
				continue
			}
			if b, ok := s.env[ref.source]; ok && b.secret {
				injected[ref.source] = map[string]any{"environment": ref.source}
				s.use(svc, ref.source)
				continue
			}
			s.soft++
			s.ps.add(ref.file, ref.line, "service %q uses secret %q, which is neither defined in the compose file nor a key of %s; add it with `sops edit %s`",
				svc, ref.source, secretsFile, secretsFile)
			// A stand-in, for the loader to check the rest.
			injected[ref.source] = map[string]any{"environment": ref.source}
		}
	}
	return injected
}

var (
	// loaderPathRE finds the key path a Compose loader error is about, in
	// the forms it writes: services.web.ports, 'services[web].mem_limit',
	// "error while interpolating services.web.cpus: ...".
	loaderPathRE = regexp.MustCompile(`^(?:error while interpolating |')?((?:services|networks|volumes|secrets|configs)(?:[.\[][A-Za-z0-9_.\[\]-]*)?)`)
	// loaderExtraRE finds the key the Compose schema does not allow.
	loaderExtraRE = regexp.MustCompile(`additional propert(?:y|ies) '([^',]+)'`)
	// loaderHeaders are lines of a Compose loader error that only
	// introduce the lines after them.
	loaderHeaders = []string{"decoding failed due to the following error(s):"}
)

// loaderProblem turns an error of the Compose loader into problems: paths
// made relative to the repository, the file and line found where the error
// names a key path, secret values (and fragments of them) redacted.
func (s *scan) loaderProblem(files []string, err error, note string) {
	// Redact before splitting: a multi-line value spans lines.
	msg := s.secrets().RedactFragments(err.Error())
	msg = strings.ReplaceAll(msg, s.repo.Root+string(filepath.Separator), "")
	named := ""
	for _, f := range files {
		if strings.Contains(msg, f) {
			named = f
		}
	}
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || slices.Contains(loaderHeaders, line) {
			continue
		}
		file, rest := named, line
		for _, f := range files {
			if r, ok := strings.CutPrefix(line, "validating "+f+": "); ok {
				file, rest = f, r
			}
		}
		var keys []string
		if m := loaderPathRE.FindStringSubmatch(rest); m != nil {
			keys = loaderKeys(m[1])
			if m := loaderExtraRE.FindStringSubmatch(rest); m != nil {
				keys = append(keys, m[1])
			}
		}
		if file == "" && keys != nil {
			// The last file that sets the key is the one that wins the merge.
			for _, f := range slices.Backward(files) {
				if hasPath(s.nodes[f], keys) {
					file = f
					break
				}
			}
		}
		if file == "" {
			file = files[0]
		}
		n := 0
		if keys != nil {
			n = lineOf(s.nodes[file], keys...)
		}
		if n == 0 {
			if f, l := s.locateMessage(files, rest); l > 0 {
				file, n = f, l
			}
		}
		s.ps.add(file, n, "the Compose loader rejects this file: %s%s", rest, note)
	}
}

// hasPath reports whether the key path exists below n.
func hasPath(n *yaml.Node, keys []string) bool {
	for _, k := range keys {
		if n = child(n, k); n == nil {
			return false
		}
	}
	return true
}

// loaderKeys splits a loader key path (services[web].ports.[].target) into
// the keys lineOf follows.
func loaderKeys(p string) []string {
	p = strings.NewReplacer("[]", "", "[", ".", "]", "").Replace(p)
	var keys []string
	for _, k := range strings.Split(p, ".") {
		if k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// placeholdersUsed reports whether the host's secrets are placeholders,
// not values (rendering without the host's key).
func (s *scan) placeholdersUsed() bool {
	for _, b := range s.env {
		if b.secret && isPlaceholder(b.value) {
			return true
		}
	}
	return false
}

func (s *scan) secrets() Secrets {
	secrets := Secrets{}
	for k, b := range s.env {
		if b.secret {
			secrets[k] = b.value
		}
	}
	return secrets
}

func (s *scan) redact(text string) string {
	return s.secrets().RedactFragments(text)
}

// escapeDollars writes every $ of a value as $$, as `docker compose config`
// does: the model holds values after interpolation, and the YAML must mean
// the same when Compose reads it again.
func escapeDollars(n *yaml.Node) {
	switch n.Kind {
	case yaml.ScalarNode:
		if strings.Contains(n.Value, "$") {
			n.Value = strings.ReplaceAll(n.Value, "$", "$$")
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			escapeDollars(n.Content[i])
		}
	default:
		for _, c := range n.Content {
			escapeDollars(c)
		}
	}
}

func redactNode(n *yaml.Node, secrets Secrets) {
	if n.Kind == yaml.ScalarNode {
		if v := secrets.redactScalar(n.Value); v != n.Value {
			n.Value, n.Tag, n.Style = v, "!!str", 0
		}
	}
	for _, c := range n.Content {
		redactNode(c, secrets)
	}
}
