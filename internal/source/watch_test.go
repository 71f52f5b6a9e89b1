package source

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// wait is how long a test waits for a call it expects: generous, as the
// machine may be busy; a passing run never waits that long.
const wait = 10 * time.Second

func TestWatchCallsOncePerBurstAndFollowsNewDirectories(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
	os.MkdirAll(filepath.Join(dir, "hosts", "a"), 0o755)
	l := Local{Dir: dir}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Each call reports which marker files existed when it ran.
	type call struct{ markers map[string]bool }
	calls := make(chan call, 16)
	markers := []string{"m1", "m2", "apps/web/m3"}
	changed := func() {
		c := call{markers: map[string]bool{}}
		for _, m := range markers {
			if _, err := os.Stat(filepath.Join(dir, m)); err == nil {
				c.markers[m] = true
			}
		}
		calls <- c
	}
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- l.watch(ctx, 200*time.Millisecond, changed, func() { close(ready) }) }()
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	next := func(what string) call {
		t.Helper()
		select {
		case c := <-calls:
			return c
		case err := <-done:
			t.Fatalf("%s: Watch returned: %v", what, err)
		case <-time.After(wait):
			t.Fatalf("%s: no call within %s", what, wait)
		}
		return call{}
	}
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Watch returned: %v", err)
	case <-time.After(wait):
		t.Fatal("the tree was not watched in time")
	}

	// A burst: many writes, one call, which sees the burst's last file.
	for i := 0; i < 20; i++ {
		write("hosts/a/host.yaml", "apps: [web]\n# "+string(rune('a'+i))+"\n")
	}
	write("m1", "1")
	if c := next("burst"); !c.markers["m1"] {
		t.Errorf("the burst's call ran before its last write: %v", c.markers)
	}
	// Ignored files, then a real change: the next call is the real one's
	// (had the ignored files made their own call, it would come first and
	// not see m2; this is a weak check, ignoredTest covers the names).
	write(".git/index", "x")
	write("hosts/a/.host.yaml.swp", "x")
	write("m2", "2")
	if c := next("after m2"); !c.markers["m2"] {
		t.Errorf("a call that did not see m2: %v", c.markers)
	}
	// A directory created now, and a file in it later.
	if err := os.MkdirAll(filepath.Join(dir, "apps", "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	next("new directory")
	write("apps/web/compose.yaml", "services: {}\n")
	next("a file in the new directory")
	write("apps/web/m3", "3")
	c := next("a second file in the new directory")
	if !c.markers["apps/web/m3"] {
		t.Errorf("the call did not see apps/web/m3: %v", c.markers)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch after cancel: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Watch did not return after its context ended")
	}
	// Every burst made exactly one call: none is left over.
	if n := len(calls); n != 0 {
		t.Errorf("%d more calls than bursts", n)
	}
}

func TestWatchIgnores(t *testing.T) {
	l := Local{Dir: "/fleet"}
	for p, want := range map[string]bool{
		"/fleet/hosts/a/host.yaml":         false,
		"/fleet/apps/web/compose.yaml":     false,
		"/fleet/.git":                      true,
		"/fleet/.git/objects/ab/cdef":      true,
		"/fleet/apps/.git/HEAD":            true,
		"/fleet/hosts/a/.host.yaml.swp":    true,
		"/fleet/hosts/a/.host.yaml.swx":    true,
		"/fleet/hosts/a/host.yaml~":        true,
		"/fleet/hosts/a/.#host.yaml":       true,
		"/fleet/hosts/a/#host.yaml#":       true,
		"/fleet/hosts/a/4913":              true,
		"/fleet/apps/web/.gitignore":       false,
		"/fleet/apps/web/override.yaml.in": false,
	} {
		if got := l.ignored(p); got != want {
			t.Errorf("ignored(%s) = %t, want %t", p, got, want)
		}
	}
}

func TestWatchMissingDirectory(t *testing.T) {
	err := Local{Dir: filepath.Join(t.TempDir(), "missing")}.Watch(context.Background(), time.Millisecond, func() {})
	if err == nil {
		t.Error("Watch of a missing directory returned nil")
	}
}
