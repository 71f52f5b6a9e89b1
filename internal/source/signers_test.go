package source

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/crypto/ssh"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// sshSigningKey makes an ed25519 key with ssh-keygen, the program git
// signs with (gpg.format=ssh), and returns the private key's path and its
// public key.
func sshSigningKey(t *testing.T, name string) (string, ssh.PublicKey) {
	t.Helper()
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		testenv.Missing(t, "this test signs commits the way git does, with ssh-keygen (openssh-client): %v", err)
	}
	p := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(p + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return p, key
}

// sshSign is the git options that sign a commit with keyFile.
func sshSign(keyFile string) []string {
	return []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + keyFile, "-c", "commit.gpgsign=true"}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func allowedSignersLine(principals string, key ssh.PublicKey) string {
	return principals + " " + string(ssh.MarshalAuthorizedKey(key))
}

func TestCheckoutSSHSignedCommits(t *testing.T) {
	trustedKey, trustedPub := sshSigningKey(t, "trusted")
	otherKey, otherPub := sshSigningKey(t, "other")
	allowed := writeFile(t, "# the fleet's admins\n\n"+allowedSignersLine("admin@example.org", trustedPub))
	signers, err := LoadSigners(allowed, "")
	if err != nil {
		t.Fatal(err)
	}
	url := bareRepo(t)
	w := newWorkRepo(t)
	g := &Git{URL: url, Dir: t.TempDir(), Signers: signers}
	ctx := context.Background()
	live := filepath.Join(g.Dir, "repo")

	c1 := w.commit("signed", map[string]string{"a": "one\n"}, sshSign(trustedKey)...)
	w.push(url)
	// git itself agrees that it is signed by a trusted key.
	testenv.Git(t, w.dir, "-c", "gpg.ssh.allowedSignersFile="+allowed, "verify-commit", c1)
	if _, err := g.Checkout(ctx, c1); err != nil {
		t.Fatalf("a commit signed by a trusted key: %v", err)
	}
	assertTree(t, live, map[string]string{"a": "one\n"})

	c2 := w.commit("unsigned", map[string]string{"a": "two\n"})
	w.push(url)
	_, err = g.Checkout(ctx, c2)
	if !errors.Is(err, ErrUnsigned) || !strings.Contains(err.Error(), c2) {
		t.Errorf("an unsigned commit: %v, want ErrUnsigned naming %s", err, c2)
	}
	assertTree(t, live, map[string]string{"a": "one\n"})
	assertOnlyRepo(t, g.Dir)

	c3 := w.commit("signed by another", map[string]string{"a": "three\n"}, sshSign(otherKey)...)
	w.push(url)
	_, err = g.Checkout(ctx, c3)
	fp := ssh.FingerprintSHA256(otherPub)
	if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), fp) || !strings.Contains(err.Error(), c3) {
		t.Errorf("a commit signed by another key: %v, want ErrUntrusted naming %s and %s", err, c3, fp)
	}
	t.Logf("signed by another key: %v", err)
	assertTree(t, live, map[string]string{"a": "one\n"})
	assertOnlyRepo(t, g.Dir)

	// The commit already checked out is checked again when the trusted
	// keys change.
	g.Signers, err = LoadSigners(writeFile(t, allowedSignersLine("someone@example.org", otherPub)), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Checkout(ctx, c1); !errors.Is(err, ErrUntrusted) {
		t.Errorf("the checked-out commit under new trusted keys: %v, want ErrUntrusted", err)
	}
}

// signedCommit opens repository dir with go-git and returns commit.
func commitObject(t *testing.T, dir, commit string) *object.Commit {
	t.Helper()
	r, err := gogit.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSSHSignerOptions(t *testing.T) {
	keyFile, pub := sshSigningKey(t, "k")
	w := newWorkRepo(t)
	c := commitObject(t, w.dir, w.commit("signed", map[string]string{"a": "a\n"}, sshSign(keyFile)...))
	line := string(ssh.MarshalAuthorizedKey(pub))
	future := time.Now().Add(48*time.Hour).UTC().Format("20060102") + "Z"
	for _, tc := range []struct {
		name, file string
		ok         bool
	}{
		{"plain", "a@example.org " + line, true},
		{"two principals", "a@example.org,b@example.org " + line, true},
		{"quoted principals", `"a@example.org" ` + line, true},
		{"namespaces with git", `a@example.org namespaces="file,git" ` + line, true},
		{"namespaces without git", `a@example.org namespaces="file" ` + line, false},
		{"valid-after in the future", `a@example.org valid-after="` + future + `" ` + line, false},
		{"valid-before in the future", `a@example.org valid-before="` + future + `" ` + line, true},
		{"valid-before in the past", `a@example.org valid-before="20200101" ` + line, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LoadSigners(writeFile(t, tc.file), "")
			if err != nil {
				t.Fatal(err)
			}
			who, err := s.Verify(c)
			if tc.ok && (err != nil || !strings.Contains(who, "a@example.org") || !strings.Contains(who, ssh.FingerprintSHA256(pub))) {
				t.Errorf("Verify = %q, %v; want the principal and fingerprint", who, err)
			}
			if !tc.ok && !errors.Is(err, ErrUntrusted) {
				t.Errorf("Verify = %q, %v; want ErrUntrusted", who, err)
			}
		})
	}
}

func TestSSHSignatureTampering(t *testing.T) {
	keyFile, pub := sshSigningKey(t, "k")
	w := newWorkRepo(t)
	c := commitObject(t, w.dir, w.commit("signed", map[string]string{"a": "a\n"}, sshSign(keyFile)...))
	s, err := LoadSigners(writeFile(t, allowedSignersLine("a@example.org", pub)), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(c); err != nil {
		t.Fatal(err)
	}
	// Another message under the same signature.
	forged := *c
	forged.Message = "something else\n"
	if _, err := s.Verify(&forged); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), ssh.FingerprintSHA256(pub)) {
		t.Errorf("a changed commit: %v, want ErrUntrusted naming the key", err)
	}
	// The signature made for another namespace.
	payload, err := signedPayload(c)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ssh-keygen", "-q", "-Y", "sign", "-n", "file", "-f", keyFile)
	cmd.Stdin = bytes.NewReader(payload)
	sig, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	other := *c
	other.PGPSignature = string(sig)
	if _, err := s.Verify(&other); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "namespace") {
		t.Errorf("a signature for namespace file: %v, want ErrUntrusted about the namespace", err)
	}
	two := *c
	two.PGPSignature = c.PGPSignature + c.PGPSignature
	if _, err := s.Verify(&two); !errors.Is(err, ErrUntrusted) {
		t.Errorf("two signatures: %v, want ErrUntrusted", err)
	}
	junk := *c
	junk.PGPSignature = "-----BEGIN SSH SIGNATURE-----\nnot base64\n-----END SSH SIGNATURE-----\n"
	if _, err := s.Verify(&junk); !errors.Is(err, ErrUntrusted) {
		t.Errorf("an unreadable signature: %v, want ErrUntrusted", err)
	}
}

func TestLoadSignersRefusesWhatItCannotHonour(t *testing.T) {
	_, pub := sshSigningKey(t, "k")
	line := string(ssh.MarshalAuthorizedKey(pub))
	if s, err := LoadSigners("", ""); s != nil || err != nil {
		t.Errorf("no files: %v, %v; want nil, nil (no check)", s, err)
	}
	for name, content := range map[string]string{
		"empty":          "# nobody yet\n",
		"cert-authority": "*@example.org cert-authority " + line,
		"unknown option": "a@example.org verify-required " + line,
		"bad key":        "a@example.org ssh-ed25519 AAAAnotakey\n",
		"bad time":       `a@example.org valid-after="yesterday" ` + line,
	} {
		file := writeFile(t, content)
		if _, err := LoadSigners(file, ""); err == nil {
			t.Errorf("%s: loaded", name)
		} else if !strings.Contains(err.Error(), file) {
			t.Errorf("%s: %v does not name the file", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := LoadSigners(filepath.Join(t.TempDir(), "missing"), ""); err == nil {
		t.Error("a missing allowed signers file loaded")
	}
	if _, err := LoadSigners("", writeFile(t, "not a keyring\n")); err == nil {
		t.Error("a bad OpenPGP keyring loaded")
	}
}

// pgpEntity makes an OpenPGP key and returns it and its public keyring,
// armored, in a file.
func pgpEntity(t *testing.T, name string) (*openpgp.Entity, string) {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", name+"@example.org", nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	aw, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(aw); err != nil {
		t.Fatal(err)
	}
	aw.Close()
	return e, writeFile(t, buf.String())
}

// pgpCommit commits files in w with go-git, signed by e (nil: unsigned).
func pgpCommit(t *testing.T, w *workRepo, e *openpgp.Entity, files map[string]string) string {
	t.Helper()
	r, err := gogit.PlainOpen(w.dir)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(w.dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Add(name); err != nil {
			t.Fatal(err)
		}
	}
	h, err := wt.Commit("pgp", &gogit.CommitOptions{
		Author:  &object.Signature{Name: "syncd test", Email: "test@syncd.invalid", When: time.Now()},
		SignKey: e,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func TestCheckoutOpenPGPSignedCommits(t *testing.T) {
	trusted, trustedRing := pgpEntity(t, "trusted")
	other, otherRing := pgpEntity(t, "other")
	signers, err := LoadSigners("", trustedRing)
	if err != nil {
		t.Fatal(err)
	}
	url := bareRepo(t)
	w := newWorkRepo(t)
	g := &Git{URL: url, Dir: t.TempDir(), Signers: signers}
	ctx := context.Background()
	live := filepath.Join(g.Dir, "repo")

	c1 := pgpCommit(t, w, trusted, map[string]string{"a": "one\n"})
	w.push(url)
	if _, err := g.Checkout(ctx, c1); err != nil {
		t.Fatalf("a commit signed by a trusted OpenPGP key: %v", err)
	}
	assertTree(t, live, map[string]string{"a": "one\n"})
	who, err := signers.Verify(commitObject(t, live, c1))
	fpr := strings.ToUpper(hex.EncodeToString(trusted.PrimaryKey.Fingerprint))
	if err != nil || !strings.Contains(who, "trusted") || !strings.Contains(who, fpr) {
		t.Errorf("Verify = %q, %v; want the user ID and %s", who, err, fpr)
	}

	c2 := pgpCommit(t, w, other, map[string]string{"a": "two\n"})
	w.push(url)
	_, err = g.Checkout(ctx, c2)
	otherFpr := strings.ToUpper(hex.EncodeToString(other.PrimaryKey.Fingerprint))
	otherID := other.PrimaryKey.KeyIdString()
	if !errors.Is(err, ErrUntrusted) || !(strings.Contains(err.Error(), otherFpr) || strings.Contains(err.Error(), otherID)) {
		t.Errorf("a commit signed by another OpenPGP key: %v, want ErrUntrusted naming %s", err, otherFpr)
	}
	t.Logf("signed by another OpenPGP key: %v", err)
	assertTree(t, live, map[string]string{"a": "one\n"})

	c3 := pgpCommit(t, w, nil, map[string]string{"a": "three\n"})
	w.push(url)
	if _, err := g.Checkout(ctx, c3); !errors.Is(err, ErrUnsigned) {
		t.Errorf("an unsigned commit: %v, want ErrUnsigned", err)
	}

	// Both kinds of keys at once: the other key's ring plus an SSH file.
	_, sshPub := sshSigningKey(t, "ssh")
	both, err := LoadSigners(writeFile(t, allowedSignersLine("a@example.org", sshPub)), otherRing)
	if err != nil {
		t.Fatal(err)
	}
	g.Signers = both
	testenv.Git(t, w.dir, "push", "-q", "-f", url, c2+":refs/heads/main")
	if _, err := g.Checkout(ctx, c2); err != nil {
		t.Errorf("c2 under a keyring that trusts its signer: %v", err)
	}
	assertTree(t, live, map[string]string{"a": "two\n"})
}
