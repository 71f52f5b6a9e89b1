package secrets

// This file is the writing half of the adapter: a host's own age key, the
// operator's key as sops finds it, the recipients .sops.yaml gives a file,
// and re-encryption (`sops updatekeys`) and data-key rotation (`sops
// rotate`) in-process. Like the reading half, no error quotes a value.

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"

	"github.com/syncd-dev/syncd/internal/atomicfile"
)

// GenerateIdentityFile makes a new age X25519 identity and writes it to
// path in age-keygen's format, mode 0600, with comment as a header line.
// The file is created exclusively: one that exists is never replaced. It
// returns the identity's recipient (age1…), which is public.
func GenerateIdentityFile(path, comment string) (recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", fmt.Errorf("age key %s: generate: %v", path, err)
	}
	recipient = id.Recipient().String()
	var b strings.Builder
	fmt.Fprintf(&b, "# created: %s\n# public key: %s\n", time.Now().UTC().Format(time.RFC3339), recipient)
	if comment != "" {
		fmt.Fprintf(&b, "# %s\n", comment)
	}
	b.WriteString(id.String() + "\n")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("age key %s: %w", path, unwrapPathErr(err))
	}
	// Written whole beside the target, fsynced and linked into place: a
	// full disk or a crash leaves no key under the name, never a short
	// one, and an existing key is never replaced.
	err = atomicfile.Create(path, []byte(b.String()), 0o600)
	if errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("age key %s exists already; syncd never replaces a key (remove it yourself if you mean to)", path)
	}
	if err != nil {
		return "", fmt.Errorf("age key: %w; no key was made", err)
	}
	return recipient, nil
}

// ParseRecipient checks that s is an age recipient (age1…, or an age1pq1…
// hybrid one) and returns it trimmed.
func ParseRecipient(s string) (string, error) {
	s = strings.TrimSpace(s)
	if _, err := age.ParseX25519Recipient(s); err == nil {
		return s, nil
	}
	if _, err := age.ParseHybridRecipient(s); err == nil {
		return s, nil
	}
	if strings.HasPrefix(s, "AGE-SECRET-KEY-") {
		return "", errors.New("that is an age private key, not a recipient: never paste it anywhere; the recipient is the `# public key: age1…` line (age-keygen -y prints it)")
	}
	return "", fmt.Errorf("%q is not an age recipient (age1… as age-keygen -y prints it)", s)
}

// OperatorIdentity loads the operator's age key where sops looks for it:
// $SOPS_AGE_KEY_FILE, else $XDG_CONFIG_HOME/sops/age/keys.txt, else
// ~/.config/sops/age/keys.txt. The file must be mode 0600 (LoadIdentity).
func OperatorIdentity(getenv func(string) string) (*Identity, error) {
	p := getenv("SOPS_AGE_KEY_FILE")
	if p == "" {
		dir := getenv("XDG_CONFIG_HOME")
		if dir == "" {
			home := getenv("HOME")
			if home == "" {
				return nil, errors.New("no operator age key: set SOPS_AGE_KEY_FILE to the file of your age key (the one that opens the secrets files today)")
			}
			dir = filepath.Join(home, ".config")
		}
		p = filepath.Join(dir, "sops", "age", "keys.txt")
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no operator age key: SOPS_AGE_KEY_FILE is not set and %s does not exist; set SOPS_AGE_KEY_FILE to the file of your age key (the one that opens the secrets files today)", p)
		}
	}
	return LoadIdentity(p)
}

// RuleRecipients returns the age recipients the creation rules in
// sopsConfig (the content of a .sops.yaml) give file, a slash path relative
// to the repository, using sops's own rule matching (the first rule whose
// path_regex matches wins). It errors when no rule matches or the rule
// names something other than age recipients in one key group.
func RuleRecipients(sopsConfig []byte, file string) ([]string, error) {
	dir, err := os.MkdirTemp("", "syncd-sops-config-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	conf := filepath.Join(dir, ".sops.yaml")
	if err := os.WriteFile(conf, sopsConfig, 0o600); err != nil {
		return nil, err
	}
	c, err := config.LoadCreationRuleForFile(conf, file, nil)
	if err != nil {
		return nil, fmt.Errorf(".sops.yaml: %s: %v", file, strings.ReplaceAll(err.Error(), conf, ".sops.yaml"))
	}
	if c == nil {
		return nil, fmt.Errorf(".sops.yaml has no creation_rules; add one for %s", file)
	}
	if len(c.KeyGroups) != 1 {
		return nil, fmt.Errorf(".sops.yaml: the rule for %s has %d key groups; syncd uses one", file, len(c.KeyGroups))
	}
	var out []string
	for _, k := range c.KeyGroups[0] {
		mk, ok := k.(*sopsage.MasterKey)
		if !ok {
			return nil, fmt.Errorf(".sops.yaml: the rule for %s names a %s key; syncd encrypts to age recipients only", file, k.TypeToIdentifier())
		}
		out = append(out, mk.Recipient)
	}
	return out, nil
}

// FileRecipients returns the age recipients a SOPS file is encrypted to.
func FileRecipients(name string, data []byte) (recipients []string, err error) {
	defer recoverSops(name, &err)
	tree, err := load(name, data)
	if err != nil {
		return nil, err
	}
	for _, g := range tree.Metadata.KeyGroups {
		for _, k := range g {
			if mk, ok := k.(*sopsage.MasterKey); ok {
				recipients = append(recipients, mk.Recipient)
			}
		}
	}
	return recipients, nil
}

// Rekey re-encrypts a SOPS file's data key to recipients, as `sops
// updatekeys` does: the values and the MAC stay as they are. id must be one
// of the file's recipients.
func Rekey(id *Identity, name string, data []byte, recipients []string) (out []byte, err error) {
	defer recoverSops(name, &err)
	tree, err := load(name, data)
	if err != nil {
		return nil, err
	}
	key, err := dataKey(id, name, tree)
	if err != nil {
		return nil, err
	}
	if err := setRecipients(name, &tree, key, recipients); err != nil {
		return nil, err
	}
	return emit(name, tree)
}

// Rotate gives a SOPS file a new data key, encrypted to recipients, and
// encrypts every value again with it, as `sops rotate` does; the MAC is
// verified first. It returns the file's key names: the values someone who
// had the old data key knows.
func Rotate(id *Identity, name string, data []byte, recipients []string) (out []byte, keys []string, err error) {
	defer recoverSops(name, &err)
	tree, err := load(name, data)
	if err != nil {
		return nil, nil, err
	}
	if keys, err = checkLeaves(name, tree); err != nil {
		return nil, nil, err
	}
	key, err := dataKey(id, name, tree)
	if err != nil {
		return nil, nil, err
	}
	cipher := aes.NewCipher()
	mac, err := tree.Decrypt(key, cipher)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: a value cannot be decrypted (the file was edited by hand or damaged); restore it from Git", name)
	}
	stored, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, key, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil || stored != mac {
		return nil, nil, fmt.Errorf("%s: MAC mismatch: the file was changed without sops; restore it from Git before rotating", name)
	}
	newKey := make([]byte, 32)
	if _, err := rand.Read(newKey); err != nil {
		return nil, nil, fmt.Errorf("%s: new data key: %v", name, err)
	}
	if err := setRecipients(name, &tree, newKey, recipients); err != nil {
		return nil, nil, err
	}
	if mac, err = tree.Encrypt(newKey, cipher); err != nil {
		return nil, nil, fmt.Errorf("%s: encrypt with the new data key failed", name)
	}
	tree.Metadata.LastModified = time.Now().UTC()
	if tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, newKey, tree.Metadata.LastModified.Format(time.RFC3339)); err != nil {
		return nil, nil, fmt.Errorf("%s: encrypt the MAC failed", name)
	}
	out, err = emit(name, tree)
	return out, keys, err
}

// setRecipients replaces the file's one key group by recipients, each
// holding key.
func setRecipients(name string, tree *sops.Tree, key []byte, recipients []string) error {
	if len(recipients) == 0 {
		return fmt.Errorf("%s: no recipient left to encrypt it to", name)
	}
	group := make(sops.KeyGroup, 0, len(recipients))
	for _, r := range slices.Compact(slices.Clone(recipients)) {
		mk, err := sopsage.MasterKeyFromRecipient(r)
		if err != nil {
			return fmt.Errorf("%s: recipient %q is not an age recipient", name, r)
		}
		if err := mk.Encrypt(key); err != nil {
			return fmt.Errorf("%s: encrypt the data key to %s failed", name, r)
		}
		group = append(group, mk)
	}
	tree.Metadata.KeyGroups = []sops.KeyGroup{group}
	return nil
}

func emit(name string, tree sops.Tree) ([]byte, error) {
	st, err := storeFor(name)
	if err != nil {
		return nil, err
	}
	out, err := st.EmitEncryptedFile(tree)
	if err != nil {
		return nil, fmt.Errorf("%s: write the encrypted file failed", name)
	}
	return out, nil
}

func recoverSops(name string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: the sops library failed on it; check that it is a valid sops file", name)
	}
}

// Operator is the operator's key bound to the re-encryption calls, as
// enrolment needs them.
type Operator struct{ Identity *Identity }

// Operator returns the recipients of the operator's key.
func (o Operator) Operator() []string { return o.Identity.Recipients() }

// RuleRecipients is the package function RuleRecipients.
func (Operator) RuleRecipients(config []byte, file string) ([]string, error) {
	return RuleRecipients(config, file)
}

// FileRecipients is the package function FileRecipients.
func (Operator) FileRecipients(name string, data []byte) ([]string, error) {
	return FileRecipients(name, data)
}

// Rekey re-encrypts with the operator's key; see the package function.
func (o Operator) Rekey(name string, data []byte, recipients []string) ([]byte, error) {
	return Rekey(o.Identity, name, data, recipients)
}

// Rotate rotates with the operator's key; see the package function.
func (o Operator) Rotate(name string, data []byte, recipients []string) ([]byte, []string, error) {
	return Rotate(o.Identity, name, data, recipients)
}
