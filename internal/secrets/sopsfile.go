package secrets

// This file reads the SOPS file format (YAML, JSON and dotenv stores of
// sops 3.x) into a tree, as sops's own stores do, so that the values, the
// walk order and so the MAC come out as sops computes them. It holds no key
// and decrypts nothing: see sopscrypt.go.
//
// The tree mirrors sops's: a branch is an ordered list of items whose key
// is a string or a comment; a value is a branch, a list ([]any), a comment,
// nil, or a scalar (string, int, float64, bool, time.Time) as yaml.v3 or
// encoding/json (numbers normalised as sops does) decode it.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

type comment struct {
	value  string
	inline bool
}

type item struct {
	key   any // string, or comment
	value any
}

type branch []item

// sopsFile is a loaded SOPS file: its documents (YAML may hold several) and
// its metadata.
type sopsFile struct {
	branches []branch
	meta     metadata
}

type metadata struct {
	// groups are the key groups; each holds its age keys and the number of
	// keys of other kinds (PGP, KMS, Vault...), which syncd cannot use.
	groups []keyGroup

	lastModified time.Time
	mac          string
	version      string

	unencryptedSuffix       string
	encryptedSuffix         string
	unencryptedRegex        string
	encryptedRegex          string
	unencryptedCommentRegex string
	encryptedCommentRegex   string
	macOnlyEncrypted        bool
}

type keyGroup struct {
	age   []ageKey
	other []string // the kinds of the other keys ("pgp", "kms"...)
}

type ageKey struct {
	recipient string
	enc       string // the armored age file holding the data key
}

// errNoMetadata: the file has no sops metadata, so it is not encrypted.
var errNoMetadata = errors.New("no sops metadata")

// maxDepth caps nesting: a hostile file cannot make the walk recurse
// without bound.
const maxDepth = 200

// maxNodes caps the values of a file, aliases expanded.
const maxNodes = 1 << 20

// formatOf returns the sops store a file's name selects.
func formatOf(name string) (string, error) {
	switch path.Ext(name) {
	case ".yaml", ".yml":
		return "yaml", nil
	case ".json":
		return "json", nil
	case ".env":
		return "dotenv", nil
	}
	return "", fmt.Errorf("%s: unknown secrets format; name it secrets.sops.yaml, .json or .env", name)
}

// parseSops loads a SOPS file of the given format. Its errors quote no
// text of the file.
func parseSops(format string, data []byte) (*sopsFile, error) {
	var (
		branches []branch
		err      error
		flat     bool
	)
	switch format {
	case "yaml":
		branches, err = loadYAML(data)
	case "json":
		branches, err = loadJSON(data)
	case "dotenv":
		branches, err = loadDotenv(data)
		flat = true
	default:
		return nil, fmt.Errorf("unknown format %q", format)
	}
	if err != nil {
		return nil, err
	}
	var raw any
	if flat {
		raw, branches, err = extractFlatMetadata(branches)
	} else {
		raw, branches, err = extractMetadata(branches)
	}
	if err != nil {
		return nil, err
	}
	meta, err := decodeMetadata(raw)
	if err != nil {
		return nil, err
	}
	return &sopsFile{branches: branches, meta: meta}, nil
}

// --- YAML, as sops's stores/yaml ---

func loadYAML(data []byte) ([]branch, error) {
	if len(data) > 0 {
		// sops decodes the first document into a map first: yaml.v3 then
		// refuses duplicate keys (and excessive aliasing).
		if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(make(map[string]any)); err != nil {
			return nil, fmt.Errorf("not valid YAML: %s", yamlErr(err))
		}
	}
	var out []branch
	d := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := d.Decode(&doc)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not valid YAML: %s", yamlErr(err))
		}
		// Every document passes yaml.v3's own checks (aliasing) once.
		var check any
		if err := doc.Decode(&check); err != nil {
			return nil, fmt.Errorf("not valid YAML: %s", yamlErr(err))
		}
		y := &yamlLoader{}
		b, err := y.appendNode(&doc, branch{}, false, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// yamlErr keeps the line of a yaml.v3 error and drops the rest: some of
// them quote the text of the file ("cannot unmarshal !!str `…`").
func yamlErr(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	if strings.HasPrefix(msg, "line ") {
		if i := strings.Index(msg, ":"); i > 0 {
			return msg[:i] + ": " + yamlReason(msg[i+1:])
		}
	}
	return yamlReason(msg)
}

func yamlReason(s string) string {
	s = strings.TrimSpace(s)
	for _, safe := range []string{"mapping key", "did not find expected", "found character that cannot start any token",
		"could not find expected", "found a tab character", "block sequence entries are not allowed", "mapping values are not allowed",
		"found unknown escape character", "did not find URI escaped octet", "found undefined tag handle", "document contains excessive aliasing",
		"exceeded max depth", "control characters are not allowed", "invalid leading UTF-8 octet", "incomplete UTF-8 octet sequence",
		"invalid trailing UTF-8 octet", "invalid Unicode character", "unknown anchor", "anchor", "found unexpected end of stream", "found unexpected"} {
		if strings.HasPrefix(s, safe) {
			if strings.HasPrefix(s, "mapping key") && strings.Contains(s, "already defined") {
				return "a mapping key is defined twice"
			}
			if safe == "mapping key" || safe == "unknown anchor" || safe == "anchor" {
				return safe + " problem"
			}
			return s
		}
	}
	return "the file cannot be parsed"
}

type yamlLoader struct{ nodes int }

func appendComments(text string, list []any, inline bool) []any {
	for _, line := range strings.Split(text, "\n") {
		if line != "" {
			list = append(list, comment{value: line[1:], inline: inline})
		}
	}
	return list
}

func appendMapComments(text string, b branch, inline bool) branch {
	for _, line := range strings.Split(text, "\n") {
		if line != "" {
			b = append(b, item{key: comment{value: line[1:], inline: inline}})
		}
	}
	return b
}

func (y *yamlLoader) count(depth int) error {
	y.nodes++
	if y.nodes > maxNodes {
		return errors.New("the file holds too many values")
	}
	if depth > maxDepth {
		return fmt.Errorf("values nest deeper than %d levels", maxDepth)
	}
	return nil
}

func (y *yamlLoader) value(node *yaml.Node, commentsHandled bool, depth int) (any, error) {
	if err := y.count(depth); err != nil {
		return nil, err
	}
	switch node.Kind {
	case yaml.SequenceNode:
		var list []any
		if !commentsHandled {
			list = appendComments(node.HeadComment, list, false)
			list = appendComments(node.LineComment, list, false)
		}
		for _, it := range node.Content {
			list = appendComments(it.HeadComment, list, false)
			list = appendComments(it.LineComment, list, true)
			v, err := y.value(it, true, depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
			list = appendComments(it.FootComment, list, false)
		}
		if !commentsHandled {
			list = appendComments(node.FootComment, list, false)
		}
		return list, nil
	case yaml.MappingNode:
		return y.appendNode(node, branch{}, commentsHandled, depth+1)
	case yaml.ScalarNode:
		var v any
		if err := node.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: a value cannot be decoded", node.Line)
		}
		return v, nil
	case yaml.AliasNode:
		if node.Alias == nil {
			return nil, fmt.Errorf("line %d: an alias without its anchor", node.Line)
		}
		return y.value(node.Alias, false, depth+1)
	}
	return nil, nil
}

func (y *yamlLoader) appendNode(node *yaml.Node, b branch, commentsHandled bool, depth int) (branch, error) {
	if err := y.count(depth); err != nil {
		return nil, err
	}
	if !commentsHandled {
		b = appendMapComments(node.HeadComment, b, false)
		b = appendMapComments(node.LineComment, b, false)
	}
	switch node.Kind {
	case yaml.DocumentNode:
		for _, it := range node.Content {
			var err error
			if b, err = y.appendNode(it, b, false, depth+1); err != nil {
				return nil, err
			}
		}
	case yaml.SequenceNode:
		return nil, errors.New("YAML documents that are sequences are not supported")
	case yaml.MappingNode:
		for i := 0; i+1 < len(node.Content); i += 2 {
			key, value := node.Content[i], node.Content[i+1]
			b = appendMapComments(key.HeadComment, b, false)
			b = appendMapComments(key.LineComment, b, false)
			handle := value.Kind == yaml.ScalarNode || value.Kind == yaml.AliasNode
			if handle {
				b = appendMapComments(value.HeadComment, b, false)
				b = appendMapComments(value.LineComment, b, true)
			}
			var k any
			if err := key.Decode(&k); err != nil {
				return nil, fmt.Errorf("line %d: a key cannot be decoded", key.Line)
			}
			v, err := y.value(value, handle, depth+1)
			if err != nil {
				return nil, err
			}
			b = append(b, item{key: k, value: v})
			if handle {
				b = appendMapComments(value.FootComment, b, false)
			}
			b = appendMapComments(key.FootComment, b, false)
		}
	case yaml.ScalarNode:
		if node.ShortTag() == "!!null" {
			return b, nil
		}
		return nil, errors.New("YAML documents that are values are not supported")
	case yaml.AliasNode:
		if node.Alias == nil {
			return nil, fmt.Errorf("line %d: an alias without its anchor", node.Line)
		}
		return y.appendNode(node.Alias, b, false, depth+1)
	}
	if !commentsHandled {
		b = appendMapComments(node.FootComment, b, false)
	}
	return b, nil
}

// --- JSON, as sops's stores/json ---

type jsonLoader struct {
	dec   *json.Decoder
	nodes int
}

func loadJSON(data []byte) ([]branch, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %s", jsonErr(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("sops reads JSON files whose top level is an object ({...})")
	}
	j := &jsonLoader{dec: dec}
	b, err := j.object(0)
	if err != nil {
		return nil, err
	}
	return []branch{b}, nil
}

// jsonErr says what encoding/json says, but for the text it quotes.
func jsonErr(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("a syntax error at byte %d", se.Offset)
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return "it ends early"
	}
	return "it cannot be parsed"
}

func (j *jsonLoader) count(depth int) error {
	j.nodes++
	if j.nodes > maxNodes {
		return errors.New("the file holds too many values")
	}
	if depth > maxDepth {
		return fmt.Errorf("values nest deeper than %d levels", maxDepth)
	}
	return nil
}

func normalizeJSONNumber(t any) (any, error) {
	n, ok := t.(json.Number)
	if !ok {
		return t, nil
	}
	if i, err := n.Int64(); err == nil {
		return int(i), nil
	}
	f, err := n.Float64()
	if err != nil {
		return nil, errors.New("not valid JSON: a number out of range")
	}
	return f, nil
}

func (j *jsonLoader) value(tok any, depth int) (any, error) {
	if err := j.count(depth); err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); ok {
		switch d {
		case '{':
			return j.object(depth + 1)
		case '[':
			return j.array(depth + 1)
		}
		return nil, errors.New("not valid JSON")
	}
	return normalizeJSONNumber(tok)
}

func (j *jsonLoader) array(depth int) ([]any, error) {
	var list []any
	for {
		tok, err := j.dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not valid JSON: %s", jsonErr(err))
		}
		if d, ok := tok.(json.Delim); ok && d == ']' {
			return list, nil
		}
		v, err := j.value(tok, depth)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
	}
}

func (j *jsonLoader) object(depth int) (branch, error) {
	if err := j.count(depth); err != nil {
		return nil, err
	}
	var b branch
	for {
		tok, err := j.dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not valid JSON: %s", jsonErr(err))
		}
		if d, ok := tok.(json.Delim); ok && d == '}' {
			return b, nil
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errors.New("not valid JSON: an object key that is not a string")
		}
		tok, err = j.dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not valid JSON: %s", jsonErr(err))
		}
		v, err := j.value(tok, depth)
		if err != nil {
			return nil, err
		}
		b = append(b, item{key: key, value: v})
	}
}

// --- dotenv, as sops's stores/dotenv ---

// errDotenvLine is a line of a dotenv file that is not NAME=value; its
// line number is told, never its text (it may be a secret).
type errDotenvLine struct{ line int }

func (e errDotenvLine) Error() string { return fmt.Sprintf("line %d is not NAME=value", e.line) }

func loadDotenv(data []byte) ([]branch, error) {
	var b branch
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if line[0] == '#' {
			b = append(b, item{key: comment{value: string(line[1:])}})
			continue
		}
		pos := bytes.IndexByte(line, '=')
		if pos == -1 {
			return nil, errDotenvLine{i + 1}
		}
		b = append(b, item{key: string(line[:pos]), value: strings.ReplaceAll(string(line[pos+1:]), `\n`, "\n")})
	}
	return []branch{b}, nil
}

// --- metadata, as sops's stores.ExtractMetadata ---

const metadataKey = "sops"

// extractMetadata takes the top-level "sops" mapping out of every document
// (of the first only it is read) and returns it as plain Go values.
func extractMetadata(branches []branch) (any, []branch, error) {
	var meta branch
	found := false
	for bi, b := range branches {
		kept := b[:0:0]
		for _, it := range b {
			if k, ok := it.key.(string); ok && k == metadataKey {
				if bi == 0 {
					if found {
						return nil, nil, errors.New("it holds two sops entries")
					}
					found = true
					m, ok := it.value.(branch)
					if !ok {
						return nil, nil, errors.New("its sops entry is not a mapping")
					}
					meta = m
				}
				continue
			}
			kept = append(kept, it)
		}
		branches[bi] = kept
	}
	if !found {
		return nil, nil, errNoMetadata
	}
	return toGo(meta), branches, nil
}

// extractFlatMetadata collects the sops_* keys of a dotenv file (sops
// flattens its metadata there: sops_age__list_0__map_enc=…) into plain Go
// values.
func extractFlatMetadata(branches []branch) (any, []branch, error) {
	if len(branches) == 0 {
		return nil, nil, errNoMetadata
	}
	root := map[string]any{}
	found := false
	kept := branches[0][:0:0]
	for _, it := range branches[0] {
		k, ok := it.key.(string)
		if !ok || !strings.HasPrefix(k, metadataKey+"_") {
			kept = append(kept, it)
			continue
		}
		found = true
		if err := placeFlat(root, tokenize(k[len(metadataKey)+1:]), it.value); err != nil {
			return nil, nil, err
		}
	}
	branches[0] = kept
	if !found {
		return nil, nil, errNoMetadata
	}
	return listsOf(root), branches, nil
}

// tokenize splits a flattened key at sops's separators: "__map_" starts a
// map key, "__list_" a list index (as an int).
func tokenize(p string) []any {
	const mapSep, listSep = "__map_", "__list_"
	var out []any
	state, start := 0, 0
	finish := func(i int) {
		switch state {
		case 0:
			out = append(out, p[start:i])
		case 1:
			out = append(out, p[start+len(mapSep):i])
		case 2:
			n, _ := strconv.Atoi(p[start+len(listSep) : i])
			out = append(out, n)
		}
		start = i
	}
	for i := 0; i < len(p); {
		switch {
		case strings.HasPrefix(p[i:], mapSep):
			finish(i)
			state = 1
			i += len(mapSep)
		case strings.HasPrefix(p[i:], listSep):
			finish(i)
			state = 2
			i += len(listSep)
		default:
			i++
		}
	}
	finish(len(p))
	return out
}

// placeFlat puts v at path in root, lists held as map[int]any until
// listsOf turns them into slices.
func placeFlat(root map[string]any, path []any, v any) error {
	var cur any = root
	for i, tok := range path {
		last := i == len(path)-1
		switch c := cur.(type) {
		case map[string]any:
			k, ok := tok.(string)
			if !ok {
				return errors.New("its sops_ metadata keys are inconsistent")
			}
			if last {
				c[k] = v
				return nil
			}
			if _, ok := c[k]; !ok {
				c[k] = newContainer(path[i+1])
			}
			cur = c[k]
		case map[int]any:
			n, ok := tok.(int)
			if !ok || n < 0 || n > 1000 {
				return errors.New("its sops_ metadata keys are inconsistent")
			}
			if last {
				c[n] = v
				return nil
			}
			if _, ok := c[n]; !ok {
				c[n] = newContainer(path[i+1])
			}
			cur = c[n]
		default:
			return errors.New("its sops_ metadata keys are inconsistent")
		}
	}
	return nil
}

func newContainer(next any) any {
	if _, ok := next.(int); ok {
		return map[int]any{}
	}
	return map[string]any{}
}

func listsOf(v any) any {
	switch c := v.(type) {
	case map[string]any:
		for k, x := range c {
			c[k] = listsOf(x)
		}
		return c
	case map[int]any:
		n := 0
		for k := range c {
			n = max(n, k+1)
		}
		list := make([]any, n)
		for k, x := range c {
			list[k] = listsOf(x)
		}
		return list
	}
	return v
}

// toGo turns a tree value into plain Go values: maps, slices, scalars;
// comments are dropped.
func toGo(v any) any {
	switch x := v.(type) {
	case branch:
		m := map[string]any{}
		for _, it := range x {
			if k, ok := it.key.(string); ok {
				m[k] = toGo(it.value)
			}
		}
		return m
	case []any:
		var out []any
		for _, e := range x {
			if _, ok := e.(comment); !ok {
				out = append(out, toGo(e))
			}
		}
		return out
	}
	return v
}

// metaString reads a metadata field weakly typed, as sops's mapstructure
// decoding does: a number or a bool is its text.
func metaString(m map[string]any, key string) (string, error) {
	switch v := m[key].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case int, float64, bool:
		return scalarString(v), nil
	case time.Time:
		return v.Format(time.RFC3339), nil
	}
	return "", fmt.Errorf("its sops metadata field %s is not a string", key)
}

func metaBool(m map[string]any, key string) (bool, error) {
	switch v := m[key].(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case int:
		return v != 0, nil
	case string:
		if v == "" {
			return false, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("its sops metadata field %s is not a bool", key)
		}
		return b, nil
	}
	return false, fmt.Errorf("its sops metadata field %s is not a bool", key)
}

func metaList(m map[string]any, key string) ([]map[string]any, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("its sops metadata field %s is not a list", key)
	}
	out := make([]map[string]any, 0, len(list))
	for _, e := range list {
		em, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("its sops metadata field %s holds an entry that is not a mapping", key)
		}
		out = append(out, em)
	}
	return out, nil
}

// otherKinds are the key kinds of sops other than age, by metadata field.
var otherKinds = []string{"pgp", "kms", "gcp_kms", "hckms", "azure_kv", "hc_vault"}

func decodeGroup(m map[string]any) (keyGroup, bool, error) {
	var g keyGroup
	ages, err := metaList(m, "age")
	if err != nil {
		return g, false, err
	}
	for _, a := range ages {
		r, err := metaString(a, "recipient")
		if err != nil {
			return g, false, err
		}
		enc, err := metaString(a, "enc")
		if err != nil {
			return g, false, err
		}
		g.age = append(g.age, ageKey{recipient: r, enc: enc})
	}
	for _, kind := range otherKinds {
		keys, err := metaList(m, kind)
		if err != nil {
			return g, false, err
		}
		for range keys {
			g.other = append(g.other, kind)
		}
	}
	return g, len(ages) > 0 || len(g.other) > 0, nil
}

func decodeMetadata(raw any) (metadata, error) {
	var md metadata
	m, ok := raw.(map[string]any)
	if !ok {
		return md, errors.New("its sops entry is not a mapping")
	}
	var err error
	str := func(key string) string {
		if err != nil {
			return ""
		}
		var s string
		s, err = metaString(m, key)
		return s
	}
	lastModified := str("lastmodified")
	md.mac = str("mac")
	md.version = str("version")
	md.unencryptedSuffix = str("unencrypted_suffix")
	md.encryptedSuffix = str("encrypted_suffix")
	md.unencryptedRegex = str("unencrypted_regex")
	md.encryptedRegex = str("encrypted_regex")
	md.unencryptedCommentRegex = str("unencrypted_comment_regex")
	md.encryptedCommentRegex = str("encrypted_comment_regex")
	if err != nil {
		return md, err
	}
	if md.macOnlyEncrypted, err = metaBool(m, "mac_only_encrypted"); err != nil {
		return md, err
	}
	if md.lastModified, err = time.Parse(time.RFC3339, lastModified); err != nil {
		return md, errors.New("its sops metadata has no valid lastmodified time (RFC 3339)")
	}
	top, any, err := decodeGroup(m)
	if err != nil {
		return md, err
	}
	if any {
		md.groups = []keyGroup{top}
	} else {
		groups, err := metaList(m, "key_groups")
		if err != nil {
			return md, err
		}
		for _, gm := range groups {
			g, _, err := decodeGroup(gm)
			if err != nil {
				return md, err
			}
			md.groups = append(md.groups, g)
		}
		if len(md.groups) == 0 {
			return md, errors.New("its sops metadata names no key")
		}
	}
	rules := 0
	for _, r := range []string{md.unencryptedSuffix, md.encryptedSuffix, md.unencryptedRegex, md.encryptedRegex, md.unencryptedCommentRegex, md.encryptedCommentRegex} {
		if r != "" {
			rules++
		}
	}
	if rules > 1 {
		return md, errors.New("its sops metadata sets more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex, unencrypted_regex, encrypted_comment_regex, unencrypted_comment_regex")
	}
	if rules == 0 {
		md.unencryptedSuffix = "_unencrypted"
	}
	return md, nil
}
