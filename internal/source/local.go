// Package source owns where the desired state comes from and which
// revision it is at. A local directory (Local) is identified by a hash of
// its content, so an unchanged tree is the same "commit" on every cycle,
// and Watch tells when it changes. A Git URL (Git) is polled with one
// ls-remote (Head) and fetched shallow into a stable checkout only when
// its head moved (Checkout), after its signature is checked against the
// trusted keys (Signers: SSH allowed_signers, OpenPGP keyrings) when there
// are any. Trees reads the trees of any commits of a repository without a
// checkout of its work tree, for syncd diff. Git credentials (a token file, a deploy key with known_hosts)
// stay here: Git.Auth hands them to the status branch's writer, and no
// error of this package carries a token or a credential-bearing URL.
// It owns the SSHSIG format too: commit signatures are verified with it,
// and status documents signed and verified (SignSSHSig, VerifySSHSig);
// OriginURL reads a working copy's origin for `syncd enroll`.
//
// It is an adapter: with internal/status, the only package that imports
// go-git. It must not import the engine, the plan or reconcile.
package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Local is a desired-state repository in a local directory.
type Local struct {
	Dir string
}

// Head is the directory's Revision: a cycle's source head.
func (l Local) Head(context.Context) (string, error) { return l.Revision() }

// Checkout is the directory itself: there is nothing to fetch.
func (l Local) Checkout(context.Context, string) (string, error) { return l.Dir, nil }

// maxTreeFile is the largest file whose content is hashed; a larger one
// (a big asset, data left in a working copy) counts by its size and
// modification time, which any write changes, so a poll stays cheap.
const maxTreeFile = 8 << 20

// Revision identifies the directory's content: "tree-" and 16 bytes of a
// SHA-256 over every file's path, mode and content, and every symlink's
// target (.git left out).
func (l Local) Revision() (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(l.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(l.Dir, p)
		rel = filepath.ToSlash(rel)
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "l\x00%s\x00%s\x00", rel, target)
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "f\x00%s\x00%o\x00%d\x00", rel, info.Mode().Perm()&0o111, info.Size())
		if info.Size() > maxTreeFile {
			fmt.Fprintf(h, "%d\x00", info.ModTime().UnixNano())
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(h, f)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read %s: %w", l.Dir, err)
	}
	return "tree-" + hex.EncodeToString(h.Sum(nil)[:16]), nil
}
