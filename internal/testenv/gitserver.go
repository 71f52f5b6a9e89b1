package testenv

import (
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// GitServer is a real Git server on loopback: `git http-backend` behind
// net/http/cgi, serving the bare repositories under Root over the smart
// HTTP protocol, as Gitea or GitHub would.
type GitServer struct {
	// URL is the server's base: a repository is URL + "/" + name + ".git".
	URL  string
	Root string
	// Token, when set, is required as the basic-auth password (any user).
	Token string
	// ReadOnly refuses pushes with 403, as a deploy key without write access.
	ReadOnly atomic.Bool
	// Maintainer, when set, is a basic-auth user whose pushes ReadOnly
	// lets through: the developer pushing commits while hosts may only read.
	Maintainer string
	// Down answers every request 503, as a forge in maintenance.
	Down atomic.Bool
	// Requests and ResponseBytes count what clients asked and got.
	Requests      atomic.Int64
	ResponseBytes atomic.Int64
}

// NewGitServer starts a server for t; it stops when t ends.
func NewGitServer(t testing.TB) *GitServer {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		Missing(t, "this test needs git: %v", err)
	}
	s := &GitServer{Root: t.TempDir()}
	backend := &cgi.Handler{
		Path: git,
		Args: []string{"http-backend"},
		// Lost races of concurrent pushes ("cannot lock ref") are expected.
		Stderr: io.Discard,
		// REMOTE_USER: http-backend accepts pushes only from a known user.
		Env: []string{"GIT_PROJECT_ROOT=" + s.Root, "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=syncd"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Requests.Add(1)
		if s.Down.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		if s.Token != "" {
			if _, pass, ok := r.BasicAuth(); !ok || pass != s.Token {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		user, _, _ := r.BasicAuth()
		if s.ReadOnly.Load() && (s.Maintainer == "" || user != s.Maintainer) && (strings.HasSuffix(r.URL.Path, "/git-receive-pack") || r.URL.Query().Get("service") == "git-receive-pack") {
			http.Error(w, "read-only", http.StatusForbidden)
			return
		}
		backend.ServeHTTP(&countingWriter{ResponseWriter: w, n: &s.ResponseBytes}, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// InitBare makes an empty bare repository name.git whose default branch is
// main, allowing pushes, and returns its URL.
func (s *GitServer) InitBare(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(s.Root, name+".git")
	Git(t, "", "init", "-q", "--bare", "-b", "main", dir)
	Git(t, dir, "config", "http.receivepack", "true")
	return s.URL + "/" + name + ".git"
}

// Git runs git in dir with a fixed identity and no user configuration, and
// returns its trimmed output; a failure fails the test.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=syncd test", "GIT_AUTHOR_EMAIL=test@syncd.invalid",
		"GIT_COMMITTER_NAME=syncd test", "GIT_COMMITTER_EMAIL=test@syncd.invalid",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}
