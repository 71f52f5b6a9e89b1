package status

import (
	"strings"
	"testing"
	"time"
)

func TestProbesSortedRedactedAndKept(t *testing.T) {
	days := 5
	h := Host{Host: "alpha", Projects: []Project{{Name: "web", Probes: []Probe{
		{Name: "tls", Kind: "http", State: "up", CertDaysLeft: &days},
		{Name: "home", Kind: "http", State: "down", Since: time.Date(2026, 3, 1, 12, 0, 0, 5, time.FixedZone("x", 3600)), LastError: "GET https://x/?token=hunter2-secret: status 500"},
	}}}}
	n := redacted(normalise(h), func(s string) string { return strings.ReplaceAll(s, "hunter2-secret", "<redacted>") })
	ps := n.Projects[0].Probes
	if ps[0].Name != "home" || ps[0].Since.Location() != time.UTC || strings.Contains(ps[0].LastError, "hunter2") {
		t.Errorf("normalised probes: %+v", ps)
	}
	if !strings.Contains(h.Projects[0].Probes[1].LastError, "hunter2") {
		t.Error("redacted changed the caller's document")
	}
	dir := t.TempDir()
	if err := WriteLocal(dir, n); err != nil {
		t.Fatal(err)
	}
	back, err := ReadLocal(dir)
	if err != nil || len(back.Projects[0].Probes) != 2 || *back.Projects[0].Probes[1].CertDaysLeft != 5 {
		t.Errorf("round trip: %+v %v", back, err)
	}
	// A probe changing state is a change of the document.
	m := normalise(h)
	m.Projects[0].Probes[0].State = "up"
	if Equal(h, m) {
		t.Error("a probe's state change is not a change")
	}
}
