package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/agent"
	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/jobs/scan"
	"github.com/syncd-dev/syncd/internal/logs"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/redact"
	"github.com/syncd-dev/syncd/internal/secrets"
	"github.com/syncd-dev/syncd/internal/source"
)

// cycleFlags are the flags sync and plan share.
type cycleFlags struct {
	repo, host, ageKey, stateDir, logFormat, restic string
	trivy, config                                   string
	trivyMaxReport                                  int // MiB
	// typed are the flags given on the command line (parse), not
	// from the config file.
	typed map[string]bool
}

func (f *cycleFlags) register(fs *flag.FlagSet) {
	hostname, _ := os.Hostname()
	fs.StringVar(&f.config, "config", defaultConfig, "settings `file` (YAML; keys are the flags' names, the agent's file serves every command); flags given override it")
	fs.StringVar(&f.repo, "repo", ".", "the desired-state `repo`sitory: a directory or a Git URL (https://, ssh://, git@host:path, file://)")
	fs.StringVar(&f.host, "host", hostname, "this host's `name` in the repository's hosts/")
	fs.StringVar(&f.ageKey, "age-key", "/etc/syncd/age.key", "the host's age identity `file` (needed when the host has secrets)")
	fs.StringVar(&f.stateDir, "state-dir", "/var/lib/syncd", "where syncd keeps what it applied (`directory`)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.restic, "restic", "restic", "the restic `binary` backups run (a path, or a name on PATH)")
	fs.StringVar(&f.trivy, "trivy", "trivy", "the trivy binary (`path`, or a name looked up in PATH) for image scans; TRIVY_* variables are its own settings")
	fs.IntVar(&f.trivyMaxReport, "trivy-max-report", scan.DefaultMaxReport>>20, "the largest trivy report read, in `MiB`; a larger one fails the scan and stops trivy")
}

// defaultConfig is the settings file read when it exists, without
// --config: the agent's, which the one-shot commands read too.
const defaultConfig = "/etc/syncd/syncd.yaml"

// parse parses args, then sets from the config file every flag they did
// not give: --config's file, or the default one when it exists, as the
// agent reads it. A key of one of the agent's flags that this command
// does not have is left to the agent; a key no command has is an error.
func (f *cycleFlags) parse(c *cli, fs *flag.FlagSet, args []string) (int, bool) {
	if code, ok := parse(fs, args); !ok {
		return code, false
	}
	f.typed = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.typed[fl.Name] = true })
	if err := applyConfigFile(fs, f.config, f.typed["config"], agentFlagSet()); err != nil {
		fmt.Fprintf(c.stderr, "syncd %s: %v\n", fs.Name(), err)
		return exitFailure, false
	}
	return 0, true
}

// setting is a flag's value as the agent and sync compare it: paths made
// absolute, so ./repo and /srv/repo are the same.
func (f *cycleFlags) setting(name string) string {
	v := map[string]string{"repo": f.repo, "host": f.host, "age-key": f.ageKey}[name]
	if name == "host" || (name == "repo" && source.IsURL(v)) {
		return v
	}
	if abs, err := filepath.Abs(v); err == nil {
		return abs
	}
	return v
}

// settings are the ones an agent runs with.
func (f *cycleFlags) settings() map[string]string {
	return map[string]string{"repo": f.setting("repo"), "host": f.setting("host"), "age-key": f.setting("age-key")}
}

// check reports bad values of the flags (exit 2): a host name that is no
// host name (../x) is a bad flag, not an invalid repository.
func (f *cycleFlags) check(c *cli, cmd string) bool {
	if !desired.ValidName(f.host) {
		fmt.Fprintf(c.stderr, "syncd %s: --host %q is not a host name: use lowercase letters, digits, - and _, as the directories under hosts/\n", cmd, f.host)
		return false
	}
	if f.trivyMaxReport < 1 {
		fmt.Fprintf(c.stderr, "syncd %s: --trivy-max-report %d: give the largest trivy report to read in MiB, 1 or more (default %d)\n", cmd, f.trivyMaxReport, scan.DefaultMaxReport>>20)
		return false
	}
	return true
}

// checkStateDirHost refuses (exit 64) a --state-dir given on the command
// line without a --host (given, or from the config file): the state
// directory is one host's, and the machine's name that --host defaults to
// need not be that host; its agent would run its own cycle or job, and
// sync would report it under the name asked.
func (f *cycleFlags) checkStateDirHost(c *cli, fs *flag.FlagSet) bool {
	host := false
	fs.Visit(func(fl *flag.Flag) { host = host || fl.Name == "host" })
	if f.typed["state-dir"] && !host {
		fmt.Fprintf(c.stderr, "syncd %s: --state-dir %s without --host: a state directory is one host's, and --host would default to this machine's name (%s); give --host NAME, the host whose state directory it is (or host: in the --config file)\n", fs.Name(), f.stateDir, f.host)
		return false
	}
	return true
}

// newLogger is every command's logger: redacted, and with one component
// per line (a logger narrowed twice logs component=jobs/restic).
func newLogger(c *cli, format string) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(logs.Components(redact.NewHandler(slog.NewTextHandler(c.stderr, nil), &c.redaction))), nil
	case "json":
		return slog.New(logs.Components(redact.NewHandler(slog.NewJSONHandler(c.stderr, nil), &c.redaction))), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

// lazyDecrypter reads the age identity only when a host has secrets, so a
// host without any needs no key.
type lazyDecrypter struct {
	path string
	once sync.Once
	id   *secrets.Identity
	err  error
}

func (d *lazyDecrypter) Decrypt(name string, data []byte) (map[string]string, error) {
	d.once.Do(func() { d.id, d.err = secrets.LoadIdentity(d.path) })
	if d.err != nil {
		return nil, d.err
	}
	return secrets.Decrypter{Identity: d.id}.Decrypt(name, data)
}

// tempCheckout checks the head of repo out into a temporary directory of
// its own (the state directory's checkout belongs to the agent or sync
// that may be running); done removes it.
func tempCheckout(ctx context.Context, repo, prefix string, g gitFlags) (dir, head string, done func(), err error) {
	tmp, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", "", nil, err
	}
	done = func() { os.RemoveAll(tmp) }
	src, _, err := newSource(repo, tmp, g)
	if err == nil {
		head, err = src.Head(ctx)
	}
	if err == nil {
		dir, err = src.Checkout(ctx, head)
	}
	if err != nil {
		done()
		return "", "", nil, err
	}
	return dir, head, done, nil
}

// socketPath is where a running agent listens for `syncd sync`.
func socketPath(stateDir string) string { return filepath.Join(stateDir, "agent.sock") }

func runSync(ctx context.Context, c *cli, args []string) int {
	var f cycleFlags
	var g gitFlags
	fs := newFlags(c, "sync", "--repo DIR|URL --host NAME [--age-key FILE] [--state-dir DIR] [--status-branch BRANCH] [git flags]")
	f.register(fs)
	g.register(fs)
	statusBranch := fs.String("status-branch", "syncd/status", "`branch` the host's status is pushed to (Git sources; \"\" keeps it local)")
	enrollToken := fs.String("enroll-token", "", "the one-time enrolment token `file` init-host wrote into the user-data: the host publishes a MAC under it for `syncd enroll --token`, and deletes it once enrolled")
	if code, ok := f.parse(c, fs, args); !ok {
		return code
	}
	if !f.check(c, "sync") || !f.checkStateDirHost(c, fs) {
		return exitUsage
	}
	// With an agent up on this state directory, it runs the cycle: two
	// reconcilers side by side would fight.
	// The flags given on the command line must be the agent's: it would
	// otherwise run its own cycle in their place.
	asked := map[string]string{}
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "repo" || fl.Name == "host" || fl.Name == "age-key" {
			asked[fl.Name] = f.setting(fl.Name)
		}
	})
	if res, err, running := agent.RequestSyncAs(ctx, socketPath(f.stateDir), asked); running {
		fmt.Fprint(c.stdout, res.Output)
		if err != nil {
			fmt.Fprintf(c.stderr, "syncd sync (by the running agent): %v\n", err)
			if errors.Is(err, agent.ErrOtherSettings) {
				return exitUsage
			}
			return exitFailure
		}
		return syncOutcome(c, f.host, res, " (cycle run by the agent)")
	}
	h, err := f.open(ctx, c, true, nil)
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd sync: %v\n", err)
		return exitFailure
	}
	defer h.close()
	h.jobs.Recover(ctx) // what a killed backup left stopped (drift: report apps too)
	run, err := f.runtime(ctx, c, h, g, *statusBranch, *enrollToken, nil, nil)
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd sync: %v\n", err)
		return exitFailure
	}
	res, err := run.Cycle(ctx, agent.ReasonRequest)
	fmt.Fprint(c.stdout, res.Output)
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd sync: host %s at %s: %v\n", f.host, res.Commit, err)
		return exitFailure
	}
	if run.Enrolling() {
		fmt.Fprintf(c.stdout, "host %s at %s is enrolling: its own age key cannot open its secrets yet (`syncd status` shows its recipient); run `syncd enroll --repo . --host %s --token FILE` in a working copy, review and commit\n", f.host, res.Commit, f.host)
		return exitOK
	}
	return syncOutcome(c, f.host, res, "")
}

// syncOutcome says how a successful cycle ended and picks sync's exit
// code: projects left waiting (their backup before upgrade failed) 1, held
// projects 3, a halted rollout 4; waiting for the lower waves is no
// failure (0).
func syncOutcome(c *cli, hostName string, res agent.Result, by string) int {
	if waiting := res.Projects[string(reconcile.Waiting)]; waiting > 0 {
		fmt.Fprintf(c.stderr, "syncd sync: host %s: %d project(s) wait at what they ran (see above); %s is applied to them by a later cycle%s\n", hostName, waiting, res.Commit, by)
		return exitFailure
	}
	if held := res.Projects[string(reconcile.Held)]; held > 0 {
		// The commit failed for those projects before: they run their last
		// good release until a newer commit arrives.
		fmt.Fprintf(c.stdout, "host %s: %d project(s) held at their last good release; %s is not applied to them%s\n", hostName, held, res.Commit, by)
		return exitHeld
	}
	switch ro := res.Rollout; {
	case ro != nil && ro.State == agent.RolloutHalted:
		fmt.Fprintf(c.stdout, "host %s runs %s: the rollout of %s is halted by a lower wave%s\n", hostName, cmp.Or(res.Commit, "nothing yet"), abbrev.Commit(ro.Commit), by)
		return exitHalted
	case ro != nil && ro.State == agent.RolloutWaiting:
		fmt.Fprintf(c.stdout, "host %s runs %s: the rollout of %s waits for the lower waves%s\n", hostName, cmp.Or(res.Commit, "nothing yet"), abbrev.Commit(ro.Commit), by)
		return exitOK
	}
	if res.Suspended > 0 {
		// Not converged: the status says suspended (see the plan above).
		fmt.Fprintf(c.stdout, "host %s at %s: %d project(s) suspended, left as they run (see above); the others converged%s\n", hostName, res.Commit, res.Suspended, by)
		return exitOK
	}
	fmt.Fprintf(c.stdout, "host %s converged to %s%s\n", hostName, res.Commit, by)
	return exitOK
}

func runPlan(ctx context.Context, c *cli, args []string) int {
	var f cycleFlags
	var g gitFlags
	fs := newFlags(c, "plan", "--repo DIR|URL --host NAME [--age-key FILE] [--state-dir DIR] [--detailed-exitcode]")
	f.register(fs)
	g.register(fs)
	detailed := fs.Bool("detailed-exitcode", false, "exit 0 when there is nothing to do, 2 when there are changes, 1 on error or when a project is held, refused or guarded")
	if code, ok := f.parse(c, fs, args); !ok {
		return code
	}
	if !f.check(c, "plan") {
		return exitUsage
	}
	h, err := f.open(ctx, c, false, nil)
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd plan: %v\n", err)
		return exitFailure
	}
	defer h.close()
	r := h.rec
	prep, err := func() (*reconcile.Prepared, error) {
		dir, head, done, err := tempCheckout(ctx, f.repo, "syncd-plan-", g)
		if err != nil {
			return nil, err
		}
		defer done()
		return r.Prepare(ctx, reconcile.Source{Dir: dir, Commit: head})
	}()
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd plan: %v\n", err)
		return exitFailure
	}
	prep.Plan.Write(c.stdout)
	if !*detailed {
		return exitOK
	}
	if blocked := prep.Plan.Blocked(); len(blocked) > 0 {
		// sync would not converge on this plan: a check in CI must not pass.
		fmt.Fprintf(c.stderr, "syncd plan: %d project(s) would not be applied (held, refused or guarded; see above)\n", len(blocked))
		return exitFailure
	}
	if prep.Plan.Changes() {
		return exitChanges
	}
	return exitOK
}
