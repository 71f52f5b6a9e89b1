// Command syncd is the GitOps agent for Docker Compose hosts. This package
// only wires: it parses flags, builds the domain packages, maps their
// results to output and exit codes, and owns signals.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/syncd-dev/syncd/internal/escape"
	"github.com/syncd-dev/syncd/internal/redact"
)

// Exit codes, documented in README.md (one table). 2 means only "there are
// changes", never a bad flag: usage is 64 (EX_USAGE of sysexits.h).
const (
	exitOK      = 0
	exitFailure = 1  // the repository is invalid or the work failed
	exitChanges = 2  // plan and diff with --detailed-exitcode: there are changes
	exitHeld    = 3  // sync: some projects are held at their last good release (their commit failed before)
	exitHalted  = 4  // sync: the wave gate halted the head: a host of a lower wave failed it
	exitUsage   = 64 // bad flags or arguments, an unknown command
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// cli is what every command gets: where to write and how to read the
// environment, so tests run commands in-process.
type cli struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	// now is the clock of what a command writes and judges by (status
	// times, the wave gate's bake time): tests inject theirs.
	now func() time.Time
	// redaction is the host's secrets of the last rendering, which the
	// logs are redacted with (the reconciler sets it).
	redaction redact.Current
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, c *cli, args []string) int
}

func commands() []command {
	return []command{
		{"agent", "run the reconcile loop", runAgent},
		{"sync", "run one cycle now, then exit (non-zero on failure)", runSync},
		{"plan", "print what a cycle would do, change nothing", runPlan},
		{"render", "print the final compose YAML per project for a host, secrets redacted", runRender},
		{"validate", "check a whole repository offline (for hooks and pull-request CI)", runValidate},
		{"diff", "per host, what a change between two commits would do", runDiff},
		{"status", "this host, or the fleet from the status branch", runStatus},
		{"backup", "back up now (restic); --list shows the snapshots", runBackup},
		{"restore", "restore an app in place (after a pre-restore backup), or extract it (--to DIR)", runRestore},
		{"drill", "prove a backup run restorable: restore it into a throwaway project, check it, remove it", runDrill},
		{"logs", "print the logs of the host's app containers, secrets redacted (-f follows)", runLogs},
		{"scan", "scan the images that run now; exit 1 if one violates the scan policy", runScan},
		{"probe", "run every health probe of a host once and print a table", runProbe},
		{"suspend", "leave an app as it runs (no apply, heal or prune) until resumed or --for ends", runSuspend},
		{"resume", "end a suspension made with suspend", runResume},
		{"init-host", "make a host's deploy key and its cloud-init user-data (no age key in it)", runInitHost},
		{"enroll", "add a host's self-made age recipient to .sops.yaml and re-encrypt its files", runEnroll},
		{"version", "print the version", runVersion},
		{"help", "show this help", nil},
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return runAt(ctx, args, getenv, time.Now, stdout, stderr)
}

// runAt is run with the clock now.
func runAt(ctx context.Context, args []string, getenv func(string) string, now func() time.Time, stdout, stderr io.Writer) int {
	// Whatever reaches the terminal (or journald) has its control
	// characters escaped: text from peers, restic, trivy, probe targets and
	// containers is escaped where it enters, and this is the last guard.
	out, errOut := escape.NewWriter(stdout), escape.NewWriter(stderr)
	defer out.Flush()
	defer errOut.Flush()
	stdout, stderr = out, errOut
	c := &cli{getenv: getenv, stdout: stdout, stderr: stderr, now: now}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	case "--version", "-version":
		name = "version"
	}
	for _, cmd := range commands() {
		if cmd.name == name && cmd.run != nil {
			return cmd.run(ctx, c, rest)
		}
	}
	fmt.Fprintf(stderr, "syncd: unknown command %q; run `syncd help` for the list\n", name)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, "syncd: a GitOps agent for Docker Compose hosts.\n\nUsage: syncd <command> [flags]\n\nCommands:\n")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprint(w, "\nRun `syncd <command> -h` for a command's flags.\n")
}
