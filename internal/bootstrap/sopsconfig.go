package bootstrap

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// sopsConfig is a .sops.yaml being edited as YAML nodes, so the operator's
// comments and other rules stay as they were.
type sopsConfig struct {
	doc   *yaml.Node // the document node
	rules *yaml.Node // the creation_rules sequence
}

// hostRuleRegex is the path_regex of a host's own creation rule, as the
// example repository writes it.
func hostRuleRegex(host string) string { return "^hosts/" + regexp.QuoteMeta(host) + "/" }

// hostMarker is the line comment on the host's recipient in its rule: how
// a later enroll or removal knows which recipient is the host's.
func hostMarker(host string) string { return "host " + host + " (syncd enroll)" }

func parseSopsConfig(data []byte) (*sopsConfig, error) {
	c := &sopsConfig{}
	if len(bytes.TrimSpace(data)) > 0 {
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf(".sops.yaml: %v; fix the file first", err)
		}
		c.doc = &doc
	}
	if c.doc == nil || len(c.doc.Content) == 0 {
		c.doc = &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	top := c.doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, fmt.Errorf(".sops.yaml:%d: expected a map with creation_rules", top.Line)
	}
	if v := mapValue(top, "creation_rules"); v != nil {
		if v.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf(".sops.yaml:%d: creation_rules: expected a list of rules", v.Line)
		}
		c.rules = v
	} else {
		c.rules = &yaml.Node{Kind: yaml.SequenceNode}
		top.Content = append(top.Content, scalar("creation_rules"), c.rules)
	}
	for _, r := range c.rules.Content {
		if r.Kind != yaml.MappingNode {
			return nil, fmt.Errorf(".sops.yaml:%d: a creation rule must be a map (path_regex, age)", r.Line)
		}
	}
	return c, nil
}

func (c *sopsConfig) marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c.doc); err != nil {
		return nil, fmt.Errorf(".sops.yaml: %v", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf(".sops.yaml: %v", err)
	}
	return b.Bytes(), nil
}

// hostRule returns the host's own rule (path_regex ^hosts/<host>/), or nil.
func (c *sopsConfig) hostRule(host string) *yaml.Node {
	want := hostRuleRegex(host)
	for _, r := range c.rules.Content {
		if v := mapValue(r, "path_regex"); v != nil && v.Value == want {
			return r
		}
	}
	return nil
}

// addHostRule inserts a rule for the host before the first rule that
// matches probe (one of its files) today, since the first matching rule
// wins, or at the end when none does.
func (c *sopsConfig) addHostRule(host, probe string) *yaml.Node {
	rule := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		scalar("path_regex"), scalar(hostRuleRegex(host)),
		scalar("age"), {Kind: yaml.SequenceNode},
	}}
	rule.HeadComment = "host " + host + ": its own age key and the operators' (written by syncd enroll)"
	at := len(c.rules.Content)
	for i, r := range c.rules.Content {
		v := mapValue(r, "path_regex")
		if v == nil {
			at = i // no path_regex: matches everything
			break
		}
		if re, err := regexp.Compile(v.Value); err == nil && re.MatchString(probe) {
			at = i
			break
		}
	}
	c.rules.Content = slices.Insert(c.rules.Content, at, rule)
	return rule
}

// ageList returns the rule's age recipients as a sequence node, turning
// sops's comma-separated string form into a list (sops reads both).
func ageList(rule *yaml.Node) (*yaml.Node, error) {
	v := mapValue(rule, "age")
	switch {
	case v == nil:
		v = &yaml.Node{Kind: yaml.SequenceNode}
		rule.Content = append(rule.Content, scalar("age"), v)
	case v.Kind == yaml.ScalarNode:
		list := &yaml.Node{Kind: yaml.SequenceNode, LineComment: v.LineComment}
		for _, r := range strings.Split(v.Value, ",") {
			if r = strings.TrimSpace(r); r != "" {
				list.Content = append(list.Content, scalar(r))
			}
		}
		*v = *list
	case v.Kind != yaml.SequenceNode:
		return nil, fmt.Errorf(".sops.yaml:%d: age: expected recipients, comma-separated or a list", v.Line)
	}
	return v, nil
}

// removeRecipients takes every recipient in drop (and, when marker is set,
// the recipient carrying that comment) out of the list; it returns what it
// took out.
func removeRecipients(list *yaml.Node, drop []string, marker string) []string {
	var removed []string
	list.Content = slices.DeleteFunc(list.Content, func(n *yaml.Node) bool {
		v := strings.TrimSpace(n.Value)
		if slices.Contains(drop, v) || (marker != "" && strings.Contains(n.LineComment, marker)) {
			removed = append(removed, v)
			return true
		}
		return false
	})
	return removed
}

// hostRulePattern reads the host's name back out of a host rule's
// path_regex, as hostRuleRegex writes it.
var hostRulePattern = regexp.MustCompile(`^\^hosts/((?:[A-Za-z0-9_-]|\\.)+)/$`)

// sharedWith returns where recipient also belongs to a host other than
// host: a line of .sops.yaml in another host's own rule, or one marked as
// another host's. Removing such a recipient would cut that host off.
func (c *sopsConfig) sharedWith(recipient, host string) (other string, line int) {
	for _, r := range c.rules.Content {
		ruleHost := ""
		if v := mapValue(r, "path_regex"); v != nil {
			if m := hostRulePattern.FindStringSubmatch(v.Value); m != nil {
				ruleHost = strings.ReplaceAll(m[1], `\`, "")
			}
		}
		v := mapValue(r, "age")
		if v == nil {
			continue
		}
		entries := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			entries = v.Content
		}
		for _, n := range entries {
			for _, got := range strings.Split(n.Value, ",") {
				if strings.TrimSpace(got) != recipient {
					continue
				}
				if ruleHost != "" && ruleHost != host {
					return ruleHost, n.Line
				}
				if name, ok := markedHost(n.LineComment); ok && name != host {
					return name, n.Line
				}
			}
		}
	}
	return "", 0
}

// markedHost reads the host's name out of a hostMarker comment.
func markedHost(comment string) (string, bool) {
	_, rest, ok := strings.Cut(comment, "host ")
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(rest, " (syncd enroll)")
	return name, ok
}

func recipientsOf(list *yaml.Node) []string {
	var out []string
	for _, n := range list.Content {
		out = append(out, strings.TrimSpace(n.Value))
	}
	return out
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }
