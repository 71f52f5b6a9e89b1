package review

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/redact"
)

// Forge posts the diff on a pull request through the forge's issue-comment
// API, which GitHub, Gitea and Forgejo shape alike: list
// /repos/{owner}/{repo}/issues/{n}/comments, POST there, PATCH
// /repos/{owner}/{repo}/issues/comments/{id}.
type Forge struct {
	// Kind is github, gitea or forgejo (the last two speak one API).
	Kind string
	// API is the API's base URL: https://api.github.com, or
	// https://forge.example.org/api/v1.
	API string
	// Repo is owner/name; PR the pull request's number.
	Repo  string
	PR    int
	Token string
	// Client is the HTTP client (default: one with a 30 s timeout).
	Client *http.Client
}

// maxPages bounds how many pages of comments are read to find ours.
const maxPages = 50

type comment struct {
	ID      int64  `json:"id"`
	Body    string `json:"body"`
	HTMLURL string `json:"html_url"`
	User    struct {
		Login string `json:"login"`
	} `json:"user"`
}

// actionsLogin is who GitHub Actions' GITHUB_TOKEN comments as; that token
// may not read GET /user.
const actionsLogin = "github-actions[bot]"

// Upsert makes body (which must hold Marker) the pull request's syncd
// comment: it updates the comment that starts with Marker and was written
// by the token's own user, or creates one. Anyone can write Marker into a
// comment of theirs; editing it would put syncd's diff under their name,
// for them to change afterwards. It returns the comment's address and
// whether it was created.
func (f Forge) Upsert(ctx context.Context, body string) (string, bool, error) {
	if !strings.Contains(body, Marker) {
		body = Marker + "\n" + body
	}
	switch f.Kind {
	case "github", "gitea", "forgejo":
	default:
		return "", false, fmt.Errorf("forge %q: use github, gitea or forgejo", f.Kind)
	}
	if f.API == "" || f.Repo == "" || f.PR <= 0 {
		return "", false, fmt.Errorf("posting on a pull request needs the API URL (%q), the repository owner/name (%q) and the pull request number (%d)", f.API, f.Repo, f.PR)
	}
	list := fmt.Sprintf("%s/repos/%s/issues/%d/comments", strings.TrimSuffix(f.API, "/"), f.Repo, f.PR)
	me := f.login(ctx)
	size := 100
	for page := 1; me != "" && page <= maxPages; page++ {
		q := url.Values{"page": {fmt.Sprint(page)}}
		if f.Kind == "github" {
			q.Set("per_page", fmt.Sprint(size))
		} else {
			size = 50
			q.Set("limit", fmt.Sprint(size))
		}
		var cs []comment
		if err := f.do(ctx, http.MethodGet, list+"?"+q.Encode(), nil, &cs); err != nil {
			return "", false, err
		}
		for _, c := range cs {
			if strings.HasPrefix(c.Body, Marker) && c.User.Login == me {
				edit := fmt.Sprintf("%s/repos/%s/issues/comments/%d", strings.TrimSuffix(f.API, "/"), f.Repo, c.ID)
				var out comment
				if err := f.do(ctx, http.MethodPatch, edit, map[string]string{"body": body}, &out); err != nil {
					return "", false, err
				}
				return out.HTMLURL, false, nil
			}
		}
		if len(cs) < size {
			break
		}
	}
	var out comment
	if err := f.do(ctx, http.MethodPost, list, map[string]string{"body": body}, &out); err != nil {
		return "", false, err
	}
	return out.HTMLURL, true, nil
}

// login is the login of the token's user, "" when the forge does not say
// (then no comment is edited: a new one is posted). GitHub Actions' own
// token may not read GET /user: its comments are github-actions[bot]'s.
func (f Forge) login(ctx context.Context) string {
	var u struct {
		Login string `json:"login"`
	}
	err := f.do(ctx, http.MethodGet, strings.TrimSuffix(f.API, "/")+"/user", nil, &u)
	switch {
	case err == nil:
		return u.Login
	case f.Kind == "github":
		return actionsLogin
	}
	return ""
}

func (f Forge) do(ctx context.Context, method, u string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, redact.URL(u), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if f.Kind == "github" {
		req.Header.Set("Accept", "application/vnd.github+json")
		req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
		req.Header.Set("Authorization", "Bearer "+f.Token)
	} else {
		req.Header.Set("Authorization", "token "+f.Token)
	}
	client := f.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %v", method, redact.URL(u), strings.ReplaceAll(err.Error(), f.Token, "<token>"))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, redact.URL(u), err)
	}
	if resp.StatusCode/100 != 2 {
		hint := ""
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			hint = "; check that the job's token may write pull-request comments (GitHub: permissions: pull-requests: write; Gitea/Forgejo: a token with write:issue)"
		}
		msg := abbrev.Text(strings.TrimSpace(string(data)), 300)
		return fmt.Errorf("%s %s: %s: %s%s", method, redact.URL(u), resp.Status, strings.ReplaceAll(msg, f.Token, "<token>"), hint)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: the forge answered something that is not the expected JSON: %v", method, redact.URL(u), err)
		}
	}
	return nil
}

// ErrNoToken: the CI job has no token for the forge (a fork's pull
// request gets none): the diff goes to the job summary or stdout.
var ErrNoToken = errors.New("no token (GITHUB_TOKEN, GITEA_TOKEN or FORGEJO_TOKEN): the diff is not posted on the pull request")

// ForgeFromEnv is the forge and pull request of the CI job syncd diff runs
// in, from the environment GitHub, Gitea and Forgejo Actions set
// (GITHUB_TOKEN or GITEA_TOKEN or FORGEJO_TOKEN, GITHUB_API_URL,
// GITHUB_SERVER_URL, GITHUB_REPOSITORY, GITHUB_EVENT_PATH, FORGEJO_ACTIONS,
// GITEA_ACTIONS), each overridden by SYNCD_FORGE, SYNCD_FORGE_API,
// SYNCD_FORGE_REPO, SYNCD_FORGE_PR and SYNCD_FORGE_TOKEN.
func ForgeFromEnv(getenv func(string) string) (Forge, error) {
	env := func(names ...string) string {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return v
			}
		}
		return ""
	}
	token := env("SYNCD_FORGE_TOKEN", "GITHUB_TOKEN", "GITEA_TOKEN", "FORGEJO_TOKEN")
	if token == "" {
		return Forge{}, ErrNoToken
	}
	kind := env("SYNCD_FORGE")
	if kind == "" {
		kind = "github"
		if env("FORGEJO_ACTIONS", "GITEA_ACTIONS") != "" {
			kind = "gitea"
		}
	}
	api := env("SYNCD_FORGE_API", "GITHUB_API_URL")
	if api == "" && kind != "github" && env("GITHUB_SERVER_URL") != "" {
		api = strings.TrimSuffix(env("GITHUB_SERVER_URL"), "/") + "/api/v1"
	}
	if api == "" && kind == "github" {
		api = "https://api.github.com"
	}
	f := Forge{Kind: kind, API: api, Repo: env("SYNCD_FORGE_REPO", "GITHUB_REPOSITORY"), Token: token}
	switch n, p := env("SYNCD_FORGE_PR"), env("GITHUB_EVENT_PATH"); {
	case n != "":
		if _, err := fmt.Sscan(n, &f.PR); err != nil {
			return f, fmt.Errorf("SYNCD_FORGE_PR=%q is not a pull request number", n)
		}
	case p != "":
		data, err := os.ReadFile(p)
		if err == nil {
			f.PR, err = PullRequestNumber(data)
		}
		if err != nil {
			return f, fmt.Errorf("GITHUB_EVENT_PATH %s: %w", p, err)
		}
	default:
		return f, fmt.Errorf("which pull request? set SYNCD_FORGE_PR, or run in a pull_request workflow (GITHUB_EVENT_PATH)")
	}
	return f, nil
}

// PullRequestNumber reads the pull request's number from a workflow's
// event file (GITHUB_EVENT_PATH; Gitea and Forgejo write the same shape).
func PullRequestNumber(event []byte) (int, error) {
	var ev struct {
		Number      int `json:"number"`
		PullRequest struct {
			Number int `json:"number"`
		} `json:"pull_request"`
	}
	if err := json.Unmarshal(event, &ev); err != nil {
		return 0, fmt.Errorf("the event file is not JSON: %v", err)
	}
	if ev.PullRequest.Number > 0 {
		return ev.PullRequest.Number, nil
	}
	if ev.Number > 0 {
		return ev.Number, nil
	}
	return 0, fmt.Errorf("the event is not a pull request's (no pull_request.number); run on: pull_request")
}
