package desired

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
)

// Secrets are the decrypted values of a host's secrets file, by key. They
// live in memory only; whatever leaves syncd passes through Redact.
type Secrets map[string]string

// minRedactLen is the shortest value replaced where it occurs inside a
// longer text; shorter values are replaced only where they are the whole
// value, since "on" or "1" inside other words is not a leak.
const minRedactLen = 4

// Redacted is how a secret value is shown: a short fingerprint that tells
// whether two renders used the same value, and nothing more.
func Redacted(value string) string {
	sum := sha256.Sum256([]byte(value))
	return "<redacted sha256:" + hex.EncodeToString(sum[:4]) + ">"
}

// Redact replaces every secret value in text with its Redacted form.
func (s Secrets) Redact(text string) string {
	if len(s) == 0 || text == "" {
		return text
	}
	for _, v := range s.byLength() {
		if isPlaceholder(v) {
			continue
		}
		if v == text {
			return Redacted(v)
		}
		if len(v) >= minRedactLen {
			text = strings.ReplaceAll(text, v, Redacted(v))
		}
	}
	return text
}

// byLength returns the distinct non-empty values, longest first, so a value
// that contains another is replaced whole.
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
