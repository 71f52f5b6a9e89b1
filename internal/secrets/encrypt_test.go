package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

func TestGenerateIdentityFileNeverReplacesAKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "etc", "age.key")
	r, err := GenerateIdentityFile(p, "made by a test")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	id, err := LoadIdentity(p)
	if err != nil || len(id.Recipients()) != 1 || id.Recipients()[0] != r {
		t.Fatalf("load: %v %v, want %s", id, err, r)
	}
	before, _ := os.ReadFile(p)
	if !strings.Contains(string(before), "# made by a test\n") || strings.Count(string(before), "AGE-SECRET-KEY-") != 1 {
		t.Errorf("key file:\n%s", before)
	}
	_, err = GenerateIdentityFile(p, "")
	if err == nil || !strings.Contains(err.Error(), "exists already; syncd never replaces a key") {
		t.Fatalf("second generate: %v", err)
	}
	if after, _ := os.ReadFile(p); string(after) != string(before) {
		t.Error("the key was replaced")
	}
	if strings.Contains(err.Error(), "AGE-SECRET-KEY") {
		t.Error("the error quotes the key")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".age-key-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestParseRecipient(t *testing.T) {
	good := "age1ryr7msn56223ms5rcxan30gt5pkqlkacnnn34vwchwqxqa77huhs7rpkd5"
	if r, err := ParseRecipient(" " + good + "\n"); err != nil || r != good {
		t.Errorf("%q %v", r, err)
	}
	for in, want := range map[string]string{
		"age1nope": "is not an age recipient",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPpXVcTAp/7HhC5E/XQBKC9d+s7kLw8yF6exLf5LYMNJ": "is not an age recipient",
		"AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX":       "that is an age private key",
	} {
		_, err := ParseRecipient(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
		if strings.HasPrefix(in, "AGE-SECRET") && strings.Contains(err.Error(), in) {
			t.Errorf("the error quotes the private key")
		}
	}
}

func TestOperatorIdentityWhereSopsLooks(t *testing.T) {
	home := t.TempDir()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if _, err := OperatorIdentity(env(map[string]string{"HOME": home})); err == nil || !strings.Contains(err.Error(), filepath.Join(home, ".config/sops/age/keys.txt")) {
		t.Errorf("no key: %v", err)
	}
	p := filepath.Join(home, ".config/sops/age/keys.txt")
	if _, err := GenerateIdentityFile(p, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := OperatorIdentity(env(map[string]string{"HOME": home})); err != nil {
		t.Errorf("default path: %v", err)
	}
	if _, err := OperatorIdentity(env(map[string]string{"SOPS_AGE_KEY_FILE": filepath.Join(home, "missing")})); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("SOPS_AGE_KEY_FILE missing: %v", err)
	}
	os.Chmod(p, 0o644)
	if _, err := OperatorIdentity(env(map[string]string{"SOPS_AGE_KEY_FILE": p})); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("readable key: %v", err)
	}
}

// TestGenerateIdentityFileOnAFullDisk: a key that cannot be written whole
// is not made: no recipient, nothing under the name, a clear error.
func TestGenerateIdentityFileOnAFullDisk(t *testing.T) {
	dir := testenv.FullDisk(t)
	p := filepath.Join(dir, "age.key")
	r, err := GenerateIdentityFile(p, "made by a test")
	if err == nil || r != "" {
		t.Fatalf("on a full disk: recipient %q, err %v", r, err)
	}
	if !strings.Contains(err.Error(), "age key: write "+p+": no space left on device; no key was made") {
		t.Errorf("error: %v", err)
	}
	if _, serr := os.Lstat(p); !os.IsNotExist(serr) {
		t.Errorf("%s exists after the failed write (%v)", p, serr)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if strings.Contains(err.Error(), "AGE-SECRET-KEY") {
		t.Error("the error quotes the key")
	}
}

// TestLoadIdentityRefusesACutKey: an empty or truncated key file (what an
// older syncd left on a full disk) is not a key, and the error says what
// to do.
func TestLoadIdentityRefusesACutKey(t *testing.T) {
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.key")
	recipient, err := GenerateIdentityFile(whole, "")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(whole)
	secretAt := strings.Index(string(data), "AGE-SECRET-KEY-")
	for name, c := range map[string]struct {
		content string
		want    string
	}{
		"empty":           {"", "is empty (0 bytes)"},
		"header only":     {string(data[:secretAt]), "is truncated (its header names the public key " + recipient},
		"secret line cut": {string(data[:secretAt+30]), "is truncated (its header names the public key " + recipient},
		"cut, no header":  {string(data[secretAt : secretAt+30]), "is truncated (its AGE-SECRET-KEY- line is cut)"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".key")
		if err := os.WriteFile(p, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadIdentity(p)
		if err == nil {
			t.Errorf("%s: loaded as a key", name)
			continue
		}
		for _, w := range []string{"age key " + p + " " + c.want, "syncd never replaces a key file", "mv " + p + " " + p + ".damaged", "syncd enroll --host"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error lacks %q: %v", name, w, err)
			}
		}
		if strings.Contains(err.Error(), "AGE-SECRET-KEY-1") {
			t.Errorf("%s: the error quotes key material: %v", name, err)
		}
	}
	// Something else that is no key keeps its own message.
	junk := filepath.Join(dir, "junk.key")
	os.WriteFile(junk, []byte("not a key\n"), 0o600)
	if _, err := LoadIdentity(junk); err == nil || !strings.Contains(err.Error(), "holds no valid age identity") {
		t.Errorf("junk: %v", err)
	}
}
