package review

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/plan"
)

// maxFieldText bounds how much of one setting a diff shows.
const maxFieldText = 120

// ordered are the lists whose order is their meaning: compared whole.
var ordered = map[string]bool{"command": true, "entrypoint": true, "healthcheck.test": true}

// projectFields flattens every service of p, as `syncd render` prints it
// (secret values already replaced by desired's redaction), into the
// settings a reviewer reads. A redacted value is named by its key and
// compared by a keyed hash, never shown.
func projectFields(p *desired.Project, secrets desired.Secrets, key []byte) (map[string]plan.Fields, error) {
	// The values stay in memory: each field names the secrets it holds by
	// key and is compared by a keyed hash of its real text, so a rotated
	// value shows as changed and no value is shown.
	out, err := p.YAML(nil)
	if err != nil {
		return nil, errors.New(secrets.RedactFragments(err.Error()))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(out, &doc); err != nil || len(doc.Content) == 0 {
		return nil, fmt.Errorf("project %s: re-read the rendered YAML", p.Name())
	}
	f := flattener{key: key, secrets: secrets}
	res := map[string]plan.Fields{}
	svcs := child(doc.Content[0], "services")
	if svcs == nil {
		return res, nil
	}
	for i := 0; i+1 < len(svcs.Content); i += 2 {
		fields := plan.Fields{}
		f.walk(fields, "", svcs.Content[i+1])
		res[svcs.Content[i].Value] = fields
	}
	f.configContents(p.Compose, res)
	return res, nil
}

type flattener struct {
	key     []byte
	secrets desired.Secrets
}

// sum is a keyed hash of text, to compare what is not shown.
func (f flattener) sum(text string) string {
	mac := hmac.New(sha256.New, f.key)
	mac.Write([]byte(text))
	return hex.EncodeToString(mac.Sum(nil)[:12])
}

func (f flattener) walk(out plan.Fields, path string, n *yaml.Node) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			if path == "labels" && strings.HasPrefix(k, "dev.syncd.") {
				continue // syncd's own: the commit changes on every diff
			}
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				out[path+"["+k+"]"] = plan.Field{Text: k}
				continue
			}
			f.walk(out, join(k), v)
		}
	case yaml.SequenceNode:
		if ordered[path] {
			// By position: one changed argument is one change.
			for i, c := range n.Content {
				out[fmt.Sprintf("%s.%d", path, i)] = f.field(compact(c))
			}
			return
		}
		for _, c := range n.Content {
			item := f.field(itemText(path, c))
			out[path+"["+item.Text+"]"] = item
		}
	default:
		out[path] = f.field(n.Value)
	}
}

// field shows text with every redacted value named by its key; a value
// that is (or holds) a secret, is cut short or has a line break is
// compared by a keyed hash.
func (f flattener) field(text string) plan.Field {
	shown := f.secrets.RedactNamed(text)
	secret := shown != text
	// A line break shows as \n, as a backslash and an n do: such a value is
	// compared by its hash too, so the two never compare equal.
	broken := strings.Contains(shown, "\n")
	shown = strings.ReplaceAll(shown, "\n", `\n`)
	cut := false
	if len(shown) > maxFieldText {
		shown, cut = abbrev.Text(shown, maxFieldText), true
	}
	fl := plan.Field{Text: shown}
	if secret || cut || broken {
		fl.Sum = f.sum(text)
	}
	return fl
}

// itemText is one item of an unordered list, short: ports and volumes in
// their Compose short form, anything else as flow YAML.
func itemText(path string, n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return compact(n)
	}
	get := func(k string) string {
		if c := child(n, k); c != nil {
			return c.Value
		}
		return ""
	}
	switch path {
	case "ports":
		s := get("target")
		if pub := get("published"); pub != "" {
			s = pub + ":" + s
			if ip := get("host_ip"); ip != "" {
				s = ip + ":" + s
			}
		}
		if proto := get("protocol"); proto != "" {
			s += "/" + proto
		}
		return s
	case "volumes":
		s := get("target")
		if src := get("source"); src != "" {
			s = src + ":" + s
		}
		if get("read_only") == "true" {
			s += ":ro"
		}
		return get("type") + " " + s
	}
	return compact(n)
}

// compact writes a node on one line.
func compact(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	c := *n
	c.Style = yaml.FlowStyle
	setFlow(&c)
	out, err := yaml.Marshal(&c)
	if err != nil {
		return n.Value
	}
	return strings.TrimSpace(string(out))
}

func setFlow(n *yaml.Node) {
	n.Style |= yaml.FlowStyle
	n.Content = slices.Clone(n.Content) // the rendered tree is not ours to change
	for i, c := range n.Content {
		cc := *c
		setFlow(&cc)
		n.Content[i] = &cc
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
