package bootstrap

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// statusKeyComment heads the status_key enroll adds to a host.yaml.
const statusKeyComment = "# The key this host signs its status documents with (syncd enroll): only documents that\n# verify against it count for the wave gate and `syncd status --fleet`.\n"

// setStatusKey returns host.yaml (data, at path for messages) with
// status_key set to key and every other byte as it was: the line of an
// existing status_key is replaced, or the key appended with a comment.
// What the edit cannot do in place (a flow-style mapping, a value over
// several lines) is refused, to be done by hand.
func setStatusKey(path string, data []byte, key string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %v; fix the file first", path, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: expected a mapping (apps:, wave:, …)", path)
	}
	top := doc.Content[0]
	if top.Style&yaml.FlowStyle != 0 {
		return nil, fmt.Errorf("%s: a flow-style mapping ({…}); add status_key: %q to it by hand", path, key)
	}
	line := "status_key: " + strconv.Quote(key)
	lines := strings.SplitAfter(string(data), "\n")
	var out string
	if i := keyIndex(top, "status_key"); i >= 0 {
		k, v := top.Content[i], top.Content[i+1]
		if v.Kind != yaml.ScalarNode || v.Line != k.Line || strings.Contains(v.Value, "\n") || k.Line > len(lines) {
			return nil, fmt.Errorf("%s:%d: status_key is not one line; set it to %q by hand", path, k.Line, key)
		}
		old := lines[k.Line-1]
		nl := ""
		if strings.HasSuffix(old, "\n") {
			nl = "\n"
		}
		if c := strings.TrimSpace(v.LineComment + k.LineComment); c != "" {
			line += " " + c
		}
		lines[k.Line-1] = strings.Repeat(" ", k.Column-1) + line + nl
		out = strings.Join(lines, "")
	} else {
		out = string(data)
		if out != "" && !strings.HasSuffix(out, "\n") {
			out += "\n"
		}
		out += "\n" + statusKeyComment + line + "\n"
	}
	// What was written must read back as the key, and as the rest it was.
	var check struct {
		StatusKey string `yaml:"status_key"`
	}
	if err := yaml.Unmarshal([]byte(out), &check); err != nil || check.StatusKey != key {
		return nil, fmt.Errorf("%s: could not set status_key in place (%v); set it to %q by hand", path, err, key)
	}
	return []byte(out), nil
}

func keyIndex(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
}
