// Package secretstest makes age identities in-process and SOPS files with
// the real sops CLI (the pinned build of scripts/tools.sh), so tests of any
// package can build a desired-state repository with real encrypted secrets.
//
// It is for tests only. Like package secrets it may import age; of syncd it
// imports only testenv, to find the sops binary.
package secretstest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/syncd-dev/syncd/internal/testenv"
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
	testenv.Tool(t, "sops")
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

func encrypt(recipients, format string, plaintext []byte, opts Options) ([]byte, error) {
	switch format {
	case "yaml", "json", "dotenv":
	default:
		return nil, fmt.Errorf("unknown format %q; use yaml, json or dotenv", format)
	}
	bin, err := testenv.FindTool("sops")
	if err != nil {
		return nil, err
	}
	recipients = strings.Join(strings.Fields(strings.ReplaceAll(recipients, ",", " ")), ",")
	if recipients == "" {
		return nil, fmt.Errorf("no recipient")
	}
	dir, err := os.MkdirTemp("", "secretstest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "plain")
	conf := filepath.Join(dir, ".sops.yaml")
	if err := os.WriteFile(in, plaintext, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(conf, []byte("{}\n"), 0o600); err != nil {
		return nil, err
	}
	args := []string{"--config", conf, "encrypt", "--input-type", format, "--output-type", format, "--age", recipients}
	for flag, v := range map[string]string{
		"--unencrypted-suffix": opts.UnencryptedSuffix, "--encrypted-suffix": opts.EncryptedSuffix,
		"--unencrypted-regex": opts.UnencryptedRegex, "--encrypted-regex": opts.EncryptedRegex,
	} {
		if v != "" {
			args = append(args, flag, v)
		}
	}
	cmd := exec.Command(bin, append(args, in)...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "SOPS_DISABLE_VERSION_CHECK=1"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("sops encrypt (%s): %v: %s", format, err, strings.TrimSpace(stderr.String()))
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
