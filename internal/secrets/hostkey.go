package secrets

import (
	"errors"
	"os"
	"strings"
)

// selfMadeKey marks, in its header, an age key the host made itself: only
// such a key may leave the host enrolling (apps with secrets waiting)
// rather than failed when it cannot open the host's secrets.
const selfMadeKey = "made by syncd on this host"

// HostKey is the host's age identity file as self-enrolment sees it
// (DESIGN §4): its public half, published for `syncd enroll`, and whether
// syncd made it on this host. It is reconcile's Enrolling.
type HostKey struct {
	// Recipient is the public half; "" when the file cannot be read (the
	// cycle reports that where the host has secrets).
	Recipient string
	// Made: OpenHostKey made the key just now.
	Made     bool
	selfMade bool
}

// OpenHostKey makes the host's age key at path when there is none (0600,
// written whole or not at all, never replacing one) and returns it; the
// private key never leaves the host. A key that cannot be made is an
// error, and the HostKey returned still works (as no key).
func OpenHostKey(path, host string) (*HostKey, error) {
	k := &HostKey{}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if _, err := GenerateIdentityFile(path, selfMadeKey+" ("+host+"); `syncd enroll --host "+host+"` adds its public key to .sops.yaml"); err != nil {
			return k, err
		}
		k.Made = true
	}
	id, err := LoadIdentity(path)
	if err != nil {
		return k, nil // the cycle reports the same error where the host has secrets
	}
	if rs := id.Recipients(); len(rs) > 0 {
		k.Recipient = rs[0]
	}
	head, _ := os.ReadFile(path)
	k.selfMade = strings.Contains(string(head), selfMadeKey)
	return k, nil
}

// Pending reports whether err only means that the host's self-made key is
// not a recipient of its secrets yet: the host waits for `syncd enroll`.
func (k *HostKey) Pending(err error) bool {
	return k != nil && k.selfMade && errors.Is(err, ErrNotRecipient)
}

// Keys returns the key names of a secrets file without decrypting it.
func (k *HostKey) Keys(name string, data []byte) ([]string, error) { return Inspect(name, data) }
