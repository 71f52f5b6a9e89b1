package backup

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Run is the snapshots of one backup run of an app: its paths and volumes
// and each dump, sharing a run:<id> tag.
type Run struct {
	ID        string
	Host, App string
	Time      time.Time // of its newest part
	Snapshots []Snapshot
}

// Complete reports whether every part of the run was saved in full: as
// many snapshots, each of a distinct kind, as its parts tag says, none
// partial. A dump that failed left no snapshot, so its run falls short of
// its count.
func (r Run) Complete() bool {
	want := -1
	kinds := map[string]bool{}
	for _, s := range r.Snapshots {
		n, err := strconv.Atoi(s.Tag("parts"))
		if err != nil || n <= 0 || (want != -1 && n != want) || s.HasTag("partial") {
			return false
		}
		want = n
		kinds[s.Kind()] = true
	}
	delete(kinds, "")
	return want > 0 && len(kinds) == want && len(r.Snapshots) == want
}

// Runs groups the snapshots of app on host by their run tag, newest first.
func Runs(snaps []Snapshot, host, app string) []Run {
	byID := map[string]*Run{}
	var runs []*Run
	for _, s := range snaps {
		if s.Tag("host") != host || s.Tag("app") != app || s.Hostname != host {
			continue
		}
		id := s.Tag("run")
		if id == "" {
			continue
		}
		r := byID[id]
		if r == nil {
			r = &Run{ID: id, Host: host, App: app}
			byID[id] = r
			runs = append(runs, r)
		}
		r.Snapshots = append(r.Snapshots, s)
		if s.Time.After(r.Time) {
			r.Time = s.Time
		}
	}
	out := make([]Run, 0, len(runs))
	for _, r := range runs {
		out = append(out, *r)
	}
	slices.SortStableFunc(out, func(a, b Run) int { return b.Time.Compare(a.Time) })
	return out
}

// NewestComplete returns the newest complete run of app on host.
func NewestComplete(snaps []Snapshot, host, app string) (Run, bool) {
	for _, r := range Runs(snaps, host, app) {
		if r.Complete() {
			return r, true
		}
	}
	return Run{}, false
}

// ErrBadSnapshot: a snapshot of the repository carries what syncd never
// writes. Every host that shares the repository holds its password and
// can add snapshots with any tags and paths, so what restic lists is
// checked before it names a file, a path or a run.
var ErrBadSnapshot = errors.New("refused snapshot")

// identityTags are the tags that say whose snapshot it is and of what
// run; each may appear once, and its value is a name.
var identityTags = []string{"host", "app", "run", "parts", "commit"}

// Kinds of part: a volume's, the paths', a dump's.
const (
	kindPaths  = "paths"
	kindVolume = "volume:"
	kindDump   = "dump:"
)

func isKind(tag string) bool {
	return tag == kindPaths || strings.HasPrefix(tag, kindVolume) || strings.HasPrefix(tag, kindDump)
}

// check says everything that is wrong with s, naming s by its ID: a tag
// that is not text, an identity tag twice or with a value that is not a
// name, more than one kind, a volume or dump name that would leave its
// directory, a path that is not absolute and clean, or paths that do not
// fit its kind.
func (s Snapshot) check() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	id := short(s.ID)
	if len(s.ID) != 64 || strings.Trim(s.ID, "0123456789abcdef") != "" || !strings.HasPrefix(s.ID, s.ShortID) {
		id = fmt.Sprintf("%q", s.ID)
		bad("its ID is not restic's")
	}
	if err := checkText(s.Hostname); err != nil {
		bad("hostname: %v", err)
	}
	seen := map[string]bool{}
	var kinds []string
	for _, t := range s.Tags {
		if err := checkText(t); err != nil {
			bad("tag: %v", err)
			continue
		}
		if isKind(t) {
			kinds = append(kinds, t)
			if name, ok := strings.CutPrefix(t, kindVolume); ok {
				checkTagName(t, name, bad)
			} else if name, ok := strings.CutPrefix(t, kindDump); ok {
				checkTagName(t, name, bad)
			}
			continue
		}
		prefix, value, ok := strings.Cut(t, ":")
		if !ok || !slices.Contains(identityTags, prefix) {
			continue
		}
		if seen[prefix] {
			bad("more than one %s: tag", prefix)
		}
		seen[prefix] = true
		checkTagName(t, value, bad)
		if prefix == "run" && (!runIDPattern.MatchString(value) || strings.Trim(value, "0123456789abcdef") == "") {
			bad("tag %q: a run ID is 1 to 64 letters, digits, '.', '_' or '-', not only hex digits (the shape of a snapshot ID)", t)
		}
	}
	if len(kinds) > 1 {
		bad("tags of %d kinds (%s), a part has one", len(kinds), strings.Join(kinds, ", "))
	}
	for i, p := range s.Paths {
		if err := checkPath(p); err != nil {
			bad("path %q: %v", p, err)
		}
		if slices.Contains(s.Paths[:i], p) {
			bad("path %q twice", p)
		}
	}
	if len(kinds) == 1 {
		switch kind := kinds[0]; {
		case strings.HasPrefix(kind, kindVolume) && len(s.Paths) != 1:
			bad("%s saved %d paths, a volume's part saves one", kind, len(s.Paths))
		case strings.HasPrefix(kind, kindDump) && (len(s.Paths) != 1 || s.Paths[0] != "/"+strings.TrimPrefix(kind, kindDump)):
			bad("%s saved %q, a dump's part saves the one file it names", kind, s.Paths)
		case kind == kindPaths && len(s.Paths) == 0:
			bad("paths saved no path")
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w %s: %w; syncd writes no such snapshot: a host holding the repository's password added it (look at it with `restic snapshots %s`, and remove it with `restic forget %s` once you know why)",
			ErrBadSnapshot, id, err, id, id)
	}
	return nil
}

// runIDPattern is what a run tag may hold: syncd's own IDs
// (20060102T150405Z-a1b2c3) and others' that are names; one made only of
// hex digits could be taken for a snapshot ID, and is refused by check.
var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// checkTagName checks the value of tag, a name that becomes one element
// of a path (a volume's directory, a dump's file) or of a run's ID.
func checkTagName(tag, name string, bad func(string, ...any)) {
	if err := checkName(name); err != nil {
		bad("tag %q: %v", tag, err)
	}
}

// checkName says why s cannot be one element of a path: empty, "/" or
// "\", "..", "." or a control character.
func checkName(s string) error {
	switch {
	case s == "":
		return errors.New("the name is empty")
	case strings.ContainsAny(s, `/\`):
		return errors.New("the name holds a / or \\")
	case strings.Contains(s, ".."), s == ".":
		return errors.New("the name holds . or ..")
	}
	return checkText(s)
}

// checkText refuses NUL and every other control character (a name shown
// on a terminal, or passed on), and text that is not UTF-8.
func checkText(s string) error {
	switch {
	case !utf8.ValidString(s):
		return fmt.Errorf("%q is not UTF-8", s)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%q holds a control character", s)
	}
	return nil
}

// checkPath says why p, a path a snapshot saved, is not one syncd saves:
// absolute and clean (no .. in it), text.
func checkPath(p string) error {
	switch {
	case !filepath.IsAbs(p):
		return errors.New("not absolute")
	case filepath.Clean(p) != p:
		return errors.New("not clean (a .., a // or a trailing /)")
	}
	return checkText(p)
}

// checkSnapshots checks every snapshot restic listed, all problems at once.
func checkSnapshots(ss []Snapshot) error {
	var errs []error
	for _, s := range ss {
		if err := s.check(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
