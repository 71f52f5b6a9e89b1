package source

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/crypto/ssh"
)

// Signature errors: both are permanent (they need a new, signed commit or
// a change of the trusted keys).
var (
	// ErrUnsigned: the commit carries no signature.
	ErrUnsigned = errors.New("commit is not signed")
	// ErrUntrusted: the signature is bad, or made by a key that is not
	// trusted.
	ErrUntrusted = errors.New("commit signature not trusted")
)

// Signers are the keys a commit must be signed with: SSH keys from an
// allowed_signers file (as git's gpg.ssh.allowedSignersFile) and OpenPGP
// keys from an armored public keyring.
type Signers struct {
	ssh []allowedSigner
	pgp openpgp.EntityList
}

// allowedSigner is one line of an allowed_signers file.
type allowedSigner struct {
	principals string
	key        ssh.PublicKey
	// namespaces the key may sign for; nil means any.
	namespaces []string
	// validAfter and validBefore bound the commit time; zero means open.
	validAfter, validBefore time.Time
	where                   string // file:line
}

// sshNamespace is what git signs commits under (ssh-keygen -Y sign -n git).
const sshNamespace = "git"

// LoadSigners reads the trusted keys: an SSH allowed_signers file and/or
// an armored OpenPGP public keyring; either may be "". With both "" there
// is nothing to check against and it returns nil (no check). A file that
// is given but holds no key is an error: it would refuse every commit.
func LoadSigners(allowedSignersFile, pgpKeyringFile string) (*Signers, error) {
	if allowedSignersFile == "" && pgpKeyringFile == "" {
		return nil, nil
	}
	s := &Signers{}
	var errs []error
	if allowedSignersFile != "" {
		keys, err := readAllowedSigners(allowedSignersFile)
		if err != nil {
			errs = append(errs, err)
		} else if len(keys) == 0 {
			errs = append(errs, fmt.Errorf("allowed signers %s: no key in it", allowedSignersFile))
		}
		s.ssh = keys
	}
	if pgpKeyringFile != "" {
		f, err := os.Open(pgpKeyringFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("OpenPGP keyring: %w", err))
		} else {
			s.pgp, err = openpgp.ReadArmoredKeyRing(f)
			f.Close()
			if err != nil {
				errs = append(errs, fmt.Errorf("OpenPGP keyring %s: %w", pgpKeyringFile, err))
			} else if len(s.pgp) == 0 {
				errs = append(errs, fmt.Errorf("OpenPGP keyring %s: no key in it", pgpKeyringFile))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// readAllowedSigners parses the ssh-keygen(1) ALLOWED SIGNERS format:
// "principals [options] keytype base64-key [comment]", # comments.
// Options it does not understand, and cert-authority (certificates are not
// supported), are errors rather than ignored: ignoring one could trust a
// key more widely than its line says.
func readAllowedSigners(file string) ([]allowedSigner, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("allowed signers: %w", err)
	}
	defer f.Close()
	var (
		keys []allowedSigner
		errs []error
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		where := fmt.Sprintf("%s:%d", file, n)
		k, err := parseAllowedSigner(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		k.where = where
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read %s: %w", file, err))
	}
	return keys, errors.Join(errs...)
}

func parseAllowedSigner(line string) (allowedSigner, error) {
	var k allowedSigner
	var rest string
	if strings.HasPrefix(line, `"`) {
		end := strings.Index(line[1:], `"`)
		if end < 0 {
			return k, errors.New("unterminated quoted principals")
		}
		k.principals, rest = line[1:1+end], line[2+end:]
	} else {
		k.principals, rest, _ = strings.Cut(line, " ")
		if i := strings.IndexAny(k.principals, "\t"); i >= 0 {
			k.principals, rest = k.principals[:i], k.principals[i:]+" "+rest
		}
	}
	if k.principals == "" {
		return k, errors.New("no principals")
	}
	// The rest is an authorized_keys line: [options] keytype key [comment].
	key, _, options, tail, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(rest)))
	if err != nil {
		return k, fmt.Errorf("key: %w", err)
	}
	if len(bytes.TrimSpace(tail)) != 0 {
		return k, errors.New("more than one key on the line")
	}
	if _, isCert := key.(*ssh.Certificate); isCert {
		return k, errors.New("a certificate is not a signer key")
	}
	k.key = key
	for _, opt := range options {
		name, value, _ := strings.Cut(opt, "=")
		value = strings.Trim(value, `"`)
		switch strings.ToLower(name) {
		case "namespaces":
			k.namespaces = strings.Split(value, ",")
		case "valid-after":
			if k.validAfter, err = parseSignerTime(value); err != nil {
				return k, fmt.Errorf("valid-after: %w", err)
			}
		case "valid-before":
			if k.validBefore, err = parseSignerTime(value); err != nil {
				return k, fmt.Errorf("valid-before: %w", err)
			}
		case "cert-authority":
			return k, errors.New("cert-authority is not supported: list the signing keys themselves")
		default:
			return k, fmt.Errorf("option %q is not supported", name)
		}
	}
	return k, nil
}

// parseSignerTime reads YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]: UTC with a
// trailing Z, local time without (as ssh-keygen reads them).
func parseSignerTime(s string) (time.Time, error) {
	loc := time.Local
	if strings.HasSuffix(s, "Z") || strings.HasSuffix(s, "z") {
		loc, s = time.UTC, s[:len(s)-1]
	}
	layouts := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}
	layout, ok := layouts[len(s)]
	if !ok {
		return time.Time{}, fmt.Errorf("%q is not YYYYMMDD[HHMM[SS]][Z]", s)
	}
	return time.ParseInLocation(layout, s, loc)
}

// Verify checks c's signature against the trusted keys and returns who
// signed it: the principals and key fingerprint for SSH, the user ID and
// key fingerprint for OpenPGP. An unsigned commit is ErrUnsigned; a bad
// signature, or one by a key not trusted, is ErrUntrusted and names the
// key that signed.
func (s *Signers) Verify(c *object.Commit) (string, error) {
	sig := strings.TrimSpace(c.PGPSignature)
	if sig == "" {
		return "", fmt.Errorf("commit %s: %w", c.Hash, ErrUnsigned)
	}
	if n := strings.Count(sig, "-----BEGIN "); n > 1 {
		return "", fmt.Errorf("commit %s: %w: it carries %d signatures, which has no single signer", c.Hash, ErrUntrusted, n)
	}
	payload, err := signedPayload(c)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", c.Hash, err)
	}
	switch {
	case strings.HasPrefix(sig, sshSigBegin):
		return s.verifySSH(c, sig, payload)
	case strings.HasPrefix(sig, "-----BEGIN PGP SIGNATURE-----"):
		return s.verifyPGP(c, sig, payload)
	}
	kind, _, _ := strings.Cut(sig, "\n")
	return "", fmt.Errorf("commit %s: %w: a signature of a kind that is not supported (%.40s)", c.Hash, ErrUntrusted, kind)
}

// signedPayload is the commit object without its signature header: the
// bytes git signed.
func signedPayload(c *object.Commit) ([]byte, error) {
	o := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(o); err != nil {
		return nil, err
	}
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func (s *Signers) verifySSH(c *object.Commit, armored string, payload []byte) (string, error) {
	key, err := verifySSHSig(armored, sshNamespace, payload)
	if key == nil {
		return "", fmt.Errorf("commit %s: %w: unreadable SSH signature: %v", c.Hash, ErrUntrusted, err)
	}
	fp := key.Type() + " " + ssh.FingerprintSHA256(key)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w: bad SSH signature by key %s: %v", c.Hash, ErrUntrusted, fp, err)
	}
	when := c.Committer.When
	var refused []string
	for _, k := range s.ssh {
		if !bytes.Equal(k.key.Marshal(), key.Marshal()) {
			continue
		}
		switch {
		case k.namespaces != nil && !contains(k.namespaces, sshNamespace):
			refused = append(refused, k.where+" does not allow namespace "+sshNamespace)
		case !k.validAfter.IsZero() && when.Before(k.validAfter):
			refused = append(refused, k.where+" is valid only after "+k.validAfter.Format(time.RFC3339))
		case !k.validBefore.IsZero() && !when.Before(k.validBefore):
			refused = append(refused, k.where+" is valid only before "+k.validBefore.Format(time.RFC3339))
		default:
			return k.principals + " (" + fp + ")", nil
		}
	}
	if len(refused) > 0 {
		return "", fmt.Errorf("commit %s: %w: signed by SSH key %s, but %s", c.Hash, ErrUntrusted, fp, strings.Join(refused, "; "))
	}
	return "", fmt.Errorf("commit %s: %w: signed by SSH key %s, which is not an allowed signer", c.Hash, ErrUntrusted, fp)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.TrimSpace(v) == s {
			return true
		}
	}
	return false
}

func (s *Signers) verifyPGP(c *object.Commit, armored string, payload []byte) (string, error) {
	issuer := pgpIssuer(armored)
	if len(s.pgp) == 0 {
		return "", fmt.Errorf("commit %s: %w: signed by OpenPGP key %s, and no OpenPGP key is trusted", c.Hash, ErrUntrusted, issuer)
	}
	e, err := openpgp.CheckArmoredDetachedSignature(s.pgp, bytes.NewReader(payload), strings.NewReader(armored), nil)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w: OpenPGP signature by key %s: %v", c.Hash, ErrUntrusted, issuer, err)
	}
	who := ""
	if id := e.PrimaryIdentity(); id != nil {
		who = id.Name + " "
	}
	return who + "(OpenPGP " + strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint)) + ")", nil
}

// pgpIssuer names the key an OpenPGP signature says it was made with: its
// fingerprint when the signature carries it, else its key ID.
func pgpIssuer(armored string) string {
	block, err := armor.Decode(strings.NewReader(armored))
	if err != nil {
		return "(unreadable signature)"
	}
	p, err := packet.Read(block.Body)
	if err != nil {
		return "(unreadable signature)"
	}
	sig, ok := p.(*packet.Signature)
	switch {
	case !ok:
		return "(not a signature packet)"
	case len(sig.IssuerFingerprint) > 0:
		return strings.ToUpper(hex.EncodeToString(sig.IssuerFingerprint))
	case sig.IssuerKeyId != nil:
		return fmt.Sprintf("%016X", *sig.IssuerKeyId)
	}
	return "(no issuer)"
}
