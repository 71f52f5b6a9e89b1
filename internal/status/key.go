package status

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/state"
)

// Namespace is the SSHSIG namespace status documents are signed under: a
// signature made for a commit (namespace git) or a file is never taken
// for one of a status document.
const Namespace = "syncd-status"

// KeyFile is the host's status key in its state directory.
const KeyFile = "status_key"

// Key is the host's status key: an ed25519 key the host made itself, kept
// as an OpenSSH private key file in its state directory. Its public half
// is enrolled into main (host.yaml status_key); every document the host
// pushes is signed with it.
type Key struct {
	signer ssh.Signer
}

// OpenKey reads the status key in stateDir, making it first when there is
// none (0600, written whole or not at all, never replacing one); made says
// whether it was made now.
func OpenKey(stateDir, host string) (key *Key, made bool, err error) {
	p := filepath.Join(stateDir, KeyFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		if data, err = makeKey(p, host); err == nil {
			made = true
		} else if errors.Is(err, fs.ErrExist) {
			data, err = os.ReadFile(p) // made by another start meanwhile
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("status key: %w", err)
	}
	if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("status key %s: mode %v lets others read it; chmod 600 it", p, st.Mode().Perm())
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, false, fmt.Errorf("status key %s: %v (remove it and restart to make a new one, then enroll that)", p, err)
	}
	if signer.PublicKey().Type() != ssh.KeyAlgoED25519 {
		return nil, false, fmt.Errorf("status key %s: a %s key; syncd signs with ed25519 (remove it and restart to make one)", p, signer.PublicKey().Type())
	}
	return &Key{signer: signer}, made, nil
}

func makeKey(path, host string) ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "syncd status "+host)
	if err != nil {
		return nil, err
	}
	data := pem.EncodeToMemory(block)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return data, state.CreateFile(path, data, 0o600)
}

// Public is the key's public half in authorized_keys form, as host.yaml
// status_key holds it: "ssh-ed25519 AAAA…".
func (k *Key) Public() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.signer.PublicKey())))
}

// Fingerprint is the key's SHA256 fingerprint, as ssh-keygen -l shows it.
func (k *Key) Fingerprint() string { return ssh.FingerprintSHA256(k.signer.PublicKey()) }

// Sign returns the armored SSHSIG signature of data (a document's exact
// bytes) under Namespace.
func (k *Key) Sign(data []byte) (string, error) {
	return source.SignSSHSig(k.signer, Namespace, data)
}

// ParseKey reads a status key in authorized_keys form (host.yaml
// status_key, a document's status_key).
func ParseKey(s string) (ssh.PublicKey, error) {
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("not an SSH public key: %v", err)
	}
	if key.Type() != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("a %s key, not ssh-ed25519", key.Type())
	}
	return key, nil
}

// Fingerprint is the SHA256 fingerprint of a status key in authorized_keys
// form, or "" when it is none.
func Fingerprint(key string) string {
	k, err := ParseKey(key)
	if err != nil {
		return ""
	}
	return ssh.FingerprintSHA256(k)
}

// SameKey reports whether a and b (authorized_keys form, comments aside)
// are one key.
func SameKey(a, b string) bool {
	ka, erra := ParseKey(a)
	kb, errb := ParseKey(b)
	return erra == nil && errb == nil && bytes.Equal(ka.Marshal(), kb.Marshal())
}
