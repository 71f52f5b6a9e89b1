package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/status"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// enrolStatusKey makes the host's status key in its state directory, as
// its first start would, and enrols it in main's host.yaml.
func enrolStatusKey(t *testing.T, f *fleet) {
	t.Helper()
	key, _, err := status.OpenKey(f.state, f.host)
	if err != nil {
		t.Fatal(err)
	}
	f.hostCfg += "status_key: " + key.Public() + "\n"
}

// TestAttackStatusBakeNotAttested (issue 18 §2): the canary publishes its
// genuine, signed document right after it applied the commit, then dies
// half way through its bake; an attacker who holds any host's Git
// credentials pushes that document again on the canary's branch after the
// bake window. Neither lets wave 1 go: only a document the canary wrote
// after its bake ended, attesting it, does, and a canary that comes back
// writes one.
func TestAttackStatusBakeNotAttested(t *testing.T) {
	t.Parallel()
	clock := &testClock{t: time.Now()}
	canary := newFleet(t)
	client := newFleet(t)
	client.repo, client.wave = canary.repo, 1
	canary.app()
	clientApp := client.app()
	for _, f := range []*fleet{canary, client} {
		f.extraCfg = "waves:\n  bake_time: 1h\n"
		f.now = clock.Now
		enrolStatusKey(t, f)
	}
	g := newGitRemote(t, canary)
	canary.commit()
	client.commit()
	c1 := g.push(t, canary, "first", false)
	sync := func(f *fleet) (int, string) {
		return f.syncd("sync", "--repo", g.url, "--token-file", g.tokenFile)
	}

	if code, out := sync(canary); code != 0 || !strings.Contains(out, "converged to "+c1) {
		t.Fatalf("canary: exit %d\n%s", code, out)
	}
	// The canary dies ten minutes into its bake: its last document is the
	// one written right after the apply.
	clock.Add(61 * time.Minute)
	code, out := sync(client)
	if code != 0 || strings.Contains(out, clientApp+": applied") || !strings.Contains(out, canary.host+" (wave 0): ") ||
		!strings.Contains(out, "before its bake") {
		t.Fatalf("client on a document written before the canary's bake ended: exit %d\n%s", code, out)
	}

	// The attacker pushes the canary's genuine document again, as a new
	// commit on its branch, with the Git credentials every host holds.
	work := filepath.Join(t.TempDir(), "attacker")
	auth := strings.Replace(g.url, "http://", "http://dev:"+g.server.Token+"@", 1)
	branch := status.DefaultBranch + "-" + canary.host
	testenv.Git(t, filepath.Dir(work), "clone", "-q", "--branch", branch, auth, work)
	testenv.Git(t, work, "-c", "user.name=attacker", "-c", "user.email=attacker@example.org", "commit", "-q", "--allow-empty", "-m", "the canary's document, again")
	testenv.Git(t, work, "push", "-q", "origin", "HEAD:"+branch)
	code, out = sync(client)
	if code != 0 || strings.Contains(out, clientApp+": applied") || !strings.Contains(out, "before its bake") {
		t.Fatalf("client on the canary's early document pushed again: exit %d\n%s", code, out)
	}
	if got := containers(t, clientApp); len(got) != 0 {
		t.Fatalf("wave 1 ran %s on a bake the canary never attested: %v", clientApp, got)
	}

	// The canary comes back: its bake has ended, it says so, and wave 1
	// goes.
	if code, out := sync(canary); code != 0 {
		t.Fatalf("canary after its bake: exit %d\n%s", code, out)
	}
	if h, err := status.ReadLocal(canary.state); err != nil || h.BakedCommit != c1 || h.BakedAt.Before(h.ConvergedSince.Add(time.Hour)) {
		t.Fatalf("canary's document after its bake: %v %+v", err, h)
	}
	if code, out := sync(client); code != 0 || !strings.Contains(out, clientApp+": applied") || !strings.Contains(out, "converged to "+c1) {
		t.Fatalf("client after the canary attested its bake: exit %d\n%s", code, out)
	}
}
