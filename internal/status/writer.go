package status

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
	"gopkg.in/yaml.v3"

	"github.com/syncd-dev/syncd/internal/state"
)

// DefaultBranch is the status branch unless configured otherwise.
const DefaultBranch = "syncd/status"

// ErrReadOnly marks a remote that refuses this host's pushes (HTTP 401/403
// on receive-pack, an ssh key without write access). The status stays
// local; the caller warns once.
var ErrReadOnly = errors.New("the status remote is read-only for this host")

// errRejected marks a push refused because the branch moved under it:
// another host pushed first. It is retried on the new tip.
var errRejected = errors.New("push rejected: the status branch moved")

// Writer commits one host's status document to the status branch.
//
// Each attempt fetches the branch tip into memory (depth 1), builds a commit
// on it that replaces only hosts/<Host>.yaml, and pushes it without force.
// Nothing is checked out: the tree is edited as objects, so a crash leaves
// no half-written working copy, and nothing of the branch's history
// accumulates on the host.
type Writer struct {
	// URL of the desired-state repository. Credentials belong in Auth.
	URL string
	// Branch is the status branch (default syncd/status).
	Branch string
	Auth   transport.AuthMethod
	// Dir is the writer's directory under the state directory (e.g.
	// state/status-repo); it remembers the last document pushed.
	Dir string
	// StateDir, when set, receives status.json (WriteLocal) on every Write,
	// before any network, so `syncd status` works when the remote does not.
	StateDir string
	// Host is this host's name: its file is hosts/<Host>.yaml.
	Host string
	// Key, when set, signs every document pushed (hosts/<Host>.yaml.sig)
	// and is published in it (status_key); nil pushes it unsigned.
	Key *Key
	// Heartbeat is the longest an unchanged document goes without a commit
	// (default 1h).
	Heartbeat time.Duration
	// Redact is applied to every error string of the document before it
	// is written anywhere, in addition to the caller's own redaction.
	Redact func(string) string
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxAttempts bounds the pushes of one Write (default 8).
	MaxAttempts int
	// Pushed, when set, is told of each Write that committed: how many
	// attempts it took (1: no push was rejected) and how long it took.
	Pushed func(attempts int, took time.Duration)

	mu sync.Mutex // one Write at a time: they share Dir

	readerOnce sync.Once
	reader     *Reader
}

// Backoff between rejected pushes: exponential from backoffStart, capped at
// backoffCap, with full jitter so contending hosts spread out.
const (
	backoffStart = 50 * time.Millisecond
	backoffCap   = 2 * time.Second
	// networkTimeout bounds each fetch and push when ctx has no deadline.
	networkTimeout = 2 * time.Minute
)

const lastFile = "last.yaml"

// last is what Dir remembers: the document last pushed, and to where.
type last struct {
	// Remote identifies URL and branch by a hash: the URL may carry a
	// credential.
	Remote   string `yaml:"remote"`
	Document Host   `yaml:"document"`
}

var hostName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Write writes h as this host's status: locally (when StateDir is set), and
// to the status branch when it differs from the last document pushed or
// the last push is older than Heartbeat. It reports whether it made a
// commit. A push rejected because another host pushed first is retried on
// the new tip, with backoff, up to MaxAttempts.
func (w *Writer) Write(ctx context.Context, h Host) (committed bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.Dir == "" {
		return false, errors.New("status: the writer has no directory (Writer.Dir)")
	}
	if !hostName.MatchString(w.Host) || strings.Contains(w.Host, "..") {
		return false, fmt.Errorf("status: host name %q cannot be a file name", w.Host)
	}
	if h.Host == "" {
		h.Host = w.Host
	}
	if h.Host != w.Host {
		return false, fmt.Errorf("status: a document of host %q given to the writer of %q", h.Host, w.Host)
	}
	branch := w.branch()
	if err := plumbing.NewBranchReferenceName(branch).Validate(); err != nil {
		return false, fmt.Errorf("status branch %q: %w", branch, err)
	}
	now := w.now()
	doc := redacted(normalise(h), w.Redact)
	doc.UpdatedAt = now.UTC().Truncate(time.Second)
	if w.Key != nil {
		doc.StatusKey = w.Key.Public()
	}

	if w.StateDir != "" {
		if err := WriteLocal(w.StateDir, doc); err != nil {
			return false, err
		}
	}
	prev, ok := w.last()
	if ok && Equal(prev, doc) && now.Sub(prev.UpdatedAt) < w.heartbeat() {
		return false, nil
	}
	// Readers order a host's documents by (updated_at, sequence): the
	// sequence tells two of the same second apart.
	doc.Sequence = prev.Sequence + 1

	attempts := w.MaxAttempts
	if attempts <= 0 {
		attempts = 8
	}
	started := time.Now()
	for attempt := 1; ; attempt++ {
		began := time.Now()
		committed, err = w.push(ctx, branch, doc)
		if err == nil {
			if w.Pushed != nil && committed {
				w.Pushed(attempt, time.Since(started))
			}
			break
		}
		if !errors.Is(err, errRejected) || attempt >= attempts {
			if errors.Is(err, errRejected) {
				err = fmt.Errorf("%w (%d attempts)", err, attempt)
			}
			return false, w.scrub(fmt.Errorf("push status to %s: %w", branch, err))
		}
		d := backoff(attempt, time.Since(began))
		w.log().Debug("status push rejected; retrying on the new tip", "attempt", attempt, "backoff", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-t.C:
		}
	}
	if err := w.remember(doc); err != nil {
		return committed, err
	}
	if committed {
		w.log().Info("status committed", "branch", branch, "state", doc.State, "applied", short(doc.AppliedCommit))
	}
	return committed, nil
}

// Fleet reads every host's document from the status branch the writer
// pushes to and judges it against keys (Reader.Read), remembering the
// newest verified document per host in Dir: what the wave gate judges by.
func (w *Writer) Fleet(ctx context.Context, keys Keys) ([]Host, error) {
	w.readerOnce.Do(func() {
		w.reader = &Reader{URL: w.URL, Branch: w.branch(), Auth: w.Auth, Memory: filepath.Join(w.Dir, seenFile), Now: w.now}
	})
	return w.reader.Read(ctx, keys)
}

// seenFile, in Dir, remembers the newest verified document of each host.
const seenFile = "seen.json"

// backoff is the pause after the attempt-th rejected push, which took
// took: exponential with full jitter above a quarter of the step. The step
// starts at backoffStart and is capped at backoffCap, both stretched to the
// time an attempt takes: contending hosts spread out only over a window of
// several attempts, and an attempt takes 50 ms on a LAN but a second or
// more to a forge across the Internet.
func backoff(attempt int, took time.Duration) time.Duration {
	step, ceiling := max(backoffStart, took), max(backoffCap, 16*took)
	d := ceiling
	if attempt < 32 {
		d = min(step<<(attempt-1), ceiling)
	}
	return d/4 + rand.N(d*3/4+1)
}

// push is one attempt: fetch the tip, replace this host's file, commit,
// push. It returns errRejected when the branch moved meanwhile.
func (w *Writer) push(ctx context.Context, branch string, doc Host) (bool, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, networkTimeout)
		defer cancel()
	}
	st := memory.NewStorage()
	remote := git.NewRemote(st, &config.RemoteConfig{Name: "origin", URLs: []string{w.URL}})
	local := plumbing.NewBranchReferenceName(branch)

	tip, err := fetchTip(ctx, remote, st, branch, w.Auth)
	if err != nil {
		return false, err
	}
	data, err := marshal(doc)
	if err != nil {
		return false, err
	}
	var parents []plumbing.Hash
	var base *object.Tree
	if tip != nil {
		parents = []plumbing.Hash{tip.Hash}
		if base, err = tip.Tree(); err != nil {
			return false, err
		}
	}
	blob, err := putBlob(st, data)
	if err != nil {
		return false, err
	}
	// The signature is over the document's exact bytes; without a key, a
	// signature left beside an older document goes with it.
	sigBlob := plumbing.ZeroHash
	if w.Key != nil {
		sig, err := w.Key.Sign(data)
		if err != nil {
			return false, err
		}
		if sigBlob, err = putBlob(st, []byte(sig)); err != nil {
			return false, err
		}
	}
	root, err := putTree(st, base, []string{"hosts"}, map[string]plumbing.Hash{w.Host + ".yaml": blob, w.Host + ".yaml" + sigSuffix: sigBlob})
	if err != nil {
		return false, err
	}
	if base != nil && root == base.Hash {
		return false, nil // the branch already says exactly this
	}
	sig := object.Signature{Name: "syncd " + w.Host, Email: "syncd@" + w.Host, When: doc.UpdatedAt}
	c := &object.Commit{
		Author:       sig,
		Committer:    sig,
		Message:      fmt.Sprintf("status: %s %s at %s\n", w.Host, doc.State, short(doc.AppliedCommit)),
		TreeHash:     root,
		ParentHashes: parents,
	}
	obj := st.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return false, err
	}
	commit, err := st.SetEncodedObject(obj)
	if err != nil {
		return false, err
	}
	if err := st.SetReference(plumbing.NewHashReference(local, commit)); err != nil {
		return false, err
	}
	err = remote.PushContext(ctx, &git.PushOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{config.RefSpec(local + ":" + local)},
		Auth:       w.Auth,
	})
	if err != nil {
		return false, classifyPush(err)
	}
	return true, nil
}

// fetchTip fetches branch at depth 1 into st and returns its tip, or nil
// when the branch (or the whole repository) is empty.
func fetchTip(ctx context.Context, remote *git.Remote, st *memory.Storage, branch string, auth transport.AuthMethod) (*object.Commit, error) {
	tracking := plumbing.NewRemoteReferenceName("origin", branch)
	err := remote.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{config.RefSpec("+" + plumbing.NewBranchReferenceName(branch) + ":" + tracking)},
		Depth:      1,
		Auth:       auth,
		Tags:       git.NoTags,
	})
	switch {
	case errors.Is(err, transport.ErrEmptyRemoteRepository), errors.Is(err, git.NoMatchingRefSpecError{}):
		return nil, nil
	case err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate):
		return nil, fmt.Errorf("fetch %s: %w", branch, err)
	}
	ref, err := st.Reference(tracking)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", branch, err)
	}
	return object.GetCommit(st, ref.Hash())
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
	case errors.Is(err, git.ErrForceNeeded),
		strings.Contains(msg, "non-fast-forward"),
		// go-git checks fast-forward by walking from our commit to the tip
		// the push advertised; when that tip is newer than our depth-1
		// fetch, the walk runs off the shallow history.
		errors.Is(err, plumbing.ErrObjectNotFound),
		// The server refused the ref update: another push took the lock
		// or moved the branch between advertisement and update.
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

// putTree stores a copy of base (nil: an empty tree) in which the
// directory path holds files (name to blob; a zero hash removes the
// name), and returns the new tree's hash. Every other entry is kept as it
// is: another host's file is never touched.
func putTree(st storer.EncodedObjectStorer, base *object.Tree, path []string, files map[string]plumbing.Hash) (plumbing.Hash, error) {
	var entries []object.TreeEntry
	if base != nil {
		entries = slices.Clone(base.Entries)
	}
	index := func(name string) int {
		return slices.IndexFunc(entries, func(e object.TreeEntry) bool { return e.Name == name })
	}
	set := func(e object.TreeEntry) {
		if i := index(e.Name); i >= 0 {
			entries[i] = e
		} else {
			entries = append(entries, e)
		}
	}
	if len(path) == 0 {
		for name, blob := range files {
			if blob.IsZero() {
				if i := index(name); i >= 0 {
					entries = slices.Delete(entries, i, i+1)
				}
				continue
			}
			set(object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: blob})
		}
	} else {
		name := path[0]
		var sub *object.Tree
		if i := index(name); i >= 0 && entries[i].Mode == filemode.Dir {
			var err error
			if sub, err = object.GetTree(st, entries[i].Hash); err != nil {
				return plumbing.ZeroHash, fmt.Errorf("%s: %w", name, err)
			}
		}
		h, err := putTree(st, sub, path[1:], files)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		set(object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h})
	}
	// Git's order: by name, a directory compared as if it ended in "/".
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	slices.SortFunc(entries, func(a, b object.TreeEntry) int { return strings.Compare(key(a), key(b)) })
	t := &object.Tree{Entries: entries}
	obj := st.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return st.SetEncodedObject(obj)
}

// last reads what Dir remembers for this URL and branch.
func (w *Writer) last() (Host, bool) {
	data, err := os.ReadFile(filepath.Join(w.Dir, lastFile))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			w.log().Warn("status: cannot read the last document pushed; pushing again", "err", err)
		}
		return Host{}, false
	}
	var l last
	if err := yaml.Unmarshal(data, &l); err != nil || l.Remote != w.remoteID() {
		return Host{}, false
	}
	return l.Document, true
}

func (w *Writer) remember(doc Host) error {
	if err := os.MkdirAll(w.Dir, 0o700); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	data, err := yaml.Marshal(last{Remote: w.remoteID(), Document: doc})
	if err != nil {
		return err
	}
	return state.WriteFile(filepath.Join(w.Dir, lastFile), data, 0o600)
}

func (w *Writer) remoteID() string {
	sum := sha256.Sum256([]byte(w.URL + "\x00" + w.branch()))
	return hex.EncodeToString(sum[:8])
}

// scrub blanks a password in the URL out of err's text, should a library
// ever quote the URL whole; the error chain is kept for errors.Is.
func (w *Writer) scrub(err error) error {
	u, perr := url.Parse(w.URL)
	if perr != nil || u.User == nil {
		return err
	}
	pass, ok := u.User.Password()
	if !ok || pass == "" || !strings.Contains(err.Error(), pass) {
		return err
	}
	return &scrubbed{msg: strings.ReplaceAll(err.Error(), pass, "xxxxx"), err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

func (w *Writer) branch() string {
	if w.Branch == "" {
		return DefaultBranch
	}
	return w.Branch
}

func (w *Writer) heartbeat() time.Duration {
	if w.Heartbeat <= 0 {
		return time.Hour
	}
	return w.Heartbeat
}

func (w *Writer) now() time.Time {
	if w.Now == nil {
		return time.Now()
	}
	return w.Now()
}

func (w *Writer) log() *slog.Logger {
	if w.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return w.Logger
}

// short is a commit as the table and commit messages show it.
func short(commit string) string {
	if commit == "" {
		return "-"
	}
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
