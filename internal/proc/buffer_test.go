package proc

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// endless is an endless reader that counts what was read of it.
type endless struct{ read int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	e.read += int64(len(p))
	return len(p), nil
}

// TestLimitStopsReadingAtItsCap: an output larger than the cap is not read
// on: the copy stops at the cap (plus one copy buffer), and what is kept
// is the cap.
func TestLimitStopsReadingAtItsCap(t *testing.T) {
	const limit = 1 << 20
	calls := 0
	b := NewLimit(limit, func() { calls++ })
	src := &endless{}
	_, err := io.Copy(b, src)
	if !errors.Is(err, ErrFull) {
		t.Fatalf("copy: %v, want ErrFull", err)
	}
	if src.read > limit+64<<10 {
		t.Errorf("read %d bytes of an endless output under a cap of %d", src.read, limit)
	}
	if len(b.Bytes()) != limit || !b.Full() || calls != 1 {
		t.Errorf("kept %d bytes, full %v, full called %d times", len(b.Bytes()), b.Full(), calls)
	}
	if _, err := b.Write([]byte("more")); !errors.Is(err, ErrFull) || len(b.Bytes()) != limit || calls != 1 {
		t.Errorf("a write past the cap: %v, kept %d, full called %d times", err, len(b.Bytes()), calls)
	}

	exact := NewLimit(4, nil)
	if n, err := exact.Write([]byte("abcd")); n != 4 || err != nil || exact.Full() {
		t.Errorf("a write of exactly the cap: %d %v full %v", n, err, exact.Full())
	}
}

func TestTailKeepsTheEnd(t *testing.T) {
	b := NewTail(10)
	for _, w := range []string{"first line\n", "second\n", "the end"} {
		if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("write: %d %v", n, err)
		}
	}
	if b.String() != "econd\nthe end"[len("econd\nthe end")-10:] || !b.Full() {
		t.Errorf("kept %q", b.String())
	}
	b.Write([]byte(strings.Repeat("y", 25) + "\nlast"))
	if b.String() != "yyyyy\nlast" || b.LastLines(3) != "yyyyy; last" {
		t.Errorf("kept %q, last lines %q", b.String(), b.LastLines(3))
	}
	if NewTail(10).LastLines(3) != "" {
		t.Error("an empty tail has lines")
	}
}
