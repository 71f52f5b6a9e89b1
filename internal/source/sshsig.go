package source

import (
	"bytes"
	"crypto/rand"
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

// SignSSHSig signs message for namespace with signer, as `ssh-keygen -Y
// sign -n namespace` does (sha512), and returns the armored signature.
func SignSSHSig(signer ssh.Signer, namespace string, message []byte) (string, error) {
	if namespace == "" {
		return "", errors.New("SSHSIG: a signature needs a namespace")
	}
	h := sha512.Sum512(message)
	signed := append([]byte(sshSigMagic), ssh.Marshal(sshSigSigned{Namespace: namespace, HashAlg: "sha512", Hash: h[:]})...)
	sig, err := signer.Sign(rand.Reader, signed)
	if err != nil {
		return "", fmt.Errorf("SSHSIG: sign: %w", err)
	}
	blob := append([]byte(sshSigMagic), ssh.Marshal(sshSigBlob{
		Version:   sshSigVersion,
		PublicKey: signer.PublicKey().Marshal(),
		Namespace: namespace,
		HashAlg:   "sha512",
		Signature: ssh.Marshal(sig),
	})...)
	b64 := base64.StdEncoding.EncodeToString(blob)
	var b strings.Builder
	b.WriteString(sshSigBegin + "\n")
	for len(b64) > 70 { // ssh-keygen's line length
		b.WriteString(b64[:70] + "\n")
		b64 = b64[70:]
	}
	b.WriteString(b64 + "\n" + sshSigEnd + "\n")
	return b.String(), nil
}

// VerifySSHSig checks that armored is a signature of message for namespace
// made by key. The error names the key that did sign when it is another.
func VerifySSHSig(armored, namespace string, message []byte, key ssh.PublicKey) error {
	signer, err := verifySSHSig(armored, namespace, message)
	switch {
	case signer == nil:
		return fmt.Errorf("unreadable signature: %w", err)
	case !bytes.Equal(signer.Marshal(), key.Marshal()):
		return fmt.Errorf("signed by key %s, not by %s", ssh.FingerprintSHA256(signer), ssh.FingerprintSHA256(key))
	case err != nil:
		return fmt.Errorf("bad signature by key %s: %w", ssh.FingerprintSHA256(signer), err)
	}
	return nil
}
