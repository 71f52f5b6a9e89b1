package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/syncd-dev/syncd/internal/rollout"
	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/state"
)

// Trust is what a reader makes of a document on the status branch, which
// every host's key may push: only a document that verifies against the
// status key main enrols for its host counts, or, for a host main enrols
// none for, any document (unsigned, as before status keys).
type Trust string

// Trusts.
const (
	// Verified: signed by the host's enrolled status key, and not older
	// than a document of it already seen.
	Verified Trust = "verified"
	// Unsigned: main enrols no status key for the host; its document
	// counts, as before status keys, and validate warns.
	Unsigned Trust = "unsigned"
	// Unverified: anything else (forged, signed by another key, a
	// replay, a host main does not know): it never advances or halts
	// anything.
	Unverified Trust = "unverified"
)

// Counts reports whether the document counts for the wave gate, the
// fleet view and the notifications: verified, or unsigned.
func (h Host) Counts() bool { return h.Trust == Verified || h.Trust == Unsigned }

// Ahead reports whether the document is dated more than rollout.MaxSkew
// ahead of now: it is not fresh.
func (h Host) Ahead(now time.Time) bool { return h.UpdatedAt.After(now.Add(rollout.MaxSkew)) }

// Keys are the status keys of the commit being judged (its hosts'
// host.yaml status_key), by host: a host listed with "" has none; a host
// not listed is not one of that commit's hosts.
type Keys map[string]string

// VerifyDocument checks that the document's exact bytes, as read from the
// status branch, are signed by key (authorized_keys form).
func VerifyDocument(h Host, key string) error {
	pub, err := ParseKey(key)
	if err != nil {
		return err
	}
	if h.sig == "" {
		return fmt.Errorf("not signed (no hosts/%s.yaml.sig beside it)", h.Host)
	}
	return source.VerifySSHSig(h.sig, Namespace, h.raw, pub)
}

// mark is how far a host's documents have been seen: a verified document
// older than it is a replay.
type mark struct {
	At       time.Time `json:"updated_at"`
	Sequence uint64    `json:"sequence"`
}

func (m mark) before(o mark) bool {
	return m.At.Before(o.At) || (m.At.Equal(o.At) && m.Sequence < o.Sequence)
}

// Reader reads the status branch and judges every document against the
// keys it is given and what it has seen before.
type Reader struct {
	Branches Branches
	// Memory is the file that remembers the newest verified document per
	// host, so that an older one pushed again (a replay) is recognised
	// after a restart too; "" remembers for the Reader's life only.
	Memory string
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu     sync.Mutex
	seen   map[string]mark
	loaded bool
}

// Read fetches every document (ReadAll) and judges it (Judge).
func (r *Reader) Read(ctx context.Context, keys Keys) ([]Host, error) {
	hosts, err := ReadAll(ctx, r.Branches)
	return hosts, errors.Join(err, r.Judge(hosts, keys))
}

// Judge sets Trust and Why of each document: Unsigned for a host whose
// key is "" in keys; Verified when its signature verifies against its
// key and it is not older than the newest verified document of its host
// seen so far; Unverified otherwise. A verified document becomes the
// newest seen unless it is dated ahead of the clock (it would make every
// later document look like a replay). The error is the memory's only: the
// judgement is made anyway.
func (r *Reader) Judge(hosts []Host, keys Keys) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	if !r.loaded {
		r.loaded = true
		seen, err := readMemory(r.Memory)
		if err != nil {
			errs = append(errs, err)
		}
		r.seen = seen
	}
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	changed := false
	for i := range hosts {
		h := &hosts[i]
		key, known := keys[h.Host]
		switch {
		case !known:
			h.Trust, h.Why = Unverified, fmt.Sprintf("host %s is not in the repository (no hosts/%s/host.yaml)", h.Host, h.Host)
			continue
		case key == "":
			h.Trust, h.Why = Unsigned, fmt.Sprintf("hosts/%s/host.yaml has no status_key: unsigned, counted as before", h.Host)
			continue
		}
		if err := VerifyDocument(*h, key); err != nil {
			h.Trust, h.Why = Unverified, fmt.Sprintf("does not verify against the status_key of hosts/%s/host.yaml (%s): %v", h.Host, Fingerprint(key), err)
			continue
		}
		m, doc := r.seen[h.Host], mark{At: h.UpdatedAt.UTC(), Sequence: h.Sequence}
		if doc.before(m) {
			h.Trust, h.Why = Unverified, fmt.Sprintf("a replay: written %s (sequence %d), older than its document of %s (sequence %d) already seen",
				doc.At.Format(time.RFC3339), doc.Sequence, m.At.Format(time.RFC3339), m.Sequence)
			continue
		}
		h.Trust, h.Why = Verified, ""
		if m.before(doc) && !h.Ahead(now) {
			r.seen[h.Host], changed = doc, true
		}
	}
	if changed && r.Memory != "" {
		if err := writeMemory(r.Memory, r.seen); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func readMemory(path string) (map[string]mark, error) {
	seen := map[string]mark{}
	if path == "" {
		return seen, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return seen, nil
	}
	if err == nil {
		err = json.Unmarshal(data, &seen)
	}
	if err != nil {
		return map[string]mark{}, fmt.Errorf("status: the documents seen (%s): %w; starting afresh", path, err)
	}
	return seen, nil
}

// writeMemory merges seen into the file: another reader of the same state
// directory (`syncd status --fleet` beside the agent) may have written it
// meanwhile, and the newest of both is kept.
func writeMemory(path string, seen map[string]mark) error {
	on, _ := readMemory(path)
	for h, m := range on {
		if seen[h].before(m) {
			seen[h] = m
		}
	}
	data, err := json.MarshalIndent(seen, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	return state.WriteFile(path, append(data, '\n'), 0o600)
}
