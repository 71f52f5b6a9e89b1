package source

import (
	"errors"
	"fmt"
	"path/filepath"

	gogit "github.com/go-git/go-git/v5"
)

// OriginURL returns the URL of the remote "origin" of the Git working copy
// at dir (its top, a subdirectory, or a linked worktree), as Git reads its
// configuration. A plain path (a clone of /srv/fleet.git) comes back as a
// file:// URL, which Git and this package fetch.
func OriginURL(dir string) (string, error) {
	repo, err := gogit.PlainOpenWithOptions(dir, &gogit.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return "", fmt.Errorf("find the origin of %s: %w", dir, err)
	}
	remote, err := repo.Remote("origin")
	if errors.Is(err, gogit.ErrRemoteNotFound) {
		return "", fmt.Errorf("find the origin of %s: the repository has no remote \"origin\"", dir)
	}
	if err != nil {
		return "", fmt.Errorf("find the origin of %s: %w", dir, err)
	}
	urls := remote.Config().URLs
	if len(urls) == 0 || urls[0] == "" {
		return "", fmt.Errorf("find the origin of %s: the remote \"origin\" has no URL", dir)
	}
	u := urls[0]
	if IsURL(u) {
		return u, nil
	}
	// A local path, relative to the working copy's top when relative.
	if !filepath.IsAbs(u) {
		wt, err := repo.Worktree()
		if err != nil {
			return "", fmt.Errorf("find the origin of %s: %s is relative and the repository has no work tree: %w", dir, u, err)
		}
		u = filepath.Join(wt.Filesystem.Root(), u)
	}
	return "file://" + filepath.ToSlash(filepath.Clean(u)), nil
}
