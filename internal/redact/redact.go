// Package redact is the one owner of what must never leave syncd: a host's
// secret values (decrypted from its SOPS file, read from a token file) and
// the credentials a URL carries. Every output path (an error, a log line,
// the status document, a notification, the terminal, a pull-request
// comment) passes text through a Redactor once.
//
// Two strengths, by where the text comes from:
//   - Text is for what syncd itself writes, or the user wrote: a path, a
//     probe target, a table. It replaces each secret value where it shows
//     whole (as it is, quoted as Go and JSON quote it, URL-escaped, each
//     long line of a multi-line value) and the credentials of every URL.
//     It never touches the user's own words.
//   - Outside is for text another program wrote (a child's stderr, a
//     library's message, the Docker engine's answer), which may cut a
//     value short or split it: Text, and also every run of FragmentLen or
//     more bytes shared with a value.
//
// Err and OutsideErr redact an error the same ways; the result keeps
// errors.Is and errors.As of the original chain, but its text, and the
// original's, cannot be reached through Unwrap.
//
// It imports nothing of syncd.
package redact

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// Shown is how a secret value is shown. It carries nothing derived from the
// value: even a fingerprint lets whoever reads it confirm a guessed
// password offline.
const Shown = "<redacted>"

// MinLen is the shortest value replaced where it occurs inside a longer
// text; shorter values are replaced only where they are the whole text,
// since "on" or "1" inside other words is not a leak.
const MinLen = 4

// FragmentLen is the shortest run of a value's bytes that Outside replaces.
const FragmentLen = 8

// Redactor hides a set of secret values. The zero value and nil hide no
// value, and still scrub URL credentials.
type Redactor struct {
	forms []form
	// show is how a value is written in place of itself.
	show func(value string) string
	// named maps a value to the first key (by name) that holds it.
	named map[string]string
}

// form is one way a secret value may be written in a text.
type form struct{ text, value string }

// New returns a Redactor of values, a map from a secret's name to its
// value (a host's decrypted secrets file), and of extra values without a
// name (a token read from a file, a password found in a URL). Placeholders
// such as "<secret:KEY>", which stand in for values never decrypted, are
// no secrets.
func New(values map[string]string, extra ...string) *Redactor {
	r := &Redactor{named: map[string]string{}}
	for _, k := range slices.Sorted(maps.Keys(values)) {
		if _, ok := r.named[values[k]]; !ok {
			r.named[values[k]] = k
		}
	}
	all := slices.Collect(maps.Values(values))
	all = append(all, extra...)
	all = slices.DeleteFunc(all, func(v string) bool { return v == "" || IsPlaceholder(v) })
	slices.SortFunc(all, func(a, b string) int { return cmp.Or(cmp.Compare(len(b), len(a)), cmp.Compare(a, b)) })
	all = slices.Compact(all)
	seen := map[string]bool{}
	add := func(text, value string) {
		if text != "" && !seen[text] {
			seen[text] = true
			r.forms = append(r.forms, form{text, value})
		}
	}
	for _, v := range all {
		add(v, v)
		q := strconv.Quote(v)
		add(q[1:len(q)-1], v)
		if j, err := json.Marshal(v); err == nil {
			add(string(j[1:len(j)-1]), v)
		}
		if len(v) >= FragmentLen {
			add(url.QueryEscape(v), v)
			add(url.PathEscape(v), v)
		}
		if strings.Contains(v, "\n") {
			for l := range strings.Lines(v) {
				if l = strings.TrimSpace(l); len(l) >= FragmentLen {
					add(l, v)
				}
			}
		}
	}
	// Longest first, so a value that contains another is replaced whole.
	slices.SortStableFunc(r.forms, func(a, b form) int { return cmp.Compare(len(b.text), len(a.text)) })
	return r
}

// Named returns a Redactor of the same values that shows each as
// <secret:KEY>, for a reviewer who must see which secret a setting holds
// (syncd diff, syncd probe); nothing of the value shows either way.
func (r *Redactor) Named() *Redactor {
	if r == nil {
		return nil
	}
	n := *r
	n.show = func(v string) string {
		if k, ok := r.named[v]; ok {
			return "<secret:" + k + ">"
		}
		return Shown
	}
	return &n
}

// Empty reports whether r hides no value.
func (r *Redactor) Empty() bool { return r == nil || len(r.forms) == 0 }

// Values returns the distinct values r hides, longest first: for a caller
// that must find them in a structure rather than a text (a rendered
// project's scalars).
func (r *Redactor) Values() []string {
	if r == nil {
		return nil
	}
	var out []string
	for _, f := range r.forms {
		if f.text == f.value {
			out = append(out, f.value)
		}
	}
	return out
}

func (r *Redactor) shown(value string) string {
	if r.show != nil {
		return r.show(value)
	}
	return Shown
}

// Text returns s with every secret value r holds, where it shows whole,
// and the credentials of every URL in s replaced. Use it for text syncd
// made or the user wrote.
func (r *Redactor) Text(s string) string {
	if s == "" {
		return s
	}
	if r != nil {
		for _, f := range r.forms {
			if f.text == s {
				return r.shown(f.value)
			}
			if len(f.text) >= MinLen {
				s = strings.ReplaceAll(s, f.text, r.shown(f.value))
			}
		}
	}
	return URLs(s)
}

// Outside is Text, then also replaces every run of FragmentLen or more
// bytes that s shares with a value (or a form of it). Use it for text
// another program wrote, which may quote a value cut short or split; it
// may hide more than a value, which in such text is harmless.
func (r *Redactor) Outside(s string) string {
	s = r.Text(s)
	if r == nil {
		return s
	}
	for _, f := range r.forms {
		if len(f.text) < FragmentLen {
			continue
		}
		var b strings.Builder
		replaced := false
		for i := 0; i < len(s); {
			n := 0
			for i+n+FragmentLen <= len(s) && strings.Contains(f.text, s[i:i+n+FragmentLen]) {
				n++
			}
			if n > 0 {
				b.WriteString(r.shown(f.value))
				i += n + FragmentLen - 1
				replaced = true
				continue
			}
			b.WriteByte(s[i])
			i++
		}
		if replaced {
			s = b.String()
		}
	}
	return s
}

// Err returns err with its text passed through Text; nil stays nil.
func (r *Redactor) Err(err error) error { return r.wrap(err, r.Text) }

// OutsideErr returns err with its text passed through Outside: for an
// error another program's text is in (a library's, a child's stderr).
func (r *Redactor) OutsideErr(err error) error { return r.wrap(err, r.Outside) }

func (r *Redactor) wrap(err error, clean func(string) string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if c := clean(msg); c != msg || !isRedacted(err) {
		var orig error = err
		if e, ok := err.(*Error); ok {
			orig = e.orig // one layer: never a chain of copies
		}
		return &Error{msg: c, orig: orig}
	}
	return err
}

func isRedacted(err error) bool {
	_, ok := err.(*Error)
	return ok
}

// Error is an error whose text has been redacted. errors.Is and errors.As
// see the original chain (its sentinels and types); Unwrap is not offered,
// so nothing reaches the original text through it.
type Error struct {
	msg  string
	orig error
}

func (e *Error) Error() string { return e.msg }

// Is reports whether the original chain matches target.
func (e *Error) Is(target error) bool { return errors.Is(e.orig, target) }

// As finds the first error of the original chain that matches target.
func (e *Error) As(target any) bool { return errors.As(e.orig, target) }

// IsPlaceholder reports whether v stands in for a value never decrypted
// (<secret:KEY>, what validation renders with).
func IsPlaceholder(v string) bool {
	return strings.HasPrefix(v, "<secret:") && strings.HasSuffix(v, ">")
}

// urlInText finds URLs in free text: net/http puts the whole request URL in
// its errors, Git libraries their remote's.
var urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>` + "`" + `]+`)

// URLs returns s with the credentials of every URL in it removed (see URL).
func URLs(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, func(u string) string {
		// A URL at the end of a sentence keeps its punctuation outside.
		trail := len(u) - len(strings.TrimRight(u, ".,;:)]"))
		return URL(u[:len(u)-trail]) + u[len(u)-trail:]
	})
}

// sensitiveQuery are query parameters that carry a credential.
var sensitiveQuery = []string{"token", "access_token", "private_token", "key", "apikey", "api_key", "secret", "password", "passwd", "pass", "sig", "signature", "auth", "code"}

// URL returns raw with its credentials removed: a password in its user
// info; for http(s) any user name too (a token is often put there); and the
// value of each query parameter that names a credential (token=, key=,
// sig=…). A URL that does not parse loses its user info whole. Anything
// else (scp-like ssh, a path) is returned as it is.
func URL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		authority, path, _ := strings.Cut(rest, "/")
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			authority = "xxxxx@" + authority[at+1:]
		}
		if path != "" || strings.Contains(rest, "/") {
			return scheme + "://" + authority + "/" + path
		}
		return scheme + "://" + authority
	}
	changed := false
	if u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			changed = true
		}
		if u.Scheme == "http" || u.Scheme == "https" || strings.HasSuffix(u.Scheme, "+http") || strings.HasSuffix(u.Scheme, "+https") {
			u.User = url.User("xxxxx")
			changed = true
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k, vs := range q {
			// An empty value holds nothing: it is what precedes a value
			// already shown as <redacted> (the text's URL ends at the '<').
			if slices.Contains(sensitiveQuery, strings.ToLower(k)) && strings.Join(vs, "") != "" && strings.Join(vs, "") != "xxxxx" {
				q.Set(k, "xxxxx")
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	if !changed {
		return raw
	}
	return u.String()
}

// Hosts returns s with every URL in it shown as Host shows it.
func Hosts(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, func(u string) string {
		trail := len(u) - len(strings.TrimRight(u, ".,;:)]"))
		return Host(u[:len(u)-trail]) + u[len(u)-trail:]
	})
}

// Host shows a URL as scheme://host alone, for a URL whose path and query
// may hold a token anywhere (a notification sink's: slack://hook/A/B,
// telegram://TOKEN@telegram).
func Host(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "(a URL)"
	}
	return u.Scheme + "://" + u.Host
}

// Current is the host's Redactor of the moment: the secrets of the commit
// last rendered. A cycle sets it once it has decrypted them; the log
// Handler and anything else that outlives one cycle reads it. The zero
// value holds none (URL credentials are still scrubbed).
type Current struct{ p atomic.Pointer[Redactor] }

// Set makes r the current Redactor.
func (c *Current) Set(r *Redactor) {
	if c != nil {
		c.p.Store(r)
	}
}

// Get returns the current Redactor (nil: none yet, which still scrubs URL
// credentials).
func (c *Current) Get() *Redactor {
	if c == nil {
		return nil
	}
	return c.p.Load()
}

// Handler redacts every log record with the Current Redactor before the
// handler it wraps sees it: the message and every attribute's value (an
// error's text, a string, a group's members), with Text. It is the one
// redaction of syncd's log output: a component logs what it has, and text
// from outside reaches the log already redacted where it entered.
type Handler struct {
	next slog.Handler
	cur  *Current
}

// NewHandler wraps next.
func NewHandler(next slog.Handler, cur *Current) *Handler { return &Handler{next: next, cur: cur} }

func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *Handler) Handle(ctx context.Context, rec slog.Record) error {
	r := h.cur.Get()
	out := slog.NewRecord(rec.Time, rec.Level, r.Text(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(r, a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs redacts attributes given once for a logger (With): the values
// at that moment, with the Redactor of that moment and of every later
// record, since they are redacted again as they are handled.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	r := h.cur.Get()
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = redactAttr(r, a)
	}
	return &Handler{next: h.next.WithAttrs(out), cur: h.cur}
}

func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), cur: h.cur}
}

func redactAttr(r *Redactor, a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, r.Text(v.String()))
	case slog.KindGroup:
		as := v.Group()
		out := make([]slog.Attr, len(as))
		for i, g := range as {
			out[i] = redactAttr(r, g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, r.Text(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, r.Text(x.String()))
		case []string:
			out := make([]string, len(x))
			for i, s := range x {
				out[i] = r.Text(s)
			}
			return slog.Any(a.Key, out)
		default:
			// Anything else is shown as it prints, when that holds a value.
			if s := fmt.Sprint(x); r.Text(s) != s {
				return slog.String(a.Key, r.Text(s))
			}
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
