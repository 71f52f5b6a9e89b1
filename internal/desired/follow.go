package desired

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"gopkg.in/yaml.v3"
)

// follow scans the files a compose file reaches through `include:` and
// `extends: {file: …}` with the same variables and the same rules as the
// file itself: Compose loads them too, and an undefined variable in them
// would silently become "". dir is where f's relative paths resolve: the
// project directory (the app's) for the -f files, a host's override
// among them; an included file's own directory (or its project_directory);
// an extended file's own directory.
func (s *scan) follow(f string, root *yaml.Node, dir string) {
	if s.followed == nil {
		s.followed = map[string]bool{f: true}
	}
	if inc := child(root, "include"); inc != nil && inc.Kind == yaml.SequenceNode {
		for _, it := range inc.Content {
			var paths []*yaml.Node
			switch it.Kind {
			case yaml.ScalarNode:
				paths = append(paths, it)
			case yaml.MappingNode:
				switch p := child(it, "path"); {
				case p == nil:
				case p.Kind == yaml.ScalarNode:
					paths = append(paths, p)
				case p.Kind == yaml.SequenceNode:
					paths = append(paths, p.Content...)
				}
			}
			for _, p := range paths {
				target, root, ok := s.open(f, p, dir, "include")
				if !ok {
					continue
				}
				s.walk(target, root, nil)
				s.locateServices(target, root)
				incDir := path.Dir(target)
				if pd := child(it, "project_directory"); pd != nil && pd.Kind == yaml.ScalarNode && pd.Value != "" {
					if d, ok := s.inRepo(f, pd, dir, "include.project_directory"); ok {
						incDir = d
					}
				}
				s.follow(target, root, incDir)
			}
		}
	}
	svcs := child(root, "services")
	if svcs == nil || svcs.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(svcs.Content); i += 2 {
		s.checkEnvFiles(f, dir, child(svcs.Content[i+1], "env_file"))
	}
	for i := 0; i+1 < len(svcs.Content); i += 2 {
		name, ext := svcs.Content[i].Value, child(svcs.Content[i+1], "extends")
		if ext == nil || ext.Kind != yaml.MappingNode {
			continue
		}
		file, based := child(ext, "file"), child(ext, "service")
		if based == nil {
			continue
		}
		if file == nil {
			s.bases[f+"\x00"+name] = extended{f, based.Value}
			continue // extends within the same file: walked already
		}
		target, troot, ok := s.open(f, file, dir, "extends.file")
		if !ok {
			if t := path.Join(dir, file.Value); s.nodes[t] != nil {
				s.bases[f+"\x00"+name] = extended{t, based.Value} // read already
			}
			continue
		}
		s.bases[f+"\x00"+name] = extended{target, based.Value}
		// What the base service holds becomes this service's.
		if b := child(child(troot, "services"), based.Value); b != nil {
			s.walk(target, b, []string{"services", name})
		}
		s.follow(target, troot, path.Dir(target))
	}
}

// inRepo resolves ref, a path relative to dir (where from's relative paths
// resolve), to a repository-relative path, or reports why it cannot.
func (s *scan) inRepo(from string, ref *yaml.Node, dir, field string) (string, bool) {
	v := ref.Value
	switch {
	case strings.Contains(v, "://") || strings.HasPrefix(v, "oci:") || strings.HasPrefix(v, "git@"):
		s.ps.add(from, ref.Line, "%s: %q is a remote resource; syncd deploys only what the repository holds: copy the file into the repository", field, v)
		return "", false
	case path.IsAbs(v):
		s.ps.add(from, ref.Line, "%s: %q is an absolute path; a compose file may only use files inside the repository: use a path relative to %s/", field, v, dir)
		return "", false
	}
	target := path.Join(dir, v)
	if target == ".." || strings.HasPrefix(target, "../") {
		s.ps.add(from, ref.Line, "%s: %q leads out of the repository; a compose file may only use files inside it", field, v)
		return "", false
	}
	return target, true
}

// open reads the compose file that ref (a path relative to dir, where
// from's relative paths resolve) names, once per render.
func (s *scan) open(from string, ref *yaml.Node, dir, field string) (string, *yaml.Node, bool) {
	target, ok := s.inRepo(from, ref, dir, field)
	if !ok {
		return "", nil, false
	}
	v := ref.Value
	if s.followed[target] {
		return "", nil, false
	}
	s.followed[target] = true
	data, err := s.repo.ReadFile(target)
	if err != nil {
		var pp Problems
		if errors.As(err, &pp) {
			for _, p := range pp {
				s.ps.add(from, ref.Line, "%s: %s: %s", field, v, p.Msg)
			}
		} else {
			s.ps.add(from, ref.Line, "%s: %s: cannot read: %v", field, v, err)
		}
		return "", nil, false
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := splitYAMLError(err.Error())
		s.ps.add(target, line, "invalid YAML: %s", s.redact(msg))
		return "", nil, false
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		s.ps.add(target, 0, "a compose file must be a YAML mapping")
		return "", nil, false
	}
	s.nodes[target] = doc.Content[0]
	s.order = append(s.order, target)
	return target, doc.Content[0], true
}

// checkEnvFiles checks each env_file of a service before the Compose loader
// reads it: inside the repository, a regular file, not too large. The
// loader itself would follow /etc/shadow, or read /dev/zero until memory
// runs out.
func (s *scan) checkEnvFiles(from, dir string, n *yaml.Node) {
	if n == nil {
		return
	}
	var refs []*yaml.Node
	switch n.Kind {
	case yaml.ScalarNode:
		refs = append(refs, n)
	case yaml.SequenceNode:
		for _, it := range n.Content {
			if it.Kind == yaml.MappingNode {
				if p := child(it, "path"); p != nil {
					if req := child(it, "required"); req != nil && req.Value == "false" {
						continue // optional: a missing file is fine, and nothing is read from outside
					}
					refs = append(refs, p)
				}
				continue
			}
			refs = append(refs, it)
		}
	}
	for _, ref := range refs {
		v := ref.Value
		if strings.Contains(v, "$") {
			continue // interpolated: checked as the loader resolves it
		}
		if path.IsAbs(v) {
			s.ps.add(from, ref.Line, "env_file: %q is an absolute path; a compose file may only read files inside the repository: use a path relative to %s/", v, dir)
			continue
		}
		target := path.Join(dir, v)
		if target == ".." || strings.HasPrefix(target, "../") {
			s.ps.add(from, ref.Line, "env_file: %q leads out of the repository; a compose file may only read files inside it", v)
			continue
		}
		if _, err := s.repo.ReadFile(target); err != nil {
			var pp Problems
			if errors.As(err, &pp) {
				for _, p := range pp {
					msg := p.Msg
					if msg == "missing; create it" {
						msg = fmt.Sprintf("the repository has no %s; add it, fix the path, or write {path: %s, required: false}", target, v)
					}
					s.ps.add(from, ref.Line, "env_file: %s: %s", v, msg)
				}
			} else {
				s.ps.add(from, ref.Line, "env_file: %s: %v", v, err)
			}
		}
	}
}
