// Package secrets decrypts a host's SOPS file in-process with the host's
// age identity, and reads the key names of a SOPS file without any key.
//
// It is the adapter over sops and age: the only package that imports age,
// and that runs the sops CLI. It reads the SOPS format itself (sopsfile.go,
// sopscrypt.go: the data key through age, the values and the MAC as sops
// computes them), so syncd links none of sops's key services; what writes
// a SOPS file (re-encryption, rotation) runs the sops CLI. Every error it
// returns names the file and, where it matters, the key, and never a value.
// It must not import the other syncd packages but the leaves atomicfile
// (the key it makes) and proc (the sops CLI): callers hand it bytes and get
// a map back.
package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"filippo.io/age"
)

// MaxFileSize caps a secrets file; a larger one is refused before parsing.
const MaxFileSize = 1 << 20

// maxKeyFileSize caps an age identity file.
const maxKeyFileSize = 64 << 10

// Identity is the host's age identity, parsed once.
type Identity struct {
	path       string
	identities []age.Identity
}

// LoadIdentity reads an age identity file (the output of age-keygen). A file
// that group or others can read is refused: the key decrypts every secret
// of the host.
func LoadIdentity(path string) (*Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("age key %s: %w", path, unwrapPathErr(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("age key %s: %w", path, unwrapPathErr(err))
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("age key %s is readable by group or others (mode %04o); restrict it: chmod 600 %s", path, perm, path)
	}
	if st.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("age key %s is %d bytes; an age identity file is a few hundred", path, st.Size())
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("age key %s: %w", path, unwrapPathErr(err))
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		if damage := damagedKey(data); damage != "" {
			return nil, fmt.Errorf("age key %s is %s: a write that failed (a full disk, a crash) left it, and it opens nothing. "+
				"syncd never replaces a key file, as secrets may be encrypted to it: move it away yourself (mv %s %s.damaged); "+
				"syncd then makes a new key at its next start, and `syncd enroll --host NAME` in your working copy encrypts the host's secrets to it (your own key still opens them)",
				path, damage, path, path)
		}
		// age's parse errors quote no key material, but say only what is safe.
		return nil, fmt.Errorf("age key %s holds no valid age identity (expected lines starting AGE-SECRET-KEY-, as age-keygen writes)", path)
	}
	return &Identity{path: path, identities: ids}, nil
}

// damagedKey says how an identity file age cannot parse was cut short
// ("empty (0 bytes)", "truncated …"), or "" for one that is not a cut
// age-keygen file. It quotes only the public key of the header.
func damagedKey(data []byte) string {
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Sprintf("empty (%d bytes)", len(data))
	}
	if i := bytes.Index(data, []byte("# public key: ")); i >= 0 {
		line, _, _ := bytes.Cut(data[i+len("# public key: "):], []byte("\n"))
		if r, err := ParseRecipient(string(line)); err == nil {
			return fmt.Sprintf("truncated (its header names the public key %s, but no whole AGE-SECRET-KEY- line follows)", r)
		}
		return "truncated (its header is cut, and no whole AGE-SECRET-KEY- line follows)"
	}
	if bytes.Contains(data, []byte("AGE-SECRET-KEY-")) {
		return "truncated (its AGE-SECRET-KEY- line is cut)"
	}
	return ""
}

// Recipients returns the public recipients of the identity, as a .sops.yaml
// creation rule names them.
func (id *Identity) Recipients() []string {
	var out []string
	for _, i := range id.identities {
		if x, ok := i.(*age.X25519Identity); ok {
			out = append(out, x.Recipient().String())
		}
		if h, ok := i.(*age.HybridIdentity); ok {
			out = append(out, h.Recipient().String())
		}
	}
	return out
}

// Decrypt decrypts a SOPS file whose name tells its format (.yaml, .yml,
// .json or .env), verifies its MAC and returns its values by key. The file
// must be a flat map of keys to scalar values.
func Decrypt(id *Identity, name string, data []byte) (values map[string]string, err error) {
	defer recoverReader(name, &err)
	f, err := load(name, data)
	if err != nil {
		return nil, err
	}
	if _, err := checkLeaves(name, f); err != nil {
		return nil, err
	}
	dataKey, err := dataKey(id, name, f)
	if err != nil {
		return nil, err
	}
	if err := authenticateLeaves(name, f, dataKey); err != nil {
		return nil, err
	}
	plain, err := f.decryptTree(dataKey)
	switch {
	case errors.Is(err, errMAC):
		return nil, fmt.Errorf("%s: MAC mismatch: the file was changed without sops (tampered or hand-edited); restore it from Git or re-create it with `sops edit %s`", name, name)
	case err != nil:
		return nil, fmt.Errorf("%s: a value cannot be decrypted (the file was edited by hand or damaged): %v; restore it from Git or re-create it with `sops edit %s`", name, err, name)
	}
	values = map[string]string{}
	err = walkLeaves(name, &sopsFile{branches: plain, meta: f.meta}, func(key string, v any, _ bool) error {
		values[key] = scalarString(v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return values, nil
}

// Inspect returns the key names of a SOPS file without decrypting it, and
// an error when the file is not really encrypted: no sops metadata, or a
// value in plaintext that the file's own rules say must be encrypted.
func Inspect(name string, data []byte) (keys []string, err error) {
	defer recoverReader(name, &err)
	f, err := load(name, data)
	if err != nil {
		return nil, err
	}
	return checkLeaves(name, f)
}

// recoverReader turns a panic of the reader (a bug; hostile input must
// never cause one) into an error naming the file.
func recoverReader(name string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: syncd's sops reader failed on it (a bug: please report it); check that it is a valid sops file with `sops decrypt %s`", name, name)
	}
}

// checkLeaves returns the sorted key names of f, and an error naming
// every key whose value is not what sops writes where the file's own rules
// say it must be encrypted: a plaintext value, or a damaged ENC[...] one.
// Empty and null values are what sops leaves unencrypted.
func checkLeaves(name string, f *sopsFile) ([]string, error) {
	var keys []string
	var errs []error
	err := walkLeaves(name, f, func(key string, v any, encrypted bool) error {
		keys = append(keys, key)
		s, isString := v.(string)
		switch {
		case !encrypted, v == nil, isString && s == "":
		case !isString || !strings.HasPrefix(s, "ENC["):
			// `sops encrypt --in-place` refuses a file that is already
			// encrypted, and `sops edit` cannot open one with a plaintext
			// value: the line has to go first.
			errs = append(errs, fmt.Errorf("%s: key %q holds a plaintext value in an encrypted file; delete that line (or restore the file from Git), set the value again with `sops edit %s`, and rotate that secret, since it was in plaintext", name, key, name))
		case !encRE.MatchString(s):
			errs = append(errs, fmt.Errorf("%s: key %q holds a damaged encrypted value (hand-edited?); restore it from Git or set it again with `sops edit %s`", name, key, name))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(keys)
	return keys, errors.Join(errs...)
}

// authenticateLeaves checks each encrypted value against the data key and
// its key name (sops binds a value to its path): a value swapped with
// another key's, or copied from another file, fails here, and the error can
// name the key without quoting anything of the file.
func authenticateLeaves(name string, f *sopsFile, dataKey []byte) error {
	var errs []error
	err := walkLeaves(name, f, func(key string, v any, encrypted bool) error {
		s, _ := v.(string)
		if s == "" || !encrypted {
			return nil
		}
		if _, err := decryptValue(s, dataKey, key+":"); err != nil {
			errs = append(errs, fmt.Errorf("%s: the value of key %q does not belong to this file (moved from another key or file, or damaged); restore it from Git or set it again with `sops edit %s`", name, key, name))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}

var encRE = regexp.MustCompile(`^ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]+,tag:[A-Za-z0-9+/=]+,type:(str|int|float|bool|bytes|time|comment)\]$`)

func load(name string, data []byte) (*sopsFile, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s is %d bytes; syncd reads secrets files of at most %d", name, len(data), MaxFileSize)
	}
	format, err := formatOf(name)
	if err != nil {
		return nil, err
	}
	f, err := parseSops(format, data)
	if errors.Is(err, errNoMetadata) {
		return nil, fmt.Errorf("%s is not encrypted with sops (it has no sops metadata); encrypt it with `sops encrypt --in-place %s` and rotate every value in it", name, name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid sops file: %v", name, err)
	}
	return f, nil
}

// dataKey recovers the file's data key with the host's identity, from the
// age recipients of its (single) key group.
func dataKey(id *Identity, name string, f *sopsFile) ([]byte, error) {
	if len(f.meta.groups) != 1 {
		return nil, fmt.Errorf("%s uses %d sops key groups (Shamir); syncd decrypts files with one key group", name, len(f.meta.groups))
	}
	var recipients []string
	for _, k := range f.meta.groups[0].age {
		recipients = append(recipients, k.recipient)
		if key, err := decryptDataKey(k.enc, id.identities); err == nil {
			return key, nil
		}
	}
	if len(recipients) == 0 {
		return nil, fmt.Errorf("%s is not encrypted to any age recipient; syncd decrypts with the host's age key: add its recipient to .sops.yaml and run `sops updatekeys %s`", name, name)
	}
	return nil, fmt.Errorf("%s cannot be decrypted with the age key %s (recipient %s): %w; the file is encrypted to %s: add the host's recipient to .sops.yaml and run `sops updatekeys %s`",
		name, id.path, strings.Join(id.Recipients(), ", "), ErrNotRecipient, strings.Join(recipients, ", "), name)
}

// walkLeaves calls fn for each top-level key, its value and whether the
// file's rules say it is encrypted. Secrets files are flat: a nested map
// or list is refused, naming the key.
func walkLeaves(name string, f *sopsFile, fn func(key string, v any, encrypted bool) error) error {
	for _, b := range f.branches {
		var comments []string
		for _, it := range b {
			if c, isComment := it.key.(comment); isComment {
				comments = append(comments, c.value)
				continue
			}
			key, ok := it.key.(string)
			if !ok {
				return fmt.Errorf("%s: a key is not a string (a number, a bool or null as a key); a secrets file is a flat map of NAME: value", name)
			}
			switch it.value.(type) {
			case branch, []any:
				return fmt.Errorf("%s: key %q holds a map or a list; a secrets file is a flat map of NAME: value", name, key)
			}
			encrypted := f.meta.shouldBeEncrypted([]string{key}, [][]string{comments}, false)
			if err := fn(key, it.value, encrypted); err != nil {
				return err
			}
			comments = nil
		}
	}
	return nil
}

func scalarString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ErrNotRecipient is wrapped by Decrypt when the identity is not one of the
// file's recipients: not damage, just another host's file.
var ErrNotRecipient = errors.New("not a recipient")

// Decrypter decrypts with one host identity; it is what callers that need
// values are handed.
type Decrypter struct{ Identity *Identity }

// Decrypt implements the callers' decrypter interfaces.
func (d Decrypter) Decrypt(name string, data []byte) (map[string]string, error) {
	return Decrypt(d.Identity, name, data)
}

// Inspector reads key names without a key.
type Inspector struct{}

// Keys implements the callers' inspector interfaces.
func (Inspector) Keys(name string, data []byte) ([]string, error) { return Inspect(name, data) }
