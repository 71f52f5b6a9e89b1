package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/status"
)

// testClock is the clock the commands of a test judge time by: the bake
// time passes when the test says so, without sleeping.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Two hosts on the real engine and a real Git server: the canary (wave 0)
// runs one app, the client host (wave 1) another. The client applies a
// commit only after the canary runs it converged for the bake time; a
// commit that fails on the canary halts at the client; a fixing commit
// resumes the rollout.
func TestWaveE2ETwoHostsOrderBakeHaltResume(t *testing.T) {
	t.Parallel()
	clock := &testClock{t: time.Now()}
	canary := newFleet(t)
	client := newFleet(t)
	client.repo, client.wave = canary.repo, 1
	canaryApp, clientApp := canary.app(), client.app()
	for _, f := range []*fleet{canary, client} {
		f.extraCfg = "waves:\n  bake_time: 1h\n"
		f.now = clock.Now
	}
	g := newGitRemote(t, canary)
	commit := func(msg string) string {
		canary.commit()
		client.commit()
		return g.push(t, canary, msg, false)
	}
	sync := func(f *fleet) (int, string) {
		return f.syncd("sync", "--repo", g.url, "--token-file", g.tokenFile)
	}
	doc := func(f *fleet) status.Host {
		h, err := status.ReadLocal(f.state)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	// The client first: the canary has not reported; it waits (exit 0)
	// and runs nothing.
	c1 := commit("first")
	code, out := sync(client)
	if code != 0 || !strings.Contains(out, "waiting") || !strings.Contains(out, canary.host+" (wave 0): has not reported") {
		t.Fatalf("client before the canary: exit %d\n%s", code, out)
	}
	if got := containers(t, clientApp); len(got) != 0 {
		t.Fatalf("the client ran %s before the canary: %v", clientApp, got)
	}
	if h := doc(client); h.Rollout == nil || h.Rollout.State != "waiting" || h.Rollout.Commit != c1 || h.AppliedCommit != "" {
		t.Errorf("client's status while waiting: %+v", h)
	}

	// The canary applies at once; the client then waits for the bake time.
	if code, out := sync(canary); code != 0 || !strings.Contains(out, canaryApp+": applied") {
		t.Fatalf("canary: exit %d\n%s", code, out)
	}
	if h := doc(canary); h.AppliedCommit != c1 || h.ConvergedSince.IsZero() || h.Rollout != nil {
		t.Errorf("canary's status: %+v", h)
	}
	clock.Add(30 * time.Minute)
	code, out = sync(client)
	if code != 0 || !strings.Contains(out, "baking until") || strings.Contains(out, clientApp+": applied") {
		t.Fatalf("client during the bake time: exit %d\n%s", code, out)
	}
	clock.Add(31 * time.Minute)
	// The canary's bake has ended: its next cycle (a poll of the agent's
	// at the bake's end, here a sync) writes the document attesting it,
	// the only one that lets wave 1 go.
	sync(canary)
	code, out = sync(client)
	if code != 0 || !strings.Contains(out, clientApp+": applied") || !strings.Contains(out, "converged to "+c1) {
		t.Fatalf("client after the bake time: exit %d\n%s", code, out)
	}
	before := containers(t, clientApp)

	// A commit that fails on the canary (its app turns unhealthy) and
	// changes the client's app too: it halts there.
	canary.vars["UNHEALTHY"] = "1"
	client.vars["MSG"] = "second"
	c2 := commit("bad on the canary")
	if code, out := sync(canary); code == 0 || !strings.Contains(out, canaryApp+": rolled back") {
		t.Fatalf("canary on the bad commit: exit %d\n%s", code, out)
	}
	if h := doc(canary); h.FailedCommit != c2 || h.AppliedCommit != c1 {
		t.Errorf("canary's status after the failure: failed %q applied %q, want %s and %s", h.FailedCommit, h.AppliedCommit, c2, c1)
	}
	clock.Add(2 * time.Hour)
	// The canary's document is written again as the agent's would be on
	// its heartbeat, so that it is fresh: the halt, not staleness, stops c2.
	sync(canary)
	code, out = sync(client)
	if code != exitHalted || !strings.Contains(out, "halted") || !strings.Contains(out, canary.host+" (wave 0): "+canaryApp) {
		t.Fatalf("client on the commit that failed on the canary: exit %d, want %d\n%s", code, exitHalted, out)
	}
	if after := containers(t, clientApp); after[clientApp+"/web"] != before[clientApp+"/web"] {
		t.Errorf("the halted commit reached the client: %v → %v", before, after)
	}
	if h := doc(client); h.Rollout == nil || h.Rollout.State != "halted" || len(h.Rollout.Hosts) != 1 || h.Rollout.Hosts[0].Host != canary.host || h.AppliedCommit != c1 {
		t.Errorf("client's status while halted: %+v", h)
	}

	// The rollout view reads both documents from the status branch.
	var vout, verr bytes.Buffer
	// Neither host has a status_key in main: their documents are
	// unsigned and count, as before status keys.
	if code := runAt(context.Background(), []string{"status", "--fleet", "--repo", g.url, "--token-file", g.tokenFile}, os.Getenv, clock.Now, &vout, &verr); code != 0 ||
		!strings.Contains(vout.String(), "wave 1") || !strings.Contains(vout.String(), "halted") ||
		!strings.Contains(vout.String(), "  unsigned\n"+client.host) || strings.Contains(vout.String(), "unverified") {
		t.Errorf("status --fleet: exit %d\n%s%s", code, vout.String(), verr.String())
	}
	vout.Reset()
	if code := runAt(context.Background(), []string{"status", "--fleet", "--json", "--repo", g.url, "--token-file", g.tokenFile}, os.Getenv, clock.Now, &vout, &verr); code != 0 {
		t.Errorf("status --fleet --json: exit %d\n%s", code, verr.String())
	}
	var view status.FleetView
	if err := json.Unmarshal(vout.Bytes(), &view); err != nil || len(view.Waves) != 2 || len(view.Waves[1].Halted) != 1 || view.Waves[1].Halted[0] != client.host ||
		view.Waves[0].Hosts[0].Trust != status.Unsigned {
		t.Errorf("status --fleet --json: %v\n%s", err, vout.String())
	}

	// A fixing commit resumes: the canary applies it, and after the bake
	// time the client does.
	canary.vars["UNHEALTHY"] = "0"
	c3 := commit("fix")
	if code, out := sync(canary); code != 0 || !strings.Contains(out, "converged to "+c3) {
		t.Fatalf("canary on the fix: exit %d\n%s", code, out)
	}
	clock.Add(61 * time.Minute)
	sync(canary)
	code, out = sync(client)
	if code != 0 || !strings.Contains(out, clientApp+": applied") || !strings.Contains(out, "converged to "+c3) {
		t.Fatalf("client on the fix: exit %d\n%s", code, out)
	}
	if after := containers(t, clientApp); after[clientApp+"/web"] == before[clientApp+"/web"] {
		t.Errorf("the fix did not reach the client's app: %v", after)
	}
	if h := doc(client); h.Rollout != nil || h.AppliedCommit != c3 {
		t.Errorf("client's status after the fix: %+v", h)
	}
}
