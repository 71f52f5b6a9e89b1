package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/syncd-dev/syncd/internal/agent"
	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/state"
)

// runSuspend and runResume record on the host, in its state directory,
// that an app is left as it runs (flux suspend): no apply, no drift heal,
// no prune, until resumed or until --for has passed. A running agent is
// asked for a cycle at once, so its status says so.
func runSuspend(ctx context.Context, c *cli, args []string) int {
	return suspendOrResume(ctx, c, "suspend", args)
}

func runResume(ctx context.Context, c *cli, args []string) int {
	return suspendOrResume(ctx, c, "resume", args)
}

func suspendOrResume(ctx context.Context, c *cli, name string, args []string) int {
	synopsis := "--app NAME --reason TEXT [--for DURATION] [--state-dir DIR]"
	if name == "resume" {
		synopsis = "--app NAME [--state-dir DIR]"
	}
	fs := newFlags(c, name, synopsis)
	app := fs.String("app", "", "the app (`name`, as in host.yaml)")
	stateDir := fs.String("state-dir", "/var/lib/syncd", "the host's state `directory` (the agent's)")
	var reason *string
	var forD *time.Duration
	if name == "suspend" {
		reason = fs.String("reason", "", "why, for the status (`text`, required)")
		forD = fs.Duration("for", 0, "resume by itself after this `duration` (e.g. 2h; default: until `syncd resume`)")
	}
	if code, ok := parse(fs, args); !ok {
		return code
	}
	forGiven := false
	fs.Visit(func(fl *flag.Flag) { forGiven = forGiven || fl.Name == "for" })
	switch {
	case *app == "":
		fmt.Fprintf(c.stderr, "syncd %s: --app NAME is required: an app of host.yaml\n", name)
		return exitUsage
	case !source.SafeName(*app):
		fmt.Fprintf(c.stderr, "syncd %s: --app %q is not an app name: give an app of host.yaml (a directory under apps/)\n", name, *app)
		return exitUsage
	case reason != nil && *reason == "":
		fmt.Fprintf(c.stderr, "syncd %s: --reason TEXT is required: the status shows it to whoever wonders why %s does not follow main\n", name, *app)
		return exitUsage
	case forD != nil && forGiven && *forD <= 0:
		// --for 0s would be a suspension without end, which only leaving
		// --for out asks for.
		fmt.Fprintf(c.stderr, "syncd %s: --for %s: give a positive duration (e.g. 2h), or leave --for out to suspend until `syncd resume`\n", name, *forD)
		return exitUsage
	}
	store, err := state.Open(*stateDir)
	if err != nil {
		fmt.Fprintf(c.stderr, "syncd %s: %v\n", name, err)
		return exitFailure
	}
	now := c.now()
	var sus state.Suspension
	if name == "suspend" {
		sus = state.Suspension{By: whoAmI(c), Reason: *reason, At: now.UTC()}
		if *forD > 0 {
			sus.Until = now.Add(*forD).UTC().Truncate(time.Second)
		}
	} else if all, err := store.Suspensions(); err == nil {
		if _, ok := all[*app]; !ok {
			fmt.Fprintf(c.stderr, "syncd resume: %s is not suspended on this host (a suspension in Git ends when `suspended:` is removed from its host.yaml or app.yaml)\n", *app)
			return exitFailure
		}
	}
	if err := store.Suspend(*app, sus, now); err != nil {
		fmt.Fprintf(c.stderr, "syncd %s: %v; nothing was changed\n", name, err)
		return exitFailure
	}
	if name == "suspend" {
		until := "until `syncd resume --app " + *app + "`"
		if !sus.Until.IsZero() {
			until = "until " + sus.Until.Format(time.RFC3339)
		}
		fmt.Fprintf(c.stdout, "%s is suspended %s: no apply, no drift heal, no prune; it runs as it runs now\n", *app, until)
	} else {
		fmt.Fprintf(c.stdout, "%s is resumed: the next cycle applies what Git says, drift healed\n", *app)
	}
	// The running agent takes it from the state directory at its next
	// cycle; ask for that cycle now, so its status says so.
	if res, err, running := agent.RequestSyncAs(ctx, socketPath(*stateDir), nil); running {
		fmt.Fprint(c.stdout, res.Output)
		if err != nil {
			fmt.Fprintf(c.stderr, "syncd %s: the agent's cycle: %v\n", name, err)
			return exitFailure
		}
		return exitOK
	}
	fmt.Fprintf(c.stdout, "no agent runs on %s: the next `syncd sync` takes it\n", *stateDir)
	return exitOK
}

// whoAmI names the person on the host: the user sudo was run by, else the
// login, else the uid.
func whoAmI(c *cli) string {
	for _, k := range []string{"SUDO_USER", "USER", "LOGNAME"} {
		if v := c.getenv(k); v != "" && source.SafeName(v) {
			return v + " on the host"
		}
	}
	return fmt.Sprintf("uid %d on the host", os.Getuid())
}
