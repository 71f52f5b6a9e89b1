package escape

import (
	"bytes"
	"encoding/json"
	"go/build"
	"reflect"
	"strings"
	"testing"
	"unicode"
)

// hostile is what a peer's failed_error, a restic tag or a probe body may
// hold: a window title (OSC 0), a screen clear (CSI 2J), a C1 CSI, a bell,
// a carriage return that hides what came before, a bidi override, a
// non-UTF-8 byte.
const hostile = "a\x1b]0;pwned\x07b\x1b[2Jc\u009b31md\re\u202ef\xffg"

func TestText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text, ünïcødé and 日本", "plain text, ünïcødé and 日本"},
		{hostile, `a\x1b]0;pwned\x07b\x1b[2Jc\u009b31md\re\u202ef\xffg`},
		{"two\nlines\tand tab", `two\nlines\tand tab`},
		{"del\x7f nul\x00", `del\x7f nul\x00`},
		{"\u2028sep", `\u2028sep`},
	} {
		if got := Text(tc.in); got != tc.want {
			t.Errorf("Text(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLinesKeepsLinesOnly(t *testing.T) {
	got := Lines("line 1\n\tline 2\r\x1b[2J\n")
	if want := "line 1\n\tline 2\\r\\x1b[2J\n"; got != want {
		t.Errorf("Lines = %q, want %q", got, want)
	}
}

// TestNoControlCharacterSurvives checks every rune of the C0 and C1 ranges
// and every rune Go calls a control or format character the terminal may
// act on: none is left in Text's output.
func TestNoControlCharacterSurvives(t *testing.T) {
	var b strings.Builder
	for r := rune(0); r < 0x3000; r++ {
		b.WriteRune(r)
	}
	out := Text(b.String())
	for _, r := range out {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || unsafe(r) {
			t.Fatalf("Text left %U", r)
		}
	}
	for _, r := range []rune{0x202e, 0x2066, 0x200f} {
		if !unicode.Is(unicode.Cf, r) || strings.ContainsRune(out, r) {
			t.Errorf("%U survived", r)
		}
	}
}

func TestMarkdownCannotBreakOut(t *testing.T) {
	in := "x | y `code` <img src=x onerror=alert(1)> [link](http://evil) ![i](http://evil/p.png) **b** @alice &lt; " + hostile
	got := Markdown(in)
	if !strings.Contains(got, "&amp;lt;") {
		t.Errorf("an entity in the text was not escaped: %q", got)
	}
	for _, bad := range []string{"|", "`", "[", "]", "*", "<", "@alice", "\x1b", "\r", "\n"} {
		// every occurrence must be escaped: a backslash before it, or gone
		for i := strings.Index(got, bad); i >= 0; {
			if strings.Contains("|`[]*", bad) {
				if i == 0 || got[i-1] != '\\' {
					t.Errorf("Markdown left an unescaped %q in %q", bad, got)
				}
			} else {
				t.Errorf("Markdown left %q in %q", bad, got)
			}
			j := strings.Index(got[i+1:], bad)
			if j < 0 {
				break
			}
			i += 1 + j
		}
	}
}

func TestCodeSpanCannotBeClosed(t *testing.T) {
	for _, in := range []string{"a`b", "``x``", "`", "", "ends`", " both "} {
		got := Code(in)
		fence := got[:strings.IndexFunc(got, func(r rune) bool { return r != '`' })]
		if fence == "" && in != "" {
			t.Fatalf("Code(%q) = %q has no fence", in, got)
		}
		inner := strings.TrimSuffix(strings.TrimPrefix(got, fence), fence)
		if strings.Contains(inner, fence) {
			t.Errorf("Code(%q) = %q: the content holds its fence", in, got)
		}
		if strings.TrimSpace(inner) != strings.TrimSpace(in) {
			t.Errorf("Code(%q) = %q lost content", in, got)
		}
	}
	if got := CodeInTable("a|b"); got != "`a\\|b`" {
		t.Errorf("CodeInTable = %q", got)
	}
	if got := Fence("x\n````\ny"); got != "`````" {
		t.Errorf("Fence = %q", got)
	}
	if got := Fence("plain"); got != "```" {
		t.Errorf("Fence = %q", got)
	}
}

func TestStringsEscapesADocument(t *testing.T) {
	type inner struct {
		Reason string
		hidden string
	}
	type doc struct {
		Name   string
		Tags   []string
		ByKey  map[string]string
		Inner  *inner
		Items  []inner
		Any    any
		Count  int
		Nested map[string]inner
	}
	d := doc{
		Name:   "h\x1b[2J",
		Tags:   []string{"ok", "t\x07"},
		ByKey:  map[string]string{"k\x1b": "v\x1b", "fine": "fine"},
		Inner:  &inner{Reason: "r\r", hidden: "h\x1b"},
		Items:  []inner{{Reason: "\u009b"}},
		Any:    "a\x1b",
		Count:  3,
		Nested: map[string]inner{"n": {Reason: "\x1b"}},
	}
	Strings(&d)
	if d.Name != `h\x1b[2J` || d.Tags[1] != `t\x07` || d.Inner.Reason != `r\r` || d.Items[0].Reason != `\u009b` || d.Any != `a\x1b` || d.Nested["n"].Reason != `\x1b` {
		t.Errorf("not escaped: %+v %+v", d, *d.Inner)
	}
	if d.ByKey[`k\x1b`] != `v\x1b` || d.ByKey["fine"] != "fine" || len(d.ByKey) != 2 {
		t.Errorf("map not escaped: %q", d.ByKey)
	}
	if d.Inner.hidden != "h\x1b" {
		t.Error("an unexported field was touched")
	}
}

func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if pkg.Doc == "" {
		t.Error("package escape has no doc comment")
	}
	for _, imp := range pkg.Imports {
		if strings.Contains(imp, "syncd") || strings.Contains(imp, ".") {
			t.Errorf("package escape imports %s; it is a leaf of the standard library only", imp)
		}
	}
}

func BenchmarkTextClean(b *testing.B) {
	s := strings.Repeat("a plain status line, nothing to escape ", 4)
	b.ReportAllocs()
	for b.Loop() {
		_ = Text(s)
	}
}

func TestWriter(t *testing.T) {
	var out strings.Builder
	w := NewWriter(&out)
	// "é" split across writes stays one rune; ESC is escaped; lines stay.
	for _, p := range []string{"a\xc3", "\xa9 b\x1b[2J\n", "\u202e", "end\xe6"} {
		if n, err := w.Write([]byte(p)); err != nil || n != len(p) {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := "aé b\\x1b[2J\n\\u202eend\\xe6"; out.String() != want {
		t.Errorf("wrote %q, want %q", out.String(), want)
	}
}

// TestJSON: a document written by JSON holds no control character raw, is
// still valid JSON once Writer has passed it (a raw DEL became \x7f there,
// which is not JSON), and reads back as exactly what was written.
func TestJSON(t *testing.T) {
	type doc struct {
		Error string            `json:"error"`
		Tags  map[string]string `json:"tags"`
	}
	in := doc{Error: "a\x7fb\u009b31m\u202e\x1b]0;t\x07\r\n\u2028", Tags: map[string]string{"\u0085k": "v\x00"}}
	var raw bytes.Buffer
	if err := JSON(&raw, in); err != nil {
		t.Fatal(err)
	}
	for _, r := range raw.String() {
		if (r < 0x20 && r != '\n') || r == 0x7f || unsafe(r) {
			t.Fatalf("JSON wrote %U raw:\n%q", r, raw.String())
		}
	}
	var through bytes.Buffer
	w := NewWriter(&through)
	w.Write(raw.Bytes())
	w.Flush()
	if through.String() != raw.String() {
		t.Errorf("Writer changed the JSON:\n%q\n%q", raw.String(), through.String())
	}
	var out doc
	if err := json.Unmarshal(through.Bytes(), &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("read back %+v, %v; want %+v", out, err, in)
	}
}
