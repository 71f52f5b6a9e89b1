package desired

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

// YAML returns the project as Compose YAML, every secret value replaced by
// its Redacted form. Every value reads back as the model holds it.
func (p *Project) YAML(secrets Secrets) ([]byte, error) {
	// compose-go writes the model's structure, as `docker compose config`
	// does, but its YAML emitter (and yaml.v3's) writes some strings (a
	// block scalar whose first line is empty) as text that reads back
	// otherwise, or not at all. So it writes a copy whose strings are
	// tokens, and the strings are put back into the parsed nodes, each
	// then written in a style that holds it exactly.
	proj, tok := tokenize(p.Compose)
	out, err := proj.MarshalYAML()
	if err != nil {
		return nil, fmt.Errorf("marshal project %s: %s", p.Name(), secrets.Redact(err.Error()))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("re-read project %s: %s", p.Name(), secrets.Redact(err.Error()))
	}
	tok.restore(&doc)
	redactNode(&doc, secrets)
	escapeDollars(&doc)
	exactStyles(&doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("marshal project %s: %s", p.Name(), secrets.Redact(err.Error()))
	}
	return buf.Bytes(), nil
}

// tokens stand for the strings of a model while compose-go writes it:
// plain words of one fixed width, that no string of the model contains,
// numbered in the strings' sorted order, so that what compose-go sorts by
// a string (extra_hosts) comes out in the same order.
type tokens struct {
	prefix string
	of     map[string]string
	back   *strings.Replacer
}

// tokenize returns a copy of p whose non-empty strings, map keys aside,
// are tokens. Empty strings stay, since omitempty and compose-go's
// marshalers tell them apart.
func tokenize(p *types.Project) (*types.Project, *tokens) {
	seen := map[string]bool{}
	walkStrings(reflect.ValueOf(p), func(s string) string { seen[s] = true; return s })
	all := slices.Sorted(func(yield func(string) bool) {
		for s := range seen {
			if !yield(s) {
				return
			}
		}
	})
	t := &tokens{of: map[string]string{}}
	for n := 0; ; n++ {
		t.prefix = "syncdstr" + strconv.Itoa(n) + "x"
		if !slices.ContainsFunc(all, func(s string) bool { return strings.Contains(s, t.prefix) }) {
			break
		}
	}
	width := len(strconv.Itoa(len(all)))
	var pairs []string
	for i, s := range all {
		tok := fmt.Sprintf("%s%0*d", t.prefix, width, i)
		t.of[s] = tok
		pairs = append(pairs, tok, s)
	}
	// Of one width, no token is a prefix of another.
	t.back = strings.NewReplacer(pairs...)
	c := walkStrings(reflect.ValueOf(p), func(s string) string { return t.of[s] })
	return c.Interface().(*types.Project), t
}

// restore puts the strings back into the nodes of the written copy.
func (t *tokens) restore(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, t.prefix) {
		n.Value, n.Tag, n.Style = t.back.Replace(n.Value), "!!str", 0
		if yaml11Word(n.Value) {
			// Quoted as compose-go quotes them: a YAML 1.1 reader takes
			// them for a boolean, a number or a merge.
			n.Style = yaml.SingleQuotedStyle
		}
	}
	for _, c := range n.Content {
		t.restore(c)
	}
}

// walkStrings returns a copy of v with f applied to every non-empty string
// in it but map keys; v itself is not changed.
func walkStrings(v reflect.Value, f func(string) string) reflect.Value {
	switch v.Kind() {
	case reflect.String:
		if v.Len() == 0 {
			return v
		}
		return reflect.ValueOf(f(v.String())).Convert(v.Type())
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		c := reflect.New(v.Type().Elem())
		c.Elem().Set(walkStrings(v.Elem(), f))
		return c
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		c := reflect.New(v.Type()).Elem()
		c.Set(walkStrings(v.Elem(), f))
		return c
	case reflect.Struct:
		c := reflect.New(v.Type()).Elem()
		c.Set(v) // unexported fields too (a secret's marshallContent)
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				c.Field(i).Set(walkStrings(v.Field(i), f))
			}
		}
		return c
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			c.SetMapIndex(it.Key(), walkStrings(it.Value(), f))
		}
		return c
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			c.Index(i).Set(walkStrings(v.Index(i), f))
		}
		return c
	case reflect.Array:
		c := reflect.New(v.Type()).Elem()
		for i := range v.Len() {
			c.Index(i).Set(walkStrings(v.Index(i), f))
		}
		return c
	}
	return v
}

var base60Float = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`)

// yaml11Word reports whether YAML 1.1 reads s, unquoted, as other than a
// string, where YAML 1.2 does not.
func yaml11Word(s string) bool {
	switch s {
	case "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No", "NO", "off", "Off", "OFF", "<<":
		return true
	}
	return base60Float.MatchString(s)
}

// exactStyles chooses, for every string of several lines, a style that
// holds it exactly: a literal block where that is plain YAML, else double
// quotes, whose escapes hold anything. An emitter left to choose writes a
// leading empty line, a leading space or a carriage return in a block
// scalar that reads back otherwise.
func exactStyles(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && strings.ContainsAny(n.Value, "\n\r\u0085\u2028\u2029") && (n.Tag == "" || n.Tag == "!!str") {
		n.Style = yaml.DoubleQuotedStyle
		if literalSafe(n.Value) {
			n.Style = yaml.LiteralStyle
		}
	}
	for _, c := range n.Content {
		exactStyles(c)
	}
}

// literalSafe reports whether a literal block scalar holds s exactly: its
// first line neither empty nor indented (the indentation would be read as
// the block's), no line break but \n, no blank before a line break, only
// printable characters.
func literalSafe(s string) bool {
	if s == "" || s[0] == '\n' || s[0] == ' ' || s[0] == '\t' {
		return false
	}
	for i, r := range s {
		switch {
		case r == '\n':
			if s[i-1] == ' ' || s[i-1] == '\t' {
				return false
			}
		case r == '\t':
		case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0, r == 0x2028, r == 0x2029, r == 0xfeff, r == utf8.RuneError:
			return false
		}
	}
	return true
}
