package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
)

// Limits bound what a fetch of another party's refs (the status branches,
// which every host may push) may cost: a branch of a few KiB documents
// needs none of this, a hostile one (a blob of gigabytes of zeros that
// compresses to a few MiB, a long delta chain) is refused before it is
// inflated. The zero value of a field is its default.
type Limits struct {
	// Pack caps the pack's bytes as received (written to a temporary
	// file, never held in memory): 64 MiB.
	Pack int64
	// Object caps one object's inflated size, read from its header
	// before it is inflated, and a delta's target size, read from the
	// delta's own header: 1 MiB (MaxStatusDocument).
	Object int64
	// Inflated caps the sum of every object's inflated size (what
	// resolving the deltas can cost): 64 MiB.
	Inflated int64
	// Objects caps the number of objects: 1<<18.
	Objects uint32
}

func (l Limits) orDefaults() Limits {
	if l.Pack <= 0 {
		l.Pack = 64 << 20
	}
	if l.Object <= 0 {
		l.Object = MaxStatusDocument
	}
	if l.Inflated <= 0 {
		l.Inflated = 64 << 20
	}
	if l.Objects == 0 {
		l.Objects = 1 << 18
	}
	return l
}

// LimitError is a fetch refused because the pack broke a Limit.
type LimitError struct{ What string }

func (e *LimitError) Error() string { return e.What }

// fetchBounded fetches specs (depth 1, no tags) from url into st under
// limits. Nothing of a pack that breaks a limit is stored.
func fetchBounded(ctx context.Context, st *memory.Storage, url string, auth transport.AuthMethod, specs []config.RefSpec, limits Limits) error {
	// Over the pack limit, the fetch is cancelled: the transport then
	// kills a local git-upload-pack rather than wait for it to write the
	// rest.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bs := &boundedStorage{Storage: st, limits: limits.orDefaults(), cancel: cancel}
	remote := gogit.NewRemote(bs, &config.RemoteConfig{Name: "origin", URLs: []string{url}})
	err := remote.FetchContext(ctx, &gogit.FetchOptions{RemoteName: "origin", RefSpecs: specs, Depth: 1, Auth: auth, Tags: gogit.NoTags})
	if bs.err != nil {
		return bs.err // the transport may have wrapped or replaced it
	}
	return err
}

// boundedStorage is a memory storage whose fetched packs go through
// boundedPack: go-git hands a storer.PackfileWriter the raw pack.
type boundedStorage struct {
	*memory.Storage
	limits Limits
	cancel context.CancelFunc
	err    *LimitError
}

func (s *boundedStorage) PackfileWriter() (io.WriteCloser, error) {
	f, err := os.CreateTemp("", "syncd-fetch-*.pack")
	if err != nil {
		return nil, fmt.Errorf("a temporary file for the fetched pack: %w", err)
	}
	os.Remove(f.Name()) // unlinked: gone with the descriptor, whatever happens
	return &boundedPack{f: f, s: s}, nil
}

// boundedPack writes the pack to its temporary file up to limits.Pack,
// then, on Close, checks every object's header and stores the objects.
type boundedPack struct {
	f *os.File
	n int64
	s *boundedStorage
}

func (w *boundedPack) Write(p []byte) (int, error) {
	// Past the limit, the rest is discarded until the cancelled fetch
	// stops: an error here would leave the transport waiting for a
	// git-upload-pack blocked on its full pipe.
	if w.s.err != nil {
		return len(p), nil
	}
	if w.n+int64(len(p)) > w.s.limits.Pack {
		w.s.err = &LimitError{What: fmt.Sprintf("its pack is larger than the %d bytes allowed", w.s.limits.Pack)}
		w.s.cancel()
		return len(p), nil
	}
	n, err := w.f.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *boundedPack) Close() error {
	defer w.f.Close()
	if w.s.err != nil {
		return w.s.err
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := checkPack(w.f, w.s.limits); err != nil {
		var le *LimitError
		if errors.As(err, &le) {
			w.s.err = le
		}
		return err
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	// A memory storage is no PackfileWriter: this parses the checked
	// pack into it.
	return packfile.UpdateObjectStorage(w.s.Storage, w.f)
}

// checkPack reads every object header of the pack in r, without inflating
// any object larger than limits.Object: each object's size, and a
// delta's target size (the second varint of its inflated data), must be
// within limits.Object, their sum within limits.Inflated, their number
// within limits.Objects. The scanner stops inflating an object at the
// size its header declares.
func checkPack(r io.Reader, limits Limits) error {
	sc := packfile.NewScanner(r)
	_, count, err := sc.Header()
	if err != nil {
		return fmt.Errorf("the fetched pack: %w", err)
	}
	if count > limits.Objects {
		return &LimitError{What: fmt.Sprintf("its pack holds %d objects, more than the %d allowed", count, limits.Objects)}
	}
	var total int64
	for range count {
		h, err := sc.NextObjectHeader()
		if err != nil {
			return fmt.Errorf("the fetched pack: %w", err)
		}
		size := h.Length
		if size > limits.Object {
			return &LimitError{What: fmt.Sprintf("it holds an object of %d bytes, more than the %d allowed", size, limits.Object)}
		}
		if h.Type == plumbing.OFSDeltaObject || h.Type == plumbing.REFDeltaObject {
			var hd deltaHeader
			if _, _, err := sc.NextObject(&hd); err != nil {
				return fmt.Errorf("the fetched pack: %w", err)
			}
			target, ok := hd.target()
			if !ok {
				return fmt.Errorf("the fetched pack: a delta at offset %d has no valid header", h.Offset)
			}
			if target > uint64(limits.Object) {
				return &LimitError{What: fmt.Sprintf("it holds a delta whose target is %d bytes, more than the %d allowed", target, limits.Object)}
			}
			size = int64(target)
		}
		if total += size; total > limits.Inflated {
			return &LimitError{What: fmt.Sprintf("its objects inflate to more than the %d bytes allowed", limits.Inflated)}
		}
	}
	return nil
}

// deltaHeader keeps the first bytes of a delta's inflated data (two
// varints: the base's size and the target's) and discards the rest.
type deltaHeader struct {
	b []byte
}

func (d *deltaHeader) Write(p []byte) (int, error) {
	if room := 20 - len(d.b); room > 0 {
		d.b = append(d.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (d *deltaHeader) target() (uint64, bool) {
	b := d.b
	var v uint64
	for range 2 { // the base's size, then the target's
		v = 0
		var shift uint
		for i := 0; ; i++ {
			if i >= len(b) || shift > 63 {
				return 0, false
			}
			v |= uint64(b[i]&0x7f) << shift
			shift += 7
			if b[i]&0x80 == 0 {
				b = b[i+1:]
				break
			}
		}
	}
	return v, true
}
