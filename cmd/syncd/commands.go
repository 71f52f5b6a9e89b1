package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/secrets"
	"github.com/syncd-dev/syncd/internal/validate"
)

// quietLoaderLog stops the Compose loader's own log lines (logrus, on
// stderr): package desired reports what they say as problems, with the
// file and line, in the one format validate prints.
func quietLoaderLog() {
	logrus.StandardLogger().SetOutput(io.Discard)
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(c *cli, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: syncd %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args and reports whether the command should go on, with
// the exit code to use when it should not.
func parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "syncd %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	return 0, true
}

func runValidate(ctx context.Context, c *cli, args []string) int {
	fs := newFlags(c, "validate", "--repo DIR [--strict] [--age-key FILE]")
	repo := fs.String("repo", ".", "the desired-state repository `directory`")
	strict := fs.Bool("strict", false, "treat warnings (hardening rules) as errors")
	ageKey := fs.String("age-key", "", "an age identity `file`; the secrets files it can open are decrypted and MAC-verified too")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	quietLoaderLog()
	opts := validate.Options{Strict: *strict, NotRecipient: secrets.ErrNotRecipient}
	if *ageKey != "" {
		id, err := secrets.LoadIdentity(*ageKey)
		if err != nil {
			fmt.Fprintf(c.stderr, "syncd validate: %v\n", err)
			return exitFailure
		}
		opts.Decrypter = secrets.Decrypter{Identity: id}
	}
	ps := validate.Check(ctx, *repo, secrets.Inspector{}, opts)
	errs, warns := 0, 0
	for _, p := range ps {
		fmt.Fprintln(c.stdout, p)
		if p.Severity == desired.Error {
			errs++
		} else {
			warns++
		}
	}
	if errs > 0 {
		fmt.Fprintf(c.stderr, "syncd validate: %s is invalid: %d error(s), %d warning(s)\n", *repo, errs, warns)
		return exitFailure
	}
	fmt.Fprintf(c.stderr, "syncd validate: %s is valid (%d warning(s))\n", *repo, warns)
	return exitOK
}

func runRender(ctx context.Context, c *cli, args []string) int {
	fs := newFlags(c, "render", "--repo DIR --host NAME [--age-key FILE] [--project APP]")
	repoDir := fs.String("repo", ".", "the desired-state repository `directory`")
	host := fs.String("host", "", "the `host` to render (required)")
	ageKey := fs.String("age-key", "", "the host's age identity `file`; without it, secrets show as <secret:NAME>")
	only := fs.String("project", "", "render only this `app`'s project")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *host == "" {
		fmt.Fprintln(c.stderr, "syncd render: --host is required")
		return exitUsage
	}
	quietLoaderLog()
	repo, ps := desired.Load(*repoDir)
	if err := ps.Err(); err != nil {
		fmt.Fprintln(c.stderr, err)
		fmt.Fprintf(c.stderr, "syncd render: %s is invalid; nothing rendered\n", *repoDir)
		return exitFailure
	}
	h, ok := repo.Hosts[*host]
	if !ok {
		_, ps := repo.Render(ctx, *host, nil)
		fmt.Fprintln(c.stderr, ps)
		return exitFailure
	}
	var vals desired.Secrets
	if *ageKey != "" {
		id, err := secrets.LoadIdentity(*ageKey)
		if err == nil {
			vals, err = repo.HostSecrets(h, secrets.Decrypter{Identity: id})
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "syncd render: %v\n", err)
			return exitFailure
		}
	} else {
		keys, err := inspectHost(repo, h)
		if err != nil {
			fmt.Fprintf(c.stderr, "syncd render: %v\n", err)
			return exitFailure
		}
		vals = desired.Placeholders(keys)
	}
	projects, ps := repo.Render(ctx, *host, vals)
	if err := ps.Err(); err != nil {
		fmt.Fprintln(c.stderr, err)
		return exitFailure
	}
	found := false
	for _, p := range projects {
		if *only != "" && p.Name() != *only {
			continue
		}
		found = true
		out, err := p.YAML(vals)
		if err != nil {
			fmt.Fprintf(c.stderr, "syncd render: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(c.stdout, "# project %s on host %s, from %s\n", p.Name(), h.Name, strings.Join(p.Files, " + "))
		if len(p.StandIns) > 0 {
			fmt.Fprintf(c.stdout, "# without the host's key, the secrets %s show as 1: Compose wants a number, a size or a flag where they are used\n", strings.Join(p.StandIns, ", "))
		}
		fmt.Fprintf(c.stdout, "---\n%s", out)
	}
	if *only != "" && !found {
		fmt.Fprintf(c.stderr, "syncd render: host %q does not run app %q\n", *host, *only)
		return exitFailure
	}
	return exitOK
}

func inspectHost(repo *desired.Repo, h *desired.Host) ([]string, error) {
	if h.SecretsFile == "" {
		return nil, nil
	}
	data, err := repo.ReadFile(h.SecretsFile)
	if err != nil {
		return nil, err
	}
	return secrets.Inspect(h.SecretsFile, data)
}

func runVersion(_ context.Context, c *cli, args []string) int {
	fs := newFlags(c, "version", "")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	deps := map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			deps[d.Path] = d.Version
		}
	}
	fmt.Fprintf(c.stdout, "syncd %s (%s %s/%s", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if cm := commit(); cm != "" {
		fmt.Fprintf(c.stdout, "; commit %s", cm)
	}
	for _, mod := range []string{"github.com/docker/compose/v5", "github.com/compose-spec/compose-go/v2", "filippo.io/age"} {
		if ver, ok := deps[mod]; ok {
			fmt.Fprintf(c.stdout, "; %s %s", mod, ver)
		}
	}
	fmt.Fprintln(c.stdout, ")")
	return exitOK
}
