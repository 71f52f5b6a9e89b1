package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/syncd-dev/syncd/internal/jobs"
)

// syncReplyJSON is what POST /sync on the socket answers.
type syncReplyJSON struct {
	OK        bool           `json:"ok"`
	Commit    string         `json:"commit,omitempty"`
	Changed   int            `json:"changed"`
	Drift     int            `json:"drift"`
	Projects  map[string]int `json:"projects,omitempty"`
	Suspended int            `json:"suspended,omitempty"`
	Output    string         `json:"output,omitempty"`
	Error     string         `json:"error,omitempty"`
}

// syncRequestJSON is what POST /sync may carry: the settings the caller
// asked for, which must be the agent's.
type syncRequestJSON struct {
	Settings map[string]string `json:"settings,omitempty"`
}

// ErrOtherSettings is the agent's answer to a sync asked for with other
// settings (another repository, host or key) than its own.
var ErrOtherSettings = errors.New("the running agent has other settings")

// ServeSocket serves POST /sync → a.Sync on a unix socket at path (mode
// 0600) until ctx ends, and removes the socket on return. A socket file
// left by a killed agent is replaced; a socket another process still
// listens on, or a file that is not a socket, is an error. Put it in a
// directory only the agent's user can enter (e.g. /run/syncd, 0700): the
// socket exists for a moment before its mode is set.
func ServeSocket(ctx context.Context, path string, a *Agent) error {
	if err := removeStale(ctx, path); err != nil {
		return err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	defer os.Remove(path) // the listener unlinks it too; this covers a failed chmod
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("chmod %s: %w", path, err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /sync", func(w http.ResponseWriter, r *http.Request) {
		var req syncRequestJSON
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if diff := a.otherSettings(req.Settings); diff != "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(syncReplyJSON{Error: fmt.Sprintf("%v: %s; this sync would need a state directory of its own (--state-dir), or the agent's settings", ErrOtherSettings, diff)})
			return
		}
		res, err := a.Sync(r.Context())
		reply := syncReplyJSON{OK: err == nil, Commit: res.Commit, Changed: res.Changed, Drift: res.Drift, Projects: res.Projects, Suspended: res.Suspended, Output: res.Output}
		status := http.StatusOK
		if err != nil {
			reply.Error = err.Error()
			if errors.Is(err, ErrStopped) {
				status = http.StatusServiceUnavailable
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(reply)
	})
	mux.HandleFunc("POST /job", func(w http.ResponseWriter, r *http.Request) {
		var req jobRequestJSON
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		// The request is checked where it enters: an unknown kind or a
		// malformed field runs nothing.
		if err := req.Request.Validate(); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(syncReplyJSON{Error: err.Error()})
			return
		}
		if diff := a.otherSettings(req.Settings); diff != "" {
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(syncReplyJSON{Error: fmt.Sprintf("%v: %s; run it with the agent's settings, or stop the agent", ErrOtherSettings, diff)})
			return
		}
		if a.cfg.Job == nil {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(syncReplyJSON{Error: "this agent runs no jobs"})
			return
		}
		out, err := a.cfg.Job(r.Context(), req.Request)
		reply := syncReplyJSON{OK: err == nil, Output: out}
		if err != nil {
			reply.Error = err.Error()
		}
		json.NewEncoder(w).Encode(reply)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", path, err)
	case <-ctx.Done():
	}
	// A /sync waiting for a cycle gets ErrStopped once Run returns; give it
	// a moment to be told, then close.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	return nil
}

// removeStale removes a socket file nobody listens on.
func removeStale(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket; not replacing it", path)
	}
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "unix", path)
	if err == nil {
		conn.Close()
		return fmt.Errorf("%s: another agent is listening on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("probe %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

// RequestSync asks the agent listening on path for a cycle and returns its
// result (an error for a failed cycle). agentRunning is false when no agent
// listens there (no file, or a stale socket): the caller then reconciles
// itself. Any other failure to reach the socket (e.g. permission denied)
// reports agentRunning true with the error: an agent is probably there,
// and reconciling beside it would race it.
func RequestSync(ctx context.Context, path string) (Result, error, bool /*agentRunning*/) {
	return RequestSyncAs(ctx, path, nil)
}

// RequestSyncAs is RequestSync for a caller that asked for settings (the
// flags given: repo, host, age-key): an agent with other ones refuses
// (ErrOtherSettings) instead of running its own cycle in their place.
func RequestSyncAs(ctx context.Context, path string, settings map[string]string) (Result, error, bool /*agentRunning*/) {
	var reply syncReplyJSON
	status, err, running := post(ctx, path, "/sync", syncRequestJSON{Settings: settings}, &reply)
	if err != nil || !running {
		return Result{}, err, running
	}
	res := Result{Commit: reply.Commit, Changed: reply.Changed, Drift: reply.Drift, Projects: reply.Projects, Suspended: reply.Suspended, Output: reply.Output}
	if !reply.OK {
		msg := reply.Error
		if msg == "" {
			msg = fmt.Sprintf("cycle failed (%d)", status)
		}
		if status == http.StatusConflict {
			return res, fmt.Errorf("%w%s", ErrOtherSettings, strings.TrimPrefix(msg, ErrOtherSettings.Error())), true
		}
		return res, errors.New(msg), true
	}
	return res, nil, true
}

// otherSettings names the asked-for settings that differ from the agent's.
func (a *Agent) otherSettings(asked map[string]string) string {
	var diff []string
	for _, k := range slices.Sorted(maps.Keys(asked)) {
		if mine, ok := a.cfg.Settings[k]; ok && mine != asked[k] {
			diff = append(diff, fmt.Sprintf("--%s %s (the agent's: %s)", k, asked[k], mine))
		}
	}
	return strings.Join(diff, ", ")
}

// ctxErr prefers ctx's error to the one closing the connection caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// jobRequestJSON is what POST /job carries.
type jobRequestJSON struct {
	Settings map[string]string `json:"settings,omitempty"`
	Request  jobs.Request      `json:"request"`
}

// RequestJob asks the agent listening on path to run the job req asks for
// and returns what it printed. agentRunning is as for RequestSync.
func RequestJob(ctx context.Context, path string, settings map[string]string, req jobs.Request) (string, error, bool /*agentRunning*/) {
	var reply syncReplyJSON
	status, err, running := post(ctx, path, "/job", jobRequestJSON{Settings: settings, Request: req}, &reply)
	if err != nil || !running {
		return "", err, running
	}
	if !reply.OK {
		if status == http.StatusConflict {
			return reply.Output, fmt.Errorf("%w%s", ErrOtherSettings, strings.TrimPrefix(reply.Error, ErrOtherSettings.Error())), true
		}
		return reply.Output, errors.New(reply.Error), true
	}
	return reply.Output, nil, true
}

// post sends body to route on the agent's socket and decodes its answer
// into reply.
func post(ctx context.Context, path, route string, body, reply any) (int, error, bool) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
		return 0, nil, false
	}
	if err != nil {
		return 0, fmt.Errorf("connect to the agent at %s: %w", path, err), true
	}
	defer conn.Close()
	// The request goes over the connection dialled above, so that "nobody
	// listens" is decided before anything is sent; ctx ending closes it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	data, err := json.Marshal(body)
	if err != nil {
		return 0, err, true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://syncd"+route, bytes.NewReader(data))
	if err != nil {
		return 0, err, true
	}
	if err := req.Write(conn); err != nil {
		return 0, fmt.Errorf("ask the agent at %s: %w", path, ctxErr(ctx, err)), true
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return 0, fmt.Errorf("ask the agent at %s: %w", path, ctxErr(ctx, err)), true
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(reply); err != nil {
		return resp.StatusCode, fmt.Errorf("agent at %s answered %s: %w", path, resp.Status, err), true
	}
	return resp.StatusCode, nil, true
}
