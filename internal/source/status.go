package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
)

// DefaultStatusBranch names the status documents' branches: each host
// publishes its own, <name>-<host> (syncd/status-alpha), and the single
// branch <name> that every host of an older syncd pushed is still read for
// the hosts that have not published their own yet.
const DefaultStatusBranch = "syncd/status"

// Limits on what is read of another party's files: a status document is
// a few KiB, an ed25519 SSHSIG about 300 bytes. networkTimeout bounds one
// read or publication when ctx has no deadline.
const (
	networkTimeout     = 2 * time.Minute
	MaxStatusDocument  = 1 << 20
	MaxStatusSignature = 8 << 10
)

// ErrReadOnly marks a remote that refuses this host's pushes (HTTP 401/403
// on receive-pack, an ssh key without write access). The status stays
// local; the caller warns once.
var ErrReadOnly = errors.New("the status remote is read-only for this host")

// ErrNoStatus means no host has published a status document yet.
var ErrNoStatus = errors.New("no host has published its status yet: the status branches do not exist")

// errRejected marks a push refused because the branch moved under it.
var errRejected = errors.New("push rejected: the branch moved")

// StatusFile is one host's document as a branch holds it: its exact bytes
// and the signature beside it. The bytes are another party's (every host
// may push any branch): the caller parses and judges them.
type StatusFile struct {
	Host string
	Doc  []byte
	// Sig is hosts/<host>.yaml.sig, nil when there is none.
	Sig []byte
	// Branch is where it was read; Legacy when that is the single branch
	// of an older syncd.
	Branch string
	Legacy bool
}

// StatusBranches reads and publishes the status documents of a fleet on
// the remote of Git: one branch per host, so that hosts never contend for
// one ref (a push is rejected only when someone else wrote this host's
// branch). Nothing is checked out; everything lives in memory for the one
// operation.
type StatusBranches struct {
	Git *Git
	// Name is the branches' common name (DefaultStatusBranch when "").
	Name string
	// Rejected counts the pushes refused because the branch had moved
	// (someone else wrote this host's branch), each retried.
	Rejected atomic.Int64
	// Limits bound every fetch of the branches (zero: the defaults).
	Limits Limits
}

func (b *StatusBranches) name() string {
	if b.Name == "" {
		return DefaultStatusBranch
	}
	return b.Name
}

// Branch is the branch host publishes to.
func (b *StatusBranches) Branch(host string) string { return b.name() + "-" + host }

// Read fetches every host's branch, and the legacy single branch, in one
// listing and one fetch (depth 1), and returns each host's file; a host
// with a branch of its own is read from it, never from the legacy branch.
// A file that cannot be read (too large, a link, not a file) is named in
// the joined error; the others are returned, sorted by host.
func (b *StatusBranches) Read(ctx context.Context) ([]StatusFile, error) {
	ctx, cancel := withDefaultDeadline(ctx, networkTimeout)
	defer cancel()
	auth, err := b.Git.Auth()
	if err != nil {
		return nil, err
	}
	st := memory.NewStorage()
	remote := gogit.NewRemote(st, &config.RemoteConfig{Name: "origin", URLs: []string{b.Git.URL}})
	refs, err := remote.ListContext(ctx, &gogit.ListOptions{Auth: auth})
	switch {
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return nil, ErrNoStatus
	case err != nil:
		return nil, fmt.Errorf("list %s: %w", b.Git.displayURL(), b.Git.redact(err))
	}
	legacy := plumbing.NewBranchReferenceName(b.name())
	prefix := legacy.String() + "-"
	var specs []config.RefSpec
	for _, r := range refs {
		if n := r.Name(); n == legacy || (strings.HasPrefix(n.String(), prefix) && SafeName(strings.TrimPrefix(n.String(), prefix))) {
			specs = append(specs, config.RefSpec("+"+n.String()+":"+n.String()))
		}
	}
	if len(specs) == 0 {
		return nil, ErrNoStatus
	}
	var errs []error
	skipped := map[plumbing.ReferenceName]bool{}
	err = b.fetch(ctx, st, auth, specs)
	var le *LimitError
	if errors.As(err, &le) {
		// Some branch is over a limit (every host may push any of them):
		// each is fetched alone, and those over one are skipped, named,
		// so that the others' documents are still read.
		st = memory.NewStorage()
		for _, spec := range specs {
			name := plumbing.ReferenceName(spec.Dst(""))
			err := b.fetch(ctx, st, auth, []config.RefSpec{spec})
			switch {
			case errors.As(err, &le):
				skipped[name] = true
				errs = append(errs, fmt.Errorf("status branch %s skipped: %s, more than a status branch can hold (someone pushed it; once its host is fixed, delete it: git push origin :%s)", name.Short(), le, name.Short()))
			case err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) && !errors.Is(err, gogit.NoMatchingRefSpecError{}):
				return nil, fmt.Errorf("fetch %s of %s: %w", name.Short(), b.Git.displayURL(), b.Git.redact(err))
			}
		}
		err = nil
	}
	if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		return nil, fmt.Errorf("fetch the status branches of %s: %w", b.Git.displayURL(), b.Git.redact(err))
	}
	byHost := map[string]StatusFile{}
	for _, spec := range specs {
		name := plumbing.ReferenceName(spec.Dst(""))
		if skipped[name] {
			continue
		}
		ref, err := st.Reference(name)
		if err != nil {
			continue // listed, then gone before the fetch
		}
		c, err := object.GetCommit(st, ref.Hash())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name.Short(), err))
			continue
		}
		tree, err := c.Tree()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name.Short(), err))
			continue
		}
		if name == legacy {
			files, ferrs := readHostsTree(tree, name.Short(), "")
			errs = append(errs, ferrs...)
			for _, f := range files {
				if _, own := byHost[f.Host]; !own {
					f.Legacy = true
					byHost[f.Host] = f
				}
			}
			continue
		}
		host := strings.TrimPrefix(name.String(), prefix)
		files, ferrs := readHostsTree(tree, name.Short(), host)
		errs = append(errs, ferrs...)
		if len(files) == 1 {
			byHost[host] = files[0] // its own branch wins over the legacy one
		}
	}
	out := make([]StatusFile, 0, len(byHost))
	for _, f := range byHost {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b StatusFile) int { return strings.Compare(a.Host, b.Host) })
	return out, errors.Join(errs...)
}

// fetch fetches specs into st within b.Limits.
func (b *StatusBranches) fetch(ctx context.Context, st *memory.Storage, auth transport.AuthMethod, specs []config.RefSpec) error {
	return fetchBounded(ctx, st, b.Git.URL, auth, specs, b.Limits)
}

// readHostsTree reads hosts/<host>.yaml (and .sig) of a status tree: only
// the named host's for its own branch, every host's for the legacy one.
func readHostsTree(root *object.Tree, branch, only string) ([]StatusFile, []error) {
	hosts, err := root.Tree("hosts")
	if err != nil {
		return nil, []error{fmt.Errorf("%s has no hosts/ directory", branch)}
	}
	var (
		out  []StatusFile
		errs []error
	)
	for _, e := range hosts.Entries {
		host, ok := strings.CutSuffix(e.Name, ".yaml")
		if !ok || (only != "" && host != only) {
			continue
		}
		where := branch + ":hosts/" + e.Name
		if e.Mode != filemode.Regular && e.Mode != filemode.Executable {
			errs = append(errs, fmt.Errorf("%s: not a regular file (%s), not a status document", where, e.Mode))
			continue
		}
		if !SafeName(host) {
			errs = append(errs, fmt.Errorf("%s: %q is not a host name", where, host))
			continue
		}
		doc, err := readBlob(hosts, e, MaxStatusDocument)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		f := StatusFile{Host: host, Doc: doc, Branch: branch}
		// A signature that cannot be read is no signature: the document
		// is then judged as unsigned.
		if se, err := hosts.FindEntry(e.Name + ".sig"); err == nil && se.Mode == filemode.Regular {
			if sig, err := readBlob(hosts, *se, MaxStatusSignature); err == nil {
				f.Sig = sig
			}
		}
		out = append(out, f)
	}
	return out, errs
}

func readBlob(t *object.Tree, e object.TreeEntry, limit int64) ([]byte, error) {
	f, err := t.TreeEntryFile(&e)
	if err != nil {
		return nil, err
	}
	if f.Size > limit {
		return nil, fmt.Errorf("%d bytes, more than one can be (%d)", f.Size, limit)
	}
	r, err := f.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, limit))
}

// SafeName reports whether name is safe as one component of a branch and
// of a path (a guard against another party's names; the repository's own
// rule for host names is package desired's).
func SafeName(name string) bool {
	if name == "" || len(name) > 253 || strings.Contains(name, "..") {
		return false
	}
	for i, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '-' || c == '_' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// ID names the remote and the branches without credentials: a hash, since
// the URL may hold one.
func (b *StatusBranches) ID() string {
	sum := sha256.Sum256([]byte(b.Git.URL + "\x00" + b.name()))
	return hex.EncodeToString(sum[:8])
}

// Publish commits doc (and sig, when not nil) as hosts/<host>.yaml on the
// host's own branch, on top of its tip, and pushes it. It reports whether
// it made a commit (false: the branch already holds exactly this). Only
// this host writes its branch, so a push is rejected only when someone
// else wrote it meanwhile; it is retried on the new tip a few times.
func (b *StatusBranches) Publish(ctx context.Context, host string, doc, sig []byte, message string, when time.Time) (bool, error) {
	if !SafeName(host) {
		return false, fmt.Errorf("status: host name %q cannot be a branch name", host)
	}
	branch := plumbing.NewBranchReferenceName(b.Branch(host))
	if err := branch.Validate(); err != nil {
		return false, fmt.Errorf("status branch %q: %w", branch.Short(), err)
	}
	auth, err := b.Git.Auth()
	if err != nil {
		return false, err
	}
	var last error
	for attempt := 1; attempt <= 4; attempt++ {
		committed, err := b.publishOnce(ctx, auth, branch, host, doc, sig, message, when)
		if !errors.Is(err, errRejected) {
			if err != nil {
				return false, fmt.Errorf("push %s: %w", branch.Short(), b.Git.redact(err))
			}
			return committed, nil
		}
		last = err
		b.Rejected.Add(1)
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
	return false, fmt.Errorf("push %s: %w", branch.Short(), b.Git.redact(last))
}

func (b *StatusBranches) publishOnce(ctx context.Context, auth transport.AuthMethod, branch plumbing.ReferenceName, host string, doc, sig []byte, message string, when time.Time) (bool, error) {
	ctx, cancel := withDefaultDeadline(ctx, networkTimeout)
	defer cancel()
	st := memory.NewStorage()
	remote := gogit.NewRemote(st, &config.RemoteConfig{Name: "origin", URLs: []string{b.Git.URL}})
	var parents []plumbing.Hash
	var base *object.Tree
	force := false
	err := b.fetch(ctx, st, auth, []config.RefSpec{config.RefSpec("+" + branch + ":" + branch)})
	var le *LimitError
	switch {
	case errors.As(err, &le):
		// Someone pushed this host's branch over a limit: it is
		// replaced by a new branch of the one document, not read.
		st = memory.NewStorage()
		remote = gogit.NewRemote(st, &config.RemoteConfig{Name: "origin", URLs: []string{b.Git.URL}})
		force = true
	case err == nil, errors.Is(err, gogit.NoErrAlreadyUpToDate):
		ref, err := st.Reference(branch)
		if err != nil {
			return false, err
		}
		tip, err := object.GetCommit(st, ref.Hash())
		if err != nil {
			return false, err
		}
		parents = []plumbing.Hash{tip.Hash}
		if base, err = tip.Tree(); err != nil {
			return false, err
		}
	case errors.Is(err, transport.ErrEmptyRemoteRepository), errors.Is(err, gogit.NoMatchingRefSpecError{}):
		// The host's first document: a new branch.
	default:
		return false, fmt.Errorf("fetch: %w", err)
	}
	docBlob, err := putBlob(st, doc)
	if err != nil {
		return false, err
	}
	entries := []object.TreeEntry{{Name: host + ".yaml", Mode: filemode.Regular, Hash: docBlob}}
	if sig != nil {
		sigBlob, err := putBlob(st, sig)
		if err != nil {
			return false, err
		}
		entries = append(entries, object.TreeEntry{Name: host + ".yaml.sig", Mode: filemode.Regular, Hash: sigBlob})
	}
	hostsTree, err := putTree(st, entries)
	if err != nil {
		return false, err
	}
	root, err := putTree(st, []object.TreeEntry{{Name: "hosts", Mode: filemode.Dir, Hash: hostsTree}})
	if err != nil {
		return false, err
	}
	if base != nil && root == base.Hash {
		return false, nil
	}
	who := object.Signature{Name: "syncd " + host, Email: "syncd@" + host, When: when}
	c := &object.Commit{Author: who, Committer: who, Message: message, TreeHash: root, ParentHashes: parents}
	obj := st.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return false, err
	}
	commit, err := st.SetEncodedObject(obj)
	if err != nil {
		return false, err
	}
	if err := st.SetReference(plumbing.NewHashReference(branch, commit)); err != nil {
		return false, err
	}
	spec := config.RefSpec(branch + ":" + branch)
	if force {
		spec = "+" + spec
	}
	err = remote.PushContext(ctx, &gogit.PushOptions{RemoteName: "origin", Auth: auth, RefSpecs: []config.RefSpec{spec}})
	if err != nil {
		return false, classifyPush(err)
	}
	return true, nil
}

// classifyPush tells a push that lost a race (retry on the new tip) from a
// remote that refuses writes (ErrReadOnly) from anything else.
func classifyPush(err error) error {
	msg := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, transport.ErrAuthorizationFailed), errors.Is(err, transport.ErrAuthenticationRequired),
		// The fetch just worked with the same credentials: a server that
		// now says "not found" or "denied" means no write access.
		errors.Is(err, transport.ErrRepositoryNotFound),
		strings.Contains(msg, "permission denied"), strings.Contains(msg, "read only"),
		strings.Contains(msg, "read-only"), strings.Contains(msg, "write access"):
		return fmt.Errorf("%w: %w", ErrReadOnly, err)
	case errors.Is(err, gogit.ErrForceNeeded),
		strings.Contains(msg, "non-fast-forward"),
		// go-git checks fast-forward by walking from our commit to the tip
		// the push advertised; when that tip is newer than our depth-1
		// fetch, the walk runs off the shallow history.
		errors.Is(err, plumbing.ErrObjectNotFound),
		strings.Contains(msg, "command error on"):
		return fmt.Errorf("%w: %w", errRejected, err)
	}
	return err
}

func putBlob(st storer.EncodedObjectStorer, data []byte) (plumbing.Hash, error) {
	obj := st.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(data)))
	wr, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := wr.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := wr.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return st.SetEncodedObject(obj)
}

// putTree stores a tree of entries, in Git's order (by name, a directory
// compared as if it ended in "/").
func putTree(st storer.EncodedObjectStorer, entries []object.TreeEntry) (plumbing.Hash, error) {
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	slices.SortFunc(entries, func(a, b object.TreeEntry) int { return strings.Compare(key(a), key(b)) })
	obj := st.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return st.SetEncodedObject(obj)
}
