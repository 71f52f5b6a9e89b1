package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/flags"
	"github.com/docker/compose/v5/pkg/api"
	"github.com/docker/compose/v5/pkg/compose"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"

	"github.com/syncd-dev/syncd/internal/escape"
)

// Options configures an Engine. The engine itself is found as the docker
// CLI finds it: DOCKER_HOST, DOCKER_CONTEXT, then the CLI configuration.
type Options struct {
	// Logger receives the SDK's own messages (at debug level, warnings at
	// warn level). Nil discards them.
	Logger *slog.Logger
}

// Engine is a connection to one Docker engine.
type Engine struct {
	log     *slog.Logger
	api     client.APIClient
	compose api.Compose
}

// New connects to the engine the docker CLI would use. It succeeds when the
// engine does not answer yet: Ping tells.
func New(ctx context.Context, opts Options) (*Engine, error) {
	log := opts.Logger // the caller narrows it (With("component", ...))
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	// The API client is made here rather than lazily by the CLI object,
	// whose Client() calls os.Exit when the endpoint cannot be resolved.
	clientOpts := flags.NewClientOptions()
	apiClient, err := command.NewAPIClientFromFlags(clientOpts, config.LoadDefaultConfigFile(io.Discard))
	if err != nil {
		return nil, fmt.Errorf("docker client: %s", redactURLs(err.Error()))
	}
	cli, err := command.NewDockerCli(
		command.WithCombinedStreams(io.Discard),
		command.WithInputStream(io.NopCloser(strings.NewReader(""))),
		command.WithBaseContext(context.WithoutCancel(ctx)),
	)
	if err != nil {
		_ = apiClient.Close()
		return nil, fmt.Errorf("docker cli: %w", err)
	}
	if err := cli.Initialize(clientOpts, command.WithAPIClient(apiClient)); err != nil {
		_ = apiClient.Close()
		return nil, fmt.Errorf("docker cli: %s", redactURLs(err.Error()))
	}
	// Resolve the endpoint now, where a failure is an error, not an exit.
	if cli.DockerEndpoint().Host == "" {
		_ = apiClient.Close()
		return nil, errors.New("docker cli: no Docker endpoint could be resolved")
	}
	// Initialize reset logrus to the CLI's defaults; route it now.
	routeLogrus(log)

	svc, err := compose.NewComposeService(cli,
		compose.WithStreams(io.Discard, io.Discard, strings.NewReader("")),
		compose.WithEventProcessor(eventLog{log}),
		compose.WithPrompt(func(question string, _ bool) (bool, error) {
			// Only destructive questions are asked (recreate a volume whose
			// configuration changed, losing its data): an agent says no.
			log.Warn("compose asked a question; answering no", "question", question)
			return false, nil
		}),
	)
	if err != nil {
		_ = apiClient.Close()
		return nil, fmt.Errorf("compose service: %w", err)
	}
	return &Engine{log: log, api: apiClient, compose: svc}, nil
}

// Close releases the connection.
func (e *Engine) Close() error {
	return e.api.Close()
}

// Ping checks that the engine answers; when it does not, the error wraps
// ErrEngine.
func (e *Engine) Ping(ctx context.Context) error {
	if _, err := e.api.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return fmt.Errorf("ping: %w", ctx.Err())
		}
		return &opError{msg: "ping: " + redactURLs(err.Error()), errs: []error{ErrEngine, err}}
	}
	return nil
}

// routeLogrus sends the SDK's logrus output (the standard logger, which the
// SDK and the docker CLI write to) to log instead of stderr. It changes
// process-wide logrus settings: the last Engine made wins.
func routeLogrus(log *slog.Logger) {
	std := logrus.StandardLogger()
	std.SetOutput(io.Discard)
	std.ReplaceHooks(logrus.LevelHooks{})
	std.AddHook(logrusHook{log})
	if log.Enabled(context.Background(), slog.LevelDebug) {
		std.SetLevel(logrus.DebugLevel)
	} else {
		std.SetLevel(logrus.WarnLevel)
	}
}

type logrusHook struct{ log *slog.Logger }

func (logrusHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h logrusHook) Fire(e *logrus.Entry) error {
	level := slog.LevelDebug
	if e.Level <= logrus.WarnLevel {
		level = slog.LevelWarn
	}
	h.log.Log(context.Background(), level, escape.Text(e.Message), "from", "compose")
	return nil
}

// eventLog receives the SDK's progress events, which it would otherwise
// draw on a terminal.
type eventLog struct{ log *slog.Logger }

func (l eventLog) Start(context.Context, string) {}

func (l eventLog) On(events ...api.Resource) {
	for _, ev := range events {
		if ev.Status == api.Working {
			continue
		}
		// Details can carry an engine error message; the ID and status do not.
		l.log.Debug("compose", "resource", ev.ID, "status", ev.Text)
	}
}

// Done's flag is not trusted: v5.5.1 passes "failed" where the interface
// says "success".
func (l eventLog) Done(operation string, _ bool) {
	l.log.Debug("compose operation done", "operation", operation)
}

// pingTimeout bounds the check that tells a failed call on a dead engine
// from a failed call on a live one.
const pingTimeout = 3 * time.Second
