package status

import (
	"errors"
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

// sample is a typical document of host: two projects, one image each.
func sample(host string) Host {
	return Host{
		Host:          host,
		Wave:          1,
		DesiredCommit: "0123456789abcdef0123456789abcdef01234567",
		AppliedCommit: "0123456789abcdef0123456789abcdef01234567",
		State:         Converged,
		UpdatedAt:     t0,
		SyncdVersion:  "v0.1.0",
		LastCycle:     Cycle{At: t0, DurationMS: 812, Result: "unchanged"},
		Projects: []Project{
			{
				Name: "web", State: Converged, Commit: "0123456789abcdef0123456789abcdef01234567",
				ConfigHash: map[string]string{"web": "aa11"},
				Images:     []Image{{Service: "web", Ref: "nginx:1.27", ID: "sha256:" + strings.Repeat("b", 64), Digest: "nginx@sha256:" + strings.Repeat("c", 64)}},
				Health:     Healthy,
			},
			{
				Name: "db", State: Converged, Commit: "0123456789abcdef0123456789abcdef01234567",
				ConfigHash: map[string]string{"db": "dd22"},
				Images:     []Image{{Service: "db", Ref: "postgres:17", ID: "sha256:" + strings.Repeat("e", 64)}},
				Health:     NoHealth,
			},
		},
		Jobs: []Job{{Name: "backup db", At: t0, DurationMS: 3000, Result: "ok"}},
	}
}

func TestEqual(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Host)
		equal bool
	}{
		{"same", func(*Host) {}, true},
		{"heartbeat time", func(h *Host) { h.UpdatedAt = h.UpdatedAt.Add(time.Hour) }, true},
		{"cycle time and duration", func(h *Host) { h.LastCycle.At = t0.Add(time.Minute); h.LastCycle.DurationMS = 5 }, true},
		{"job time and duration", func(h *Host) { h.Jobs[0].At = t0.Add(time.Minute); h.Jobs[0].DurationMS = 1 }, true},
		{"projects in another order", func(h *Host) { h.Projects[0], h.Projects[1] = h.Projects[1], h.Projects[0] }, true},
		{"same instant, other zone", func(h *Host) { h.UpdatedAt = h.UpdatedAt.In(time.FixedZone("x", 3600)) }, true},
		{"config hash removed", func(h *Host) { h.Projects[1].ConfigHash = nil }, false},
		{"state", func(h *Host) { h.State = Degraded }, false},
		{"applied commit", func(h *Host) { h.AppliedCommit = "fedc" }, false},
		{"cycle result", func(h *Host) { h.LastCycle.Result = "applied" }, false},
		{"cycle error", func(h *Host) { h.LastCycle.Error = "boom" }, false},
		{"drift", func(h *Host) { h.Drift = 1 }, false},
		{"config hash", func(h *Host) { h.Projects[0].ConfigHash["web"] = "aa12" }, false},
		{"image id", func(h *Host) { h.Projects[0].Images[0].ID = "sha256:" + strings.Repeat("f", 64) }, false},
		{"health", func(h *Host) { h.Projects[0].Health = Unhealthy }, false},
		{"project error", func(h *Host) { h.Projects[0].LastError = "unhealthy" }, false},
		{"job result", func(h *Host) { h.Jobs[0].Result = "failed" }, false},
		{"version", func(h *Host) { h.SyncdVersion = "v0.2.0" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := sample("alpha"), sample("alpha")
			tc.edit(&b)
			if got := Equal(a, b); got != tc.equal {
				t.Errorf("Equal = %v, want %v", got, tc.equal)
			}
		})
	}
	// An empty map and a missing one write the same file.
	a, b := sample("alpha"), sample("alpha")
	b.Projects[1].ConfigHash = map[string]string{}
	a.Projects[1].ConfigHash = nil
	if !Equal(a, b) {
		t.Error("an empty config_hash differs from none")
	}
}

func TestNormaliseCopies(t *testing.T) {
	h := sample("alpha")
	h.Projects[1].Images[0].Ref = "postgres:17-hunter2"
	n := redacted(normalise(h), func(s string) string { return strings.ReplaceAll(s, "hunter2", "<redacted>") })
	if n.Projects[0].Images[0].Ref != "postgres:17-<redacted>" {
		t.Errorf("an image reference made of a secret is written as %q", n.Projects[0].Images[0].Ref)
	}
	n.Projects[0].ConfigHash["db"] = "changed"
	n.Projects[0].Images[0].Ref = "changed"
	if h.Projects[1].ConfigHash["db"] != "dd22" || h.Projects[1].Images[0].Ref != "postgres:17-hunter2" {
		t.Error("normalise shares memory with the caller's document")
	}
	if n.Projects[0].Name != "db" || h.Projects[0].Name != "web" {
		t.Error("normalise did not sort a copy")
	}
}

func TestLocalRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadLocal(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadLocal of nothing: %v", err)
	}
	h := sample("alpha")
	if err := WriteLocal(dir, h); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "status.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("status.json mode %o, want 600", fi.Mode().Perm())
	}
	got, err := ReadLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !Equal(got, h) || !got.UpdatedAt.Equal(h.UpdatedAt) {
		t.Errorf("read back %+v\nwrote %+v", got, h)
	}
	if got.Projects[0].Name != "db" {
		t.Error("projects are not sorted by name")
	}
}

// TestImports keeps the layering: status defines its own document and
// knows nothing of the loop that fills it. It signs and verifies
// documents with source's SSHSIG (the one owner of that format), and
// nothing else of source.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if pkg.Doc == "" {
		t.Error("package status has no doc comment")
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/go-git/") {
			t.Errorf("package status imports %s: Git is package source's", imp)
		}
		for _, banned := range []string{"engine", "reconcile", "agent", "plan"} {
			if imp == "github.com/syncd-dev/syncd/internal/"+banned || strings.HasPrefix(imp, "github.com/syncd-dev/syncd/internal/"+banned+"/") {
				t.Errorf("package status imports %s", imp)
			}
		}
	}
}
