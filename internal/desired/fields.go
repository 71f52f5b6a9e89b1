package desired

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/plan"
)

// maxFieldText bounds how much of one setting a diff shows.
const maxFieldText = 120

// ordered are the lists whose order is their meaning: compared whole.
var ordered = map[string]bool{"command": true, "entrypoint": true, "healthcheck.test": true}

// Fields flattens every service of p, as `syncd render` prints it (secret
// values replaced by their redaction), into the settings a reviewer reads:
// what `syncd diff` compares and a cycle's plan names when a service's
// configuration changed. A redacted value is named by its key and compared
// by a keyed hash (key), never shown.
func (p *Project) Fields(secrets Secrets, key []byte) (map[string]plan.Fields, error) {
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
	secrets Secrets
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

// maxContentBytes bounds what is read of a config file to compare it.
const maxContentBytes = 1 << 20

// ContentPrefix starts the path of the field that holds a config file's
// content; `syncd diff` shows its change as a line diff.
const ContentPrefix = "config "

// configContents adds, per service, the content of each config it mounts
// (the same sources reconcile hashes), redacted by f.
func (f flattener) configContents(p *types.Project, into map[string]plan.Fields) {
	for name, svc := range p.Services {
		for _, ref := range svc.Configs {
			c, ok := p.Configs[ref.Source]
			if !ok || bool(c.External) {
				continue
			}
			text, ok := "", true
			switch {
			case c.Content != "":
				text = c.Content
			case c.Environment != "":
				text = p.Environment[c.Environment]
			case c.File != "":
				text, ok = readCapped(c.File)
			}
			if !ok {
				continue // the cycle's hash reports what cannot be read
			}
			if into[name] == nil {
				into[name] = plan.Fields{}
			}
			into[name][ContentPrefix+ref.Source] = f.content(text)
		}
	}
}

func readCapped(path string) (string, bool) {
	fh, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxContentBytes+1))
	if err != nil || len(data) > maxContentBytes {
		return "", false
	}
	return string(data), true
}

// content is a config's text with secret values named, compared whole.
func (f flattener) content(text string) plan.Field {
	shown := f.secrets.RedactNamed(text)
	fl := plan.Field{Text: shown}
	if shown != text {
		fl.Sum = f.sum(text) // a value inside changed: compared, never shown
	}
	return fl
}
