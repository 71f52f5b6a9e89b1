package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/status"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestSuspendE2E: for incident response an app is left as it runs, as
// `flux suspend` does: suspended on the host (`syncd suspend`, with a
// reason and an end) or in Git (`suspended: {reason}` in app.yaml), no
// commit is applied to it, drift is not healed, and removing it from
// host.yaml does not prune it; the plan and the status say who suspended
// it, why and until when. Resumed, the next cycle applies Git and heals.
func TestSuspendE2E(t *testing.T) {
	t.Parallel()
	testenv.Docker(t)
	f := newFleet(t)
	app, other := f.app(), f.app()
	f.commit()
	f.mustSync()
	before := containers(t, app)

	cmd := func(args ...string) (int, string) {
		t.Helper()
		var out bytes.Buffer
		env := func(k string) string {
			if k == "SUDO_USER" {
				return "alice"
			}
			return os.Getenv(k)
		}
		code := runAt(context.Background(), append(args, "--state-dir", f.state), env, time.Now, &out, &out)
		return code, out.String()
	}
	if code, out := cmd("suspend", "--app", app); code != exitUsage || !strings.Contains(out, "--reason TEXT is required") {
		t.Errorf("suspend without a reason: exit %d:\n%s", code, out)
	}
	code, out := cmd("suspend", "--app", app, "--reason", "incident 42: DB migration by hand", "--for", "2h")
	if code != 0 || !strings.Contains(out, app+" is suspended until ") {
		t.Fatalf("suspend: exit %d:\n%s", code, out)
	}

	// A new commit and a container stopped by hand: neither touches it.
	f.vars["MSG"] = "a commit during the incident"
	f.commit()
	testenv.DockerCLI(t, "stop", "-t", "1", strings.Fields(before[app+"/worker"])[0])
	code, out = f.syncd("plan", "--detailed-exitcode")
	if code != exitChanges || !strings.Contains(out, app+": suspended (by alice on the host until ") || !strings.Contains(out, "incident 42") {
		t.Errorf("plan of a suspended app: exit %d (the other app changes):\n%s", code, out)
	}
	// sync does not call the host converged: its status says suspended.
	if out := f.mustSync(); !strings.Contains(out, "1 project(s) suspended, left as they run") || strings.Contains(out, "converged to") {
		t.Errorf("sync of a host with a suspended app:\n%s", out)
	}
	after := containers(t, app)
	if after[app+"/web"] != before[app+"/web"] || !strings.HasSuffix(after[app+"/worker"], " exited") {
		t.Errorf("the suspended app was touched: %v, before %v", after, before)
	}
	if got := envOf(t, other); !strings.Contains(got, "a commit during the incident") {
		t.Errorf("the other app did not get the commit")
	}
	code, out = cmd("status", "--json")
	var doc status.Host
	if err := json.Unmarshal([]byte(out), &doc); code != 0 || err != nil {
		t.Fatalf("status --json: exit %d, %v:\n%s", code, err, out)
	}
	var sus *status.Suspension
	for _, p := range doc.Projects {
		if p.Name == app {
			sus = p.Suspended
			if p.State != status.Suspended {
				t.Errorf("the status says %s is %s, want suspended", app, p.State)
			}
		}
	}
	if sus == nil || sus.By != "alice on the host" || sus.Reason != "incident 42: DB migration by hand" || sus.Until.Sub(time.Now()) < time.Hour {
		t.Errorf("the status's suspension of %s: %+v", app, sus)
	}
	if code, out := cmd("status"); code != 0 || !strings.Contains(out, "suspended by alice on the host until") {
		t.Errorf("status does not say who suspended it:\n%s", out)
	}

	// Out of host.yaml while suspended: not pruned.
	f.apps = []string{other}
	f.commit()
	f.mustSync()
	if got := containers(t, app); got[app+"/web"] != before[app+"/web"] {
		t.Errorf("a suspended app removed from host.yaml was pruned: %v", got)
	}
	f.apps = []string{app, other}
	f.commit()

	// Resumed: the commit is applied and the drift healed.
	if code, out := cmd("resume", "--app", app); code != 0 || !strings.Contains(out, app+" is resumed") {
		t.Fatalf("resume: exit %d:\n%s", code, out)
	}
	if code, out := cmd("resume", "--app", app); code != exitFailure || !strings.Contains(out, "is not suspended") {
		t.Errorf("resume of an app not suspended: exit %d:\n%s", code, out)
	}
	if out := f.mustSync(); !strings.Contains(out, "converged to") {
		t.Errorf("sync after resume:\n%s", out)
	}
	for k, v := range containers(t, app) {
		if !strings.HasSuffix(v, " running") {
			t.Errorf("after resume %s is %s", k, v)
		}
	}
	if got := envOf(t, app); !strings.Contains(got, "a commit during the incident") {
		t.Errorf("after resume the app does not run the commit")
	}

	// In Git: suspended: {reason} in app.yaml, reviewed; without a reason
	// validate refuses it.
	f.write("apps/"+app+"/app.yaml", "suspended: {}\n")
	if code, out := f.syncd("plan"); code == 0 || !strings.Contains(out, "app.yaml:1") || !strings.Contains(out, "suspended: say why") {
		t.Errorf("suspended without a reason: exit %d:\n%s", code, out)
	}
	f.write("apps/"+app+"/app.yaml", "suspended: {reason: \"freeze for the audit\"}\n")
	f.vars["MSG"] = "after the freeze"
	f.commit()
	if code, out := f.syncd("plan"); code != 0 || !strings.Contains(out, app+": suspended (by apps/"+app+"/app.yaml: freeze for the audit)") {
		t.Errorf("plan of an app suspended in Git: exit %d:\n%s", code, out)
	}
}

// envOf is the environment the web container of project was created with.
func envOf(t *testing.T, project string) string {
	t.Helper()
	id := strings.Fields(containers(t, project)[project+"/web"])
	if len(id) == 0 {
		t.Fatalf("no web container of %s", project)
	}
	return testenv.DockerCLI(t, "inspect", "-f", "{{range .Config.Env}}{{.}} {{end}}", id[0])
}

// TestSuspendFlags: --for 0s is refused (it would suspend without end,
// which only leaving --for out asks for), and an --app that is no app
// name is named as such, not reported as missing. Nothing is recorded.
func TestSuspendFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"suspend", "--app", "web", "--reason", "incident", "--for", "0s"}, "--for 0s: give a positive duration"},
		{[]string{"suspend", "--app", "web", "--reason", "incident", "--for", "-1h"}, "--for -1h0m0s: give a positive duration"},
		{[]string{"suspend", "--app", "../x", "--reason", "incident"}, `--app "../x" is not an app name`},
		{[]string{"resume", "--app", "../x"}, `--app "../x" is not an app name`},
		{[]string{"suspend", "--reason", "incident"}, "--app NAME is required"},
	} {
		var out bytes.Buffer
		code := runAt(context.Background(), append(tc.args, "--state-dir", dir), os.Getenv, time.Now, &out, &out)
		if code != exitUsage || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: exit %d, want %d and %q:\n%s", tc.args, code, exitUsage, tc.want, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "suspended.json")); !os.IsNotExist(err) {
		t.Errorf("a refused suspend recorded something: %v", err)
	}
}
