package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestFindToolChecksThePinnedVersion: a tool found on PATH is used only when
// it is the version tools/ pins. Debian's docker-compose 1.29 (Python) and
// any other binary under a pinned name are named with what they are.
func TestFindToolChecksThePinnedVersion(t *testing.T) {
	age := Tool(t, "age")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir()
	copyFile := func(from, to string) {
		t.Helper()
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(path, to), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(age, "age")
	copyFile(goBin, "restic")
	if err := os.WriteFile(filepath.Join(path, "docker-compose"), []byte("#!/bin/sh\necho 'docker-compose version 1.29.2'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SYNCD_TOOLS", t.TempDir()) // an empty tools directory: PATH is all there is
	t.Setenv("PATH", path)

	if p, err := FindTool("age"); err != nil || p != filepath.Join(path, "age") {
		t.Errorf("the pinned age on PATH: %q, %v", p, err)
	}
	for name, want := range map[string]string{
		"docker-compose": "is not the pinned github.com/docker/compose/v5 v5.5.1: it is not a Go binary",
		"restic":         "is not the pinned github.com/restic/restic v0.19.1: it was not built from that module",
		"sops":           "is on neither PATH nor",
	} {
		p, err := FindTool(name)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "make tools") {
			t.Errorf("FindTool(%s) = %q, %v; want an error saying %q", name, p, err, want)
		}
		if LookTool(name) != "" {
			t.Errorf("LookTool(%s) takes the wrong tool", name)
		}
	}
}

// TestToolWaitsForABackgroundBuild: while scripts/tools.sh --background
// builds a tool (make test so builds trivy), a test that needs it waits for
// the builder to end; a lock left by a killed builder holds no one up.
func TestToolWaitsForABackgroundBuild(t *testing.T) {
	age := Tool(t, "age")
	cache := t.TempDir()
	t.Setenv("SYNCD_TOOLS", cache)
	for _, d := range []string{"bin", "building"} {
		if err := os.MkdirAll(filepath.Join(cache, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(age)
	if err != nil {
		t.Fatal(err)
	}
	// The "builder" puts the binary in place, then ends.
	builder := exec.Command("sh", "-c", `sleep 2; cp "$0" "$1"`, age, filepath.Join(cache, "bin", "age"))
	if err := builder.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- builder.Wait() }()
	lock := filepath.Join(cache, "building", "age")
	if err := os.WriteFile(lock, []byte(strconv.Itoa(builder.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir()) // no age but the one the build makes
	// Without the wait FindTool finds no age and the test fails (strict).
	got := Tool(t, "age")
	if b, err := os.ReadFile(got); err != nil || len(b) != len(data) || got != filepath.Join(cache, "bin", "age") {
		t.Errorf("Tool = %s after the build: %v", got, err)
	}
	<-done
	// A lock whose builder is gone: Tool does not wait on it.
	if err := os.WriteFile(lock, []byte(strconv.Itoa(builder.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p := Tool(t, "age"); p != got {
		t.Errorf("with a dead builder's lock: %s", p)
	}
}
