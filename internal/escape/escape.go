// Package escape makes text that another party wrote safe to show: a peer's
// status document, restic's tags and messages, trivy's findings, a probe
// target's body, a container's output, a commit message, the files of a
// pull request. Such text is data; it must never move a terminal's cursor,
// retitle its window, clear its screen, hide itself behind a bidi override,
// or break out of a markdown table cell or code span.
//
// Text and Lines escape control characters the way git and kubectl do:
// visibly, as Go escapes (\x1b, \r, \u009b), so what was there can still be
// read. Markdown, Code, CodeInTable and Fence escape for the pull-request
// comment. Strings escapes every string field of a decoded document at
// once, where the document enters syncd.
//
// It imports nothing of syncd, so every package can use it.
package escape

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"
)

// Text returns s with every control character escaped: C0 (newline and tab
// included), DEL, C1, the Unicode bidi controls, and bytes that are not
// UTF-8. Text that holds none is returned as it is. Use it for a value that
// is shown on one line: a table cell, a log attribute, a reason.
func Text(s string) string { return escape(s, false) }

// Lines is Text for a block of text shown as lines (a healthcheck's output,
// a child's stderr): newlines and tabs stay, everything else Text escapes is
// escaped, carriage returns included.
func Lines(s string) string { return escape(s, true) }

func escape(s string, keepLines bool) string {
	if clean(s, keepLines) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case keepLines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafe(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// clean reports whether s holds nothing to escape, without allocating.
func clean(s string, keepLines bool) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 && !(keepLines && (c == '\n' || c == '\t'))) || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || unsafe(r) {
			return false
		}
		i += size
	}
	return true
}

// unsafe reports the non-ASCII runes a terminal or a renderer acts on rather
// than shows: the C1 controls (0x9b is CSI, 0x9d OSC on many terminals), the
// bidi embeddings, overrides and isolates (CVE-2021-42574, "Trojan
// Source"), and the line and paragraph separators.
func unsafe(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	case r == 0x2028 || r == 0x2029:
		return true
	}
	return false
}

// markdown are the characters that could start markup in GitHub-flavoured
// markdown inside a line or end a table cell; each is written as a
// backslash escape or an entity, so it shows as itself. With '[' and ']'
// escaped no link or image can form, so '(', ')' and '!' stay as they are;
// '&' is written as an entity so no text forms one (&lt; of its own).
var markdown = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "~", `\~`, "[", `\[`, "]", `\]`,
	"|", `\|`, "<", "&lt;", ">", "&gt;", "&", "&amp;",
	"@", "&#64;", // no @mention of a person from a peer's text
)

// Markdown returns s for markdown prose or a table cell: control characters
// escaped (Text, so it stays on one line) and every markup character shown
// as itself, so no link, image, HTML tag, emphasis, mention or cell border
// can come from s.
func Markdown(s string) string { return markdown.Replace(Text(s)) }

// Code returns s as an inline code span (backticks included) that s cannot
// end: its fence is one backtick longer than the longest run in s, and a
// space pads a leading or trailing backtick. Control characters are escaped
// (Text).
func Code(s string) string {
	s = Text(s)
	fence := strings.Repeat("`", longestRun(s, '`')+1)
	if s == "" || s[0] == '`' || s[len(s)-1] == '`' || (s[0] == ' ' && s[len(s)-1] == ' ') {
		s = " " + s + " "
	}
	return fence + s + fence
}

// CodeInTable is Code for a table cell: GitHub's table parser splits cells
// at '|' before it looks at code spans, so a '|' is escaped even inside
// the span (the renderer shows it as '|').
func CodeInTable(s string) string {
	return strings.ReplaceAll(Code(s), "|", `\|`)
}

// Fence returns the fence of a fenced code block that holds lines: three
// backticks, or one more than the longest run of backticks in them, so no
// line of theirs can close the block.
func Fence(lines string) string {
	return strings.Repeat("`", max(3, longestRun(lines, '`')+1))
}

func longestRun(s string, c byte) int {
	longest, n := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			n++
			longest = max(longest, n)
		} else {
			n = 0
		}
	}
	return longest
}

// Strings escapes, with Text, every string that v points to: the fields of
// structs (exported ones), the elements of slices and arrays, and the keys
// and values of maps, at any depth. It is for a document decoded from
// another party's bytes, at the point where it enters syncd, so nothing
// downstream (a terminal, a log, JSON, a page) meets its control
// characters. v must be a non-nil pointer.
func Strings(v any) {
	Map(v, func(s string) string {
		if clean(s, false) {
			return s
		}
		return Text(s)
	})
}

// Map replaces every string that v points to (as Strings walks them) with
// f of it: the one walker of a document's strings, for escaping and for
// redaction alike. v must be a non-nil pointer.
func Map(v any, f func(string) string) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		panic("escape.Map: not a non-nil pointer")
	}
	walk(rv.Elem(), f)
}

func walk(v reflect.Value, f func(string) string) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() {
			if s, t := v.String(), f(v.String()); t != s {
				v.SetString(t)
			}
		}
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return
		}
		if v.Kind() == reflect.Interface {
			// An interface's dynamic value cannot be set in place: escape a
			// copy and store it back.
			inner := v.Elem()
			cp := reflect.New(inner.Type()).Elem()
			cp.Set(inner)
			walk(cp, f)
			if v.CanSet() {
				v.Set(cp)
			}
			return
		}
		walk(v.Elem(), f)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				walk(v.Field(i), f)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walk(v.Index(i), f)
		}
	case reflect.Map:
		if v.IsNil() {
			return
		}
		iter := v.MapRange()
		type kv struct{ k, v reflect.Value }
		var entries []kv
		for iter.Next() {
			k := reflect.New(v.Type().Key()).Elem()
			k.Set(iter.Key())
			val := reflect.New(v.Type().Elem()).Elem()
			val.Set(iter.Value())
			entries = append(entries, kv{k, val})
		}
		for _, e := range entries {
			old := reflect.New(e.k.Type()).Elem()
			old.Set(e.k)
			walk(e.k, f)
			walk(e.v, f)
			if !e.k.Equal(old) {
				v.SetMapIndex(old, reflect.Value{})
			}
			v.SetMapIndex(e.k, e.v)
		}
	}
}

// JSON writes v to w as indented JSON in which no string holds a raw
// control character: encoding/json escapes C0 already; DEL, C1, the bidi
// controls and the line separators are written as \u escapes too. The
// document means exactly what v holds (a JSON reader gets the same
// strings back), and the bytes pass Writer unchanged: its \x7f for a raw
// DEL would not be JSON.
func JSON(w io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	var b strings.Builder
	b.Grow(len(data) + 1)
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == 0x7f || unsafe(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.Write(data[i : i+size])
		}
		i += size
	}
	b.WriteByte('\n')
	_, err = io.WriteString(w, b.String())
	return err
}

// Writer escapes what it is given with Lines before it reaches w: a
// terminal, or whatever stands for one (journald, a pipe). It is the last
// guard of syncd's own output, behind the escaping where text enters: a
// rune split across two writes is held until it is whole. Flush writes
// what is held at the end. It is safe for concurrent use.
type Writer struct {
	mu    sync.Mutex
	w     io.Writer
	carry []byte
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write escapes p and writes it. It reports len(p) once all of it was
// written or held.
func (e *Writer) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	buf := p
	if len(e.carry) > 0 {
		buf = append(e.carry, p...)
		e.carry = nil
	}
	// Hold back an incomplete rune at the end: the next write may finish it.
	cut := len(buf)
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRune(buf[i:]) {
				cut = i
			}
			break
		}
	}
	if cut < len(buf) {
		e.carry = append([]byte(nil), buf[cut:]...)
	}
	s := string(buf[:cut])
	if _, err := io.WriteString(e.w, escape(s, true)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what an unfinished rune left held, escaped.
func (e *Writer) Flush() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.carry) == 0 {
		return nil
	}
	s := string(e.carry)
	e.carry = nil
	_, err := io.WriteString(e.w, escape(s, true))
	return err
}
