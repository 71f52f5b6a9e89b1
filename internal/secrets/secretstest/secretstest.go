// Package secretstest makes age identities and SOPS files in-process, with
// the sops library itself, so tests of any package can build a desired-state
// repository with real encrypted secrets without the sops CLI.
//
// It is for tests only. Like package secrets it may import sops and age; it
// must not import other syncd packages.
package secretstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/stores/dotenv"
	"github.com/getsops/sops/v3/stores/json"
	"github.com/getsops/sops/v3/stores/yaml"
)

// NewKey generates an age X25519 identity, writes it in age-keygen's format
// to a 0600 file in a fresh t.TempDir(), and returns that file and the
// identity's public recipient (age1...).
func NewKey(t testing.TB) (identityFile, recipient string) {
	t.Helper()
	content, recipient, err := GenerateKey()
	if err != nil {
		t.Fatalf("secretstest: %v", err)
	}
	identityFile = filepath.Join(t.TempDir(), "key.agekey")
	if err := os.WriteFile(identityFile, content, 0o600); err != nil {
		t.Fatalf("secretstest: write age identity: %v", err)
	}
	return identityFile, recipient
}

// GenerateKey returns a new age X25519 identity as age-keygen writes it,
// and its recipient; for callers without a testing.TB (script commands).
func GenerateKey() (identityFile []byte, recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, "", fmt.Errorf("generate age identity: %v", err)
	}
	recipient = id.Recipient().String()
	content := fmt.Sprintf("# created: %s\n# public key: %s\n%s\n", time.Now().UTC().Format(time.RFC3339), recipient, id.String())
	return []byte(content), recipient, nil
}

// Encrypt is EncryptBytes for callers without a testing.TB.
func Encrypt(recipients, format string, plaintext []byte) ([]byte, error) {
	return encrypt(recipients, format, plaintext, Options{})
}

// Options change how EncryptBytesOpts encrypts, as the creation rules of a
// .sops.yaml would. At most one of them may be set; when none is, the
// suffix _unencrypted is used, as the sops CLI does.
type Options struct {
	UnencryptedSuffix string
	EncryptedSuffix   string
	UnencryptedRegex  string
	EncryptedRegex    string
}

// EncryptBytes encrypts plaintext in the given format ("yaml", "json" or
// "dotenv") to recipient (or several, comma-separated), as `sops encrypt`
// would, and returns the encrypted file.
func EncryptBytes(t testing.TB, recipient, format string, plaintext []byte) []byte {
	t.Helper()
	return EncryptBytesOpts(t, recipient, format, plaintext, Options{})
}

// EncryptBytesOpts is EncryptBytes with creation-rule options.
func EncryptBytesOpts(t testing.TB, recipient, format string, plaintext []byte, opts Options) []byte {
	t.Helper()
	out, err := encrypt(recipient, format, plaintext, opts)
	if err != nil {
		t.Fatalf("secretstest: %v", err)
	}
	return out
}

// WriteFile encrypts plaintext like EncryptBytes, choosing the format from
// the file name's ending, and writes it to path (0644, as in a checkout).
func WriteFile(t testing.TB, path, recipient string, plaintext []byte) {
	t.Helper()
	if err := os.WriteFile(path, EncryptBytes(t, recipient, FormatOf(path), plaintext), 0o644); err != nil {
		t.Fatalf("secretstest: %v", err)
	}
}

// FormatOf returns the sops format a file name's ending selects.
func FormatOf(name string) string {
	switch filepath.Ext(name) {
	case ".json":
		return "json"
	case ".env":
		return "dotenv"
	}
	return "yaml"
}

// sopsVersion is written into the metadata as sops writes its own version.
// The sops version package is not imported: it pulls CLI-only modules.
const sopsVersion = "3.13.3"

type store interface {
	sops.PlainFileLoader
	sops.EncryptedFileEmitter
}

func storeFor(format string) (store, error) {
	switch format {
	case "yaml":
		return yaml.NewStore(&config.YAMLStoreConfig{}), nil
	case "json":
		return json.NewStore(&config.JSONStoreConfig{}), nil
	case "dotenv":
		return dotenv.NewStore(&config.DotenvStoreConfig{}), nil
	}
	return nil, fmt.Errorf("unknown format %q; use yaml, json or dotenv", format)
}

func encrypt(recipients, format string, plaintext []byte, opts Options) ([]byte, error) {
	st, err := storeFor(format)
	if err != nil {
		return nil, err
	}
	branches, err := st.LoadPlainFile(plaintext)
	if err != nil {
		return nil, fmt.Errorf("load plaintext %s: %v", format, err)
	}
	if len(branches) == 0 {
		return nil, fmt.Errorf("empty %s document", format)
	}
	if opts == (Options{}) {
		opts.UnencryptedSuffix = "_unencrypted"
	}
	mks, err := sopsage.MasterKeysFromRecipients(strings.TrimSpace(recipients))
	if err != nil {
		return nil, fmt.Errorf("recipient %q: %v", recipients, err)
	}
	if len(mks) == 0 {
		return nil, fmt.Errorf("no recipient")
	}
	group := make(sops.KeyGroup, 0, len(mks))
	for _, mk := range mks {
		group = append(group, mk)
	}
	tree := sops.Tree{
		Branches: branches,
		Metadata: sops.Metadata{
			KeyGroups:         []sops.KeyGroup{group},
			UnencryptedSuffix: opts.UnencryptedSuffix,
			EncryptedSuffix:   opts.EncryptedSuffix,
			UnencryptedRegex:  opts.UnencryptedRegex,
			EncryptedRegex:    opts.EncryptedRegex,
			Version:           sopsVersion,
		},
	}
	dataKey, errs := tree.GenerateDataKey()
	if len(errs) > 0 {
		return nil, fmt.Errorf("generate data key: %v", errs)
	}
	// What `sops encrypt` does (cmd/sops/common.EncryptTree): encrypt the
	// values, then store the MAC encrypted with the time as additional data.
	cipher := aes.NewCipher()
	mac, err := tree.Encrypt(dataKey, cipher)
	if err != nil {
		return nil, fmt.Errorf("encrypt tree: %v", err)
	}
	tree.Metadata.LastModified = time.Now().UTC()
	tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("encrypt MAC: %v", err)
	}
	out, err := st.EmitEncryptedFile(tree)
	if err != nil {
		return nil, fmt.Errorf("emit %s: %v", format, err)
	}
	return out, nil
}

// FragmentLen is the length of the pieces of a secret value that LeakIn
// looks for: a tool that quotes a value cut short still leaks it.
const FragmentLen = 8

// LeakIn returns a description of the first secret value, or fragment of
// FragmentLen bytes of one, that text contains, or "" when none does.
func LeakIn(text string, values ...string) string {
	for _, v := range values {
		if v == "" {
			continue
		}
		if strings.Contains(text, v) {
			return fmt.Sprintf("the secret value %q", v)
		}
		for i := 0; i+FragmentLen <= len(v); i++ {
			if frag := v[i : i+FragmentLen]; strings.Contains(text, frag) {
				return fmt.Sprintf("the fragment %q of the secret value %q", frag, v)
			}
		}
	}
	return ""
}

// AssertNoLeak fails the test when text holds any of values or a fragment
// of one; where says what text is (stderr, an error, a file).
func AssertNoLeak(t testing.TB, where, text string, values ...string) {
	t.Helper()
	if leak := LeakIn(text, values...); leak != "" {
		t.Errorf("%s leaks %s:\n%s", where, leak, text)
	}
}
