package desired

import (
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/syncd-dev/syncd/internal/redact"
)

// Secrets are the decrypted values of a host's secrets file, by key. They
// live in memory only; whatever leaves syncd passes through a
// redact.Redactor of them (Redactor).
type Secrets map[string]string

// Redactor returns the one redaction of these values (package redact).
func (s Secrets) Redactor() *redact.Redactor { return redact.New(s) }

// Redacted is how a secret value is shown: redact.Shown, nothing derived
// from the value.
func Redacted(string) string { return redact.Shown }

// Redact is s.Redactor().Text: for text syncd made or the user wrote.
func (s Secrets) Redact(text string) string { return s.Redactor().Text(text) }

// RedactFragments is s.Redactor().Outside: for text a library or another
// program wrote, such as the Compose loader's errors, which may quote a
// value cut short or split.
func (s Secrets) RedactFragments(text string) string { return s.Redactor().Outside(text) }

// RedactNamed is RedactFragments with each value shown as <secret:KEY>,
// for a reviewer who must see which secret a setting holds (syncd diff);
// the text it is for is the Compose loader's rendering of the user's.
func (s Secrets) RedactNamed(text string) string { return s.Redactor().Named().Outside(text) }

// redactScalar redacts one scalar of rendered output. Besides Text, it
// catches what Compose makes of a secret inside a string it splits into
// words (command:, entrypoint:, a healthcheck test): each word of the value,
// with the shell's quotes and backslashes removed.
func (s Secrets) redactScalar(v string) string {
	r := s.Redactor()
	v = r.Text(v)
	if len(v) < redact.MinLen {
		return v
	}
	for _, val := range r.Values() {
		for _, w := range words(val) {
			switch {
			case len(w) < redact.MinLen:
			case v == w:
				return redact.Shown
			case len(w) >= redact.FragmentLen:
				v = strings.ReplaceAll(v, w, redact.Shown)
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

// Placeholders stands in a value for each key, for rendering without the
// host's age key: validation needs the names, never the values.
func Placeholders(keys []string) Secrets {
	s := make(Secrets, len(keys))
	for _, k := range keys {
		s[k] = "<secret:" + k + ">"
	}
	return s
}

func isPlaceholder(v string) bool { return redact.IsPlaceholder(v) }

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
