package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestLoggerOneComponent: a logger narrowed twice, as the jobs runner
// narrows its own for restic, logs one component, the joined path.
func TestLoggerOneComponent(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var out bytes.Buffer
		log, err := newLogger(&cli{stderr: &out}, format)
		if err != nil {
			t.Fatal(err)
		}
		log.With("component", "jobs").With("component", "restic").Info("snapshot")
		line := out.String()
		if n := strings.Count(line, "component"); n != 1 || !strings.Contains(line, "jobs/restic") {
			t.Errorf("%s: %d components, want one, jobs/restic: %s", format, n, line)
		}
	}
}
