package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/testenv"
)

func TestIsURL(t *testing.T) {
	for repo, want := range map[string]bool{
		"https://git.example.org/fleet.git":   true,
		"http://127.0.0.1:3000/fleet.git":     true,
		"ssh://git@git.example.org/fleet.git": true,
		"git@github.com:org/fleet.git":        true,
		"git.example.org:fleet.git":           true,
		"file:///srv/git/fleet.git":           true,
		"/srv/fleet":                          false,
		"repo-layout":                         false,
		"./fleet":                             false,
		"./dir:with-colon":                    false,
		"/abs/dir:with-colon":                 false,
	} {
		if got := IsURL(repo); got != want {
			t.Errorf("IsURL(%q) = %t, want %t", repo, got, want)
		}
	}
	g := &Git{URL: "/srv/fleet", Dir: t.TempDir()}
	if _, err := g.Head(context.Background()); err == nil || !strings.Contains(err.Error(), "not a Git URL") {
		t.Errorf("a local path as a Git URL: %v", err)
	}
}

func TestHeadIsOneRequestAndFollowsPushes(t *testing.T) {
	srv := testenv.NewGitServer(t)
	url := srv.InitBare(t, "fleet")
	w := newWorkRepo(t)
	c1 := w.commit("one", map[string]string{"hosts/a/host.yaml": "apps: [web]\n"})
	w.push(url)
	g := &Git{URL: url, Dir: t.TempDir()}
	ctx := context.Background()

	before := srv.Requests.Load()
	head, err := g.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head != c1 {
		t.Errorf("Head = %s, want %s", head, c1)
	}
	if n := srv.Requests.Load() - before; n != 1 {
		t.Errorf("Head made %d HTTP requests, want 1", n)
	}
	if entries(t, g.Dir) != nil {
		t.Errorf("Head wrote into %s: %v", g.Dir, entries(t, g.Dir))
	}

	c2 := w.commit("two", map[string]string{"hosts/a/host.yaml": "apps: [web, db]\n"})
	w.push(url)
	before = srv.Requests.Load()
	if head, err = g.Head(ctx); err != nil || head != c2 {
		t.Errorf("after a push, Head = %s, %v; want %s", head, err, c2)
	}
	if n := srv.Requests.Load() - before; n != 1 {
		t.Errorf("Head made %d HTTP requests, want 1", n)
	}
}

func TestHeadMissingBranch(t *testing.T) {
	url := bareRepo(t)
	g := &Git{URL: url, Dir: t.TempDir()}
	if _, err := g.Head(context.Background()); !errors.Is(err, ErrNoBranch) {
		t.Errorf("empty repository: %v, want ErrNoBranch", err)
	}
	w := newWorkRepo(t)
	w.commit("one", map[string]string{"a": "a\n"})
	w.push(url)
	g.Branch = "production"
	_, err := g.Head(context.Background())
	if !errors.Is(err, ErrNoBranch) || !strings.Contains(err.Error(), "production") {
		t.Errorf("missing branch: %v, want ErrNoBranch naming it", err)
	}
	if _, err := g.Checkout(context.Background(), strings.Repeat("a", 40)); !errors.Is(err, ErrNoBranch) {
		t.Errorf("Checkout of a missing branch: %v, want ErrNoBranch", err)
	}
}

// TestCheckoutFollowsCommitsAndForcePush runs the same history over
// file:// and over the HTTP server.
func TestCheckoutFollowsCommitsAndForcePush(t *testing.T) {
	for _, transport := range []string{"file", "http"} {
		t.Run(transport, func(t *testing.T) {
			var url string
			if transport == "file" {
				url = bareRepo(t)
			} else {
				url = testenv.NewGitServer(t).InitBare(t, "fleet")
			}
			ctx := context.Background()
			g := &Git{URL: url, Dir: t.TempDir()}
			w := newWorkRepo(t)
			checkout := func(want string, files map[string]string) {
				t.Helper()
				head, err := g.Head(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if head != want {
					t.Fatalf("Head = %s, want %s", head, want)
				}
				dir, err := g.Checkout(ctx, head)
				if err != nil {
					t.Fatal(err)
				}
				if dir != filepath.Join(g.Dir, "repo") {
					t.Errorf("checkout at %s, want the stable %s", dir, filepath.Join(g.Dir, "repo"))
				}
				assertTree(t, dir, files)
				assertOnlyRepo(t, g.Dir)
			}

			c1 := w.commit("one", map[string]string{"hosts/a/host.yaml": "apps: [web]\n", "apps/web/compose.yaml": "services: {}\n"})
			w.push(url)
			checkout(c1, map[string]string{"hosts/a/host.yaml": "apps: [web]\n", "apps/web/compose.yaml": "services: {}\n"})

			c2 := w.commit("two", map[string]string{"hosts/a/host.yaml": "apps: [db]\n", "apps/web/compose.yaml": "", "apps/db/compose.yaml": "services: {db: {}}\n"})
			w.push(url)
			checkout(c2, map[string]string{"hosts/a/host.yaml": "apps: [db]\n", "apps/db/compose.yaml": "services: {db: {}}\n"})

			// A force-push of an unrelated history.
			other := newWorkRepo(t)
			c3 := other.commit("rewritten", map[string]string{"syncd.yaml": "waves: 1\n"})
			other.push(url)
			checkout(c3, map[string]string{"syncd.yaml": "waves: 1\n"})
		})
	}
}

func TestCheckoutWhenThereCostsNoRequest(t *testing.T) {
	srv := testenv.NewGitServer(t)
	url := srv.InitBare(t, "fleet")
	w := newWorkRepo(t)
	c1 := w.commit("one", map[string]string{"a": "a\n"})
	w.push(url)
	g := &Git{URL: url, Dir: t.TempDir()}
	ctx := context.Background()
	if _, err := g.Checkout(ctx, c1); err != nil {
		t.Fatal(err)
	}
	before := srv.Requests.Load()
	dir, err := g.Checkout(ctx, c1)
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.Requests.Load() - before; n != 0 {
		t.Errorf("Checkout of the commit already checked out made %d requests", n)
	}
	assertTree(t, dir, map[string]string{"a": "a\n"})
}

func TestCheckoutWhenTheBranchMoved(t *testing.T) {
	url := bareRepo(t)
	w := newWorkRepo(t)
	c1 := w.commit("one", map[string]string{"a": "one\n"})
	w.push(url)
	g := &Git{URL: url, Dir: t.TempDir()}
	ctx := context.Background()
	if _, err := g.Checkout(ctx, c1); err != nil {
		t.Fatal(err)
	}
	// Two commits pushed at once: the first was never a branch tip, and
	// the wave gate may pick it.
	c2 := w.commit("two", map[string]string{"a": "two\n"})
	c3 := w.commit("three", map[string]string{"a": "three\n"})
	w.push(url)
	dir, err := g.Checkout(ctx, c2)
	if err != nil {
		t.Fatalf("Checkout of a commit behind the head: %v", err)
	}
	assertTree(t, dir, map[string]string{"a": "two\n"})
	assertOnlyRepo(t, g.Dir)

	got, err := g.Ancestors(ctx, c3, c1)
	if err != nil || fmt.Sprint(got) != fmt.Sprint([]string{c3, c2}) {
		t.Errorf("Ancestors(c3, c1) = %v, %v; want [c3 c2]", got, err)
	}

	// A force-push drops c2 from the branch: it cannot be checked out.
	testenv.Git(t, w.dir, "reset", "-q", "--hard", c1)
	w.commit("rewritten", map[string]string{"a": "rewritten\n"})
	w.push(url)
	_, err = g.Checkout(ctx, c3)
	if !errors.Is(err, ErrBranchMoved) {
		t.Fatalf("Checkout of a commit no longer on the branch: %v, want ErrBranchMoved", err)
	}
	assertTree(t, filepath.Join(g.Dir, "repo"), map[string]string{"a": "two\n"})
	assertOnlyRepo(t, g.Dir)
	if _, err := g.Checkout(ctx, "main"); err == nil {
		t.Error("Checkout of a branch name instead of a hash succeeded")
	}
}

func TestCheckoutCleansUpAKilledSwap(t *testing.T) {
	srv := testenv.NewGitServer(t)
	url := srv.InitBare(t, "fleet")
	w := newWorkRepo(t)
	c1 := w.commit("one", map[string]string{"a": "one\n"})
	w.push(url)
	g := &Git{URL: url, Dir: t.TempDir()}
	ctx := context.Background()
	live := filepath.Join(g.Dir, "repo")
	if _, err := g.Checkout(ctx, c1); err != nil {
		t.Fatal(err)
	}

	// Killed between the two renames of a swap: the live checkout moved
	// aside, a half-made new one beside it. The old one comes back, with
	// no request, and the half-made one goes.
	if err := os.Rename(live, filepath.Join(g.Dir, "repo.old-123")); err != nil {
		t.Fatal(err)
	}
	half := filepath.Join(g.Dir, "repo.new-456")
	os.MkdirAll(filepath.Join(half, ".git"), 0o700)
	os.WriteFile(filepath.Join(half, "partial"), []byte("x"), 0o644)
	before := srv.Requests.Load()
	dir, err := g.Checkout(ctx, c1)
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.Requests.Load() - before; n != 0 {
		t.Errorf("recovering the old checkout made %d requests", n)
	}
	assertTree(t, dir, map[string]string{"a": "one\n"})
	assertOnlyRepo(t, g.Dir)

	// Killed while cloning, and the live checkout is not a repository at
	// all (say, emptied by hand): both are replaced.
	os.MkdirAll(filepath.Join(g.Dir, "repo.new-789"), 0o700)
	os.RemoveAll(filepath.Join(live, ".git"))
	c2 := w.commit("two", map[string]string{"a": "two\n"})
	w.push(url)
	if dir, err = g.Checkout(ctx, c2); err != nil {
		t.Fatal(err)
	}
	assertTree(t, dir, map[string]string{"a": "two\n"})
	assertOnlyRepo(t, g.Dir)
}

func TestHTTPTokenIsRequiredAndNeverShown(t *testing.T) {
	srv := testenv.NewGitServer(t)
	url := srv.InitBare(t, "fleet")
	const token = "s3cret-t0ken-value-123"
	srv.Token = token
	w := newWorkRepo(t)
	c1 := w.commit("one", map[string]string{"a": "a\n"})
	w.push(strings.Replace(url, "http://", "http://x:"+token+"@", 1))
	ctx := context.Background()
	tokenFile := func(s string) string {
		p := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	noToken := &Git{URL: url, Dir: t.TempDir()}
	if _, err := noToken.Head(ctx); err == nil {
		t.Error("Head without a token succeeded")
	}

	const wrong = "wr0ng-t0ken-value-456"
	bad := &Git{URL: url, Dir: t.TempDir(), TokenFile: tokenFile(wrong + "\n")}
	_, err := bad.Head(ctx)
	if err == nil {
		t.Fatal("Head with a wrong token succeeded")
	}
	if strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), url) {
		t.Errorf("wrong token: %q: want the URL and not the token", err)
	}
	if _, err := bad.Checkout(ctx, c1); err == nil || strings.Contains(err.Error(), wrong) {
		t.Errorf("Checkout with a wrong token: %v", err)
	}

	good := &Git{URL: url, Dir: t.TempDir(), TokenFile: tokenFile(token + "\n")}
	if head, err := good.Head(ctx); err != nil || head != c1 {
		t.Fatalf("Head with the token = %s, %v", head, err)
	}
	if _, err := good.Checkout(ctx, c1); err != nil {
		t.Fatal(err)
	}
	// The token is not written into the checkout's configuration.
	cfg, err := os.ReadFile(filepath.Join(good.Dir, "repo", ".git", "config"))
	if err != nil || strings.Contains(string(cfg), token) {
		t.Errorf("checkout config holds the token (or is unreadable: %v)", err)
	}

	// Credentials put in the URL by mistake never show, in any place a
	// credential can go.
	for _, u := range []string{
		strings.Replace(url, "http://", "http://syncd:"+wrong+"@", 1),
		strings.Replace(url, "http://", "http://"+wrong+"@", 1),
	} {
		g := &Git{URL: u, Dir: t.TempDir()}
		if _, err := g.Head(ctx); err == nil || strings.Contains(err.Error(), wrong) {
			t.Errorf("URL with userinfo: %v", err)
		}
		if _, err := g.Checkout(ctx, c1); err == nil || strings.Contains(err.Error(), wrong) {
			t.Errorf("URL with userinfo, Checkout: %v", err)
		}
	}

	empty := &Git{URL: url, Dir: t.TempDir(), TokenFile: tokenFile("\n")}
	if _, err := empty.Head(ctx); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty token file: %v", err)
	}
}

func TestUnreachableRemoteIsAClearError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	const pass = "hunter2-password"
	g := &Git{URL: "http://syncd:" + pass + "@" + addr + "/fleet.git", Dir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = g.Head(ctx)
	if err == nil {
		t.Fatal("Head of a closed port succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, addr+"/fleet.git") || strings.Contains(msg, pass) {
		t.Errorf("unreachable remote: %q: want the URL without its password", msg)
	}
	if !strings.Contains(msg, "refused") {
		t.Errorf("unreachable remote: %q does not say the connection was refused", msg)
	}
	_, err = g.Checkout(ctx, strings.Repeat("b", 40))
	if err == nil || strings.Contains(err.Error(), pass) || !strings.Contains(err.Error(), addr) {
		t.Errorf("Checkout of a closed port: %v", err)
	}
}

func TestDisplayURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://git.example.org/fleet.git":            "https://git.example.org/fleet.git",
		"https://user:pw@git.example.org/fleet.git":    "https://xxxxx@git.example.org/fleet.git",
		"https://ghp_abcdef@github.com/org/fleet.git":  "https://xxxxx@github.com/org/fleet.git",
		"ssh://git@git.example.org:2222/fleet.git":     "ssh://git@git.example.org:2222/fleet.git",
		"ssh://git:pw@git.example.org/fleet.git":       "ssh://git:xxxxx@git.example.org/fleet.git",
		"git@github.com:org/fleet.git":                 "git@github.com:org/fleet.git",
		"https://us%er:p%zz@git.example.org/fleet.git": "https://xxxxx@git.example.org/fleet.git",
	} {
		if got := (&Git{URL: in}).displayURL(); got != want {
			t.Errorf("displayURL(%q) = %q, want %q", in, got, want)
		}
	}
}
