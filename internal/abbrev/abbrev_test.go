package abbrev

import (
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

func TestAbbrev(t *testing.T) {
	for in, want := range map[string]string{"0123456789abcdef0123": "0123456789ab", "abc": "abc", "": ""} {
		if got := Commit(in); got != want {
			t.Errorf("Commit(%q) = %q, want %q", in, got, want)
		}
	}
	if got := ID("sha256:" + "ab12cd34ef56ab12cd34"); got != "ab12cd34ef56" {
		t.Errorf("ID = %q", got)
	}
	if got := Line("first\nsecond"); got != "first" {
		t.Errorf("Line = %q", got)
	}
}

func TestImports(t *testing.T) {
	testenv.AllowImports(t)
}
