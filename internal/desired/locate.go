package desired

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// composeChecks reports what the Compose loader would only log, or report
// without a line: duplicate keys, the obsolete version attribute, YAML 1.1
// booleans. It returns false when the file cannot be loaded.
func (s *scan) composeChecks(f string, root *yaml.Node) bool {
	ok := true
	var dups func(n *yaml.Node, depth int)
	dups = func(n *yaml.Node, depth int) {
		if depth > maxWalkDepth {
			return
		}
		if n.Kind == yaml.MappingNode {
			seen := map[string]int{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if k.Value == "<<" {
					continue
				}
				if first, dup := seen[k.Value]; dup {
					s.ps.add(f, k.Line, "key %q is defined twice in this mapping (first at line %d); keep one", k.Value, first)
					ok = false
				} else {
					seen[k.Value] = k.Line
				}
			}
		}
		for _, c := range n.Content {
			dups(c, depth+1)
		}
	}
	dups(root, 0)
	if v := keyNode(root, "version"); v != nil {
		s.ps.warn(f, v.Line, "", "the attribute version is obsolete: Compose ignores it; remove it")
	}
	if svcs := child(root, "services"); svcs != nil && svcs.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(svcs.Content); i += 2 {
			s.yaml11Booleans(f, svcs.Content[i+1])
		}
	}
	return ok
}

// boolKeys are the service fields Compose reads as booleans.
var boolKeys = []string{"read_only", "privileged", "tty", "stdin_open", "init", "oom_kill_disable", "attach", "disable", "required", "restart", "external"}

// yaml11Booleans warns about yes/no/on/off where Compose wants a boolean:
// YAML 1.2 reads them as strings, and Compose converts them with a warning.
func (s *scan) yaml11Booleans(f string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind == yaml.ScalarNode && v.Style == 0 && slices.Contains(boolKeys, k.Value) {
			switch strings.ToLower(v.Value) {
			case "yes", "on", "y":
				s.ps.warn(f, v.Line, "", "%s: %q is not a boolean in YAML 1.2; write true", k.Value, v.Value)
			case "no", "off", "n":
				s.ps.warn(f, v.Line, "", "%s: %q is not a boolean in YAML 1.2; write false", k.Value, v.Value)
			}
		}
		s.yaml11Booleans(f, v)
	}
}

func keyNode(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i]
		}
	}
	return nil
}

// badIndentation improves yaml.v3's "did not find expected key", which
// names the line where the enclosing block starts: it finds the first line
// below it indented to no level open at that point.
func badIndentation(data []byte, line int, msg string) (int, string) {
	if line <= 0 || !strings.Contains(msg, "did not find expected key") {
		return line, msg
	}
	lines := strings.Split(string(data), "\n")
	var open []int
	for i := line - 1; i < len(lines); i++ {
		text := strings.TrimRight(lines[i], " \t\r")
		trimmed := strings.TrimLeft(text, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(text) - len(trimmed)
		for len(open) > 0 && indent < open[len(open)-1] {
			open = open[:len(open)-1]
		}
		if len(open) > 0 && indent > open[len(open)-1] && i > line-1 && !opensBlock(lines, i) && !listItem(lines[i]) {
			return i + 1, fmt.Sprintf("this line's indentation matches no block above it (the block starts at line %d)", line)
		}
		if len(open) == 0 || indent > open[len(open)-1] {
			open = append(open, indent)
		} else if len(open) > 0 && indent != open[len(open)-1] {
			return i + 1, fmt.Sprintf("this line's indentation matches no block above it (the block starts at line %d)", line)
		}
	}
	return line, msg + " (check the indentation of the block that starts here)"
}

// opensBlock reports whether the line before i ends a key that opens a
// block (so a deeper indentation is expected at i).
func opensBlock(lines []string, i int) bool {
	for j := i - 1; j >= 0; j-- {
		prev := strings.TrimSpace(lines[j])
		if prev == "" || strings.HasPrefix(prev, "#") {
			continue
		}
		return strings.HasSuffix(prev, ":") || strings.HasSuffix(prev, "|") || strings.HasSuffix(prev, ">") || strings.HasSuffix(prev, "-")
	}
	return false
}

func listItem(line string) bool {
	t := strings.TrimSpace(line)
	return strings.HasPrefix(t, "- ") || t == "-"
}

var (
	dependsRE  = regexp.MustCompile(`service "([^"]+)" depends on undefined service "([^"]+)"`)
	envFileRE  = regexp.MustCompile(`env file (\S+) not found`)
	lastWordRE = regexp.MustCompile(`: ([^\s:"']{2,})$`)
)

// locateMessage finds the file and line a loader message that names no key
// path is about: a depends_on target, an env_file, or the value it quotes
// last ("invalid hostPort: notaport").
func (s *scan) locateMessage(files []string, msg string) (string, int) {
	find := func(match func(keys []string, n *yaml.Node) bool) (string, int) {
		for _, f := range slices.Backward(files) {
			if l := findNode(s.nodes[f], nil, match); l > 0 {
				return f, l
			}
		}
		return "", 0
	}
	if m := dependsRE.FindStringSubmatch(msg); m != nil {
		return find(func(keys []string, n *yaml.Node) bool {
			return len(keys) >= 3 && keys[0] == "services" && keys[1] == m[1] && keys[2] == "depends_on" &&
				(n.Kind == yaml.ScalarNode && n.Value == m[2] || keyNode(n, m[2]) != nil)
		})
	}
	if m := envFileRE.FindStringSubmatch(msg); m != nil {
		base := m[1][strings.LastIndex(m[1], "/")+1:]
		return find(func(keys []string, n *yaml.Node) bool {
			return slices.Contains(keys, "env_file") && n.Kind == yaml.ScalarNode && strings.HasSuffix(n.Value, base)
		})
	}
	if m := lastWordRE.FindStringSubmatch(msg); m != nil {
		return find(func(keys []string, n *yaml.Node) bool {
			return len(keys) >= 2 && keys[0] == "services" && n.Kind == yaml.ScalarNode && strings.Contains(n.Value, m[1])
		})
	}
	return "", 0
}

// findNode returns the line of the first node below n that match accepts.
func findNode(n *yaml.Node, keys []string, match func([]string, *yaml.Node) bool) int {
	if n == nil || len(keys) > maxWalkDepth {
		return 0
	}
	if match(keys, n) {
		return n.Line
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if l := findNode(n.Content[i+1], append(keys, n.Content[i].Value), match); l > 0 {
				return l
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if l := findNode(c, keys, match); l > 0 {
				return l
			}
		}
	}
	return 0
}
