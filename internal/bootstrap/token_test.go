package bootstrap_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/bootstrap"
	"github.com/syncd-dev/syncd/internal/secrets/secretstest"
)

const (
	statusKey      = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAztXuRTRUlJbUgIbMlAPiWzfHcrFTUbJAjd1bBQb6wo"
	otherStatusKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICU1UzWLt9eeM6x9yjdi8mSBMyhjvZWndRk+T8amcvFD"
)

// TestPublicationVerify: a publication made with the host's token
// verifies; one made with another token, for another host, or with
// another recipient or key than the MAC covers does not, and says why.
func TestPublicationVerify(t *testing.T) {
	out := filepath.Join(t.TempDir(), "alpha")
	res, err := initHost(out).Run()
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(res.Token); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token %s: %v", res.Token, err)
	}
	secret, err := bootstrap.ReadToken(res.Token)
	if err != nil {
		t.Fatal(err)
	}
	_, recip := secretstest.NewKey(t)
	_, otherRecip := secretstest.NewKey(t)
	good := bootstrap.Publication{Host: "alpha", AgeRecipient: recip, StatusKey: statusKey, MAC: bootstrap.EnrolmentMAC(secret, "alpha", recip, statusKey)}
	if err := good.Verify(secret); err != nil {
		t.Fatalf("the host's own publication: %v", err)
	}
	// A comment on the key changes nothing: the key is what is bound.
	if err := (bootstrap.Publication{Host: "alpha", AgeRecipient: recip, StatusKey: statusKey + " syncd status alpha", MAC: good.MAC}).Verify(secret); err != nil {
		t.Errorf("a comment on the key: %v", err)
	}
	other, err := initHost(filepath.Join(t.TempDir(), "beta")).Run()
	if err != nil {
		t.Fatal(err)
	}
	otherSecret, _ := bootstrap.ReadToken(other.Token)
	for name, c := range map[string]struct {
		p    bootstrap.Publication
		want string
	}{
		"another recipient": {bootstrap.Publication{Host: "alpha", AgeRecipient: otherRecip, StatusKey: statusKey, MAC: good.MAC}, "does not verify with this token"},
		"another key":       {bootstrap.Publication{Host: "alpha", AgeRecipient: recip, StatusKey: otherStatusKey, MAC: good.MAC}, "does not verify with this token"},
		"another host":      {bootstrap.Publication{Host: "beta", AgeRecipient: recip, StatusKey: statusKey, MAC: good.MAC}, "does not verify with this token"},
		"another token":     {bootstrap.Publication{Host: "alpha", AgeRecipient: recip, StatusKey: statusKey, MAC: bootstrap.EnrolmentMAC(otherSecret, "alpha", recip, statusKey)}, "does not verify with this token"},
		"no MAC":            {bootstrap.Publication{Host: "alpha", AgeRecipient: recip, StatusKey: statusKey}, "publishes no enrolment_mac"},
		"no key":            {bootstrap.Publication{Host: "alpha", AgeRecipient: recip, MAC: good.MAC}, "publishes no status_key"},
	} {
		if err := c.p.Verify(secret); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	bad := filepath.Join(t.TempDir(), "token")
	os.WriteFile(bad, []byte("secret-Kilo-value\n"), 0o600)
	if _, err := bootstrap.ReadToken(bad); err == nil || strings.Contains(err.Error(), "Kilo") {
		t.Errorf("a file that is no token: %v", err)
	}
}

// TestEnrollWritesStatusKey: the status key goes into host.yaml, every
// other byte (comments too) as it was; enrolling again replaces only its
// line; a host without host.yaml is refused and nothing changes.
func TestEnrollWritesStatusKey(t *testing.T) {
	r := newRepo(t)
	_, hostRecip := secretstest.NewKey(t)
	const host = "# alpha: the canary\napps: [web] # the apps\n\n# its ring\nwave: 0\nvars:\n  DOMAIN: alpha.example.org\n"
	r.write(t, "hosts/alpha/host.yaml", host)
	if _, err := bootstrap.Enroll(r.dir, "alpha", hostRecip, statusKey, r.keys); err != nil {
		t.Fatal(err)
	}
	got := r.read(t, "hosts/alpha/host.yaml")
	if !strings.HasPrefix(got, host+"\n# The key this host signs") || !strings.HasSuffix(got, "\nstatus_key: \""+statusKey+"\"\n") {
		t.Errorf("host.yaml:\n%s", got)
	}
	r.write(t, "hosts/alpha/host.yaml", strings.Replace(got, "status_key: \""+statusKey+"\"", "status_key: "+statusKey+" # enrolled in March", 1))
	if _, err := bootstrap.Enroll(r.dir, "alpha", hostRecip, otherStatusKey, r.keys); err != nil {
		t.Fatal(err)
	}
	if again := r.read(t, "hosts/alpha/host.yaml"); again != strings.Replace(got, statusKey+"\"", otherStatusKey+"\" # enrolled in March", 1) {
		t.Errorf("host.yaml after a second enroll:\n%s", again)
	}

	os.Remove(filepath.Join(r.dir, "hosts/alpha/host.yaml"))
	before := r.snapshot(t)
	if _, err := bootstrap.Enroll(r.dir, "alpha", hostRecip, statusKey, r.keys); err == nil || !strings.Contains(err.Error(), "hosts/alpha/host.yaml") || !strings.Contains(err.Error(), "Nothing was changed") {
		t.Errorf("no host.yaml: %v", err)
	}
	if !mapsEqual(before, r.snapshot(t)) {
		t.Error("a refused enroll changed files")
	}
	// A host.yaml in flow style is left to the operator.
	r.write(t, "hosts/alpha/host.yaml", "{apps: [web]}\n")
	if _, err := bootstrap.Enroll(r.dir, "alpha", hostRecip, statusKey, r.keys); err == nil || !strings.Contains(err.Error(), "by hand") {
		t.Errorf("flow style: %v", err)
	}
	if !strings.Contains(r.read(t, ".sops.yaml"), "# the fleet's rules") || r.read(t, "hosts/alpha/host.yaml") != "{apps: [web]}\n" {
		t.Error("a refused enroll changed files")
	}
}
