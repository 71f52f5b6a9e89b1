// Package secrets decrypts a host's SOPS file in-process with the host's
// age identity, and reads the key names of a SOPS file without any key.
//
// It is the adapter over sops and age: the only package that imports them.
// Every error it returns names the file and, where it matters, the key, and
// never a value; panics inside the sops library are recovered. It must not
// import the other syncd packages (but the leaf atomicfile, which writes
// the key it makes): callers hand it bytes and get a map back.
package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/stores/dotenv"
	"github.com/getsops/sops/v3/stores/json"
	"github.com/getsops/sops/v3/stores/yaml"

	"github.com/syncd-dev/syncd/internal/abbrev"
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
	defer func() {
		if r := recover(); r != nil {
			values, err = nil, fmt.Errorf("%s: the sops library failed while decrypting it; check that it is a valid sops file", name)
		}
	}()
	tree, err := load(name, data)
	if err != nil {
		return nil, err
	}
	if _, err := checkLeaves(name, tree); err != nil {
		return nil, err
	}
	dataKey, err := dataKey(id, name, tree)
	if err != nil {
		return nil, err
	}
	cipher := aes.NewCipher()
	if err := authenticateLeaves(name, tree, dataKey, cipher); err != nil {
		return nil, err
	}
	// The library's errors may quote a value (aes: "Input string %s does
	// not match"), so none of their text is passed on.
	mac, err := tree.Decrypt(dataKey, cipher)
	if err != nil {
		return nil, fmt.Errorf("%s: a value cannot be decrypted (the file was edited by hand or damaged); restore it from Git or re-create it with `sops edit %s`", name, name)
	}
	stored, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil || stored != mac {
		return nil, fmt.Errorf("%s: MAC mismatch: the file was changed without sops (tampered or hand-edited); restore it from Git or re-create it with `sops edit %s`", name, name)
	}
	values = map[string]string{}
	err = walkLeaves(name, tree, func(key string, v any) error {
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
	defer func() {
		if r := recover(); r != nil {
			keys, err = nil, fmt.Errorf("%s: the sops library failed while reading it; check that it is a valid sops file", name)
		}
	}()
	tree, err := load(name, data)
	if err != nil {
		return nil, err
	}
	return checkLeaves(name, tree)
}

// checkLeaves returns the sorted key names of tree, and an error naming
// every key whose value is not what sops writes where the file's own rules
// say it must be encrypted: a plaintext value, or a damaged ENC[...] one.
// Empty and null values are what sops leaves unencrypted.
func checkLeaves(name string, tree sops.Tree) ([]string, error) {
	var keys []string
	var errs []error
	err := walkLeaves(name, tree, func(key string, v any) error {
		keys = append(keys, key)
		s, isString := v.(string)
		switch {
		case !mustBeEncrypted(tree.Metadata, key), v == nil, isString && s == "":
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
func authenticateLeaves(name string, tree sops.Tree, dataKey []byte, cipher sops.Cipher) error {
	var errs []error
	err := walkLeaves(name, tree, func(key string, v any) error {
		s, _ := v.(string)
		if s == "" || !mustBeEncrypted(tree.Metadata, key) {
			return nil
		}
		if _, err := cipher.Decrypt(s, dataKey, key+":"); err != nil {
			errs = append(errs, fmt.Errorf("%s: the value of key %q does not belong to this file (moved from another key or file, or damaged); restore it from Git or set it again with `sops edit %s`", name, key, name))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}

var encRE = regexp.MustCompile(`^ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]+,tag:[A-Za-z0-9+/=]+,type:(str|int|float|bool|bytes|comment)\]$`)

// storeFor returns the sops store of a secrets file's format, told by the
// ending of its name.
func storeFor(name string) (sops.Store, error) {
	switch path.Ext(name) {
	case ".yaml", ".yml":
		return yaml.NewStore(&config.YAMLStoreConfig{}), nil
	case ".json":
		return json.NewStore(&config.JSONStoreConfig{}), nil
	case ".env":
		return dotenv.NewStore(&config.DotenvStoreConfig{}), nil
	}
	return nil, fmt.Errorf("%s: unknown secrets format; name it secrets.sops.yaml, .json or .env", name)
}

func load(name string, data []byte) (sops.Tree, error) {
	if len(data) > MaxFileSize {
		return sops.Tree{}, fmt.Errorf("%s is %d bytes; syncd reads secrets files of at most %d", name, len(data), MaxFileSize)
	}
	store, err := storeFor(name)
	if err != nil {
		return sops.Tree{}, err
	}
	tree, err := store.LoadEncryptedFile(data)
	if err != nil {
		if errors.Is(err, sops.MetadataNotFound) {
			return sops.Tree{}, fmt.Errorf("%s is not encrypted with sops (it has no sops metadata); encrypt it with `sops encrypt --in-place %s` and rotate every value in it", name, name)
		}
		return sops.Tree{}, fmt.Errorf("%s: not a valid sops file: %s", name, parseError(err, data))
	}
	return tree, nil
}

// dataKey recovers the file's data key with the host's identity, from the
// age recipients of its (single) key group.
func dataKey(id *Identity, name string, tree sops.Tree) ([]byte, error) {
	if len(tree.Metadata.KeyGroups) != 1 {
		return nil, fmt.Errorf("%s uses %d sops key groups (Shamir); syncd decrypts files with one key group", name, len(tree.Metadata.KeyGroups))
	}
	var recipients []string
	for _, k := range tree.Metadata.KeyGroups[0] {
		mk, ok := k.(*sopsage.MasterKey)
		if !ok {
			continue
		}
		recipients = append(recipients, mk.Recipient)
		parsed := make(sopsage.ParsedIdentities, 0, len(id.identities))
		parsed = append(parsed, id.identities...)
		parsed.ApplyToMasterKey(mk)
		if key, err := mk.Decrypt(); err == nil {
			return key, nil
		}
	}
	if len(recipients) == 0 {
		return nil, fmt.Errorf("%s is not encrypted to any age recipient; syncd decrypts with the host's age key: add its recipient to .sops.yaml and run `sops updatekeys %s`", name, name)
	}
	return nil, fmt.Errorf("%s cannot be decrypted with the age key %s (recipient %s): %w; the file is encrypted to %s: add the host's recipient to .sops.yaml and run `sops updatekeys %s`",
		name, id.path, strings.Join(id.Recipients(), ", "), ErrNotRecipient, strings.Join(recipients, ", "), name)
}

// walkLeaves calls fn for each top-level key and its value. Secrets files
// are flat: a nested map or list is refused, naming the key.
func walkLeaves(name string, tree sops.Tree, fn func(key string, v any) error) error {
	for _, branch := range tree.Branches {
		for _, item := range branch {
			if _, isComment := item.Key.(sops.Comment); isComment {
				continue
			}
			key := fmt.Sprint(item.Key)
			switch item.Value.(type) {
			case sops.TreeBranch, []any:
				return fmt.Errorf("%s: key %q holds a map or a list; a secrets file is a flat map of NAME: value", name, key)
			}
			if err := fn(key, item.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

// mustBeEncrypted applies the file's own sops rules (unencrypted_suffix,
// encrypted_suffix, unencrypted_regex, encrypted_regex) to one key.
func mustBeEncrypted(m sops.Metadata, key string) bool {
	switch {
	case m.UnencryptedSuffix != "":
		return !strings.HasSuffix(key, m.UnencryptedSuffix)
	case m.EncryptedSuffix != "":
		return strings.HasSuffix(key, m.EncryptedSuffix)
	case m.UnencryptedRegex != "":
		ok, _ := regexp.MatchString(m.UnencryptedRegex, key)
		return !ok
	case m.EncryptedRegex != "":
		ok, _ := regexp.MatchString(m.EncryptedRegex, key)
		return ok
	}
	return true
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

// parseError says what a store's parse error says, without the text of the
// file it may quote: the dotenv store, for one, quotes a whole line, which
// may be a secret value.
func parseError(err error, data []byte) string {
	msg := abbrev.Line(err.Error())
	if strings.HasPrefix(msg, "invalid dotenv input line") {
		for i, line := range strings.Split(string(data), "\n") {
			if line != "" && line[0] != '#' && !strings.Contains(line, "=") {
				return fmt.Sprintf("line %d is not NAME=value", i+1)
			}
		}
		return "a line is not NAME=value"
	}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		_, value, _ := strings.Cut(line, ":")
		for _, text := range []string{line, strings.TrimSpace(value)} {
			if len(text) >= 4 && strings.Contains(msg, text) {
				msg = strings.ReplaceAll(msg, text, fmt.Sprintf("<text of line %d>", i+1))
			}
		}
	}
	return msg
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
