package state

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/syncd-dev/syncd/internal/atomicfile"
)

// Each project has a stable directory, projects/<app>, where the relative
// paths of its compose files resolve (DESIGN §1): what the repository holds
// there is materialised before an apply, and what containers write there
// is data, kept across commits like a volume. Nothing in it is ever
// deleted by syncd.
const (
	projectsDir = "projects"
	// legacyDir holds the checkout a syncd before project directories
	// left behind, with what containers wrote into it, until every project
	// has moved its data out (Upgrade).
	legacyDir = "legacy-repo"
	// materialiseTmp marked a file being materialised by an older syncd;
	// now atomicfile.TempSuffix does. A leftover of a killed write is
	// removed by the next materialisation of its directory.
	materialiseTmp = ".syncd-materialise-"
)

// ProjectsDir is where the projects' stable directories lie.
func (s *Store) ProjectsDir() string { return filepath.Join(s.dir, projectsDir) }

// Upgrade prepares a state directory written by a syncd that resolved
// relative bind mounts inside its checkout (state/repo): that checkout,
// holding what containers wrote, is moved aside before a new checkout can
// replace it, so Materialise can move the data into the project
// directories. Call it with the lock held, before the first checkout.
func (s *Store) Upgrade() error {
	if s.readOnly {
		return ErrReadOnly
	}
	pd := s.ProjectsDir()
	if _, err := os.Stat(pd); err == nil {
		return nil
	}
	repo := filepath.Join(s.dir, "repo")
	if _, err := os.Lstat(repo); err == nil {
		if _, err := os.Lstat(filepath.Join(s.dir, legacyDir)); errors.Is(err, fs.ErrNotExist) {
			if err := os.Rename(repo, filepath.Join(s.dir, legacyDir)); err != nil {
				return fmt.Errorf("upgrade state directory: %w", err)
			}
		}
	}
	if err := os.MkdirAll(pd, 0o700); err != nil {
		return fmt.Errorf("upgrade state directory: %w", err)
	}
	return syncDir(s.dir)
}

// Materialise makes dst (a path in a project directory) ready before an
// apply. rel is the repository-relative path it stands for. With src (the
// repository's file or directory at rel) its content is copied in, file by
// file, each written atomically and only when it differs; files the
// repository does not have are left alone. Without src, dst is data: it is
// created as a directory if missing. Either way, when dst does not exist
// yet but the legacy checkout has rel, that is moved in first, so data a
// container wrote under an older syncd is kept.
func (s *Store) Materialise(dst, rel, src string, dir bool) error {
	if s.readOnly {
		return ErrReadOnly
	}
	if !strings.HasPrefix(dst, s.ProjectsDir()+string(filepath.Separator)) {
		return fmt.Errorf("materialise %s: not in %s", dst, s.ProjectsDir())
	}
	if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
		legacy := filepath.Join(s.dir, legacyDir, filepath.FromSlash(rel))
		if _, err := os.Lstat(legacy); err == nil {
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return fmt.Errorf("materialise %s: %w", rel, err)
			}
			if err := move(legacy, dst); err != nil {
				return fmt.Errorf("move %s from the old checkout into %s: %w", rel, dst, err)
			}
		}
	}
	if src == "" {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dst, err)
		}
		return nil
	}
	if !dir {
		return materialiseFile(src, dst)
	}
	return walkTree(src, func(rel string, d fs.DirEntry) error {
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return fmt.Errorf("materialise %s: %w", target, err)
			}
			return cleanTmp(target)
		}
		return materialiseFile(filepath.Join(src, rel), target)
	})
}

// materialiseFile copies src to dst atomically unless dst already has the
// same content. The mode keeps src's executable bits, readable by all (a
// container's user is rarely root).
func materialiseFile(src, dst string) error {
	if same, err := sameContent(src, dst); err != nil || same {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("materialise %s: not a regular file", src)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := atomicfile.Copy(dst, in, 0o644|st.Mode().Perm()&0o111); err != nil {
		return fmt.Errorf("materialise: %w", err)
	}
	return nil
}

func sameContent(a, b string) (bool, error) {
	da, err := fileDigest(a)
	if err != nil {
		return false, err
	}
	db, err := fileDigest(b)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return da == db, nil
}

func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Digest is a hash of what the repository holds at src, a file or a
// directory tree (names, executable bits and contents), for telling that
// materialised content changed.
func Digest(src string, dir bool) (string, error) {
	if !dir {
		return fileDigest(src)
	}
	h := sha256.New()
	err := walkTree(src, func(rel string, d fs.DirEntry) error {
		if d.IsDir() {
			fmt.Fprintf(h, "d %s\n", rel)
			return nil
		}
		sum, err := fileDigest(filepath.Join(src, rel))
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "f %s %o %s\n", rel, info.Mode().Perm()&0o111, sum)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// walkTree calls fn for every directory and regular file below src, by
// relative path in lexical order; .git is left out and anything else (a
// symlink, a device) is an error: it is not content syncd copies.
func walkTree(src string, fn func(rel string, d fs.DirEntry) error) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		switch {
		case d.IsDir() && d.Name() == ".git":
			return filepath.SkipDir
		case d.IsDir() || d.Type().IsRegular():
			return fn(rel, d)
		case d.Type()&fs.ModeSymlink != 0:
			// Render checked that links in a mounted tree stay inside the
			// repository; a link to a file is copied as that file.
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return fn(rel, fs.FileInfoToDirEntry(st))
			}
		}
		return fmt.Errorf("%s is a %v, not a regular file or directory (or a link to a file)", p, d.Type())
	})
}

// cleanTmp removes what a killed materialisation left in dir.
func cleanTmp(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, materialiseTmp) || strings.HasPrefix(n, ".") && strings.HasSuffix(n, atomicfile.TempSuffix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// move renames src to dst, copying across file systems (a local repository
// directory on another disk than the state directory).
func move(src, dst string) error {
	err := os.Rename(src, dst)
	if !errors.Is(err, syscall.EXDEV) {
		return err
	}
	if err := copyAll(src, dst); err != nil {
		return err
	}
	return nil // the source stays: it was not ours to delete
}

// copyAll copies a tree with its modes, symlinks as symlinks.
func copyAll(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
			if err != nil {
				return err
			}
			_, err = io.Copy(out, in)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			return err
		}
		return nil
	})
}

// skipClean reports the top-level directories cleanLeftovers does not walk:
// the projects' data, an older syncd's checkout with its data, and the Git
// checkout (repo, and repo.* beside it while a swap runs), whose files are
// the repository's, whatever their names.
func (s *Store) skipClean(p string) bool {
	rel, err := filepath.Rel(s.dir, p)
	if err != nil || strings.Contains(rel, string(filepath.Separator)) {
		return false
	}
	return rel == projectsDir || rel == legacyDir || rel == "repo" || strings.HasPrefix(rel, "repo.")
}
