package bootstrap_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/bootstrap"
	"github.com/syncd-dev/syncd/internal/secrets"
	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
	"github.com/syncd-dev/syncd/internal/testenv"
)

const plain = "api_token: tok-Alpha-7f3kQ9zLm2\ndb_password: pw-Bravo-Xc81nVq0Tr\n"

var values = []string{"tok-Alpha-7f3kQ9zLm2", "pw-Bravo-Xc81nVq0Tr"}

type repo struct {
	dir            string
	opKey, opRecip string
	keys           secrets.Operator
}

// newRepo is a working copy whose .sops.yaml encrypts hosts/alpha/ and
// hosts/beta/ to the operator only, with alpha's secrets in it.
func newRepo(t *testing.T) *repo {
	t.Helper()
	r := &repo{dir: t.TempDir()}
	r.opKey, r.opRecip = secretstest.NewKey(t)
	id, err := secrets.LoadIdentity(r.opKey)
	if err != nil {
		t.Fatal(err)
	}
	r.keys = secrets.Operator{Identity: id}
	r.write(t, ".sops.yaml", "# the fleet's rules\ncreation_rules:\n  - path_regex: ^hosts/beta/\n    age: "+r.opRecip+"\n  - path_regex: ^hosts/\n    age: "+r.opRecip+" # the operators\n")
	os.MkdirAll(filepath.Join(r.dir, "hosts", "alpha"), 0o755)
	secretstest.WriteFile(t, filepath.Join(r.dir, "hosts/alpha/secrets.sops.yaml"), r.opRecip, []byte(plain))
	return r
}

func (r *repo) write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (r *repo) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// snapshot is every file of the working copy.
func (r *repo) snapshot(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(r.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			out[p] = string(b)
		}
		return nil
	})
	return out
}

func decrypt(t *testing.T, key, name string, data []byte) (map[string]string, error) {
	t.Helper()
	id, err := secrets.LoadIdentity(key)
	if err != nil {
		t.Fatal(err)
	}
	return secrets.Decrypt(id, name, data)
}

// sopsDecrypt runs the real sops binary with key.
func sopsDecrypt(t *testing.T, key, file string) (string, error) {
	t.Helper()
	cmd := exec.Command(testenv.Tool(t, "sops"), "decrypt", file)
	cmd.Env = append(os.Environ(), "SOPS_AGE_KEY_FILE="+key)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestEnrollReencryptsTheHostsFiles(t *testing.T) {
	r := newRepo(t)
	hostKey, hostRecip := secretstest.NewKey(t)
	res, err := bootstrap.Enroll(r.dir, "alpha", hostRecip, "", r.keys)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{r.opRecip, hostRecip}; !slices.Equal(res.Recipients, want) {
		t.Errorf("recipients %v, want %v", res.Recipients, want)
	}
	if len(res.Files) != 1 || res.Files[0].Path != "hosts/alpha/secrets.sops.yaml" || res.Files[0].Action != "re-encrypted" {
		t.Errorf("files %+v", res.Files)
	}
	conf := r.read(t, ".sops.yaml")
	// The host's rule comes before the catch-all that matched it (the
	// first match wins); the others and their comments stay.
	if !strings.Contains(conf, "# the fleet's rules") || !strings.Contains(conf, "# the operators") ||
		strings.Index(conf, "^hosts/alpha/") > strings.Index(conf, "^hosts/\n") ||
		!strings.Contains(conf, hostRecip+" # host alpha (syncd enroll)") {
		t.Errorf(".sops.yaml:\n%s", conf)
	}
	file := filepath.Join(r.dir, "hosts/alpha/secrets.sops.yaml")
	data := []byte(r.read(t, "hosts/alpha/secrets.sops.yaml"))
	for _, key := range []string{hostKey, r.opKey} {
		got, err := decrypt(t, key, "secrets.sops.yaml", data)
		if err != nil || got["api_token"] != values[0] || got["db_password"] != values[1] {
			t.Fatalf("decrypt with %s: %v %v", key, got, err)
		}
	}
	out, err := sopsDecrypt(t, hostKey, file)
	if err != nil || !strings.Contains(out, values[0]) {
		t.Fatalf("sops decrypt with the host's key: %v\n%s", err, out)
	}
	// The real sops agrees that the file matches its rule.
	cmd := exec.Command(testenv.Tool(t, "sops"), "updatekeys", "-y", "hosts/alpha/secrets.sops.yaml")
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "SOPS_AGE_KEY_FILE="+r.opKey)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "already up to date") {
		t.Errorf("sops updatekeys after enroll: %v\n%s", err, out)
	}

	// Again: nothing changes.
	before := r.snapshot(t)
	res, err = bootstrap.Enroll(r.dir, "alpha", hostRecip, "", r.keys)
	if err != nil || res.Files[0].Action != "unchanged" {
		t.Fatalf("enroll again: %+v %v", res, err)
	}
	if after := r.snapshot(t); !mapsEqual(before, after) {
		t.Errorf("enroll again changed files")
	}

	// A host that made a new key: the old recipient is replaced.
	newKey, newRecip := secretstest.NewKey(t)
	if _, err := bootstrap.Enroll(r.dir, "alpha", newRecip, "", r.keys); err != nil {
		t.Fatal(err)
	}
	if conf := r.read(t, ".sops.yaml"); strings.Contains(conf, hostRecip) || !strings.Contains(conf, newRecip) {
		t.Errorf("re-enrolled .sops.yaml:\n%s", conf)
	}
	data = []byte(r.read(t, "hosts/alpha/secrets.sops.yaml"))
	if _, err := decrypt(t, hostKey, "secrets.sops.yaml", data); err == nil {
		t.Error("the old key still opens the file")
	}
	if _, err := decrypt(t, newKey, "secrets.sops.yaml", data); err != nil {
		t.Errorf("the new key: %v", err)
	}
}

func TestEnrollHostWithoutSecretsOrRules(t *testing.T) {
	dir := t.TempDir()
	opKey, opRecip := secretstest.NewKey(t)
	id, _ := secrets.LoadIdentity(opKey)
	_, hostRecip := secretstest.NewKey(t)
	res, err := bootstrap.Enroll(dir, "gamma", hostRecip, "", secrets.Operator{Identity: id})
	if err != nil || len(res.Files) != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	conf, _ := os.ReadFile(filepath.Join(dir, ".sops.yaml"))
	got, err := secrets.RuleRecipients(conf, "hosts/gamma/secrets.sops.yaml")
	if err != nil || !slices.Equal(got, []string{opRecip, hostRecip}) {
		t.Errorf("rule recipients %v %v\n%s", got, err, conf)
	}
}

func TestEnrollRefusesAndChangesNothing(t *testing.T) {
	r := newRepo(t)
	_, hostRecip := secretstest.NewKey(t)
	// The operator's key cannot open the file: encrypted to someone else.
	_, otherRecip := secretstest.NewKey(t)
	secretstest.WriteFile(t, filepath.Join(r.dir, "hosts/alpha/secrets.sops.yaml"), otherRecip, []byte(plain))
	before := r.snapshot(t)
	_, err := bootstrap.Enroll(r.dir, "alpha", hostRecip, "", r.keys)
	if err == nil || !strings.Contains(err.Error(), "hosts/alpha/secrets.sops.yaml cannot be decrypted") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("err = %v", err)
	}
	if !mapsEqual(before, r.snapshot(t)) {
		t.Error("a refused enroll changed files")
	}
	for _, host := range []string{"../alpha", "Alpha", ""} {
		if _, err := bootstrap.Enroll(r.dir, host, hostRecip, "", r.keys); err == nil || !strings.Contains(err.Error(), "--host") {
			t.Errorf("host %q: %v", host, err)
		}
	}
	// The host's rule exists, but a rule before it takes the host's files.
	r.write(t, ".sops.yaml", "creation_rules:\n  - path_regex: ^hosts/\n    age: "+r.opRecip+"\n  - path_regex: ^hosts/alpha/\n    age: "+r.opRecip+"\n")
	secretstest.WriteFile(t, filepath.Join(r.dir, "hosts/alpha/secrets.sops.yaml"), r.opRecip, []byte(plain))
	before = r.snapshot(t)
	if _, err := bootstrap.Enroll(r.dir, "alpha", hostRecip, "", r.keys); err == nil || !strings.Contains(err.Error(), "move the host's rule above it") {
		t.Errorf("shadowed rule: %v", err)
	}
	if !mapsEqual(before, r.snapshot(t)) {
		t.Error("a refused enroll changed files")
	}
	r.write(t, ".sops.yaml", "creation_rules: {")
	before = r.snapshot(t)
	if _, err := bootstrap.Enroll(r.dir, "alpha", hostRecip, "", r.keys); err == nil || !strings.Contains(err.Error(), ".sops.yaml") {
		t.Errorf("bad .sops.yaml: %v", err)
	}
	if !mapsEqual(before, r.snapshot(t)) {
		t.Error("a refused enroll changed files")
	}
}

func TestRemoveRotatesWhatTheHostCouldRead(t *testing.T) {
	r := newRepo(t)
	hostKey, hostRecip := secretstest.NewKey(t)
	if _, err := bootstrap.Enroll(r.dir, "alpha", hostRecip, "", r.keys); err != nil {
		t.Fatal(err)
	}
	// A shared file alpha can read too, under another rule.
	os.MkdirAll(filepath.Join(r.dir, "shared"), 0o755)
	secretstest.WriteFile(t, filepath.Join(r.dir, "shared/smtp.sops.env"), r.opRecip+","+hostRecip, []byte("SMTP_PASSWORD=smtp-Charlie-91xYz\n"))
	r.write(t, ".sops.yaml", r.read(t, ".sops.yaml")+"  - path_regex: ^shared/\n    age: "+r.opRecip+","+hostRecip+"\n")
	oldKey := dataKeyOf(t, r.read(t, "hosts/alpha/secrets.sops.yaml"))

	res, err := bootstrap.Remove(r.dir, "alpha", "", r.keys)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Recipients, []string{hostRecip}) || len(res.Files) != 2 {
		t.Fatalf("%+v", res)
	}
	if f := res.Files[0]; f.Path != "hosts/alpha/secrets.sops.yaml" || f.Action != "rotated" || !slices.Equal(f.Keys, []string{"api_token", "db_password"}) {
		t.Errorf("%+v", f)
	}
	if f := res.Files[1]; f.Path != "shared/smtp.sops.env" || !slices.Equal(f.Keys, []string{"SMTP_PASSWORD"}) {
		t.Errorf("%+v", f)
	}
	if conf := r.read(t, ".sops.yaml"); strings.Contains(conf, hostRecip) {
		t.Errorf(".sops.yaml still names the host:\n%s", conf)
	}
	data := r.read(t, "hosts/alpha/secrets.sops.yaml")
	if _, err := decrypt(t, hostKey, "secrets.sops.yaml", []byte(data)); err == nil {
		t.Error("the removed host's key still opens its file")
	}
	if dataKeyOf(t, data) == oldKey {
		t.Error("the data key was not rotated")
	}
	for _, f := range []string{"hosts/alpha/secrets.sops.yaml", "shared/smtp.sops.env"} {
		if out, err := sopsDecrypt(t, r.opKey, filepath.Join(r.dir, f)); err != nil {
			t.Errorf("sops decrypt %s with the operator's key: %v\n%s", f, err, out)
		}
	}
	// Nothing left to remove.
	if _, err := bootstrap.Remove(r.dir, "alpha", "", r.keys); err == nil || !strings.Contains(err.Error(), "--recipient") {
		t.Errorf("second remove: %v", err)
	}
}

// dataKeyOf is the encrypted value of api_token: the same while the data
// key is, new with a new one.
func dataKeyOf(t *testing.T, data string) string {
	t.Helper()
	for _, line := range strings.Split(data, "\n") {
		if strings.HasPrefix(line, "api_token: ENC[") {
			return line
		}
	}
	t.Fatalf("no api_token in\n%s", data)
	return ""
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestAttackRemoveTakesAnotherHostsRecipient: what --remove drops it drops
// from every rule. A recipient marked as alpha's that is also beta's (a
// copied rule, a moved marker) or the operator's own, or one given with
// --recipient by mistake, would cut beta or the operator off. Remove must
// refuse, name the other owner, and change nothing.
func TestAttackRemoveTakesAnotherHostsRecipient(t *testing.T) {
	r := newRepo(t)
	_, alphaRecip := secretstest.NewKey(t)
	_, betaRecip := secretstest.NewKey(t)
	os.MkdirAll(filepath.Join(r.dir, "hosts", "beta"), 0o755)
	secretstest.WriteFile(t, filepath.Join(r.dir, "hosts/beta/secrets.sops.yaml"), r.opRecip, []byte(plain))
	for _, h := range []struct{ name, recip string }{{"alpha", alphaRecip}, {"beta", betaRecip}} {
		if _, err := bootstrap.Enroll(r.dir, h.name, h.recip, "", r.keys); err != nil {
			t.Fatal(err)
		}
	}
	conf := r.read(t, ".sops.yaml")
	for name, tc := range map[string]struct {
		conf, recipient, want string
	}{
		"--recipient names beta's key":         {conf, betaRecip, "is also host beta's"},
		"--recipient names the operator's key": {conf, r.opRecip, "your own operator key's recipient"},
		"beta's key marked as alpha's in alpha's rule": {
			strings.Replace(conf, alphaRecip+" # host alpha", betaRecip+" # host alpha", 1), "", "is also host beta's",
		},
		"the operator's key marked as alpha's": {
			strings.Replace(conf, alphaRecip+" # host alpha", r.opRecip+" # host alpha", 1), "", "your own operator key's recipient",
		},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.conf == conf && tc.recipient == "" {
				t.Fatalf("the case changes nothing in:\n%s", conf)
			}
			r.write(t, ".sops.yaml", tc.conf)
			before := r.snapshot(t)
			_, err := bootstrap.Remove(r.dir, "alpha", tc.recipient, r.keys)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was changed") {
				t.Fatalf("Remove: %v; want it refused: %q", err, tc.want)
			}
			if !mapsEqual(before, r.snapshot(t)) {
				t.Error("a refused remove changed files")
			}
		})
	}
	r.write(t, ".sops.yaml", conf)
	if res, err := bootstrap.Remove(r.dir, "alpha", "", r.keys); err != nil || !slices.Equal(res.Recipients, []string{alphaRecip}) {
		t.Fatalf("Remove of alpha's own key: %+v, %v", res, err)
	}
	if got := r.read(t, ".sops.yaml"); !strings.Contains(got, betaRecip) || !strings.Contains(got, r.opRecip) {
		t.Errorf("removing alpha took beta's or the operator's key out:\n%s", got)
	}
}
