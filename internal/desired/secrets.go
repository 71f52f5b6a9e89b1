package desired

import (
	"cmp"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// Secrets are the decrypted values of a host's secrets file, by key. They
// live in memory only; whatever leaves syncd passes through Redact.
type Secrets map[string]string

// minRedactLen is the shortest value replaced where it occurs inside a
// longer text; shorter values are replaced only where they are the whole
// value, since "on" or "1" inside other words is not a leak.
const minRedactLen = 4

// Redacted is how a secret value is shown. It carries nothing derived from
// the value: even a fingerprint lets whoever reads a render confirm a
// guessed password offline.
func Redacted(value string) string { return "<redacted>" }

// Redact replaces every secret value in text with its Redacted form: the
// value as it is, as Go's %q and JSON quote it (an error message often
// does), and each line of a multi-line value.
func (s Secrets) Redact(text string) string {
	return s.redact(text, Redacted)
}

func (s Secrets) redact(text string, show func(value string) string) string {
	if len(s) == 0 || text == "" {
		return text
	}
	for _, f := range s.forms() {
		if f.text == text {
			return show(f.value)
		}
		if len(f.text) >= minRedactLen {
			text = strings.ReplaceAll(text, f.text, show(f.value))
		}
	}
	return text
}

// FragmentLen is the shortest run of a secret value's bytes that
// RedactFragments replaces.
const FragmentLen = 8

// RedactFragments is Redact, then also replaces every run of FragmentLen or
// more bytes that text shares with a value (or its quoted form). It is for
// text a library wrote, such as the Compose loader's errors, which may quote
// a value cut short or split; it may over-redact, which in an error is
// harmless.
func (s Secrets) RedactFragments(text string) string {
	return s.redactFragments(text, Redacted)
}

// RedactNamed is RedactFragments with each value shown as <secret:KEY>,
// for a reviewer who must see which secret a setting holds (syncd diff);
// nothing of the value shows either way.
func (s Secrets) RedactNamed(text string) string {
	names := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(s)) {
		if _, ok := names[s[k]]; !ok {
			names[s[k]] = k
		}
	}
	return s.redactFragments(text, func(v string) string { return "<secret:" + names[v] + ">" })
}

func (s Secrets) redactFragments(text string, show func(value string) string) string {
	text = s.redact(text, show)
	for _, f := range s.forms() {
		if len(f.text) < FragmentLen {
			continue
		}
		var b strings.Builder
		for i := 0; i < len(text); {
			n := 0
			for i+n+FragmentLen <= len(text) && strings.Contains(f.text, text[i:i+n+FragmentLen]) {
				n++
			}
			if n > 0 {
				b.WriteString(show(f.value))
				i += n + FragmentLen - 1
				continue
			}
			b.WriteByte(text[i])
			i++
		}
		text = b.String()
	}
	return text
}

// redactScalar redacts one scalar of rendered output. Besides Redact, it
// catches what Compose makes of a secret inside a string it splits into
// words (command:, entrypoint:, a healthcheck test): each word of the value,
// with the shell's quotes and backslashes removed.
func (s Secrets) redactScalar(v string) string {
	v = s.Redact(v)
	if len(v) < minRedactLen {
		return v
	}
	for _, val := range s.byLength() {
		if isPlaceholder(val) {
			continue
		}
		for _, w := range words(val) {
			switch {
			case len(w) < minRedactLen:
			case v == w:
				return Redacted(val)
			case len(w) >= FragmentLen:
				v = strings.ReplaceAll(v, w, Redacted(val))
			}
		}
	}
	return v
}

// words returns the words of a value as strings.Fields and as Compose's
// shell splitting see them.
func words(v string) []string {
	out := strings.Fields(v)
	var cmd types.ShellCommand
	if err := cmd.DecodeMapstructure(v); err == nil {
		out = append(out, cmd...)
	}
	return out
}

// form is one way a secret value may be written in a text.
type form struct{ text, value string }

// forms returns the ways each value may appear, longest first, so a value
// that contains another is replaced whole.
func (s Secrets) forms() []form {
	var out []form
	seen := map[string]bool{}
	add := func(text, value string) {
		if text != "" && !seen[text] {
			seen[text] = true
			out = append(out, form{text, value})
		}
	}
	for _, v := range s.byLength() {
		if isPlaceholder(v) {
			continue
		}
		add(v, v)
		q := strconv.Quote(v)
		add(q[1:len(q)-1], v)
		if j, err := json.Marshal(v); err == nil {
			add(string(j[1:len(j)-1]), v)
		}
		if strings.Contains(v, "\n") {
			for l := range strings.Lines(v) {
				if l = strings.TrimSpace(l); len(l) >= FragmentLen {
					add(l, v)
				}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b form) int { return cmp.Compare(len(b.text), len(a.text)) })
	return out
}

// byLength returns the distinct non-empty values, longest first.
func (s Secrets) byLength() []string {
	vals := slices.Collect(maps.Values(s))
	vals = slices.DeleteFunc(vals, func(v string) bool { return v == "" })
	slices.SortFunc(vals, func(a, b string) int { return cmp.Or(cmp.Compare(len(b), len(a)), cmp.Compare(a, b)) })
	return slices.Compact(vals)
}

// Placeholders stands in a value for each key, for rendering without the
// host's age key: validation needs the names, never the values.
func Placeholders(keys []string) Secrets {
	s := make(Secrets, len(keys))
	for _, k := range keys {
		s[k] = "<secret:" + k + ">"
	}
	return s
}

func isPlaceholder(v string) bool {
	return strings.HasPrefix(v, "<secret:") && strings.HasSuffix(v, ">")
}

// Decrypter turns a host's SOPS file into its values; package secrets
// implements it with the host's age identity.
type Decrypter interface {
	Decrypt(name string, data []byte) (map[string]string, error)
}

// HostSecrets decrypts h's secrets file; a host without one has none.
func (r *Repo) HostSecrets(h *Host, d Decrypter) (Secrets, error) {
	if h.SecretsFile == "" {
		return Secrets{}, nil
	}
	data, err := r.ReadFile(h.SecretsFile)
	if err != nil {
		return nil, err
	}
	values, err := d.Decrypt(h.SecretsFile, data)
	if err != nil {
		return nil, err
	}
	return Secrets(values), nil
}
