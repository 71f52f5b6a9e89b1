package secrets_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/secrets"
	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// The values every fixture holds; none may ever appear in an error.
var plain = map[string]string{
	"DB_PASSWORD": "Corr3ct-Horse-Battery",
	"API_TOKEN":   "tok_9f8e7d6c5b4a3210",
	"SMTP_URL":    "smtp://mailer:pa55=word@mx.example.org:587",
}

func plainValues() []string { return slices.Collect(maps.Values(plain)) }

// plaintext renders plain in a sops input format, in a fixed key order.
func plaintext(format string) []byte {
	keys := []string{"DB_PASSWORD", "API_TOKEN", "SMTP_URL"}
	var b bytes.Buffer
	switch format {
	case "yaml":
		for _, k := range keys {
			fmt.Fprintf(&b, "%s: %q\n", k, plain[k])
		}
	case "json":
		b.WriteString("{\n")
		for i, k := range keys {
			sep := ","
			if i == len(keys)-1 {
				sep = ""
			}
			fmt.Fprintf(&b, "  %q: %q%s\n", k, plain[k], sep)
		}
		b.WriteString("}\n")
	case "dotenv":
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%s\n", k, plain[k])
		}
	}
	return b.Bytes()
}

var formats = []struct{ format, file string }{
	{"yaml", "secrets.sops.yaml"},
	{"json", "secrets.sops.json"},
	{"dotenv", "secrets.sops.env"},
}

// sopsCLI runs the real sops binary in dir with a clean environment (no
// .sops.yaml above dir, no key of the developer's).
func sopsCLI(t *testing.T, dir string, env []string, args ...string) []byte {
	t.Helper()
	bin := testenv.Tool(t, "sops")
	cmd := exec.Command(bin, args...)
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

// cliEncrypt encrypts plaintext in format to recipient with the sops CLI.
func cliEncrypt(t *testing.T, recipient, format string, plaintext []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "plain")
	if err := os.WriteFile(in, plaintext, 0o600); err != nil {
		t.Fatal(err)
	}
	return sopsCLI(t, dir, nil, "encrypt", "--age", recipient, "--input-type", format, "--output-type", format, in)
}

// ageKeygen makes an identity with the real age-keygen and returns the
// file (0600) and its recipient.
func ageKeygen(t *testing.T) (string, string) {
	t.Helper()
	bin := testenv.Tool(t, "age-keygen")
	file := filepath.Join(t.TempDir(), "host.agekey")
	if out, err := exec.Command(bin, "-o", file).CombinedOutput(); err != nil {
		t.Fatalf("age-keygen: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-y", file).Output()
	if err != nil {
		t.Fatalf("age-keygen -y: %v", err)
	}
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	return file, strings.TrimSpace(string(out))
}

func loadIdentity(t *testing.T, file string) *secrets.Identity {
	t.Helper()
	id, err := secrets.LoadIdentity(file)
	if err != nil {
		t.Fatalf("LoadIdentity: %v", err)
	}
	return id
}

func TestDecryptFilesOfTheSopsCLI(t *testing.T) {
	keyFile, recipient := ageKeygen(t)
	id := loadIdentity(t, keyFile)
	if got := id.Recipients(); !slices.Equal(got, []string{recipient}) {
		t.Errorf("Recipients() = %v, want [%s]", got, recipient)
	}
	for _, f := range formats {
		t.Run(f.format, func(t *testing.T) {
			enc := cliEncrypt(t, recipient, f.format, plaintext(f.format))
			secretstest.AssertNoLeak(t, "the encrypted file", string(enc), plainValues()...)
			got, err := secrets.Decrypt(id, f.file, enc)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if !maps.Equal(got, plain) {
				t.Errorf("Decrypt = %v, want %v", got, plain)
			}
			keys, err := secrets.Inspect(f.file, enc)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if want := slices.Sorted(maps.Keys(plain)); !slices.Equal(keys, want) {
				t.Errorf("Inspect = %v, want %v", keys, want)
			}
		})
	}
}

func TestDecryptFilesOfSecretstest(t *testing.T) {
	keyFile, recipient := secretstest.NewKey(t)
	st, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("NewKey wrote mode %04o, want 0600", st.Mode().Perm())
	}
	id := loadIdentity(t, keyFile)
	for _, f := range formats {
		t.Run(f.format, func(t *testing.T) {
			enc := secretstest.EncryptBytes(t, recipient, f.format, plaintext(f.format))
			got, err := secrets.Decrypt(id, f.file, enc)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if !maps.Equal(got, plain) {
				t.Errorf("Decrypt = %v, want %v", got, plain)
			}
		})
	}
}

// TestSecretstestMakesRealSopsFiles checks the in-process helper against
// the real CLI, so tests built on it test what users' files are.
func TestSecretstestMakesRealSopsFiles(t *testing.T) {
	keyFile, recipient := secretstest.NewKey(t)
	for _, f := range formats {
		t.Run(f.format, func(t *testing.T) {
			dir := t.TempDir()
			enc := filepath.Join(dir, f.file)
			if err := os.WriteFile(enc, secretstest.EncryptBytes(t, recipient, f.format, plaintext(f.format)), 0o644); err != nil {
				t.Fatal(err)
			}
			out := sopsCLI(t, dir, []string{"SOPS_AGE_KEY_FILE=" + keyFile},
				"decrypt", "--input-type", f.format, "--output-type", "json", enc)
			for k, v := range plain {
				if !bytes.Contains(out, []byte(fmt.Sprintf("%q", k))) || !bytes.Contains(out, []byte(v)) {
					t.Errorf("sops decrypt output lacks %s=%s:\n%s", k, v, out)
				}
			}
		})
	}
}

func TestDecryptTypesAndEmptyValues(t *testing.T) {
	keyFile, recipient := ageKeygen(t)
	id := loadIdentity(t, keyFile)
	// sops keeps an empty string (and null) as it is, unencrypted: such a
	// file is still a valid, fully encrypted sops file.
	in := "PORT: 5432\nRATIO: 0.25\nENABLED: true\nEMPTY: \"\"\nMULTI: |\n  line one\n  line two\nHOST_unencrypted: db.internal\n"
	want := map[string]string{"PORT": "5432", "RATIO": "0.25", "ENABLED": "true", "EMPTY": "", "MULTI": "line one\nline two\n", "HOST_unencrypted": "db.internal"}
	for name, enc := range map[string][]byte{
		"sops CLI":    cliEncrypt(t, recipient, "yaml", []byte(in)),
		"secretstest": secretstest.EncryptBytes(t, recipient, "yaml", []byte(in)),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := secrets.Decrypt(id, "secrets.sops.yaml", enc)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if !maps.Equal(got, want) {
				t.Errorf("Decrypt = %q, want %q", got, want)
			}
			keys, err := secrets.Inspect("secrets.sops.yaml", enc)
			if err != nil {
				t.Fatalf("Inspect of a valid sops file: %v", err)
			}
			if want := slices.Sorted(maps.Keys(want)); !slices.Equal(keys, want) {
				t.Errorf("Inspect = %v, want %v", keys, want)
			}
		})
	}
}

func TestDecryptWithOneOfSeveralRecipients(t *testing.T) {
	_, other := secretstest.NewKey(t)
	keyFile, recipient := secretstest.NewKey(t)
	enc := secretstest.EncryptBytes(t, other+","+recipient, "yaml", plaintext("yaml"))
	got, err := secrets.Decrypt(loadIdentity(t, keyFile), "secrets.sops.yaml", enc)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if !maps.Equal(got, plain) {
		t.Errorf("Decrypt = %v, want %v", got, plain)
	}
}

// valueRE finds the encrypted value of a top-level key in any of the three
// formats: `KEY: ENC[...]`, `"KEY": "ENC[...]"` and `KEY=ENC[...]`.
func valueRE(key string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^(\s*"?` + regexp.QuoteMeta(key) + `"?\s*[:=]\s*"?)(ENC\[[^\]]*\])`)
}

func encValue(t *testing.T, data []byte, key string) string {
	t.Helper()
	m := valueRE(key).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no encrypted value of %s in:\n%s", key, data)
	}
	return string(m[2])
}

func setValue(t *testing.T, data []byte, key, value string) []byte {
	t.Helper()
	re := valueRE(key)
	if !re.Match(data) {
		t.Fatalf("no encrypted value of %s in:\n%s", key, data)
	}
	return re.ReplaceAllFunc(data, func(m []byte) []byte {
		sub := re.FindSubmatch(m)
		return append(slices.Clone(sub[1]), value...)
	})
}

func removeLine(t *testing.T, data []byte, key string) []byte {
	t.Helper()
	re := regexp.MustCompile(`(?m)^\s*"?` + regexp.QuoteMeta(key) + `"?\s*[:=].*\n`)
	if !re.Match(data) {
		t.Fatalf("no line of %s in:\n%s", key, data)
	}
	return re.ReplaceAll(data, nil)
}

func TestDecryptRefusesTamperedFiles(t *testing.T) {
	keyFile, recipient := ageKeygen(t)
	id := loadIdentity(t, keyFile)
	_, strangerRecipient := secretstest.NewKey(t)
	for _, f := range formats {
		enc := cliEncrypt(t, recipient, f.format, plaintext(f.format))
		// The same keys and values encrypted under another data key: valid
		// ciphertexts that do not belong in this file.
		foreign := secretstest.EncryptBytes(t, recipient, f.format, plaintext(f.format))
		stranger := secretstest.EncryptBytes(t, strangerRecipient, f.format, plaintext(f.format))
		cases := []struct {
			name   string
			tamper func([]byte) []byte
			want   string // a part of the message
		}{
			{"swap two values", func(d []byte) []byte {
				a, b := encValue(t, d, "DB_PASSWORD"), encValue(t, d, "API_TOKEN")
				return setValue(t, setValue(t, d, "DB_PASSWORD", b), "API_TOKEN", a)
			}, "DB_PASSWORD"},
			{"value from another sops file", func(d []byte) []byte {
				return setValue(t, d, "API_TOKEN", encValue(t, foreign, "API_TOKEN"))
			}, "API_TOKEN"},
			{"value from a file of another host", func(d []byte) []byte {
				return setValue(t, d, "API_TOKEN", encValue(t, stranger, "API_TOKEN"))
			}, "API_TOKEN"},
			{"plaintext value pasted in", func(d []byte) []byte {
				return setValue(t, d, "API_TOKEN", plain["DB_PASSWORD"])
			}, "API_TOKEN"},
			{"damaged ciphertext", func(d []byte) []byte {
				v := encValue(t, d, "DB_PASSWORD")
				return setValue(t, d, "DB_PASSWORD", strings.Replace(v, "data:", "data:AAAA", 1))
			}, "DB_PASSWORD"},
			{"key removed", func(d []byte) []byte { return removeLine(t, d, "DB_PASSWORD") }, "MAC mismatch"},
			{"mac replaced", func(d []byte) []byte {
				mac := "mac"
				if f.format == "dotenv" {
					mac = "sops_mac"
				}
				return setValue(t, d, mac, encValue(t, foreign, mac))
			}, "MAC mismatch"},
		}
		for _, c := range cases {
			t.Run(f.format+"/"+c.name, func(t *testing.T) {
				bad := c.tamper(bytes.Clone(enc))
				if bytes.Equal(bad, enc) {
					t.Fatal("tamper changed nothing")
				}
				got, err := secrets.Decrypt(id, "hosts/alpha/"+f.file, bad)
				if err == nil {
					t.Fatalf("Decrypt of a tampered file succeeded: %v", got)
				}
				if got != nil {
					t.Errorf("Decrypt returned values with an error: %v", got)
				}
				msg := err.Error()
				if !strings.Contains(msg, "hosts/alpha/"+f.file) {
					t.Errorf("error does not name the file: %s", msg)
				}
				if !strings.Contains(msg, c.want) {
					t.Errorf("error does not say %q: %s", c.want, msg)
				}
				if !strings.Contains(msg, "sops edit") && !strings.Contains(msg, "restore it from Git") {
					t.Errorf("error does not say what to do: %s", msg)
				}
				secretstest.AssertNoLeak(t, "the error", msg, plainValues()...)
			})
		}
	}
}

func TestDecryptWithTheWrongKey(t *testing.T) {
	_, recipient := ageKeygen(t)
	otherFile, otherRecipient := ageKeygen(t)
	enc := cliEncrypt(t, recipient, "yaml", plaintext("yaml"))
	_, err := secrets.Decrypt(loadIdentity(t, otherFile), "hosts/beta/secrets.sops.yaml", enc)
	if err == nil {
		t.Fatal("Decrypt with a key that is not a recipient succeeded")
	}
	if !errors.Is(err, secrets.ErrNotRecipient) {
		t.Errorf("error does not wrap ErrNotRecipient: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"hosts/beta/secrets.sops.yaml", otherFile, otherRecipient, recipient, "sops updatekeys"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q: %s", want, msg)
		}
	}
	secretstest.AssertNoLeak(t, "the error", msg, plainValues()...)
}

func TestLoadIdentity(t *testing.T) {
	keyFile, recipient := secretstest.NewKey(t)
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	secretLine := ""
	for l := range strings.Lines(string(key)) {
		if strings.HasPrefix(l, "AGE-SECRET-KEY-") {
			secretLine = strings.TrimSpace(l)
		}
	}
	write := func(t *testing.T, content []byte, mode os.FileMode) string {
		p := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name    string
		content []byte
		mode    os.FileMode
		want    []string // parts of the error; nil for success
	}{
		{"0600", key, 0o600, nil},
		{"0400", key, 0o400, nil},
		{"world-readable", key, 0o644, []string{"readable by group or others", "0644", "chmod 600"}},
		{"group-readable", key, 0o640, []string{"readable by group or others", "0640", "chmod 600"}},
		{"others-readable only", key, 0o604, []string{"chmod 600"}},
		{"group-writable", key, 0o620, []string{"chmod 600"}},
		{"not an identity", []byte("ssh-ed25519 AAAA not an age key\n"), 0o600, []string{"no valid age identity", "AGE-SECRET-KEY-"}},
		{"truncated identity", []byte(secretLine[:30] + "\n"), 0o600, []string{"is truncated (its AGE-SECRET-KEY- line is cut)", "syncd never replaces a key file"}},
		{"too big", bytes.Repeat([]byte("# padding\n"), 10<<10), 0o600, []string{"bytes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := write(t, c.content, c.mode)
			id, err := secrets.LoadIdentity(p)
			if c.want == nil {
				if err != nil {
					t.Fatalf("LoadIdentity: %v", err)
				}
				if got := id.Recipients(); !slices.Equal(got, []string{recipient}) {
					t.Errorf("Recipients() = %v, want [%s]", got, recipient)
				}
				return
			}
			if err == nil {
				t.Fatal("LoadIdentity succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, p) {
				t.Errorf("error does not name the key file %s: %s", p, msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q: %s", w, msg)
				}
			}
			secretstest.AssertNoLeak(t, "the error", msg, strings.TrimPrefix(secretLine, "AGE-SECRET-KEY-"))
		})
	}
	t.Run("missing", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "nope")
		_, err := secrets.LoadIdentity(p)
		if err == nil || !strings.Contains(err.Error(), p) || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("LoadIdentity of a missing file: %v", err)
		}
	})
}

func TestSizeCap(t *testing.T) {
	keyFile, recipient := secretstest.NewKey(t)
	id := loadIdentity(t, keyFile)
	// A valid file just under the cap decrypts; one byte over is refused
	// before parsing, by both Decrypt and Inspect.
	big := strings.Repeat("x", secrets.MaxFileSize/3)
	enc := secretstest.EncryptBytes(t, recipient, "yaml", []byte("BIG: "+big+"\n"))
	if len(enc) >= secrets.MaxFileSize {
		t.Fatalf("fixture is %d bytes, not under the cap", len(enc))
	}
	if got, err := secrets.Decrypt(id, "s.sops.yaml", enc); err != nil || got["BIG"] != big {
		t.Fatalf("Decrypt of a %d-byte file: %v", len(enc), err)
	}
	over := append(bytes.Clone(enc), bytes.Repeat([]byte("\n"), secrets.MaxFileSize+1-len(enc))...)
	for name, call := range map[string]func() error{
		"Decrypt": func() error { _, err := secrets.Decrypt(id, "s.sops.yaml", over); return err },
		"Inspect": func() error { _, err := secrets.Inspect("s.sops.yaml", over); return err },
	} {
		err := call()
		if err == nil {
			t.Errorf("%s of a %d-byte file succeeded", name, len(over))
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "s.sops.yaml") || !strings.Contains(msg, fmt.Sprint(secrets.MaxFileSize)) {
			t.Errorf("%s: error does not name the file and the cap: %s", name, msg)
		}
	}
}

func TestInspect(t *testing.T) {
	_, recipient := secretstest.NewKey(t)
	enc := func(format, in string) []byte { return secretstest.EncryptBytes(t, recipient, format, []byte(in)) }
	yamlFile := enc("yaml", string(plaintext("yaml")))
	cases := []struct {
		name     string
		file     string
		data     []byte
		wantKeys []string
		wantErr  []string // parts of the error; nil for none
	}{
		{"yaml", "s.sops.yaml", yamlFile, []string{"API_TOKEN", "DB_PASSWORD", "SMTP_URL"}, nil},
		{"json", "s.sops.json", enc("json", string(plaintext("json"))), []string{"API_TOKEN", "DB_PASSWORD", "SMTP_URL"}, nil},
		{"dotenv", "s.sops.env", enc("dotenv", string(plaintext("dotenv"))), []string{"API_TOKEN", "DB_PASSWORD", "SMTP_URL"}, nil},
		{"unencrypted suffix", "s.sops.yaml", enc("yaml", "HOST_unencrypted: db\nPASS: hunter2-hunter2\n"), []string{"HOST_unencrypted", "PASS"}, nil},
		{"encrypted regex", "s.sops.yaml",
			secretstest.EncryptBytesOpts(t, recipient, "yaml", []byte("USER: app\nPASSWORD: hunter2-hunter2\n"), secretstest.Options{EncryptedRegex: "^PASS"}),
			[]string{"PASSWORD", "USER"}, nil},
		{"plaintext file", "s.sops.yaml", plaintext("yaml"), nil, []string{"not encrypted with sops", "sops encrypt --in-place s.sops.yaml", "rotate"}},
		{"plaintext dotenv", "s.sops.env", plaintext("dotenv"), nil, []string{"not encrypted with sops"}},
		{"plaintext value pasted in", "s.sops.yaml", setValue(t, yamlFile, "API_TOKEN", plain["API_TOKEN"]), nil,
			[]string{`key "API_TOKEN" holds a plaintext value`, "rotate"}},
		{"plaintext number pasted in", "s.sops.yaml", setValue(t, yamlFile, "API_TOKEN", "12345678901"), nil,
			[]string{`key "API_TOKEN" holds a plaintext value`}},
		{"damaged value", "s.sops.yaml", setValue(t, yamlFile, "SMTP_URL", "ENC[AES256_GCM,data:@@@,iv:x,tag:y,type:str]"), nil,
			[]string{`key "SMTP_URL" holds a damaged encrypted value`, "sops edit s.sops.yaml"}},
		{"nested map", "s.sops.yaml", enc("yaml", "db:\n  password: hunter2-hunter2\n"), nil, []string{`key "db" holds a map or a list`}},
		{"unknown format", "s.sops.ini", yamlFile, nil, []string{"unknown secrets format"}},
		{"garbage", "s.sops.json", []byte("{not json at all"), nil, []string{"s.sops.json"}},
		{"yaml list", "s.sops.yaml", []byte("- a\n- b\n"), nil, []string{"s.sops.yaml"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keys, err := secrets.Inspect(c.file, c.data)
			if c.wantErr == nil {
				if err != nil {
					t.Fatalf("Inspect: %v", err)
				}
				if !slices.Equal(keys, c.wantKeys) {
					t.Errorf("Inspect = %v, want %v", keys, c.wantKeys)
				}
				return
			}
			if err == nil {
				t.Fatalf("Inspect succeeded: %v", keys)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.file) {
				t.Errorf("error does not name the file: %s", msg)
			}
			for _, w := range c.wantErr {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q: %s", w, msg)
				}
			}
			secretstest.AssertNoLeak(t, "the error", msg, append(plainValues(), "hunter2-hunter2")...)
		})
	}
}

// TestErrorsNeverQuoteValues feeds Decrypt and Inspect files whose parse
// errors a library might quote, with a secret on the offending line.
func TestErrorsNeverQuoteValues(t *testing.T) {
	keyFile, recipient := secretstest.NewKey(t)
	id := loadIdentity(t, keyFile)
	const secret = "Sup3r-Secret-Line-Value"
	good := secretstest.EncryptBytes(t, recipient, "dotenv", plaintext("dotenv"))
	yamlGood := secretstest.EncryptBytes(t, recipient, "yaml", plaintext("yaml"))
	jsonGood := secretstest.EncryptBytes(t, recipient, "json", plaintext("json"))
	cases := []struct{ name, file, data string }{
		{"dotenv line without =", "s.sops.env", string(good) + secret + "\n"},
		{"dotenv plaintext value", "s.sops.env", strings.Replace(string(good), "API_TOKEN=ENC[", "API_TOKEN="+secret+"\nX=ENC[", 1)},
		{"yaml syntax error", "s.sops.yaml", string(yamlGood) + "  " + secret + ": [\n"},
		{"yaml plaintext value", "s.sops.yaml", string(setValue(t, yamlGood, "API_TOKEN", secret))},
		{"json syntax error", "s.sops.json", strings.Replace(string(jsonGood), "{", "{"+secret+",", 1)},
		{"json plaintext value", "s.sops.json", string(setValue(t, jsonGood, "API_TOKEN", secret))},
		{"yaml key is the secret", "s.sops.yaml", secret + "\n" + string(yamlGood)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, derr := secrets.Decrypt(id, c.file, []byte(c.data))
			_, ierr := secrets.Inspect(c.file, []byte(c.data))
			if derr == nil {
				t.Error("Decrypt succeeded")
			} else {
				secretstest.AssertNoLeak(t, "the Decrypt error", derr.Error(), append(plainValues(), secret)...)
				if !strings.Contains(derr.Error(), c.file) {
					t.Errorf("Decrypt error does not name the file: %v", derr)
				}
			}
			if ierr == nil {
				t.Error("Inspect succeeded")
			} else {
				secretstest.AssertNoLeak(t, "the Inspect error", ierr.Error(), append(plainValues(), secret)...)
			}
		})
	}
}

func TestDecrypterAndInspector(t *testing.T) {
	keyFile, recipient := secretstest.NewKey(t)
	enc := secretstest.EncryptBytes(t, recipient, "yaml", plaintext("yaml"))
	got, err := secrets.Decrypter{Identity: loadIdentity(t, keyFile)}.Decrypt("s.sops.yaml", enc)
	if err != nil || !maps.Equal(got, plain) {
		t.Errorf("Decrypter.Decrypt = %v, %v", got, err)
	}
	keys, err := secrets.Inspector{}.Keys("s.sops.yaml", enc)
	if err != nil || len(keys) != len(plain) {
		t.Errorf("Inspector.Keys = %v, %v", keys, err)
	}
}
