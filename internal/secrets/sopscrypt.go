package secrets

// This file decrypts a loaded SOPS file as sops 3.x does (sops.go, aes/
// cipher.go, age/keysource.go): the data key from an age recipient entry,
// each value with AES-256-GCM and its path as additional data, and the
// MAC, SHA-512 over the values in walk order, checked against the stored
// one (itself encrypted with the data key, lastmodified as additional
// data). It never encrypts: syncd writes SOPS files with the sops CLI.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// macOnlyEncryptedInit starts the hash of a file with mac_only_encrypted,
// as sops.MACOnlyEncryptedInitialization.
var macOnlyEncryptedInit = []byte{0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0xb, 0xb, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69}

// encValueRE is sops's own pattern for an encrypted value (aes.encre).
var encValueRE = regexp.MustCompile(`^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`)

// errValue is a value that does not decrypt: damaged, moved, or under
// another key. It carries no text of the value.
var errValue = errors.New("a value does not decrypt")

// decryptValue is sops's Cipher.Decrypt: "" stays "", anything else must
// be an ENC[...] value sealed under key with additional data ad.
func decryptValue(s string, key []byte, ad string) (any, error) {
	if s == "" {
		return "", nil
	}
	m := encValueRE.FindStringSubmatch(s)
	if m == nil {
		return nil, errValue
	}
	data, err1 := base64.StdEncoding.DecodeString(m[1])
	iv, err2 := base64.StdEncoding.DecodeString(m[2])
	tag, err3 := base64.StdEncoding.DecodeString(m[3])
	if err1 != nil || err2 != nil || err3 != nil || len(iv) == 0 {
		return nil, errValue
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, errValue
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(iv))
	if err != nil {
		return nil, errValue
	}
	plain, err := gcm.Open(nil, iv, append(data, tag...), []byte(ad))
	if err != nil {
		return nil, errValue
	}
	text := string(plain)
	switch m[4] {
	case "str":
		return text, nil
	case "int":
		n, err := strconv.Atoi(text)
		if err != nil {
			return nil, errValue
		}
		return n, nil
	case "float":
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, errValue
		}
		return f, nil
	case "bytes":
		return plain, nil
	case "bool":
		b, err := strconv.ParseBool(text)
		if err != nil {
			return nil, errValue
		}
		return b, nil
	case "time":
		var t time.Time
		if err := t.UnmarshalText(plain); err != nil {
			return nil, errValue
		}
		return t, nil
	case "comment":
		return comment{value: text}, nil
	}
	return nil, errValue
}

// toBytes is sops.ToBytes: what the MAC hashes of a value.
func toBytes(v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return []byte(x), nil
	case int:
		return []byte(strconv.Itoa(x)), nil
	case float64:
		return []byte(strconv.FormatFloat(x, 'f', -1, 64)), nil
	case bool:
		if x {
			return []byte("True"), nil
		}
		return []byte("False"), nil
	case []byte:
		return x, nil
	case time.Time:
		return x.MarshalText()
	case comment:
		return []byte(x.value), nil
	}
	return nil, fmt.Errorf("a value of type %T", v)
}

// shouldBeEncrypted is sops's Tree.shouldBeEncrypted: the file's own rule
// applied to a value's path (and the comments above it).
func (m metadata) shouldBeEncrypted(path []string, comments [][]string, isComment bool) bool {
	encrypted := true
	match := func(re, s string) bool { ok, _ := regexp.MatchString(re, s); return ok }
	if m.unencryptedSuffix != "" {
		for _, p := range path {
			if strings.HasSuffix(p, m.unencryptedSuffix) {
				encrypted = false
				break
			}
		}
	}
	if m.encryptedSuffix != "" {
		encrypted = false
		for _, p := range path {
			if strings.HasSuffix(p, m.encryptedSuffix) {
				encrypted = true
				break
			}
		}
	}
	if m.unencryptedRegex != "" {
		for _, p := range path {
			if match(m.unencryptedRegex, p) {
				encrypted = false
				break
			}
		}
	}
	if m.encryptedRegex != "" {
		encrypted = false
		for _, p := range path {
			if match(m.encryptedRegex, p) {
				encrypted = true
				break
			}
		}
	}
	if m.unencryptedCommentRegex != "" {
	unencrypted:
		for _, cs := range comments {
			for _, c := range cs {
				if match(m.unencryptedCommentRegex, c) {
					encrypted = false
					break unencrypted
				}
			}
		}
	}
	if m.encryptedCommentRegex != "" && len(comments) > 0 {
		last, lastLen := len(comments)-1, len(comments[len(comments)-1])
		encrypted = false
	encryptedLoop:
		for i, cs := range comments {
			for j, c := range cs {
				// The comment line that matches is itself left in plaintext.
				if isComment && i == last && j == lastLen-1 {
					continue
				}
				if match(m.encryptedCommentRegex, c) {
					encrypted = true
					break encryptedLoop
				}
			}
		}
	}
	return encrypted
}

// leafFunc sees each leaf with its path and the comments above it, and
// returns what replaces it.
type leafFunc func(v any, path []string, comments [][]string) (any, error)

// walk is sops's walkBranch over a copy: fn sees every leaf (comments
// included, nil values not), in file order; the branch returned holds what
// fn returned.
func walkBranch(in branch, path []string, comments [][]string, fn leafFunc, depth int) (branch, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("values nest deeper than %d levels", maxDepth)
	}
	out := make(branch, len(in))
	comments = append(comments[:len(comments):len(comments)], []string{})
	top := len(comments) - 1
	for i, it := range in {
		if c, ok := it.key.(comment); ok {
			comments[top] = append(comments[top], c.value)
			v, err := fn(c, path, comments)
			if err != nil {
				return nil, err
			}
			switch x := v.(type) {
			case comment:
				out[i] = item{key: x}
			case string:
				out[i] = item{key: comment{value: x, inline: c.inline}}
			default:
				return nil, errors.New("a comment decrypts to a value that is not a comment")
			}
			continue
		}
		c, valueIsComment := it.value.(comment)
		if valueIsComment {
			comments[top] = append(comments[top], c.value)
		}
		key, ok := it.key.(string)
		if !ok {
			return nil, errors.New("it holds a key that is not a string (a number, a bool or a null as a key)")
		}
		v, err := walkValue(it.value, append(path[:len(path):len(path)], key), comments, fn, depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = item{key: key, value: v}
		if !valueIsComment {
			comments[top] = []string{}
		}
	}
	return out, nil
}

func walkSlice(in []any, path []string, comments [][]string, fn leafFunc, depth int) ([]any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("values nest deeper than %d levels", maxDepth)
	}
	out := make([]any, len(in))
	comments = append(comments[:len(comments):len(comments)], []string{})
	top := len(comments) - 1
	for i, v := range in {
		c, isComment := v.(comment)
		if isComment {
			comments[top] = append(comments[top], c.value)
		}
		nv, err := walkValue(v, path, comments, fn, depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = nv
		if !isComment {
			comments[top] = []string{}
		}
	}
	return out, nil
}

func walkValue(v any, path []string, comments [][]string, fn leafFunc, depth int) (any, error) {
	switch x := v.(type) {
	case string, int, bool, float64, time.Time, comment:
		return fn(x, path, comments)
	case []byte:
		return fn(string(x), path, comments)
	case branch:
		return walkBranch(x, path, comments, fn, depth)
	case []any:
		return walkSlice(x, path, comments, fn, depth)
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("a value of type %T, which sops cannot hold (an integer beyond 64 bits?)", v)
}

// errMAC: the values do not match the file's MAC.
var errMAC = errors.New("MAC mismatch")

// decryptTree decrypts every value of f with key and checks the MAC, as
// `sops decrypt` does. An error names no value; a value that does not
// decrypt is errValue (wrapped with its path), a wrong MAC errMAC.
func (f *sopsFile) decryptTree(key []byte) ([]branch, error) {
	var h hash.Hash = sha512.New()
	if f.meta.macOnlyEncrypted {
		h.Write(macOnlyEncryptedInit)
	}
	fn := func(in any, path []string, comments [][]string) (any, error) {
		c, isComment := in.(comment)
		encrypted := f.meta.shouldBeEncrypted(path, comments, isComment)
		v := in
		if encrypted {
			ad := strings.Join(path, ":") + ":"
			switch s, isString := in.(string); {
			case isComment:
				var err error
				if v, err = decryptValue(c.value, key, ad); err != nil {
					v = c // sops keeps a comment that does not decrypt
				}
			case isString:
				var err error
				if v, err = decryptValue(s, key, ad); err != nil {
					return nil, fmt.Errorf("%w (at %s)", errValue, strings.Join(path, "."))
				}
			default:
				return nil, fmt.Errorf("%w (at %s: a %s where sops writes an encrypted string)", errValue, strings.Join(path, "."), typeName(in))
			}
		}
		if !f.meta.macOnlyEncrypted || encrypted {
			if _, isComment := v.(comment); !isComment {
				b, err := toBytes(v)
				if err != nil {
					return nil, err
				}
				h.Write(b)
			}
		}
		return v, nil
	}
	out := make([]branch, 0, len(f.branches))
	for _, b := range f.branches {
		d, err := walkBranch(b, nil, nil, fn, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	mac := fmt.Sprintf("%X", h.Sum(nil))
	stored, err := decryptValue(f.meta.mac, key, f.meta.lastModified.Format(time.RFC3339))
	if s, ok := stored.(string); err != nil || !ok || s != mac {
		return nil, errMAC
	}
	return out, nil
}

func typeName(v any) string {
	switch v.(type) {
	case int, float64:
		return "number"
	case bool:
		return "bool"
	case time.Time:
		return "timestamp"
	}
	return fmt.Sprintf("%T", v)
}

// maxDataKey caps what an age entry may decrypt to; a sops data key is 32
// bytes.
const maxDataKey = 1 << 10

// decryptDataKey recovers the data key from one age entry of a file.
func decryptDataKey(enc string, ids []age.Identity) ([]byte, error) {
	r, err := age.Decrypt(armor.NewReader(strings.NewReader(enc)), ids...)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(r, maxDataKey+1)); err != nil {
		return nil, err
	}
	if b.Len() > maxDataKey {
		return nil, errors.New("the data key is too long")
	}
	return b.Bytes(), nil
}
