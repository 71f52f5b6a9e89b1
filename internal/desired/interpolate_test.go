package desired

import (
	"reflect"
	"testing"
)

func TestScanVars(t *testing.T) {
	cases := []struct {
		in   string
		want []varRef
	}{
		{"", nil},
		{"plain text", nil},
		{"$", nil},
		{"cost: 5$", nil},
		{"${A}", []varRef{{Name: "A"}}},
		{"$A", []varRef{{Name: "A"}}},
		{"$A_B1/x", []varRef{{Name: "A_B1"}}},
		{"$1A", nil},
		{"pre-${HOST_NAME}-post", []varRef{{Name: "HOST_NAME"}}},
		{"${a}${B}", []varRef{{Name: "a"}, {Name: "B"}}},
		{"${A:-x}", []varRef{{Name: "A", Op: ":-", Default: "x"}}},
		{"${A-x}", []varRef{{Name: "A", Op: "-", Default: "x"}}},
		{"${A:-}", []varRef{{Name: "A", Op: ":-"}}},
		{"${A?err}", []varRef{{Name: "A", Op: "?", Default: "err"}}},
		{"${A:?must be set}", []varRef{{Name: "A", Op: ":?", Default: "must be set"}}},
		{"${A:+on}", []varRef{{Name: "A", Op: ":+", Default: "on"}}},
		{"${A+on}", []varRef{{Name: "A", Op: "+", Default: "on"}}},
		{"${A-x:-y}", []varRef{{Name: "A", Op: "-", Default: "x:-y"}}},
		// $$ is a literal $, whatever follows it.
		{"$$", nil},
		{"$$A", nil},
		{"$${A}", nil},
		{"$$$A", []varRef{{Name: "A"}}},
		{"$$${A}", []varRef{{Name: "A"}}},
		{"echo $$HOME and ${B}", []varRef{{Name: "B"}}},
		// Nested: the inner reference is kept in Default, for check.
		{"${A:-${B}}", []varRef{{Name: "A", Op: ":-", Default: "${B}"}}},
		{"${A:-${B:-${C}}}/x", []varRef{{Name: "A", Op: ":-", Default: "${B:-${C}}"}}},
		{"${A:-${B}} ${D}", []varRef{{Name: "A", Op: ":-", Default: "${B}"}, {Name: "D"}}},
		// Malformed: left to the Compose loader, which reports it.
		{"${A", nil},
		{"${}", nil},
		{"${1A}", nil},
		{"${A.B}", nil},
		{"${ A}", nil},
	}
	for _, c := range cases {
		if got := scanVars(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("scanVars(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestVarRefRequired(t *testing.T) {
	for op, want := range map[string]bool{"": true, ":?": true, "?": true, ":-": false, "-": false, ":+": false, "+": false} {
		if got := (varRef{Name: "A", Op: op}).required(); got != want {
			t.Errorf("required() with op %q = %v, want %v", op, got, want)
		}
	}
}

func TestClosingBrace(t *testing.T) {
	cases := []struct {
		s    string
		open int
		want int
	}{
		{"${A}", 1, 3},
		{"${A:-${B}}x", 1, 9},
		{"${A", 1, -1},
		{"x${A:-{}}", 2, 8},
	}
	for _, c := range cases {
		if got := closingBrace(c.s, c.open); got != c.want {
			t.Errorf("closingBrace(%q, %d) = %d, want %d", c.s, c.open, got, c.want)
		}
	}
}
