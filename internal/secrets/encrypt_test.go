package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
