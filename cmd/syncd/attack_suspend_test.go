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

// forgedReason is a suspension's reason that ends its own line and writes
// lines of its own: in `syncd diff`'s text they read as a plan (a service
// removed), in its markdown as a content diff below the suspended app.
const forgedReason = "incident 7)\n  db: remove (FORGED\n-image: old\n+image: new"

// TestAttackSuspendedReasonForgesDiffLines: a pull request from a fork
// sets `suspended: {reason: …}` in app.yaml with newlines in the reason.
// `syncd diff` in text and markdown shows the reason on the suspended
// app's line, never as lines of the diff's own.
func TestAttackSuspendedReasonForgesDiffLines(t *testing.T) {
	t.Setenv("DOCKER_HOST", "tcp://127.0.0.1:1") // no engine is needed
	repo := t.TempDir()
	for _, d := range []string{"hosts/h1", "apps/web"} {
		if err := os.MkdirAll(filepath.Join(repo, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(repo, "hosts/h1/host.yaml"), "apps: [web]\nwave: 0\n")
	writeFile(t, filepath.Join(repo, "apps/web/compose.yaml"), "services:\n  web:\n    image: nginx:1.27.3\n")
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "base")
	writeFile(t, filepath.Join(repo, "apps/web/app.yaml"), "suspended:\n  reason: "+strings.ReplaceAll(strings.ReplaceAll(`"`+forgedReason+`"`, "\n", `\n`), "\t", `\t`)+"\n")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "head")
	for _, format := range []string{"text", "markdown"} {
		code, out, errOut := syncd(t, "diff", "--repo", repo, "--base", "HEAD~1", "--format", format)
		if code != exitOK {
			t.Fatalf("diff --format %s: exit %d\n%s%s", format, code, out, errOut)
		}
		if !hasLine(out, "web: suspended", "incident 7", "FORGED", "+image: new") {
			t.Errorf("diff --format %s: the reason does not stay on the suspended app's line:\n%s", format, out)
		}
		if !strings.Contains(out, "1 project(s) suspended, left as they run") {
			t.Errorf("diff --format %s: the host's headline does not say the app is suspended:\n%s", format, out)
		}
	}
}

// TestAttackSuspendReasonForgesPlanLines: `syncd suspend --reason` with
// newlines (by a person on the host, or a script passing on text) shows on
// the suspended app's line of `syncd plan`, never as lines of its own.
func TestAttackSuspendReasonForgesPlanLines(t *testing.T) {
	t.Parallel()
	testenv.Docker(t)
	f := newFleet(t)
	app := f.app()
	f.commit()
	var out bytes.Buffer
	if code := runAt(context.Background(), []string{"suspend", "--app", app, "--reason", forgedReason, "--state-dir", f.state}, os.Getenv, time.Now, &out, &out); code != exitOK {
		t.Fatalf("suspend: exit %d\n%s", code, out.String())
	}
	code, text := f.syncd("plan")
	if code != exitOK {
		t.Fatalf("plan: exit %d\n%s", code, text)
	}
	if !hasLine(text, app+": suspended", "incident 7", "FORGED", "+image: new") {
		t.Errorf("plan: the reason does not stay on the suspended app's line:\n%s", text)
	}
	f.mustSync()
	out.Reset()
	if code := runAt(context.Background(), []string{"status", "--state-dir", f.state}, os.Getenv, time.Now, &out, &out); code != exitOK {
		t.Fatalf("status: exit %d\n%s", code, out.String())
	}
	if !hasLine(out.String(), app, "suspended by", "incident 7", "FORGED", "+image: new") {
		t.Errorf("status: the reason does not stay on the suspended app's line:\n%s", out.String())
	}
	out.Reset()
	var doc status.Host
	if code := runAt(context.Background(), []string{"status", "--json", "--state-dir", f.state}, os.Getenv, time.Now, &out, &out); code != exitOK || json.Unmarshal(out.Bytes(), &doc) != nil {
		t.Fatalf("status --json: exit %d, not JSON:\n%s", code, out.String())
	}
}
