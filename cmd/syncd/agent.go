package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/syncd-dev/syncd/internal/agent"
	"github.com/syncd-dev/syncd/internal/jobs"
	"github.com/syncd-dev/syncd/internal/jobs/probe"
	"github.com/syncd-dev/syncd/internal/notify"
	"github.com/syncd-dev/syncd/internal/runtime"
	"github.com/syncd-dev/syncd/internal/source"
)

// minPoll is the shortest --poll.
const minPoll = 100 * time.Millisecond

// agentFlags are the agent's flags: the cycle's, a Git source's and its
// own.
type agentFlags struct {
	cycle                                                cycleFlags
	git                                                  gitFlags
	poll, drift, grace                                   time.Duration
	listen, webhookSecretFile, statusBranch, enrollToken string
}

func (a *agentFlags) register(fs *flag.FlagSet) {
	a.cycle.register(fs)
	a.git.register(fs)
	fs.DurationVar(&a.poll, "poll", time.Minute, "how often to look for a new commit (one ls-remote)")
	fs.DurationVar(&a.drift, "drift", 5*time.Minute, "how often to run a full cycle without a new commit, to find and heal drift")
	fs.StringVar(&a.listen, "listen", "127.0.0.1:9750", "`address` for /metrics, /healthz and /webhook (\"\" to disable)")
	fs.StringVar(&a.webhookSecretFile, "webhook-secret-file", "", "`file` holding the webhook's HMAC secret (GitHub, Gitea, Forgejo); none: no webhook")
	fs.StringVar(&a.statusBranch, "status-branch", "syncd/status", "`branch` the host's status is pushed to (Git sources; \"\" keeps it local)")
	fs.StringVar(&a.enrollToken, "enroll-token", "", "the one-time enrolment token `file` init-host wrote into the user-data: the host publishes a MAC under it for `syncd enroll --token`, and deletes it once enrolled")
	fs.DurationVar(&a.grace, "grace", 2*time.Minute, "on SIGTERM, how long a running apply may go on to finish or roll back")
}

// agentFlagSet is a flag set with the agent's flags, for the one-shot
// commands to tell the agent's settings in a shared config file from
// unknown ones.
func agentFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	new(agentFlags).register(fs)
	return fs
}

func runAgent(ctx context.Context, c *cli, args []string) int {
	var af agentFlags
	f := &af.cycle
	fs := newFlags(c, "agent", "[--config FILE] [--repo DIR|URL] [flags]")
	af.register(fs)
	if code, ok := f.parse(c, fs, args); !ok {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(c.stderr, "syncd agent: %v\n", err)
		return exitFailure
	}
	if !f.check(c, "agent") {
		return exitUsage
	}
	// A poll costs the Git server a request: a floor keeps a typo (1ms)
	// from hammering it; negative is a mistake, not "the default".
	if af.poll < minPoll {
		fmt.Fprintf(c.stderr, "syncd agent: --poll %v: poll at most every %v (use the webhook for faster deploys)\n", af.poll, minPoll)
		return exitUsage
	}
	var secret []byte
	if af.webhookSecretFile != "" {
		b, err := os.ReadFile(af.webhookSecretFile)
		if err != nil {
			return fail(fmt.Errorf("--webhook-secret-file: %w", err))
		}
		if secret = []byte(strings.TrimSpace(string(b))); len(secret) == 0 {
			return fail(fmt.Errorf("--webhook-secret-file %s is empty", af.webhookSecretFile))
		}
	}

	// Notifications and jobs follow the repository: sinks and schedules
	// come with each cycle.
	log, err := newLogger(c, f.logFormat)
	if err != nil {
		return fail(err)
	}
	notifier := notify.New(notify.Config{Logger: log.With("component", "notify")})
	go notifier.Run(ctx)
	h, err := f.open(ctx, c, true, notifier)
	if err != nil {
		return fail(err)
	}
	defer h.close()
	h.jobs.ScanAfterDeploy = true
	// Probes run between cycles; a change of state is notified, and
	// published within seconds.
	monitor, err := probe.NewMonitor(probe.Options{StateDir: f.stateDir, Containers: h.eng, Logger: log.With("component", "probe"),
		OnEvent: runtime.ProbeNotifier(f.host, notifier)})
	if err != nil {
		return fail(err)
	}
	run, err := f.runtime(ctx, c, h, af.git, af.statusBranch, af.enrollToken, notifier, monitor)
	if err != nil {
		return fail(err)
	}
	a := agent.New(agent.Config{Poll: af.poll, Drift: af.drift, WebhookSecret: secret, Grace: af.grace, Logger: log.With("component", "agent"), Settings: f.settings(),
		Job:        func(ctx context.Context, req jobs.Request) (string, error) { return h.jobs.Request(ctx, nil, req) },
		Collectors: append(h.jobs.Collectors(), monitor, h.scanner.Collector())}, run.Cycle)
	go run.Run(ctx)

	// Triggers beside the loop's own timers: SIGHUP, the socket, the
	// webhook, and changes to a local repository.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				a.Trigger("signal")
			}
		}
	}()
	go func() {
		if err := agent.ServeSocket(ctx, socketPath(f.stateDir), a); err != nil && ctx.Err() == nil {
			log.Error("socket", "err", err)
		}
	}()
	if !source.IsURL(f.repo) {
		l := source.Local{Dir: f.setting("repo")}
		go func() {
			if err := l.Watch(ctx, 500*time.Millisecond, func() { a.Trigger("watch") }); err != nil && ctx.Err() == nil {
				log.Warn("watch: changes to the repository are seen at the next poll", "err", err)
			}
		}()
	}
	if af.listen != "" {
		ln, err := net.Listen("tcp", af.listen)
		if err != nil {
			return fail(fmt.Errorf("--listen: %w", err))
		}
		// A request whose body never arrives is dropped, not kept for ever.
		srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("listening", "addr", ln.Addr().String(), "webhook", len(secret) > 0)
	}

	log.Info("agent started", "host", f.host, "repo", displayRepo(f.repo), "poll", af.poll, "drift", af.drift)
	sdNotify(c.getenv, "READY=1")
	err = a.Run(ctx)
	sdNotify(c.getenv, "STOPPING=1")
	if err != nil && !errors.Is(err, context.Canceled) {
		return fail(err)
	}
	log.Info("agent stopped")
	return exitOK
}

// version is syncd's module version, "(devel)" for a local build.
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
