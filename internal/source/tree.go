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
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/syncd-dev/syncd/internal/abbrev"
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
	// fetchMore fetches the forge's pull-request heads, once, for a
	// commit hash that no branch or tag holds (a pull request from a fork);
	// nil for a local repository.
	fetchMore func(ctx context.Context) error
}

// OpenTrees opens repo: a local directory inside a Git repository, or a
// URL, whose branches and tags are fetched into memory (with g's
// credentials; g.URL is set to repo). The fetch names every ref it wants,
// from one listing of the remote, rather than cloning the remote's HEAD: a
// bare repository whose HEAD names a branch it lacks is common (git init
// --bare, then a push of main), and a clone of it fails. Branches are
// fetched both as refs/heads/<b> and as refs/remotes/origin/<b>, so `main`
// and `origin/main` both resolve, as in a CI checkout. syncd's own status
// branches are left out: they are not desired state, and they grow by a
// commit per host change.
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
	r, err := gogit.Init(memory.NewStorage(), nil)
	if err != nil {
		return nil, err
	}
	remote, err := r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{repo}})
	if err != nil {
		return nil, err
	}
	refs, err := remote.ListContext(ctx, &gogit.ListOptions{Auth: auth})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", g.displayURL(), g.redact(err))
	}
	var specs []config.RefSpec
	for _, ref := range refs {
		name := ref.Name()
		switch {
		case name.IsBranch() && !strings.HasPrefix(name.Short(), "syncd/"):
			specs = append(specs,
				config.RefSpec("+"+name.String()+":"+name.String()),
				config.RefSpec("+"+name.String()+":"+plumbing.NewRemoteReferenceName("origin", name.Short()).String()))
		case name.IsTag():
			specs = append(specs, config.RefSpec("+"+name.String()+":"+name.String()))
		}
	}
	if len(specs) > 0 {
		err = remote.FetchContext(ctx, &gogit.FetchOptions{Auth: auth, RefSpecs: specs, Tags: gogit.NoTags})
		if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
			return nil, fmt.Errorf("fetch %s: %w", g.displayURL(), g.redact(err))
		}
	}
	t := &Trees{repo: r, display: g.displayURL()}
	t.fetchMore = func(ctx context.Context) error {
		t.fetchMore = nil
		ctx, cancel := withDefaultDeadline(ctx, checkoutTimeout)
		defer cancel()
		err := remote.FetchContext(ctx, &gogit.FetchOptions{Auth: auth, Tags: gogit.NoTags, RefSpecs: []config.RefSpec{
			"+refs/pull/*/head:refs/pull/*/head",                     // GitHub, Gitea, Forgejo
			"+refs/merge-requests/*/head:refs/merge-requests/*/head", // GitLab
		}})
		if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) && !errors.Is(err, gogit.NoMatchingRefSpecError{}) {
			return fmt.Errorf("fetch the pull requests of %s: %w", g.displayURL(), g.redact(err))
		}
		return nil
	}
	return t, nil
}

// Resolve returns the commit hash rev names: a hash (or its prefix), a
// branch, a tag, a remote branch (origin/main), HEAD, or an expression such
// as main~1.
func (t *Trees) Resolve(ctx context.Context, rev string) (string, error) {
	h, err := t.repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil && t.fetchMore != nil && isHex(rev) {
		if ferr := t.fetchMore(ctx); ferr != nil {
			return "", ferr
		}
		h, err = t.repo.ResolveRevision(plumbing.Revision(rev))
	}
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
// are left out. The tree is untrusted (a pull request from a fork): every
// write goes through dest's os.Root, so a crafted tree that holds a name
// twice, a symlink and a directory beneath it, or a name that leaves dest
// is refused and never writes outside dest.
func (t *Trees) Export(ctx context.Context, commit, dest string) error {
	c, err := t.repo.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return fmt.Errorf("%w %s in %s: %v", ErrUnknownRevision, commit, t.display, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return fmt.Errorf("read the tree of %s: %w", abbrev.Commit(commit), err)
	}
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return err
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return err
	}
	defer root.Close()
	files := tree.Files()
	defer files.Close()
	return files.ForEach(func(f *object.File) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return writeTreeFile(root, f, commit)
	})
}

func writeTreeFile(root *os.Root, f *object.File, commit string) error {
	name := filepath.FromSlash(f.Name)
	at := abbrev.Commit(commit)
	if !filepath.IsLocal(name) {
		return fmt.Errorf("%s at %s: a path that leaves the repository", f.Name, at)
	}
	if f.Size > maxExportFile {
		return fmt.Errorf("%s at %s is %d bytes; a desired-state repository holds files of at most %d", f.Name, at, f.Size, maxExportFile)
	}
	switch f.Mode {
	case filemode.Symlink, filemode.Regular, filemode.Executable, filemode.Deprecated:
	default:
		return nil // a submodule: not part of the desired state
	}
	refuse := func(err error) error {
		return fmt.Errorf("%s at %s: %w (a tree Git itself never makes: a name twice, or a file beneath a symlink)", f.Name, at, err)
	}
	if dir := filepath.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o700); err != nil {
			return refuse(err)
		}
	}
	r, err := f.Reader()
	if err != nil {
		return fmt.Errorf("read %s at %s: %w", f.Name, at, err)
	}
	defer r.Close()
	if f.Mode == filemode.Symlink {
		target, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("read %s at %s: %w", f.Name, at, err)
		}
		if err := root.Symlink(strings.TrimSpace(string(target)), name); err != nil {
			return refuse(err)
		}
		return nil
	}
	perm := os.FileMode(0o644)
	if f.Mode == filemode.Executable {
		perm = 0o755
	}
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return refuse(err)
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return fmt.Errorf("write %s at %s: %w", f.Name, at, err)
	}
	return out.Close()
}

// isHex reports whether rev could be a commit hash or its prefix.
func isHex(rev string) bool {
	if len(rev) < 4 || len(rev) > 64 {
		return false
	}
	for _, c := range rev {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}
