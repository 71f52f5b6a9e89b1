// Package state owns syncd's state directory: what it last applied per
// project, the last-known-good snapshots used for rollback, and the key of
// the secret-value hashes. Every write is atomic (temp file, fsync, rename,
// directory fsync), so a `kill -9` at any instant leaves either the old or
// the new file. Nothing here ever holds a secret value: snapshots are copies
// of the repository, whose secrets files are still SOPS-encrypted.
//
// It must not import the engine, the source or reconcile.
package state

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/syncd-dev/syncd/internal/atomicfile"
	"github.com/syncd-dev/syncd/internal/plan"
)

// Store is one state directory.
type Store struct {
	dir string
	// readOnly stores (OpenReadOnly, for plan) write nothing.
	readOnly bool
	// ephemeral is the hash key of a read-only store that has none yet.
	ephemeral []byte
	// mu serialises snapshot writes: projects applied in parallel save
	// the same commit's snapshot.
	mu sync.Mutex
}

// Projects is projects.json: per project, what syncd last applied.
type Projects map[string]*Project

// Project is the record of one project.
type Project struct {
	Commit    string             `json:"commit"`
	AppliedAt time.Time          `json:"applied_at"`
	Services  map[string]Service `json:"services"`
	// LastGood is the last commit this project was healthy at; its
	// snapshot is what a failed release rolls back to.
	LastGood string `json:"last_good,omitempty"`
	// FailedCommit is held until a newer commit arrives.
	FailedCommit string    `json:"failed_commit,omitempty"`
	FailedError  string    `json:"failed_error,omitempty"`
	FailedAt     time.Time `json:"failed_at,omitzero"`
	// Data lists the paths of the project directory that hold what its
	// containers write (relative bind mounts the repository has no content
	// for): kept like volumes, for backups and the status.
	Data []string `json:"data,omitempty"`
}

// Service is a service as syncd last created it. Secrets holds keyed
// hashes (HMAC with the store's key), never values.
type Service struct {
	ConfigHash string            `json:"config_hash"`
	Image      string            `json:"image"`
	Secrets    map[string]string `json:"secrets,omitempty"`
	// Fields are its settings as applied (desired.Project.Fields: secret
	// values named, compared by keyed hash), so the next plan can name
	// the settings that changed.
	Fields plan.Fields `json:"fields,omitempty"`
}

const (
	projectsFile = "projects.json"
	keyFile      = "secrets-hash.key"
	snapshotsDir = "snapshots"
	tmpSuffix    = atomicfile.TempSuffix
)

// Open makes dir (0700) if needed. What a killed write left is removed by
// Lock, once this process holds the directory: removing it before would
// delete the half-written files of the syncd that does.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, snapshotsDir), 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return &Store{dir: dir}, nil
}

// ErrReadOnly is returned by the writes of a read-only store.
var ErrReadOnly = errors.New("the state directory is open read-only")

// OpenReadOnly opens dir for reading only, as `syncd plan` does: it creates
// nothing (dir may not exist: nothing was applied yet), takes no lock and
// writes nothing, so it can run beside an agent or a sync.
func OpenReadOnly(dir string) *Store {
	return &Store{dir: dir, readOnly: true}
}

// ReadOnly reports whether the store writes nothing (OpenReadOnly).
func (s *Store) ReadOnly() bool { return s.readOnly }

// Dir is the state directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) cleanLeftovers() error {
	return filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && s.skipClean(p) {
			return filepath.SkipDir
		}
		if strings.HasSuffix(d.Name(), tmpSuffix) {
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("remove leftover %s: %w", p, err)
			}
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
}

// Projects reads projects.json; a missing file is an empty record.
func (s *Store) Projects() (Projects, error) {
	p := filepath.Join(s.dir, projectsFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Projects{}, nil
	}
	if err != nil {
		return nil, err
	}
	ps := Projects{}
	if err := json.Unmarshal(data, &ps); err != nil {
		return nil, fmt.Errorf("%s: %w (move it aside to start afresh; running projects are kept)", p, err)
	}
	return ps, nil
}

// SaveProjects writes projects.json atomically, and not at all when its
// content would not change.
func (s *Store) SaveProjects(ps Projects) error {
	if s.readOnly {
		return ErrReadOnly
	}
	data, err := json.MarshalIndent(ps, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	p := filepath.Join(s.dir, projectsFile)
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return WriteFile(p, data, 0o600)
}

// HashKey returns the key for hashing secret values, made on first use. A
// keyed hash lets a plan tell that a value changed without storing anything
// that helps guess it.
func (s *Store) HashKey() ([]byte, error) {
	p := filepath.Join(s.dir, keyFile)
	key, err := os.ReadFile(p)
	if err == nil && len(key) == 32 {
		return key, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if s.readOnly {
		// Nothing was applied with a key yet: any key will do, and none
		// is written.
		if s.ephemeral == nil {
			s.ephemeral = make([]byte, 32)
			rand.Read(s.ephemeral)
		}
		return s.ephemeral, nil
	}
	key = make([]byte, 32)
	rand.Read(key)
	if err := WriteFile(p, key, 0o600); err != nil {
		return nil, err
	}
	return key, nil
}

// Keyed returns an HMAC of value with the store's key, for publishing
// something derived from a value that may hold a secret (Compose's config
// hash covers environment values): nobody without the key can test a
// guess against it.
func (s *Store) Keyed(value string) (string, error) {
	key, err := s.HashKey()
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(value))
	return hex.EncodeToString(mac.Sum(nil)[:16]), nil
}

// Snapshot returns the directory of commit's snapshot, and whether it exists.
func (s *Store) Snapshot(commit string) (string, bool) {
	p := filepath.Join(s.dir, snapshotsDir, safe(commit))
	fi, err := os.Stat(p)
	return p, err == nil && fi.IsDir()
}

// SaveSnapshot copies the repository at src as commit's snapshot (the
// secrets files stay encrypted). The copy is made beside and renamed into
// place, so a snapshot is either whole or absent.
func (s *Store) SaveSnapshot(commit, src string) error {
	if s.readOnly {
		return ErrReadOnly
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dst, ok := s.Snapshot(commit)
	if ok {
		return nil
	}
	tmp := dst + tmpSuffix
	os.RemoveAll(tmp)
	if err := copyTree(src, tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("snapshot %s: %w", commit, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("snapshot %s: %w", commit, err)
	}
	return syncDir(filepath.Dir(dst))
}

// PruneSnapshots removes the snapshots of every commit not in keep.
func (s *Store) PruneSnapshots(keep []string) error {
	if s.readOnly {
		return ErrReadOnly
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, snapshotsDir))
	if err != nil {
		return err
	}
	wanted := make([]string, 0, len(keep))
	for _, k := range keep {
		wanted = append(wanted, safe(k))
	}
	for _, e := range entries {
		if !slices.Contains(wanted, e.Name()) {
			if err := os.RemoveAll(filepath.Join(s.dir, snapshotsDir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// safe makes a commit id usable as a file name.
func safe(commit string) string {
	return strings.NewReplacer("/", "_", "\\", "_", "..", "_").Replace(commit)
}

// copyTree copies the repository at src for a snapshot. A symlink that
// stays inside the repository is copied as what it points to, since apply
// reads through it; one that leads out, or anything but files and
// directories, is not part of a desired state (render refuses using it).
func copyTree(src, dst string) error { return copyTreeDepth(src, dst, 0) }

// maxLinkDepth bounds links to directories followed into each other.
const maxLinkDepth = 8

func copyTreeDepth(src, dst string, depth int) error {
	if depth > maxLinkDepth {
		return nil
	}
	root, err := os.OpenRoot(src)
	if err != nil {
		return err
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return fs.SkipDir
		}
		target := filepath.Join(dst, filepath.FromSlash(p))
		mode := d.Type()
		if mode&fs.ModeSymlink != 0 {
			st, err := root.Stat(p)
			if err != nil {
				return nil // leads out of the repository, or nowhere
			}
			mode = st.Mode().Type()
			if st.IsDir() {
				// A link to a directory inside the repository (root.Stat
				// refuses one that leads out): its tree.
				resolved, err := filepath.EvalSymlinks(filepath.Join(src, filepath.FromSlash(p)))
				if err != nil {
					return nil
				}
				return copyTreeDepth(resolved, target, depth+1)
			}
		}
		switch {
		case mode.IsDir():
			return os.MkdirAll(target, 0o700)
		case mode.IsRegular():
			data, err := fs.ReadFile(root.FS(), p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, 0o600)
		}
		return nil
	})
}

// WriteFile writes data to path atomically (atomicfile.WriteFile: a temp
// file beside it, fsync, rename, then fsync of the directory).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return atomicfile.WriteFile(path, data, perm)
}

func syncDir(dir string) error { return atomicfile.SyncDir(dir) }

// CreateFile writes data to path atomically, as WriteFile does, but never
// replaces a file that is there (atomicfile.Create: the temp file is
// linked into place, and an existing path is an error wrapping
// fs.ErrExist). A key made at first start is whole or absent, and a
// second start never replaces it.
func CreateFile(path string, data []byte, perm os.FileMode) error {
	return atomicfile.Create(path, data, perm)
}
