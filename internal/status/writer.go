package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/state"
)

// DefaultBranch is the status branches' name unless configured otherwise:
// each host publishes to <name>-<host> (source.StatusBranches).
const DefaultBranch = source.DefaultStatusBranch

// ErrReadOnly marks a remote that refuses this host's pushes (HTTP 401/403
// on receive-pack, an ssh key without write access). The status stays
// local; the caller warns once.
var ErrReadOnly = source.ErrReadOnly

// Publisher puts one host's document on its status branch
// (source.StatusBranches): doc's exact bytes, and its signature when sig is
// not nil. It reports whether it made a commit.
type Publisher interface {
	Publish(ctx context.Context, host string, doc, sig []byte, message string, when time.Time) (bool, error)
	// ID names where it publishes (without credentials): a document
	// remembered as published elsewhere is published again.
	ID() string
}

// Writer is the one writer of a host's status document: locally
// (state/status.json, for `syncd status`, before any network) and, through
// its Publisher, on the host's status branch when the document changed or
// the last publication is older than Heartbeat.
//
// Writes are latest-wins: a Write that finds a newer document already
// published, or being published, returns without publishing its own. Only
// the publication waits for the network; nothing of the caller's is held
// meanwhile.
type Writer struct {
	// Publisher publishes the document; nil keeps it local.
	Publisher Publisher
	// Branches, when set, is where Fleet reads every host's document.
	Branches Branches
	// Dir is the writer's directory under the state directory (e.g.
	// state/status-repo); it remembers the last document published and
	// the documents seen of other hosts.
	Dir string
	// StateDir receives status.json (WriteLocal) on every Write.
	StateDir string
	// Host is this host's name.
	Host string
	// Key, when set, signs every document published (hosts/<Host>.yaml.sig)
	// and is published in it (status_key); nil publishes it unsigned.
	Key *Key
	// Heartbeat is the longest an unchanged document goes without a commit
	// (default 1h).
	Heartbeat time.Duration
	// Redact is the status document's one redaction: applied to every
	// error string of it before it is written anywhere (the host's
	// redact.Current's Text).
	Redact func(string) string
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Pushed, when set, is told of each Write that committed and how long
	// its publication took.
	Pushed func(took time.Duration)

	mu      sync.Mutex // guards latest and the local file
	latest  uint64     // the sequence of the newest document written
	publish sync.Mutex // one publication at a time: they share Dir
	// readOnlyUntil pauses publications after the remote refused one as
	// read-only: the status stays local, and write access is tried again
	// an hour later; the refusal is logged once.
	readOnlyUntil time.Time
	readOnlyOnce  sync.Once

	readerOnce sync.Once
	reader     *Reader
}

const lastFile = "last.yaml"

// last is what Dir remembers: the document last published, and to where
// (Publisher.ID).
type last struct {
	Remote   string `yaml:"remote"`
	Document Host   `yaml:"document"`
}

// Write writes h as this host's status: locally, and on the status branch
// when it differs from the last document published or that one is older
// than Heartbeat. It reports whether it made a commit. Every error string
// of h passes Redact first.
func (w *Writer) Write(ctx context.Context, h Host) (committed bool, err error) {
	if w.Dir == "" && w.Publisher != nil {
		return false, errors.New("status: the writer has no directory (Writer.Dir)")
	}
	if !source.SafeName(w.Host) {
		return false, fmt.Errorf("status: host name %q cannot be a file name", w.Host)
	}
	if h.Host == "" {
		h.Host = w.Host
	}
	if h.Host != w.Host {
		return false, fmt.Errorf("status: a document of host %q given to the writer of %q", h.Host, w.Host)
	}
	now := w.now()
	doc, mine, err := w.local(h, now)
	if err != nil || w.Publisher == nil {
		return false, err
	}

	w.publish.Lock()
	defer w.publish.Unlock()
	w.mu.Lock()
	stale := mine != w.latest
	w.mu.Unlock()
	if stale {
		return false, nil // a newer document was written meanwhile: it is the one to publish
	}
	if now.Before(w.readOnlyUntil) {
		return false, nil
	}
	prev, ok := w.last()
	if ok && Equal(prev, doc) && now.Sub(prev.UpdatedAt) < w.heartbeat() {
		return false, nil
	}
	// Readers order a host's documents by (updated_at, sequence): the
	// sequence tells two of the same second apart.
	doc.Sequence = prev.Sequence + 1
	data, err := marshal(doc)
	if err != nil {
		return false, err
	}
	var sig []byte
	if w.Key != nil {
		s, err := w.Key.Sign(data)
		if err != nil {
			return false, err
		}
		sig = []byte(s)
	}
	began := time.Now()
	msg := fmt.Sprintf("status: %s %s at %s\n", w.Host, doc.State, short(doc.AppliedCommit))
	if committed, err = w.Publisher.Publish(ctx, w.Host, data, sig, msg, doc.UpdatedAt); err != nil {
		if errors.Is(err, ErrReadOnly) {
			w.readOnlyUntil = now.Add(time.Hour)
			w.readOnlyOnce.Do(func() {
				w.log().Warn("status: the remote refuses this host's pushes; the status stays local (state/status.json), tried again hourly", "err", err)
			})
		}
		return false, fmt.Errorf("publish the status: %w", err)
	}
	if err := w.remember(doc); err != nil {
		return committed, err
	}
	if committed {
		if w.Pushed != nil {
			w.Pushed(time.Since(began))
		}
		w.log().Info("status committed", "state", doc.State, "applied", short(doc.AppliedCommit))
	}
	return committed, nil
}

// WriteLocal writes h as this host's status in the state directory only,
// as Write does, and publishes nothing: what `syncd status` shows on the
// host while a cycle is under way (applying), not worth a push.
func (w *Writer) WriteLocal(h Host) error {
	if h.Host == "" {
		h.Host = w.Host
	}
	if h.Host != w.Host {
		return fmt.Errorf("status: a document of host %q given to the writer of %q", h.Host, w.Host)
	}
	_, _, err := w.local(h, w.now())
	return err
}

// local redacts and stamps h, writes it in the state directory, and
// returns it with its place in the order of documents written.
func (w *Writer) local(h Host, now time.Time) (Host, uint64, error) {
	doc := redacted(normalise(h), w.Redact)
	doc.UpdatedAt = now.UTC().Truncate(time.Second)
	if w.Key != nil {
		doc.StatusKey = w.Key.Public()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.latest++
	if w.StateDir != "" {
		if err := WriteLocal(w.StateDir, doc); err != nil {
			return doc, w.latest, err
		}
	}
	return doc, w.latest, nil
}

// Fleet reads every host's document from Branches and judges it against
// keys (Reader.Read), remembering the newest verified document per host
// in Dir: what the wave gate judges by.
func (w *Writer) Fleet(ctx context.Context, keys Keys) ([]Host, error) {
	if w.Branches == nil {
		return nil, errors.New("status: the writer reads no status branches (Writer.Branches)")
	}
	w.readerOnce.Do(func() {
		w.reader = &Reader{Branches: w.Branches, Memory: filepath.Join(w.Dir, seenFile), Now: w.now}
	})
	return w.reader.Read(ctx, keys)
}

// seenFile, in Dir, remembers the newest verified document of each host.
const seenFile = "seen.json"

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
	if err := yaml.Unmarshal(data, &l); err != nil || l.Remote != w.Publisher.ID() {
		return Host{}, false
	}
	return l.Document, true
}

func (w *Writer) remember(doc Host) error {
	if err := os.MkdirAll(w.Dir, 0o700); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	data, err := yaml.Marshal(last{Remote: w.Publisher.ID(), Document: doc})
	if err != nil {
		return err
	}
	return state.WriteFile(filepath.Join(w.Dir, lastFile), data, 0o600)
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

// short is a commit as the table and commit messages show it: "-" for
// none.
func short(commit string) string {
	if commit == "" {
		return "-"
	}
	return abbrev.Commit(commit)
}
