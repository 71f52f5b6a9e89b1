package desired

import "strings"

// varRef is one ${NAME} reference in a compose value.
type varRef struct {
	Name    string
	Op      string // "", ":-", "-", ":?", "?", ":+", "+"
	Default string // the text after Op
}

// required reports whether an unset variable is an error for this form:
// ${NAME} and ${NAME:?msg} are; ${NAME:-default} and ${NAME:+alt} are not.
func (v varRef) required() bool {
	return v.Op == "" || v.Op == ":?" || v.Op == "?"
}

// scanVars returns the variable references of s in the Compose
// interpolation syntax: $NAME, ${NAME}, ${NAME<op>text}; $$ escapes a $.
func scanVars(s string) []varRef {
	var out []varRef
	for i := 0; i+1 < len(s); i++ {
		if s[i] != '$' {
			continue
		}
		switch c := s[i+1]; {
		case c == '$':
			i++
		case c == '{':
			j := i + 2
			for j < len(s) && isNameChar(s[j], j == i+2) {
				j++
			}
			end := closingBrace(s, i+1)
			if j == i+2 || end < 0 {
				continue // malformed; the Compose loader reports it
			}
			ref := varRef{Name: s[i+2 : j]}
			rest := s[j:end]
			for _, op := range []string{":-", ":?", ":+", "-", "?", "+"} {
				if strings.HasPrefix(rest, op) {
					ref.Op, ref.Default = op, rest[len(op):]
					break
				}
			}
			if rest != "" && ref.Op == "" {
				i = end
				continue // ${A.B}: malformed; the Compose loader reports it
			}
			out = append(out, ref)
			i = end
		case isNameChar(c, true):
			j := i + 1
			for j < len(s) && isNameChar(s[j], false) {
				j++
			}
			out = append(out, varRef{Name: s[i+1 : j]})
			i = j - 1
		}
	}
	return out
}

// closingBrace returns the index of the } matching the { at open, counting
// nested ${...}, or -1.
func closingBrace(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

func isNameChar(c byte, first bool) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && '0' <= c && c <= '9'
}
