package redact

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// leakIn returns what of a secret value text holds: the value, or a run of
// FragmentLen of its bytes; "" when nothing.
func leakIn(text string, values ...string) string {
	for _, v := range values {
		if v == "" {
			continue
		}
		if strings.Contains(text, v) {
			return fmt.Sprintf("the value %q", v)
		}
		for i := 0; i+FragmentLen <= len(v); i++ {
			if strings.Contains(text, v[i:i+FragmentLen]) {
				return fmt.Sprintf("the fragment %q of %q", v[i:i+FragmentLen], v)
			}
		}
	}
	return ""
}

func TestText(t *testing.T) {
	const pw = "Corr3ct-Horse-Battery"
	vals := map[string]string{
		"pw":       pw,
		"short":    "on",
		"four":     "abcd",
		"quote":    `pa"ss\word-1234`,
		"html":     "a<b>&c-long-value",
		"pem":      "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n-----END KEY-----",
		"contains": pw + "-and-more",
		"url":      "p@ss/w rd&x=1",
		"empty":    "",
		"ph":       "<secret:ph>",
	}
	r := New(vals)
	cases := []struct{ in, want string }{
		{pw, Shown},
		{"password=" + pw + ";", "password=" + Shown + ";"},
		{pw + "-and-more", Shown},
		{"on", Shown},
		{"turn it on", "turn it on"},
		{"abcd-efg", Shown + "-efg"},
		{`parsing "pa\"ss\\word-1234": invalid`, `parsing "` + Shown + `": invalid`},
		{`{"v":"a\u003cb\u003e\u0026c-long-value"}`, `{"v":"` + Shown + `"}`},
		{`got "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n-----END KEY-----"`, `got "` + Shown + `"`},
		{"line: MIIEvQIBADANBgkqhkiG9w0B", "line: " + Shown},
		{"q=p%40ss%2Fw+rd%26x%3D1", "q=" + Shown},
		{"<secret:ph>", "<secret:ph>"},
		{"", ""},
		{"nothing secret here", "nothing secret here"},
	}
	for _, c := range cases {
		if got := r.Text(c.in); got != c.want {
			t.Errorf("Text(%q) =\n %q, want\n %q", c.in, got, c.want)
		}
	}
	var nilR *Redactor
	if got := nilR.Text(pw); got != pw {
		t.Errorf("a nil Redactor changed the text: %q", got)
	}
	if got := r.Named().Text("pw is " + pw); got != "pw is <secret:pw>" {
		t.Errorf("Named: %q", got)
	}
}

// TestTextKeepsTheUsersWords: text the user typed or syncd made is shown
// as given, even where it shares a long prefix with a secret (issue 18
// item 10, issue 20: a restic repository on http://127.0.0.1:18000/ turned
// every probe target into <secret:restic_repository>91/healthz, and
// `restore --to` printed "extracted into <redacted>drill7").
func TestTextKeepsTheUsersWords(t *testing.T) {
	r := New(map[string]string{"restic_repository": "rest:http://127.0.0.1:18000/", "repo_path": "/srv/backups/restic-repo"}).Named()
	for _, s := range []string{
		"http://127.0.0.1:18091/healthz",
		"GET http://127.0.0.1:18091/healthz: dial tcp 127.0.0.1:18091: connect: connection refused",
		"extracted into /srv/backups/drill7",
	} {
		if got := r.Text(s); got != s {
			t.Errorf("Text(%q) = %q", s, got)
		}
	}
	// The value itself is still hidden, whole or quoted.
	if got := r.Text(`restic -r "rest:http://127.0.0.1:18000/" failed`); got != `restic -r "<secret:restic_repository>" failed` {
		t.Errorf("the value showed: %q", got)
	}
}

func TestOutside(t *testing.T) {
	const v = "s3cr3t-Planted-Value-42"
	r := New(map[string]string{"token": v, "tiny": "abc1234"})
	for _, c := range []struct{ name, in string }{
		{"prefix cut short", `parsing "s3cr3t-Planted": invalid syntax`},
		{"suffix", `... Value-42": invalid`},
		{"middle", "xx-Planted-Val-yy"},
		{"quoted and cut", strconv.Quote(v[:12])},
		{"split over lines", "s3cr3t-Pl\nanted-Value-42"},
	} {
		got := r.Outside(c.in)
		if leak := leakIn(got, v); leak != "" {
			t.Errorf("%s: Outside(%q) = %q leaks %s", c.name, c.in, got, leak)
		}
		if !strings.Contains(got, Shown) {
			t.Errorf("%s: Outside(%q) = %q, no redaction marker", c.name, c.in, got)
		}
		// Text leaves what is not a whole value: it is for syncd's own words.
		if c.name == "middle" && r.Text(c.in) != c.in {
			t.Errorf("Text matched a fragment: %q", r.Text(c.in))
		}
	}
	if got := r.Outside("Planted"); got != "Planted" {
		t.Errorf("Outside(Planted) = %q: a run shorter than FragmentLen is a word", got)
	}
	if got := r.Outside("abc1234"); got != Shown {
		t.Errorf("Outside of a whole short value = %q", got)
	}
}

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pa55w0rd@git.example.org/ops/fleet.git":  "https://xxxxx@git.example.org/ops/fleet.git",
		"https://ghp_TOKEN1234567@github.com/o/r.git":          "https://xxxxx@github.com/o/r.git",
		"ssh://git:hunter22@host:2222/fleet.git":               "ssh://git:xxxxx@host:2222/fleet.git",
		"ssh://git@host/fleet.git":                             "ssh://git@host/fleet.git",
		"git@github.com:o/r.git":                               "git@github.com:o/r.git",
		"rest:https://u:p4ss@backup:8000/alpha":                "rest:https://u:p4ss@backup:8000/alpha", // not a URL of its own: rest: is restic's, Text finds the inner one
		"generic+https://hook.example/x?token=tk_123&a=1":      "generic+https://hook.example/x?a=1&token=xxxxx",
		"https://api.example/v1?access_token=abc&page=2":       "https://api.example/v1?access_token=xxxxx&page=2",
		"http://127.0.0.1:18091/healthz":                       "http://127.0.0.1:18091/healthz",
		"tcp://user:secret@docker:2376":                        "tcp://user:xxxxx@docker:2376",
		"https://us%er:p%zz@host/x":                            "https://xxxxx@host/x",
		"/srv/fleet":                                           "/srv/fleet",
		"http://[::1]:80/path?sig=0123456789abcdef&other=keep": "http://[::1]:80/path?other=keep&sig=xxxxx",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
	in := `fetch "rest:https://u:p4ss@backup:8000/alpha": Get https://x:y@h/?token=T, then DOCKER_HOST=tcp://a:b@c.`
	want := `fetch "rest:https://xxxxx@backup:8000/alpha": Get https://xxxxx@h/?token=xxxxx, then DOCKER_HOST=tcp://a:xxxxx@c.`
	if got := URLs(in); got != want {
		t.Errorf("URLs:\n got %q\nwant %q", got, want)
	}
	if got := Host("telegram://123:TOKEN@telegram?chats=1"); got != "telegram://telegram" {
		t.Errorf("Host = %q", got)
	}
	if got := New(map[string]string{"t": "tok-Alpha-7f3kQ9zLm2"}).Text("GET http://h:1/?token=tok-Alpha-7f3kQ9zLm2: 500"); got != "GET http://h:1/?token=<redacted>: 500" {
		t.Errorf("a value already redacted is marked twice: %q", got)
	}
	if got := New(nil).Text("clone https://u:pw@h/r failed"); got != "clone https://xxxxx@h/r failed" {
		t.Errorf("Text does not scrub URLs: %q", got)
	}
}

type codeError struct{ code int }

func (e *codeError) Error() string { return fmt.Sprintf("exit %d, token s3cr3t-value-99", e.code) }

func TestErr(t *testing.T) {
	const v = "s3cr3t-value-99"
	r := New(map[string]string{"t": v})
	orig := fmt.Errorf("restic: %w: %w", &codeError{3}, fs.ErrNotExist)
	err := r.Err(orig)
	if strings.Contains(err.Error(), v) {
		t.Errorf("Err kept the value: %q", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("errors.Is lost the chain")
	}
	var ce *codeError
	if !errors.As(err, &ce) || ce.code != 3 {
		t.Error("errors.As lost the chain")
	}
	if errors.Unwrap(err) != nil {
		t.Error("Unwrap reaches the original error and its text")
	}
	// Redacting twice is once: no chain of copies, the same text.
	again := r.Err(err)
	if again.Error() != err.Error() || again.(*Error).orig != orig {
		t.Errorf("a second Err changed the error: %q", again)
	}
	if r.Err(nil) != nil || r.OutsideErr(nil) != nil {
		t.Error("nil is not nil")
	}
	if got := r.OutsideErr(errors.New("cut: s3cr3t-valu")).Error(); strings.Contains(got, "s3cr3t-valu") {
		t.Errorf("OutsideErr: %q", got)
	}
	// An error without a value is still marked redacted, so callers may
	// tell, and its text is unchanged.
	plain := r.Err(os.ErrPermission)
	if plain.Error() != os.ErrPermission.Error() || !errors.Is(plain, os.ErrPermission) {
		t.Errorf("plain: %v", plain)
	}
}

func TestImports(t *testing.T) {
	testenv.AllowImports(t)
	testenv.CheckImports(t, "os/exec")
}

func TestHandler(t *testing.T) {
	const v = "s3cr3t-Planted-Value-42"
	var buf strings.Builder
	var cur Current
	log := slog.New(NewHandler(slog.NewTextHandler(&buf, nil), &cur))
	log.Info("before any secret is known https://u:pw@h/", "v", v)
	cur.Set(New(map[string]string{"t": v}))
	child := log.With("component", "x", "early", "token "+v)
	child.Info("said "+v, "err", errors.New("failed: "+v), "list", []string{v}, "m", map[string]string{"k": v},
		slog.Group("g", "inner", v), "n", 3)
	out := buf.String()
	first, second, _ := strings.Cut(out, "\n")
	if strings.Contains(first, "pw@") || !strings.Contains(first, v) {
		t.Errorf("before Set: URL credentials scrubbed, the value (not known yet) shown: %s", first)
	}
	if leak := leakIn(second, v); leak != "" {
		t.Errorf("the log line leaks %s:\n%s", leak, second)
	}
	if !strings.Contains(second, "n=3") || !strings.Contains(second, "component=x") {
		t.Errorf("attributes lost: %s", second)
	}
}
