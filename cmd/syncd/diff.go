package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/syncd-dev/syncd/internal/review"
	"github.com/syncd-dev/syncd/internal/secrets"
	"github.com/syncd-dev/syncd/internal/source"
)

// hostList is a repeatable --host (also comma-separated).
type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }

func (h *hostList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*h = append(*h, s)
		}
	}
	return nil
}

func runDiff(ctx context.Context, c *cli, args []string) int {
	fs := newFlags(c, "diff", "--repo DIR|URL --base REV [--head REV] [--host NAME]... [--format text|markdown|json] [--detailed-exitcode] [--age-key FILE]")
	repo := fs.String("repo", ".", "the desired-state `repo`sitory: a Git directory (or one inside it) or a Git URL")
	base := fs.String("base", "", "the `revision` that runs now (the pull request's target, e.g. origin/main) (required)")
	head := fs.String("head", "HEAD", "the `revision` to compare (the pull request's head)")
	var hosts hostList
	fs.Var(&hosts, "host", "diff only this `host` (repeat or comma-separate for more)")
	format := fs.String("format", "text", "output `format`: text, markdown (for a pull request) or json")
	detailed := fs.Bool("detailed-exitcode", false, "exit 2 when head would change something (0: nothing, 1: error)")
	ageKey := fs.String("age-key", "", "an operator's age identity `file` that opens the secrets files: shows which values changed, by name")
	comment := fs.Bool("comment", false, "post the markdown as the pull request's syncd comment (updated on every push) through the forge's API; see hooks/pr-check")
	var g gitFlags
	fs.StringVar(&g.tokenFile, "token-file", "", "https --repo: a `file` holding the access token")
	fs.StringVar(&g.sshKey, "ssh-key", "", "ssh --repo: the key `file`")
	fs.StringVar(&g.knownHosts, "known-hosts", "", "ssh --repo: the known_hosts `file` the server's key must be in")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(c.stderr, "syncd diff: "+format+"\n", a...)
		return exitFailure
	}
	if *base == "" {
		fmt.Fprintln(c.stderr, "syncd diff: --base is required: the revision the hosts run now (e.g. --base origin/main)")
		return exitUsage
	}
	switch *format {
	case "text", "markdown", "json":
	default:
		fmt.Fprintf(c.stderr, "syncd diff: --format %q: use text, markdown or json\n", *format)
		return exitUsage
	}

	// A diff is one batch of many small renders: less garbage collection
	// for more memory (tens of MB for hundreds of hosts) halves its time.
	defer debug.SetGCPercent(debug.SetGCPercent(400))

	opts := review.Options{Hosts: hosts, Inspector: secrets.Inspector{}, NotRecipient: secrets.ErrNotRecipient}
	if *ageKey != "" {
		id, err := secrets.LoadIdentity(*ageKey)
		if err != nil {
			return fail("%v", err)
		}
		opts.Decrypter = secrets.Decrypter{Identity: id}
	}
	trees, err := source.OpenTrees(ctx, *repo, &source.Git{TokenFile: g.tokenFile, SSHKeyFile: g.sshKey, KnownHostsFile: g.knownHosts})
	if err != nil {
		return fail("%v", err)
	}
	tmp, err := os.MkdirTemp("", "syncd-diff-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(tmp)
	sides := make([]review.Side, 2)
	for i, rev := range []string{*base, *head} {
		commit, err := trees.Resolve(ctx, rev)
		if err != nil {
			return fail("--%s: %v", []string{"base", "head"}[i], err)
		}
		dir := filepath.Join(tmp, []string{"base", "head"}[i])
		if err := trees.Export(ctx, commit, dir); err != nil {
			return fail("%v", err)
		}
		sides[i] = review.Side{Dir: dir, Commit: commit, Rev: rev}
	}
	rep, err := review.Diff(ctx, sides[0], sides[1], opts)
	if err != nil {
		return fail("%v", err)
	}
	switch {
	case *comment:
		posted, err := postComment(ctx, c, rep)
		if err != nil {
			return fail("%v", err)
		}
		if posted {
			rep.WriteText(c.stdout) // for the job's log
		}
	case *format == "json":
		if err := rep.WriteJSON(c.stdout); err != nil {
			return fail("%v", err)
		}
	case *format == "markdown":
		rep.WriteMarkdown(c.stdout, 0)
	default:
		rep.WriteText(c.stdout)
	}
	switch {
	case rep.Failed():
		fmt.Fprintf(c.stderr, "syncd diff: %s\n", rep.Summary())
		return exitFailure
	case rep.Changes() && *detailed:
		return exitChanges
	}
	return exitOK
}

// postComment publishes the markdown where the CI job shows it: as the pull
// request's one syncd comment when the job has a token (the forge as
// review.ForgeFromEnv finds it), and in the job's step summary
// ($GITHUB_STEP_SUMMARY) when there is one; with neither, on stdout.
// It reports whether the markdown went somewhere other than stdout.
func postComment(ctx context.Context, c *cli, rep *review.Report) (bool, error) {
	var md strings.Builder
	rep.WriteMarkdown(&md, 0)
	body := md.String()
	wrote := false
	if p := c.getenv("GITHUB_STEP_SUMMARY"); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return false, fmt.Errorf("step summary: %w", err)
		}
		_, err = f.WriteString(body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return false, fmt.Errorf("step summary: %w", err)
		}
		wrote = true
	}
	f, err := review.ForgeFromEnv(c.getenv)
	if errors.Is(err, review.ErrNoToken) {
		if !wrote {
			fmt.Fprint(c.stdout, body)
		}
		fmt.Fprintf(c.stderr, "syncd diff: %v\n", err)
		return wrote, nil
	}
	if err != nil {
		return wrote, err
	}
	where, created, err := f.Upsert(ctx, body)
	if err != nil {
		return wrote, fmt.Errorf("post the diff on pull request %d of %s: %w", f.PR, f.Repo, err)
	}
	verb := "updated"
	if created {
		verb = "posted"
	}
	fmt.Fprintf(c.stderr, "syncd diff: %s the comment on pull request %d of %s %s\n", verb, f.PR, f.Repo, where)
	return true, nil
}
