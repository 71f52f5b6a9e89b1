package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/syncd-dev/syncd/internal/review"
)

// forgeToken is the token the stand-in forge accepts.
const forgeToken = "forge-test-token-4d1c"

// cmdForge starts, for the rest of the script, a loopback HTTP server that
// plays a forge's issue-comment API as GitHub, Gitea and Forgejo serve it:
// GET and POST /repos/{owner}/{repo}/issues/{n}/comments (paginated with
// page and per_page or limit), PATCH /repos/{owner}/{repo}/issues/comments/{id}.
// It refuses a request without `Authorization: Bearer|token <forgeToken>`.
// GET /user answers as Gitea and Forgejo do for a token (user syncd-bot);
// without /api/v1 it refuses, as GitHub does for Actions' GITHUB_TOKEN,
// whose comments are github-actions[bot]'s.
// After each request it writes $WORK/forge/comments (every comment: id,
// how often it was edited, body) and appends to $WORK/forge/requests.
//
//	forge VAR [COMMENTS]   start it, its base URL in $VAR; COMMENTS other
//	                       people's comments already on ops/fleet#7, the
//	                       first of them starting with syncd's marker (a
//	                       reviewer's, or an attacker's who wants syncd's
//	                       diff posted under their name)
func cmdForge(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: forge VAR [COMMENTS]")
	}
	dir := filepath.Join(ts.Getenv("WORK"), "forge")
	ts.Check(os.MkdirAll(dir, 0o755))
	f := &fakeForge{dir: dir}
	if len(args) == 2 {
		n, err := strconv.Atoi(args[1])
		ts.Check(err)
		for i := range n {
			body := fmt.Sprintf("a reviewer's comment %d", i)
			if i == 0 {
				body = review.Marker + "\n" + body + ", starting with syncd's marker"
			}
			c := &fakeComment{issue: "ops/fleet#7", ID: int64(100 + i), Body: body}
			c.User.Login = "reviewer"
			f.comments = append(f.comments, c)
		}
	}
	srv := httptest.NewServer(f)
	ts.Defer(srv.Close)
	ts.Setenv(args[0], srv.URL)
}

type fakeComment struct {
	issue   string // owner/repo#n
	ID      int64  `json:"id"`
	Body    string `json:"body"`
	HTMLURL string `json:"html_url"`
	User    struct {
		Login string `json:"login"`
	} `json:"user"`
	edits int
}

type fakeForge struct {
	dir      string
	mu       sync.Mutex
	comments []*fakeComment
	nextID   int64
}

var (
	listRE = regexp.MustCompile(`^(?:/api/v1)?/repos/([^/]+/[^/]+)/issues/(\d+)/comments$`)
	editRE = regexp.MustCompile(`^(?:/api/v1)?/repos/([^/]+/[^/]+)/issues/comments/(\d+)$`)
)

func (f *fakeForge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	auth := r.Header.Get("Authorization")
	ok := auth == "Bearer "+forgeToken || auth == "token "+forgeToken
	f.log("%s %s auth=%v", r.Method, r.URL.RequestURI(), ok)
	defer f.save()
	if !ok {
		http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
		return
	}
	var body struct{ Body string }
	if r.Method != http.MethodGet {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Body == "" {
			http.Error(w, `{"message":"body is required"}`, http.StatusUnprocessableEntity)
			return
		}
	}
	login := "syncd-bot"
	if strings.HasPrefix(auth, "Bearer ") {
		login = "github-actions[bot]"
	}
	switch r.URL.Path {
	case "/api/v1/user":
		writeJSON(w, http.StatusOK, map[string]string{"login": login})
		return
	case "/user":
		http.Error(w, `{"message":"Resource not accessible by integration"}`, http.StatusForbidden)
		return
	}
	if m := listRE.FindStringSubmatch(r.URL.Path); m != nil {
		switch r.Method {
		case http.MethodGet:
			size := 30
			for _, k := range []string{"per_page", "limit"} {
				if v, err := strconv.Atoi(r.URL.Query().Get(k)); err == nil && v > 0 {
					size = v
				}
			}
			page, _ := strconv.Atoi(r.URL.Query().Get("page"))
			page = max(page, 1)
			var on []*fakeComment
			for _, c := range f.comments {
				if c.issue == m[1]+"#"+m[2] {
					on = append(on, c)
				}
			}
			lo, hi := min((page-1)*size, len(on)), min(page*size, len(on))
			writeJSON(w, http.StatusOK, on[lo:hi])
		case http.MethodPost:
			f.nextID++
			c := &fakeComment{issue: m[1] + "#" + m[2], ID: f.nextID, Body: body.Body, HTMLURL: fmt.Sprintf("http://forge/%s/pulls/%s#issuecomment-%d", m[1], m[2], f.nextID)}
			c.User.Login = login
			f.comments = append(f.comments, c)
			writeJSON(w, http.StatusCreated, c)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
		return
	}
	if m := editRE.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPatch {
		id, _ := strconv.ParseInt(m[2], 10, 64)
		i := slices.IndexFunc(f.comments, func(c *fakeComment) bool { return c.ID == id })
		if i < 0 {
			http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
			return
		}
		f.comments[i].Body = body.Body
		f.comments[i].edits++
		writeJSON(w, http.StatusOK, f.comments[i])
		return
	}
	http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
}

func (f *fakeForge) log(format string, args ...any) {
	fh, err := os.OpenFile(filepath.Join(f.dir, "requests"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err == nil {
		fmt.Fprintf(fh, format+"\n", args...)
		fh.Close()
	}
}

func (f *fakeForge) save() {
	var b strings.Builder
	fmt.Fprintf(&b, "%d comment(s)\n", len(f.comments))
	for _, c := range f.comments {
		fmt.Fprintf(&b, "--- comment %d on %s, edited %d time(s)\n%s\n", c.ID, c.issue, c.edits, c.Body)
	}
	os.WriteFile(filepath.Join(f.dir, "comments"), []byte(b.String()), 0o644)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
