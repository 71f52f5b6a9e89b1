package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"gopkg.in/yaml.v3"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// cliKey is an age identity the test made, written where sops reads it.
type cliKey struct {
	file      string
	recipient string
	id        *Identity
}

func newCLIKey(t testing.TB) cliKey {
	t.Helper()
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(p, []byte(x.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := LoadIdentity(p)
	if err != nil {
		t.Fatal(err)
	}
	return cliKey{file: p, recipient: x.Recipient().String(), id: id}
}

// runSopsCLI runs the real sops in dir with a clean environment and
// returns its output.
func runSopsCLI(t testing.TB, dir string, env []string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(testenv.Tool(t, "sops"), args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"), "SOPS_DISABLE_VERSION_CHECK=1"}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sops %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// conformance are files of every shape the sops stores write: each is
// encrypted by the sops CLI, and syncd's reader must decrypt it to what
// `sops decrypt` prints.
var conformance = []struct {
	name   string
	file   string // its name tells the format
	plain  string
	flags  []string // of sops encrypt
	rule   string   // extra keys of the .sops.yaml creation rule
	nested bool     // not a flat secrets file: only the tree is compared
}{
	{name: "yaml every type", file: "s.sops.yaml", plain: "" +
		"# a head comment\n" +
		"str: hello world\n" +
		"quoted: \"42\"\n" +
		"int: 42\n" +
		"negative: -7\n" +
		"big: 9007199254740993\n" +
		"float: 1.50\n" +
		"exp: 1e3\n" +
		"bool_t: true\n" +
		"bool_f: false\n" +
		"empty: \"\"\n" +
		"null_value: null\n" +
		"multiline: |\n  line one\n  line two\n" +
		"unicode: \"h\u00e9llo \u263a\"\n" +
		"colon: \"a: b # not a comment\"\n" +
		"port_unencrypted: 8080 # inline comment\n" +
		"date: 2024-01-02\n"},
	{name: "yaml nested maps and lists", file: "n.sops.yaml", nested: true, plain: "" +
		"db:\n  user: admin\n  # the password\n  password: s3cret\n  ports: [5432, 5433]\n" +
		"list:\n  - a\n  - 1\n  - 2.5\n  - true\n  - {k: v, deep: {deeper: [x, {y: z}]}}\n  # a comment in a list\n  - null\n" +
		"anchors:\n  base: &b {one: 1}\n  copy: *b\n"},
	{name: "yaml encrypted_regex", file: "r.sops.yaml", nested: true, flags: []string{"--encrypted-regex", "^(password|data)$"},
		plain: "user: admin\npassword: s3cret\ndata:\n  inner: x\n  list: [1, 2]\nother:\n  password: nested-secret\n  plain: visible\n"},
	{name: "yaml unencrypted_regex", file: "u.sops.yaml", nested: true, flags: []string{"--unencrypted-regex", "^public"},
		plain: "public_host: example.org\nsecret: s3cret\npublic:\n  a: 1\n"},
	{name: "yaml unencrypted_suffix", file: "us.sops.yaml", flags: []string{"--unencrypted-suffix", "_plain"},
		plain: "host_plain: example.org\ntoken: tok-123456\nport_plain: 443\n"},
	{name: "yaml encrypted_suffix", file: "es.sops.yaml", flags: []string{"--encrypted-suffix", "_secret"},
		plain: "host: example.org\ntoken_secret: tok-123456\nport: 443\n"},
	{name: "yaml encrypted_comment_regex", file: "ec.sops.yaml", nested: true, rule: "encrypted_comment_regex: sops:enc",
		plain: "plain: visible\n# sops:enc\nhidden: s3cret\nalso_plain: 1\n"},
	{name: "yaml unencrypted_comment_regex", file: "uc.sops.yaml", nested: true, rule: "unencrypted_comment_regex: sops:plain",
		plain: "secret: s3cret\n# sops:plain\nvisible: shown\n"},
	{name: "yaml mac_only_encrypted", file: "m.sops.yaml", rule: "mac_only_encrypted: true",
		plain: "token: tok-123456\nhost_unencrypted: example.org\n"},
	{name: "yaml several documents", file: "d.sops.yaml", nested: true, plain: "a: 1\n---\nb: two\n"},
	{name: "json every type", file: "s.sops.json", plain: `{"str": "hello", "int": 42, "big": 9223372036854775807, "huge": 18446744073709551616,
		"float": 1.5, "exp": 1e3, "t": true, "f": false, "empty": "", "nothing": null, "esc": "tab\tnl\n\"q\"", "port_unencrypted": 8080}`},
	{name: "json nested", file: "n.sops.json", nested: true, plain: `{"db": {"user": "admin", "ports": [1, 2, {"x": [true, null]}]}, "list": [[1, [2]], "s"], "dup": 1, "dup": 2}`},
	{name: "dotenv", file: "s.sops.env", plain: "# a comment\nDB_PASSWORD=Corr3ct-Horse\nEMPTY=\nMULTI=one\\ntwo\nEQ=a=b=c\nPORT_unencrypted=8080\n"},
	{name: "dotenv encrypted_regex", file: "r.sops.env", flags: []string{"--encrypted-regex", "PASSWORD"}, plain: "DB_PASSWORD=x1\nHOST=h\n"},
}

// treeJSON is a decrypted tree as the JSON `sops decrypt --output-type
// json` prints of it (documents as a list when there are several).
func treeJSON(t *testing.T, docs []branch) any {
	t.Helper()
	var out []any
	for _, d := range docs {
		b, err := json.Marshal(plainGo(d))
		if err != nil {
			t.Fatal(err)
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if len(out) == 1 {
		return out[0]
	}
	return out
}

// plainGo is toGo keeping key order out of it (JSON objects compare as
// maps), and []byte as its text.
func plainGo(v any) any {
	switch x := v.(type) {
	case branch:
		m := map[string]any{}
		for _, it := range x {
			if k, ok := it.key.(string); ok {
				m[k] = plainGo(it.value)
			}
		}
		return m
	case []any:
		out := []any{}
		for _, e := range x {
			if _, ok := e.(comment); !ok {
				out = append(out, plainGo(e))
			}
		}
		return out
	case []byte:
		return string(x)
	}
	return v
}

// yamlDocsJSON is each document of sops's YAML output, as JSON.
func yamlDocsJSON(t *testing.T, out []byte) any {
	t.Helper()
	var all []any
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var v any
		if err := dec.Decode(&v); err != nil {
			break
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		jd := json.NewDecoder(bytes.NewReader(b))
		jd.UseNumber()
		var j any
		if err := jd.Decode(&j); err != nil {
			t.Fatal(err)
		}
		all = append(all, j)
	}
	return all
}

func sopsJSON(t *testing.T, out []byte, docs int) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	var all []any
	for {
		var v any
		if err := dec.Decode(&v); err != nil {
			break
		}
		all = append(all, v)
	}
	if len(all) == 1 && docs <= 1 {
		return all[0]
	}
	if len(all) == 1 {
		if l, ok := all[0].([]any); ok {
			return l
		}
	}
	return all
}

// encryptCase encrypts a conformance case with the sops CLI to the
// recipients and returns the encrypted file.
func encryptCase(t *testing.T, dir, file, plain string, flags []string, rule string, recipients ...string) []byte {
	t.Helper()
	in := filepath.Join(dir, file)
	if err := os.WriteFile(in, []byte(plain), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := "creation_rules:\n  - age: " + strings.Join(recipients, ",") + "\n"
	if rule != "" {
		conf += "    " + rule + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, ".sops.yaml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"encrypt"}, flags...)
	return runSopsCLI(t, dir, nil, append(args, file)...)
}

func TestConformanceWithTheSopsCLI(t *testing.T) {
	testenv.Tool(t, "sops")
	keys := []cliKey{newCLIKey(t), newCLIKey(t), newCLIKey(t)}
	for _, c := range conformance {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			enc := encryptCase(t, dir, c.file, c.plain, c.flags, c.rule, keys[0].recipient, keys[1].recipient, keys[2].recipient)
			encFile := filepath.Join(dir, "enc-"+c.file)
			if err := os.WriteFile(encFile, enc, 0o600); err != nil {
				t.Fatal(err)
			}
			// Each recipient alone opens it, with the file's own key entry.
			for i, k := range keys {
				want := runSopsCLI(t, dir, []string{"SOPS_AGE_KEY_FILE=" + k.file}, "decrypt", "--output-type", "json", encFile)
				f, err := load(c.file, enc)
				if err != nil {
					t.Fatalf("load: %v\n%s", err, enc)
				}
				key, err := dataKey(k.id, c.file, f)
				if err != nil {
					t.Fatalf("key %d: %v", i, err)
				}
				got, err := f.decryptTree(key)
				if err != nil {
					t.Fatalf("key %d: decrypt: %v\n%s", i, err, enc)
				}
				w := sopsJSON(t, want, len(got))
				if len(got) > 1 {
					// sops prints only the first document as JSON.
					w = yamlDocsJSON(t, runSopsCLI(t, dir, []string{"SOPS_AGE_KEY_FILE=" + k.file}, "decrypt", encFile))
				}
				if g := treeJSON(t, got); !reflect.DeepEqual(g, w) {
					t.Fatalf("key %d: syncd reads\n%#v\nsops decrypt prints\n%#v", i, g, w)
				}
				if c.nested {
					continue
				}
				// Decrypt, the flat map callers get: each value as sops
				// prints it in JSON (strings unquoted).
				vals, err := Decrypt(k.id, c.file, enc)
				if err != nil {
					t.Fatalf("Decrypt: %v", err)
				}
				wm := w.(map[string]any)
				if len(vals) != len(wm) {
					t.Errorf("Decrypt: %d values, sops %d", len(vals), len(wm))
				}
				for name, wv := range wm {
					ws := fmt.Sprint(wv)
					if wv == nil {
						ws = ""
					}
					if tm, err := time.Parse(time.RFC3339, ws); err == nil && vals[name] == fmt.Sprint(tm) {
						continue // a YAML timestamp: as the sops library gave it, Go's time format
					}
					if vals[name] != ws {
						t.Errorf("Decrypt: %s = %q, sops prints %q", name, vals[name], ws)
					}
				}
			}
			// A tampered value fails the MAC, naming the file.
			tampered := tamper(t, enc, strings.Contains(c.rule, "mac_only_encrypted"))
			if f, err := load(c.file, tampered); err == nil {
				key, _ := dataKey(keys[0].id, c.file, f)
				if _, err := f.decryptTree(key); !errors.Is(err, errMAC) && !errors.Is(err, errValue) {
					t.Errorf("tampered file: %v, want a MAC mismatch", err)
				}
			}
			if !c.nested {
				_, err := Decrypt(keys[0].id, c.file, tampered)
				if err == nil || !strings.Contains(err.Error(), c.file) {
					t.Errorf("tampered file: %v, want an error naming %s", err, c.file)
				}
			}
			// A key that is not a recipient: a clear error, nothing quoted.
			other := newCLIKey(t)
			f, _ := load(c.file, enc)
			_, err := dataKey(other.id, c.file, f)
			if !errors.Is(err, ErrNotRecipient) || !strings.Contains(err.Error(), c.file) || !strings.Contains(err.Error(), keys[1].recipient) {
				t.Errorf("wrong key: %v", err)
			}
			if strings.Contains(err.Error(), "AGE-SECRET-KEY") || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("wrong key: the error quotes a secret: %v", err)
			}
		})
	}
}

// tamper changes what the MAC covers without breaking a value's own
// seal: an unencrypted value when there is one (and the MAC covers it),
// else the stored MAC itself.
func tamper(t *testing.T, enc []byte, macOnlyEncrypted bool) []byte {
	t.Helper()
	s := string(enc)
	for _, from := range []string{"port_unencrypted: 8080", `"port_unencrypted": 8080`, "PORT_unencrypted=8080", "host_plain: example.org", "host_unencrypted: example.org", "host: example.org", "visible: shown", "plain: visible", "public_host: example.org", "user: admin", "HOST=h"} {
		if strings.Contains(s, from) && !macOnlyEncrypted {
			return []byte(strings.Replace(s, from, from[:len(from)-1]+"X", 1))
		}
	}
	// No plaintext value: drop the last character of the stored MAC's data.
	i := strings.Index(s, "mac")
	j := strings.Index(s[i:], "data:") + i + len("data:")
	b := []byte(s)
	if b[j] == 'A' {
		b[j] = 'B'
	} else {
		b[j] = 'A'
	}
	return b
}

// golden are files the sops 3.13.3 CLI encrypted to the test key in
// testdata/sops-3.13.3 (a key made for these tests, opening nothing else),
// with the values the sops library (v3.13.3, in-process, as syncd linked
// it before: secrets.Decrypt of commit dd9e92a) decrypted them to,
// recorded in values.json.
func TestDecryptMatchesTheSopsLibrary(t *testing.T) {
	dir := filepath.Join("testdata", "sops-3.13.3")
	id, err := loadTestKey(filepath.Join(dir, "key.txt"))
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, err := os.ReadFile(filepath.Join(dir, "values.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]map[string]string
	if err := json.Unmarshal(wantJSON, &want); err != nil {
		t.Fatal(err)
	}
	n := 0
	for file, values := range want {
		n++
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decrypt(id, file, data)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if !reflect.DeepEqual(got, values) {
			t.Errorf("%s: syncd reads\n%q\nthe sops library gave\n%q", file, got, values)
		}
	}
	if n < 3 {
		t.Fatalf("only %d golden files", n)
	}
}

// loadTestKey loads the committed test key, whatever its mode in the
// checkout (Git keeps no 0600).
func loadTestKey(p string) (*Identity, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(os.TempDir(), fmt.Sprintf("syncd-test-key-%d", os.Getpid()))
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	return LoadIdentity(tmp)
}

// FuzzReader: no input makes the reader panic, hang or quote a value;
// seeded with the golden files and each of them cut and flipped.
func FuzzReader(f *testing.F) {
	dir := filepath.Join("testdata", "sops-3.13.3")
	id, err := loadTestKey(filepath.Join(dir, "key.txt"))
	if err != nil {
		f.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.sops.*"))
	for _, p := range files {
		data, _ := os.ReadFile(p)
		format, _ := formatOf(p)
		f.Add(format, data)
		f.Add(format, data[:len(data)/2])
	}
	f.Add("yaml", []byte("a: &a [*a]\nsops: {}\n"))
	f.Add("json", []byte(`{"sops": {"age": [{"enc": 1}]}, "a": [[[[]]]]}`))
	f.Add("dotenv", []byte("sops_age__list_9999999999__map_enc=x\n"))
	f.Fuzz(func(t *testing.T, format string, data []byte) {
		name := "f.sops.yaml"
		switch format {
		case "json":
			name = "f.sops.json"
		case "dotenv":
			name = "f.sops.env"
		}
		file, err := load(name, data)
		if err != nil {
			return
		}
		checkLeaves(name, file)
		if key, err := dataKey(id, name, file); err == nil {
			file.decryptTree(key)
		}
	})
}

// TestRekeyAndRotateRunTheSopsCLI: updatekeys keeps the data key and the
// values, rotate gives a new data key; both to exactly the recipients.
func TestRekeyAndRotateRunTheSopsCLI(t *testing.T) {
	testenv.Tool(t, "sops")
	a, b := newCLIKey(t), newCLIKey(t)
	for _, format := range []struct{ file, plain string }{
		{"s.sops.yaml", "token: tok-Rekey-1234\nnested_unencrypted: 1\n"},
		{"s.sops.json", `{"token": "tok-Rekey-1234", "n": 5}`},
		{"s.sops.env", "TOKEN=tok-Rekey-1234\n"},
	} {
		t.Run(format.file, func(t *testing.T) {
			enc := encryptCase(t, t.TempDir(), format.file, format.plain, nil, "", a.recipient)
			want, err := Decrypt(a.id, format.file, enc)
			if err != nil {
				t.Fatal(err)
			}
			op := Operator{Identity: a.id}
			rekeyed, err := op.Rekey(format.file, enc, []string{a.recipient, b.recipient})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := FileRecipients(format.file, rekeyed); !reflect.DeepEqual(got, []string{a.recipient, b.recipient}) {
				t.Errorf("rekeyed to %v", got)
			}
			for _, k := range []cliKey{a, b} {
				if got, err := Decrypt(k.id, format.file, rekeyed); err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("rekeyed, read with %s: %v %v", k.recipient, got, err)
				}
			}
			f0, _ := load(format.file, enc)
			f1, _ := load(format.file, rekeyed)
			k0, _ := dataKey(a.id, format.file, f0)
			k1, _ := dataKey(b.id, format.file, f1)
			if !bytes.Equal(k0, k1) {
				t.Error("updatekeys changed the data key")
			}
			rotated, keys, err := op.Rotate(format.file, rekeyed, []string{a.recipient})
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != len(want) {
				t.Errorf("rotate returned the keys %v", keys)
			}
			if got, _ := FileRecipients(format.file, rotated); !reflect.DeepEqual(got, []string{a.recipient}) {
				t.Errorf("rotated to %v", got)
			}
			if _, err := Decrypt(b.id, format.file, rotated); !errors.Is(err, ErrNotRecipient) {
				t.Errorf("the removed recipient: %v", err)
			}
			if got, err := Decrypt(a.id, format.file, rotated); err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("rotated: %v %v", got, err)
			}
			f2, _ := load(format.file, rotated)
			if k2, _ := dataKey(a.id, format.file, f2); bytes.Equal(k2, k0) {
				t.Error("rotate kept the data key")
			}
			// A tampered file is refused before sops runs, naming it.
			if _, _, err := op.Rotate(format.file, tamperMAC(enc), []string{a.recipient}); err == nil || !strings.Contains(err.Error(), format.file) || !strings.Contains(err.Error(), "MAC") {
				t.Errorf("rotate of a tampered file: %v", err)
			}
		})
	}
}

func tamperMAC(enc []byte) []byte {
	s := string(enc)
	i := strings.Index(s, "mac")
	j := strings.Index(s[i:], "data:") + i + len("data:")
	b := []byte(s)
	b[j] ^= 1
	if b[j] == '+' || b[j] == '/' || b[j] == '=' || b[j] == ',' {
		b[j] = 'Q'
	}
	return b
}
