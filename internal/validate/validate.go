// Package validate checks a whole desired-state repository offline, as a
// pre-commit hook or pull-request CI runs it: the schema of every file,
// every *.sops.* file really encrypted, every host rendered (with
// placeholder secrets unless a key is given), images pinned, and the
// hardening rules that seed fleets hold their containers to.
//
// It reads secrets files through the small interfaces below, implemented by
// package secrets; it must not import sops, the Compose SDK, go-git or
// os/exec, and it changes nothing.
package validate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
)

// Inspector reads the key names of a SOPS file without a key, and fails
// when the file is not really encrypted.
type Inspector interface {
	Keys(name string, data []byte) ([]string, error)
}

// Decrypter decrypts a SOPS file; errors wrapping notRecipient mean the key
// is simply not one of the file's recipients.
type Decrypter interface {
	Decrypt(name string, data []byte) (map[string]string, error)
}

// Options tune a check.
type Options struct {
	// Strict turns warnings into errors.
	Strict bool
	// Decrypter, when set, decrypts (and so MAC-verifies) every secrets
	// file it is a recipient of, and renders those hosts with real values.
	Decrypter Decrypter
	// NotRecipient is the error a Decrypter wraps for a file it cannot
	// open because it is not a recipient (not a problem of the file).
	NotRecipient error
	// Rendered, when set, is handed every host's rendered projects (nil
	// when the host does not render) and the secrets they were rendered
	// with, once Check is done with them, so a caller that renders the
	// same commit (syncd diff) does not render it again. Check calls it
	// for each host in turn, from the goroutine that called Check.
	Rendered func(host string, secrets desired.Secrets, projects []*desired.Project)
	// Now is the clock that scan.ignore entries run out by (default
	// time.Now).
	Now func() time.Time
}

// Check validates the repository at dir and returns every problem, sorted.
func Check(ctx context.Context, dir string, in Inspector, opts Options) desired.Problems {
	repo, ps := desired.Load(dir)
	if repo == nil {
		return ps
	}
	keys := checkSopsFiles(repo, in, &ps)
	checkScanIgnores(repo, opts.now(), &ps)
	for _, name := range sortedHosts(repo) {
		h := repo.Hosts[name]
		secrets := desired.Placeholders(keys[h.SecretsFile])
		if opts.Decrypter != nil && h.SecretsFile != "" {
			values, err := repo.HostSecrets(h, opts.Decrypter)
			switch {
			case err == nil:
				secrets = values
			case opts.NotRecipient != nil && errors.Is(err, opts.NotRecipient):
			default:
				ps = append(ps, desired.Problem{Path: h.SecretsFile, Msg: trimPath(err.Error(), h.SecretsFile)})
			}
		}
		checkHostSecrets(h, secrets, &ps)
		if h.StatusKey == "" {
			ps = append(ps, desired.Problem{Path: "hosts/" + name + "/host.yaml", Severity: desired.Warning, Rule: "status-unsigned",
				Msg: fmt.Sprintf("host %s has no status_key: its status documents are unsigned, so any host that may push the status branch can write one in its name that the wave gate believes (advance or halt a rollout); enroll it with `syncd enroll --token FILE --host %s`, or copy `status key:` from `syncd status` on the host into status_key", name, name)})
		}
		// Every project that loads is checked, also beside an error in
		// another (or in it: an undefined variable), so that one run lists
		// every problem.
		projects, rps := repo.Inspect(ctx, name, secrets)
		ps = append(ps, rps...)
		for _, p := range projects {
			// Lint quotes what the project holds (an image reference), which
			// may be made of a secret.
			var lps desired.Problems
			lps = append(lps, Lint(p)...)
			checkAppRefs(p, &lps)
			if p.App.Backup != nil && h.Backup == nil {
				lps = append(lps, desired.Problem{Path: p.App.SettingsFile(), Line: p.App.Line("backup"), Severity: desired.Warning,
					Msg: fmt.Sprintf("backup: host %s has no backup: repository in hosts/%s/host.yaml, so %s is not backed up there", name, name, p.App.Name)})
			}
			red := secrets.Redactor()
			for _, lp := range lps {
				lp.Msg = red.Text(lp.Msg)
				ps = append(ps, lp)
			}
		}
		if opts.Rendered != nil {
			if rps.HasErrors() {
				projects = nil
			}
			opts.Rendered(name, secrets, projects)
		}
	}
	if opts.Strict {
		for i := range ps {
			ps[i].Severity = desired.Error
		}
	}
	return ps.Sorted()
}

func (o Options) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// MaxIgnoreAhead is how far ahead a scan.ignore's until may be without a
// warning: an accepted risk is reviewed at least once a year (9999-12-31
// accepts it for good).
const MaxIgnoreAhead = 365 * 24 * time.Hour

// checkScanIgnores warns about accepted risks that have run out (their
// finding counts again, and the deploy gate refuses it) and about those
// that run out more than MaxIgnoreAhead from now.
func checkScanIgnores(repo *desired.Repo, now time.Time, ps *desired.Problems) {
	var entries []desired.ScanIgnore
	for _, h := range repo.Hosts {
		if h.Scan != nil {
			entries = append(entries, h.Scan.Ignore...)
		}
	}
	for _, a := range repo.Apps {
		if a.Scan != nil {
			entries = append(entries, a.Scan.Ignore...)
		}
	}
	for _, e := range entries {
		if e.ID == "" || e.Expires().IsZero() {
			continue // missing fields are errors of their own
		}
		if e.Expires().After(now.Add(MaxIgnoreAhead)) {
			*ps = append(*ps, desired.Problem{Path: e.File, Line: e.Line, Severity: desired.Warning, Rule: "scan-ignore-far",
				Msg: fmt.Sprintf("scan.ignore %s: until %s is more than a year away: an accepted risk should be reviewed within a year; set until to a date before %s",
					e.ID, e.Until, now.Add(MaxIgnoreAhead).Format(time.DateOnly))})
		}
		if e.Active(now) {
			continue
		}
		*ps = append(*ps, desired.Problem{Path: e.File, Line: e.Line, Severity: desired.Warning, Rule: "scan-ignore-expired",
			Msg: fmt.Sprintf("scan.ignore %s ran out on %s: the finding counts again and the deploy gate refuses images that have it; review it, then extend until or remove the entry", e.ID, e.Until)})
	}
}

func sortedHosts(r *desired.Repo) []string {
	var names []string
	for n := range r.Hosts {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// checkSopsFiles inspects every *.sops.* file of the repository and returns
// the key names of each.
func checkSopsFiles(repo *desired.Repo, in Inspector, ps *desired.Problems) map[string][]string {
	keys := map[string][]string{}
	root := repo.Root
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		// .sops.yaml is sops's own configuration (creation rules), not a secrets file.
		if d.IsDir() || !strings.Contains(d.Name(), ".sops.") || d.Name() == ".sops.yaml" || d.Name() == ".sops.yml" {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		data, err := repo.ReadFile(rel)
		if err != nil {
			*ps = append(*ps, desired.Problem{Path: rel, Msg: err.Error()})
			return nil
		}
		k, err := in.Keys(rel, data)
		keys[rel] = k
		for _, e := range unjoin(err) {
			*ps = append(*ps, desired.Problem{Path: rel, Msg: trimPath(e.Error(), rel)})
		}
		return nil
	})
	return keys
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// trimPath drops a leading "path: " from msg, since the problem names it.
func trimPath(msg, path string) string {
	return strings.TrimPrefix(msg, path+": ")
}

func checkHostSecrets(h *desired.Host, secrets desired.Secrets, ps *desired.Problems) {
	b := h.Backup
	if b == nil || h.SecretsFile == "" {
		return
	}
	check := func(field, key string, line int) {
		if _, ok := secrets[key]; key != "" && !ok {
			*ps = append(*ps, desired.Problem{Path: fmt.Sprintf("hosts/%s/host.yaml", h.Name), Line: line,
				Msg: fmt.Sprintf("%s names %q, which is not a key of %s; add it with `sops edit %s`", field, key, h.SecretsFile, h.SecretsFile)})
		}
	}
	check("backup.repository_secret", b.RepositorySecret, h.Line("backup", "repository_secret"))
	check("backup.password_secret", b.PasswordSecret, h.Line("backup", "password_secret"))
	for _, name := range slices.Sorted(maps.Keys(b.Env)) {
		check("backup.env."+name, b.Env[name], h.Line("backup", "env", name))
	}
}

// checkAppRefs checks that what app.yaml names exists in the rendered
// project: backup volumes, dump and probe services.
func checkAppRefs(p *desired.Project, ps *desired.Problems) {
	app := p.App
	settings := fmt.Sprintf("apps/%s/app.yaml", app.Name)
	hasService := func(s string) bool { _, ok := p.Compose.Services[s]; return ok }
	if b := app.Backup; b != nil {
		for i, v := range b.Volumes {
			if _, ok := p.Compose.Volumes[v]; !ok {
				known := "it has none"
				if len(p.Compose.Volumes) > 0 {
					known = "its volumes: " + strings.Join(slices.Sorted(maps.Keys(p.Compose.Volumes)), ", ")
				}
				*ps = append(*ps, desired.Problem{Path: settings, Line: app.Line("backup", "volumes", fmt.Sprint(i)),
					Msg: fmt.Sprintf("backup.volumes[%d]: %q is not a named volume of %s; %s", i, v, app.ComposeFile, known)})
			}
		}
		for i, d := range b.Dumps {
			if d.Service != "" && !hasService(d.Service) {
				*ps = append(*ps, desired.Problem{Path: settings, Line: app.Line("backup", "dumps", fmt.Sprint(i), "service"),
					Msg: fmt.Sprintf("backup.dumps[%d].service: %q is not a service of %s", i, d.Service, app.ComposeFile)})
			}
			if len(d.RestoreCommand) == 0 {
				*ps = append(*ps, desired.Problem{Path: settings, Line: app.Line("backup", "dumps", fmt.Sprint(i)), Severity: desired.Warning,
					Msg: fmt.Sprintf("backup.dumps[%d]: no restore_command: `syncd restore` cannot put %s back in place, only extract it (--to DIR)", i, d.Filename)})
			}
		}
	}
	for _, pr := range app.Probes {
		if pr.Container != nil && pr.Container.Service != "" && !hasService(pr.Container.Service) {
			*ps = append(*ps, desired.Problem{Path: settings, Msg: fmt.Sprintf("probes (%s): service %q is not defined in %s", pr.Name, pr.Container.Service, app.ComposeFile)})
		}
	}
}
