package source

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// The SSHSIG format of OpenSSH (PROTOCOL.sshsig), what `git commit -S`
// writes with gpg.format=ssh.
const (
	sshSigBegin   = "-----BEGIN SSH SIGNATURE-----"
	sshSigEnd     = "-----END SSH SIGNATURE-----"
	sshSigMagic   = "SSHSIG"
	sshSigVersion = 1
)

// sshSigBlob is an SSHSIG signature after the magic preamble.
type sshSigBlob struct {
	Version   uint32
	PublicKey []byte
	Namespace string
	Reserved  string
	HashAlg   string
	Signature []byte
}

// sshSigSigned is what the key actually signs, after the magic preamble.
type sshSigSigned struct {
	Namespace string
	Reserved  string
	HashAlg   string
	Hash      []byte
}

// verifySSHSig checks an armored SSHSIG signature of message made for
// namespace, and returns the public key it carries. The key comes back
// whenever the signature could be parsed, also when it does not verify,
// so that the error can say which key it was; whether that key is trusted
// is for the caller to decide.
func verifySSHSig(armored, namespace string, message []byte) (ssh.PublicKey, error) {
	body := strings.TrimSpace(armored)
	if !strings.HasPrefix(body, sshSigBegin) || !strings.HasSuffix(body, sshSigEnd) {
		return nil, errors.New("not an armored SSH signature")
	}
	body = strings.Join(strings.Fields(body[len(sshSigBegin):len(body)-len(sshSigEnd)]), "")
	raw, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("base64: %w", err)
	}
	if !strings.HasPrefix(string(raw), sshSigMagic) {
		return nil, errors.New("no SSHSIG preamble")
	}
	var blob sshSigBlob
	if err := ssh.Unmarshal(raw[len(sshSigMagic):], &blob); err != nil {
		return nil, fmt.Errorf("SSHSIG: %w", err)
	}
	if blob.Version != sshSigVersion {
		return nil, fmt.Errorf("SSHSIG version %d is not supported", blob.Version)
	}
	key, err := ssh.ParsePublicKey(blob.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("SSHSIG public key: %w", err)
	}
	if blob.Namespace != namespace {
		return key, fmt.Errorf("signed for namespace %q, not %q", blob.Namespace, namespace)
	}
	var digest []byte
	switch blob.HashAlg {
	case "sha256":
		h := sha256.Sum256(message)
		digest = h[:]
	case "sha512":
		h := sha512.Sum512(message)
		digest = h[:]
	default:
		return key, fmt.Errorf("hash algorithm %q is not supported", blob.HashAlg)
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(blob.Signature, &sig); err != nil {
		return key, fmt.Errorf("SSHSIG signature: %w", err)
	}
	// As OpenSSH: an RSA signature must not be the SHA-1 kind.
	if sig.Format == ssh.KeyAlgoRSA {
		return key, errors.New("RSA signature with SHA-1 (ssh-rsa) is refused")
	}
	signed := append([]byte(sshSigMagic), ssh.Marshal(sshSigSigned{
		Namespace: blob.Namespace,
		Reserved:  blob.Reserved,
		HashAlg:   blob.HashAlg,
		Hash:      digest,
	})...)
	if err := key.Verify(signed, &sig); err != nil {
		return key, err
	}
	return key, nil
}
