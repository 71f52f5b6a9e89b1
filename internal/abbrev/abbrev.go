// Package abbrev is how syncd shortens what it shows of an identifier or
// a message: a commit as its first 12 hex digits (as `git log --oneline`
// with core.abbrev=12), an image or container ID without its sha256:
// prefix, a message as its first line, a long text cut to a size. One copy of each, so every table,
// log line and status document abbreviates alike.
//
// It imports nothing of syncd.
package abbrev

import "strings"

// Commit is the first 12 characters of a commit hash (all of a shorter
// one, such as tree-… of a local directory's content hash prefix).
func Commit(c string) string { return c[:min(12, len(c))] }

// ID is an image or container ID without its "sha256:" prefix, cut to 12
// characters, as the docker CLI shows it.
func ID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	return id[:min(12, len(id))]
}

// Line is the first line of s: a one-line view of a message that may go on
// (a library's error with its stack of causes, a child's stderr).
func Line(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// Text is s cut to at most n bytes without splitting a character, with
// "…" after it when it was cut: what a comment, a table or an error can
// hold of a text another party made as long as it liked.
func Text(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
