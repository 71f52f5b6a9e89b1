package engine

import (
	"strings"
	"testing"
	"time"
)

// TestLogLinesWholeAcrossReads: a line split across two reads of the
// stream (a secret cut in two) is one line, with its time; a line past
// MaxLogLine and its margin is cut there and the rest counted, never held.
func TestLogLinesWholeAcrossReads(t *testing.T) {
	var got []LogLine
	w := newLineWriter(true, func(l LogLine) { got = append(got, l) })
	long := strings.Repeat("x", MaxLogLine+LogLineMargin+1000)
	for _, chunk := range []string{"2026-01-02T03:04:05.123456789Z the token is tok-Al", "pha-7f3kQ9zLm2\n2026-01-02T03:04:06Z ", "next", " line\n2026-01-02T03:04:07Z " + long[:10], long[10:] + "\nno stamp"} {
		if n, err := w.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write: %d %v", n, err)
		}
	}
	w.flush()
	want := []struct {
		text string
		at   string
		cut  int64
	}{
		{"the token is tok-Alpha-7f3kQ9zLm2", "2026-01-02T03:04:05.123456789Z", 0},
		{"next line", "2026-01-02T03:04:06Z", 0},
		{long[:MaxLogLine+LogLineMargin], "2026-01-02T03:04:07Z", 1000},
		{"no stamp", "", 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		at := ""
		if !got[i].Time.IsZero() {
			at = got[i].Time.UTC().Format(time.RFC3339Nano)
		}
		if got[i].Text != w.text || at != w.at || got[i].Cut != w.cut || !got[i].Stderr {
			t.Errorf("line %d: %.40q at %q cut %d, want %.40q at %q cut %d", i, got[i].Text, at, got[i].Cut, w.text, w.at, w.cut)
		}
	}
}
