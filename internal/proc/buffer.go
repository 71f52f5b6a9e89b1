package proc

import (
	"bytes"
	"errors"
	"strings"
)

// ErrFull is the write that would take a Limit buffer past its cap.
var ErrFull = errors.New("output larger than its cap")

// Buffer keeps at most its cap of what is written to it: the last bytes
// (NewTail: an error output, whose end says what went wrong; a write never
// fails), or the first ones (NewLimit: an output read whole, such as a
// report; the write that passes the cap fails). Not safe for concurrent
// writers; exec.Cmd copies each output from one goroutine.
type Buffer struct {
	buf     bytes.Buffer
	max     int
	tail    bool
	full    func()
	written int64
}

// NewTail keeps the last max bytes written.
func NewTail(max int) *Buffer { return &Buffer{max: max, tail: true} }

// NewLimit keeps the first max bytes; the write that would pass max keeps
// what fits, returns ErrFull (an io.Copy, a child's output copy, stops),
// and calls full, if set, once (to stop the child that writes).
func NewLimit(max int, full func()) *Buffer { return &Buffer{max: max, full: full} }

func (b *Buffer) Write(p []byte) (int, error) {
	b.written += int64(len(p))
	if b.tail {
		if len(p) >= b.max {
			b.buf.Reset()
			b.buf.Write(p[len(p)-b.max:])
			return len(p), nil
		}
		b.buf.Write(p)
		if over := b.buf.Len() - b.max; over > 0 {
			b.buf.Next(over)
		}
		return len(p), nil
	}
	room := b.max - b.buf.Len()
	if len(p) <= room {
		return b.buf.Write(p)
	}
	b.buf.Write(p[:room])
	if b.full != nil {
		b.full()
		b.full = nil
	}
	return room, ErrFull
}

// Bytes is what the buffer keeps.
func (b *Buffer) Bytes() []byte { return b.buf.Bytes() }

func (b *Buffer) String() string { return b.buf.String() }

// Full reports whether more was written than the buffer keeps.
func (b *Buffer) Full() bool { return b.written > int64(b.buf.Len()) }

// Written is how many bytes were written to the buffer, kept or not.
func (b *Buffer) Written() int64 { return b.written }

// Reset empties the buffer, to be used again (one line after another).
func (b *Buffer) Reset() {
	b.buf.Reset()
	b.written = 0
}

// Cap is the most the buffer keeps.
func (b *Buffer) Cap() int { return b.max }

// LastLines is the last n non-empty lines kept, trimmed and joined by
// "; " ("" when there are none): an error message's tail.
func (b *Buffer) LastLines(n int) string {
	var lines []string
	for l := range strings.SplitSeq(b.buf.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "; ")
}
