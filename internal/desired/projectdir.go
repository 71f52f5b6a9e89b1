package desired

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// DefaultProjectsDir is where each project's stable directory lies when
// Repo.ProjectsDir is empty: the state directory's projects/.
const DefaultProjectsDir = "/var/lib/syncd/projects"

// Mount is a path of a project's stable directory that a service
// bind-mounts, or that a config or file secret reads. Compose resolves a
// relative path (./data) against the compose file's directory; syncd
// resolves it in the project's directory instead, outside the checkout, so
// that what a container writes there outlives the next commit.
type Mount struct {
	// Path is the absolute path in the project's directory.
	Path string
	// Rel is the repository-relative path it stands for (apps/x/data).
	Rel string
	// Source is the absolute path of what the repository holds there, to
	// be materialised at Path before the project is applied; "" when the
	// repository has nothing there: the path is data, created on first use
	// and kept like a volume.
	Source string
	// Dir tells a directory from a file (data is always a directory).
	Dir bool
	// Writable is set when a service mounts it read-write.
	Writable bool
	// Services use it, sorted.
	Services []string
	// Config names the config or secret ("config NAME", "secret NAME")
	// that reads this file, "" for a bind mount.
	Config string
}

// Data reports whether the path is the containers' data, not repository
// content.
func (m Mount) Data() bool { return m.Source == "" }

// projectDir is the stable directory of app's project.
func (r *Repo) projectDir(app string) string {
	dir := r.ProjectsDir
	if dir == "" {
		dir = DefaultProjectsDir
	}
	return filepath.Join(dir, app)
}

// relocate moves every path of the checkout that the loaded project
// mounts or reads at run time (bind mount sources, config and secret
// files) into the project's stable directory, and records each as a Mount.
// A path that leads out of the repository is a problem.
func (s *scan) relocate(proj *types.Project, dir string) []Mount {
	root, err := os.OpenRoot(s.repo.Root)
	if err != nil {
		s.ps.add(s.app.ComposeFile, 0, "cannot open the repository: %v", unwrapPath(err))
		return nil
	}
	defer root.Close()
	mounts := map[string]*Mount{}
	// place maps an absolute path of the checkout into dir; other paths
	// (the host's own, /var/run/docker.sock) stay as they are. Problems
	// are reported at at.
	place := func(abs string, services []string, what string, writable bool, config string, at Location) (string, bool) {
		problem := func(format string, args ...any) {
			// A path may be made of a secret.
			s.ps.add(at.Path, at.Line, "%s", s.redact(fmt.Sprintf(format, args...)))
		}
		if r, ok := strings.CutPrefix(abs, dir+string(filepath.Separator)); ok || abs == dir {
			// ${PWD}/x: already the project's directory, which stands for
			// the app's directory of the repository, as ./x does.
			abs = filepath.Join(s.repo.Root, filepath.FromSlash(path.Dir(s.app.ComposeFile)), r)
		}
		rel, err := filepath.Rel(s.repo.Root, abs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			if config != "" {
				// A host file would be read by syncd and shown in render.
				problem("%s reads %s, outside the repository; a compose file may only read files inside the repository", config, abs)
				return "", false
			}
			return abs, true // a host path, such as /var/run/docker.sock
		}
		rel = filepath.ToSlash(rel)
		appDir := path.Dir(s.app.ComposeFile)
		var dst string
		switch {
		case rel == appDir:
			dst = dir
		case strings.HasPrefix(rel, appDir+"/"):
			dst = filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(rel, appDir+"/")))
		default:
			// Outside the app's own directory (../shared/conf): kept apart
			// so that it cannot collide with the app's paths.
			dst = filepath.Join(dir, "_repo", filepath.FromSlash(rel))
		}
		m := mounts[dst]
		if m == nil {
			m = &Mount{Path: dst, Rel: rel, Config: config}
			st, err := root.Stat(filepath.FromSlash(rel))
			switch {
			case err == nil && st.IsDir():
				m.Source, m.Dir = abs, true
				if msg := checkTree(root, filepath.FromSlash(rel)); msg != "" {
					problem("%s %s: %s", what, rel, msg)
					return "", false
				}
			case err == nil && st.Mode().IsRegular():
				m.Source = abs
			case err == nil:
				problem("%s %s is a %s in the repository; only regular files and directories can be mounted", what, rel, kindOf(st.Mode()))
				return "", false
			case errors.Is(err, fs.ErrNotExist):
				if config != "" {
					problem("%s reads %s, which the repository does not have; add the file or fix the path", config, rel)
					return "", false
				}
				m.Dir = true // data: created on first use
			default:
				problem("%s %s leads out of the repository (%v); a compose file may only use paths inside the repository", what, rel, unwrapPath(err))
				return "", false
			}
			mounts[dst] = m
		}
		for _, svc := range services {
			if !slices.Contains(m.Services, svc) {
				m.Services = append(m.Services, svc)
			}
		}
		m.Writable = m.Writable || writable
		return dst, true
	}
	// In name order, so that the same input reports the same problems.
	for _, name := range slices.Sorted(maps.Keys(proj.Services)) {
		svc := proj.Services[name]
		for i, v := range svc.Volumes {
			if v.Type != types.VolumeTypeBind || !filepath.IsAbs(v.Source) {
				continue
			}
			if dst, ok := place(v.Source, []string{name}, "bind mount", !v.ReadOnly, "", s.serviceAt(name)); ok {
				svc.Volumes[i].Source = dst
			}
		}
		proj.Services[name] = svc
	}
	users := func(kind, name string) []string {
		var out []string
		for svcName, svc := range proj.Services {
			var sources []string
			for _, ref := range svc.Configs {
				if kind == "config" {
					sources = append(sources, ref.Source)
				}
			}
			for _, ref := range svc.Secrets {
				if kind == "secret" {
					sources = append(sources, ref.Source)
				}
			}
			if slices.Contains(sources, name) {
				out = append(out, svcName)
			}
		}
		slices.Sort(out)
		return out
	}
	relocateFiles := func(kind string, objs map[string]types.FileObjectConfig) {
		for name, o := range objs {
			if o.File == "" || bool(o.External) {
				continue
			}
			// Placed once, for all its users: the file is the repository's,
			// however many services read it.
			at := s.definedAt(kind+"s", name, "file")
			if dst, ok := place(o.File, users(kind, name), kind+" "+name, false, kind+" "+name, at); ok {
				o.File = dst
			}
			objs[name] = o
		}
	}
	configs := map[string]types.FileObjectConfig{}
	for k, v := range proj.Configs {
		configs[k] = types.FileObjectConfig(v)
	}
	relocateFiles("config", configs)
	for k, v := range configs {
		proj.Configs[k] = types.ConfigObjConfig(v)
	}
	secrets := map[string]types.FileObjectConfig{}
	for k, v := range proj.Secrets {
		secrets[k] = types.FileObjectConfig(v)
	}
	relocateFiles("secret", secrets)
	for k, v := range secrets {
		proj.Secrets[k] = types.SecretConfig(v)
	}
	proj.WorkingDir = dir
	out := make([]Mount, 0, len(mounts))
	for _, m := range mounts {
		slices.Sort(m.Services)
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Mount) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// serviceAt is where a service is defined first.
func (s *scan) serviceAt(service string) Location {
	if l, ok := s.services[service]; ok {
		return l
	}
	return Location{Path: s.app.ComposeFile}
}

// definedAt is where the key path (configs, NAME, file) is set: in the
// last file, in merge order, that defines its object, at the deepest key
// of the path that file has.
func (s *scan) definedAt(keys ...string) Location {
	for _, f := range slices.Backward(s.order) {
		if hasPath(s.nodes[f], keys[:min(2, len(keys))]) {
			return Location{Path: f, Line: lineOf(s.nodes[f], keys...)}
		}
	}
	return Location{Path: s.app.ComposeFile}
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return fmt.Sprintf("special file (%v)", m.Type())
}

// SourceOf returns the checkout path a project's stable path stands for,
// or path itself when it is not one.
func (p *Project) SourceOf(path string) string {
	for _, m := range p.Mounts {
		if m.Path == path && m.Source != "" {
			return m.Source
		}
	}
	return path
}

// checkTree reports the first entry of a mounted repository directory that
// syncd cannot copy into the project directory: a link that leads out of
// the repository or to a directory, a FIFO, a device.
func checkTree(root *os.Root, dir string) string {
	msg := ""
	fs.WalkDir(root.FS(), filepath.ToSlash(dir), func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			msg = fmt.Sprintf("%s: %v", p, unwrapPath(err))
		case d.IsDir() && d.Name() == ".git", d.IsDir() || d.Type().IsRegular():
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			st, err := root.Stat(p)
			switch {
			case err != nil:
				msg = fmt.Sprintf("%s is a link that leads out of the repository; a mounted directory may only hold files of the repository", p)
			case st.Mode().IsRegular():
				return nil
			default:
				msg = fmt.Sprintf("%s is a link to a %s; only links to files can be copied: replace it with what it points to", p, kindOf(st.Mode()))
			}
		default:
			msg = fmt.Sprintf("%s is a %s; a mounted directory may only hold regular files and directories", p, kindOf(d.Type()))
		}
		return fs.SkipAll
	})
	return msg
}
