package main

import (
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/redact"
)

// TestAttackLogLineCutThroughASecret: a container whose line is long
// enough that engine.MaxLogLine falls inside a secret value showed the
// secret's first bytes (fewer than a fragment's eight, so the redactor
// left them). The line is redacted with the margin past the cap, then cut.
func TestAttackLogLineCutThroughASecret(t *testing.T) {
	const secret = "tok-Zq81LmPx0Vw"
	red := redact.New(map[string]string{"api_token": secret})
	for _, before := range []int{engine.MaxLogLine - 4, engine.MaxLogLine - 7, engine.MaxLogLine - 1, engine.MaxLogLine - len(secret)} {
		l := engine.LogLine{Text: strings.Repeat("x", before) + secret + strings.Repeat("y", 100)}
		got := logText(red, l)
		shown, _, _ := strings.Cut(got, " … (")
		if strings.Contains(shown, secret[:3]) || len(shown) > engine.MaxLogLine {
			t.Errorf("a line cut %d bytes into its secret shows %q at its end (%d bytes)", engine.MaxLogLine-before, shown[max(0, len(shown)-24):], len(shown))
		}
		if !strings.Contains(got, "more bytes of this line not shown") {
			t.Errorf("the cut is not said: %q", got[max(0, len(got)-60):])
		}
	}
}
