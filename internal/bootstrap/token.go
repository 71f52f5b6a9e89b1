package bootstrap

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
)

// The enrolment token: a one-time secret init-host makes for a host, one
// copy in its user-data, one in the operator's output directory. The host
// publishes its age recipient and status key with a MAC over both and its
// name under it; `syncd enroll --token` checks that MAC before it trusts
// either, because every host may push the status branch.

// TokenFile is the token's file in init-host's output directory.
const TokenFile = "enroll_token"

// tokenBytes is the secret's length: 256 bits.
const tokenBytes = 32

// macContext makes the MAC this protocol's and this version's only.
const macContext = "syncd enrolment v1"

func newToken() ([]byte, error) {
	secret := make([]byte, tokenBytes)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	return secret, nil
}

func tokenText(secret []byte) []byte { return []byte(hex.EncodeToString(secret) + "\n") }

// ReadToken reads an enrolment token file (hex, one line). Errors name
// the file, never its content.
func ReadToken(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("enrolment token: %w", err)
	}
	secret, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(secret) != tokenBytes {
		return nil, fmt.Errorf("enrolment token %s: not a token made by `syncd init-host` (%d hex digits)", path, 2*tokenBytes)
	}
	return secret, nil
}

// EnrolmentMAC is the MAC a host publishes (status enrolment_mac): HMAC-
// SHA256 under secret over its name, its age recipient and its status key
// (authorized_keys form), hex.
func EnrolmentMAC(secret []byte, host, recipient, statusKey string) string {
	m := hmac.New(sha256.New, secret)
	// Each field ends with a NUL, which none of them can hold: no two
	// different triples make one message.
	for _, s := range []string{macContext, host, recipient, normalKey(statusKey)} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))
}

// normalKey is an authorized_keys line without its comment and options,
// as the key is compared; s itself when it is no key.
func normalKey(s string) string {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return s
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// Publication is what a host's status document publishes for its
// enrolment.
type Publication struct {
	Host         string
	AgeRecipient string // already checked to be an age recipient
	StatusKey    string
	MAC          string
}

// Verify checks the publication's MAC under the token's secret, and says
// which part is missing or wrong.
func (p Publication) Verify(secret []byte) error {
	var missing []string
	for _, f := range []struct{ name, value string }{{"age_recipient", p.AgeRecipient}, {"status_key", p.StatusKey}, {"enrolment_mac", p.MAC}} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("its document publishes no %s: the host was started without an enrolment token (init-host's enroll_token in its config), deleted it once enrolled, or runs a syncd older than enrolment tokens", strings.Join(missing, ", "))
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(p.StatusKey))
	if err != nil || k.Type() != ssh.KeyAlgoED25519 {
		return errors.New("its status_key is not an ssh-ed25519 public key")
	}
	want := EnrolmentMAC(secret, p.Host, p.AgeRecipient, p.StatusKey)
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(strings.TrimSpace(p.MAC)))) {
		return fmt.Errorf("its enrolment_mac does not verify with this token: what it publishes for host %s was not made with host %s's enrolment secret (another host, or anyone who may push the status branch, wrote it; or the token is another host's)", p.Host, p.Host)
	}
	return nil
}
