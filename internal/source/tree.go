package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
)

// ErrUnknownRevision: the repository has no commit by that name.
var ErrUnknownRevision = errors.New("unknown revision")

// maxExportFile caps a file written out of a tree: a desired-state repository
// holds small text files, and a hostile commit must not fill the disk.
const maxExportFile = 16 << 20

// Trees reads the trees of commits of one repository, without a checkout of
// its work tree: a local repository (a directory inside one) or a Git URL,
// cloned into memory once (with the credentials of Git).
type Trees struct {
	repo    *gogit.Repository
	display string
}

// OpenTrees opens repo: a local directory inside a Git repository, or a
// URL, which is fetched whole into memory (every branch and tag) with g's
// credentials; g.URL is set to repo.
func OpenTrees(ctx context.Context, repo string, g *Git) (*Trees, error) {
	if !IsURL(repo) {
		r, err := gogit.PlainOpenWithOptions(repo, &gogit.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
		if err != nil {
			return nil, fmt.Errorf("open %s: %w; --repo must be a Git repository (or a directory inside one) or a Git URL", repo, err)
		}
		return &Trees{repo: r, display: repo}, nil
	}
	g.URL = repo
	if _, err := g.endpoint(); err != nil {
		return nil, err
	}
	auth, err := g.Auth()
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultDeadline(ctx, checkoutTimeout)
	defer cancel()
	r, err := gogit.CloneContext(ctx, memory.NewStorage(), nil, &gogit.CloneOptions{
		URL: repo, Auth: auth, RemoteName: "origin", NoCheckout: true, Tags: gogit.AllTags,
	})
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", g.displayURL(), g.redact(err))
	}
	return &Trees{repo: r, display: g.displayURL()}, nil
}

// Resolve returns the commit hash rev names: a hash (or its prefix), a
// branch, a tag, a remote branch (origin/main), HEAD, or an expression such
// as main~1.
func (t *Trees) Resolve(rev string) (string, error) {
	h, err := t.repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return "", fmt.Errorf("%w %q in %s (%v); check the name, and in CI fetch the whole history (actions/checkout with fetch-depth: 0)",
			ErrUnknownRevision, rev, t.display, err)
	}
	if _, err := t.repo.CommitObject(*h); err != nil {
		return "", fmt.Errorf("%w %q in %s: %s is not a commit here (%v); in CI fetch the whole history (fetch-depth: 0)",
			ErrUnknownRevision, rev, t.display, h, err)
	}
	return h.String(), nil
}

// Export writes the tree of commit into dest (which must be empty or not
// exist): regular and executable files, and symlinks as symlinks (the
// desired-state loader refuses any that leave the repository). Submodules
// are left out.
func (t *Trees) Export(ctx context.Context, commit, dest string) error {
	c, err := t.repo.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return fmt.Errorf("%w %s in %s: %v", ErrUnknownRevision, commit, t.display, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return fmt.Errorf("read the tree of %s: %w", short(commit), err)
	}
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return err
	}
	files := tree.Files()
	defer files.Close()
	return files.ForEach(func(f *object.File) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return writeTreeFile(dest, f, commit)
	})
}

func writeTreeFile(dest string, f *object.File, commit string) error {
	name := filepath.FromSlash(f.Name)
	if !filepath.IsLocal(name) {
		return fmt.Errorf("%s at %s: a path that leaves the repository", f.Name, short(commit))
	}
	full := filepath.Join(dest, name)
	if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
		return err
	}
	if f.Size > maxExportFile {
		return fmt.Errorf("%s at %s is %d bytes; a desired-state repository holds files of at most %d", f.Name, short(commit), f.Size, maxExportFile)
	}
	r, err := f.Reader()
	if err != nil {
		return fmt.Errorf("read %s at %s: %w", f.Name, short(commit), err)
	}
	defer r.Close()
	switch f.Mode {
	case filemode.Symlink:
		target, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("read %s at %s: %w", f.Name, short(commit), err)
		}
		return os.Symlink(strings.TrimSpace(string(target)), full)
	case filemode.Regular, filemode.Executable, filemode.Deprecated:
	default:
		return nil // a submodule: not part of the desired state
	}
	perm := os.FileMode(0o644)
	if f.Mode == filemode.Executable {
		perm = 0o755
	}
	out, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return fmt.Errorf("write %s at %s: %w", f.Name, short(commit), err)
	}
	return out.Close()
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
