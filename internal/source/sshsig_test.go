package source

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestSignSSHSigAsSSHKeygen: a signature made here verifies with
// `ssh-keygen -Y verify`, one made by ssh-keygen verifies here, and a
// changed message, another namespace or another key does not.
func TestSignSSHSigAsSSHKeygen(t *testing.T) {
	keyFile, pub := sshSigningKey(t, "host-a")
	_, other := sshSigningKey(t, "host-b")
	raw, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("host: alpha\nstate: converged\n")
	sig, err := SignSSHSig(signer, "syncd-status", msg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sigFile, allowed := filepath.Join(dir, "doc.sig"), filepath.Join(dir, "allowed")
	os.WriteFile(sigFile, []byte(sig), 0o600)
	os.WriteFile(allowed, []byte("alpha "+string(ssh.MarshalAuthorizedKey(pub))), 0o600)
	cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "alpha", "-n", "syncd-status", "-s", sigFile)
	cmd.Stdin = bytes.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y verify of SignSSHSig's signature: %v\n%s\n%s", err, out, sig)
	}
	if err := VerifySSHSig(sig, "syncd-status", msg, pub); err != nil {
		t.Errorf("own signature: %v", err)
	}

	cmd = exec.Command("ssh-keygen", "-q", "-Y", "sign", "-n", "syncd-status", "-f", keyFile)
	cmd.Stdin = bytes.NewReader(msg)
	theirs, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySSHSig(string(theirs), "syncd-status", msg, pub); err != nil {
		t.Errorf("ssh-keygen's signature: %v", err)
	}

	for name, c := range map[string]struct {
		sig, ns string
		msg     []byte
		key     ssh.PublicKey
		want    string
	}{
		"changed message": {sig, "syncd-status", []byte("host: alpha\nstate: failed\n"), pub, "bad signature by key " + ssh.FingerprintSHA256(pub)},
		"other namespace": {sig, "git", msg, pub, "namespace"},
		"other key":       {sig, "syncd-status", msg, other, "signed by key " + ssh.FingerprintSHA256(pub) + ", not by " + ssh.FingerprintSHA256(other)},
		"not a signature": {"hello", "syncd-status", msg, pub, "unreadable signature"},
	} {
		if err := VerifySSHSig(c.sig, c.ns, c.msg, c.key); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
