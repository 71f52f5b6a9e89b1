// Package backup runs restic for a host's backups: it owns the restic
// adapter (the binary, run with --json, credentials only in its
// environment), the tags that group a backup run's snapshots, retention,
// check, extracting a snapshot to a directory or a writer, and the
// restore drill (a run brought up in a throwaway project of its own, whose
// Compose model it derives from the app's; the engine does the rest).
//
// It knows nothing of Docker: the caller says which paths to save and
// which argv produces a dump (a docker exec built by the engine's side). It
// must not import the engine, reconcile, the source or cmd/syncd.
package backup

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/syncd-dev/syncd/internal/escape"
	"github.com/syncd-dev/syncd/internal/proc"
)

// Kinds of failure, from restic's exit codes (doc/075_scripting.rst).
var (
	// ErrPartial: backup could not read some source data; a snapshot was
	// made but is incomplete (exit 3).
	ErrPartial = errors.New("backup is partial: restic could not read some source data")
	// ErrNoRepository: there is no repository at the location (exit 10).
	ErrNoRepository = errors.New("repository does not exist")
	// ErrLocked: restic could not lock the repository (exit 11).
	ErrLocked = errors.New("repository is locked")
	// ErrWrongPassword: the password opens no key (exit 12). Permanent:
	// retrying cannot help until a person fixes the secret.
	ErrWrongPassword = errors.New("wrong password for the repository")
	// ErrFailed is any other non-zero exit.
	ErrFailed = errors.New("restic failed")
	// ErrUnreachable: the repository did not answer a job's first contact
	// within Restic.OpenTimeout (restic itself would retry for 15 minutes).
	ErrUnreachable = errors.New("repository unreachable")
)

// DefaultOpenTimeout bounds a job's first contact with the repository.
const DefaultOpenTimeout = 20 * time.Second

// Error is a failed restic command.
type Error struct {
	Op   string // the restic command: backup, forget...
	Code int    // restic's exit code, -1 when it did not run
	Msg  string // restic's message, redacted
	Kind error  // one of the Err* values
}

func (e *Error) Error() string {
	s := fmt.Sprintf("restic %s: %v (exit %d)", e.Op, e.Kind, e.Code)
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

func (e *Error) Unwrap() error { return e.Kind }

// Permanent reports whether err needs a person (a wrong password) rather
// than a retry.
func Permanent(err error) bool { return errors.Is(err, ErrWrongPassword) }

func kindOf(code int) error {
	switch code {
	case 3:
		return ErrPartial
	case 10:
		return ErrNoRepository
	case 11:
		return ErrLocked
	case 12:
		return ErrWrongPassword
	}
	return ErrFailed
}

// Restic runs the restic binary against one repository.
type Restic struct {
	Binary     string            // path of restic
	Repository string            // RESTIC_REPOSITORY; may carry credentials
	Password   string            // RESTIC_PASSWORD
	Env        map[string]string // restic's other variables (AWS_ACCESS_KEY_ID...), values are secrets
	CacheDir   string            // RESTIC_CACHE_DIR, "" for restic's default
	// Redact blanks secrets out of text that leaves the adapter (errors,
	// logs); nil leaves text as it is.
	Redact func(string) string
	Log    *slog.Logger
	// RetryLock is passed as --retry-lock (default 2m).
	RetryLock time.Duration
	// OpenTimeout bounds Ensure, a job's first contact with the repository
	// (default DefaultOpenTimeout): restic 0.19 retries an unreachable
	// repository for 15 minutes, and a job must fail fast, before it has
	// stopped anything.
	OpenTimeout time.Duration
	// Progress, when set, is told where each backup and restore stands,
	// every 5 s (restic's status messages).
	Progress func(Progress)
	fps      string // RESTIC_PROGRESS_FPS, "" for progressFPS (tests ask for more)
}

func (r *Restic) redact(s string) string {
	if r.Redact == nil {
		return s
	}
	return r.Redact(s)
}

func (r *Restic) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// environ is the child's environment: the parent's without any RESTIC_*
// (a stray RESTIC_PASSWORD_FILE would win over ours) and without the names
// of Env, then the credentials.
func (r *Restic) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "RESTIC_") {
			continue
		}
		if _, ok := r.Env[name]; ok {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range r.Env {
		if !strings.HasPrefix(k, "RESTIC_") || k == "RESTIC_COMPRESSION" || k == "RESTIC_PACK_SIZE" {
			env = append(env, k+"="+v)
		}
	}
	env = append(env, "RESTIC_REPOSITORY="+r.Repository, "RESTIC_PASSWORD="+r.Password, "RESTIC_PROGRESS_FPS="+cmp.Or(r.fps, progressFPS))
	if r.CacheDir != "" {
		env = append(env, "RESTIC_CACHE_DIR="+r.CacheDir)
	}
	return env
}

// call is one restic invocation.
type call struct {
	args   []string  // after the global flags; never a secret
	stdout io.Writer // nil: captured and returned
	// produce, when set, writes restic's stdin (backup --stdin). When it
	// fails, restic is interrupted before its input ends, so it saves no
	// snapshot: a failed dump never looks like a good one.
	produce func(io.Writer) error
	// progress, when set, names the part whose status messages go to
	// Restic.Progress.
	progress *Progress
}

// ErrProducer wraps the error of a stream that failed before its end.
var ErrProducer = errors.New("the stream failed")

// run runs restic args and classifies its exit. stdout is returned when
// c.stdout is nil.
func (r *Restic) run(ctx context.Context, c call) ([]byte, error) {
	op := c.args[0]
	retry := r.RetryLock
	if retry == 0 {
		retry = 2 * time.Minute
	}
	args := append([]string{"--json", "--retry-lock", retry.String()}, c.args...)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// restic dies with syncd (kill -9 included): no backup goes on
	// unwatched, and its lock is stale at once (its PID is dead). When
	// cctx ends, an interrupt lets restic remove its lock before it exits;
	// the kill comes 10 s later.
	cmd := proc.Command(cctx, 10*time.Second, r.Binary, args...)
	cmd.Env = r.environ()
	var out bytes.Buffer
	status := &statusFilter{keep: &out}
	if c.progress != nil && r.Progress != nil {
		status.each = func(line []byte) {
			if p, ok := parseStatus(c.progress.Op, line); ok {
				p.App, p.Kind = c.progress.App, c.progress.Kind
				r.Progress(p)
			}
		}
	}
	switch {
	case c.stdout == io.Discard:
		status.keep = &bytes.Buffer{} // what restore says besides its status is not read
		cmd.Stdout = status
	case c.stdout != nil:
		cmd.Stdout = c.stdout
	default:
		cmd.Stdout = status
	}
	start := time.Now()
	var err, perr error
	if c.produce == nil {
		err = cmd.Run()
	} else {
		err, perr = runProducing(cmd, cancel, c.produce)
	}
	status.flush()
	log := r.log().With("op", op, "duration", time.Since(start).Round(time.Millisecond))
	if perr != nil {
		// The stream failed before its end and restic was interrupted: no
		// snapshot, whatever restic's exit.
		e := fmt.Errorf("%w: %s; no snapshot was saved", ErrProducer, escape.Lines(r.redact(perr.Error())))
		log.Warn("restic input failed", "error", e)
		return out.Bytes(), e
	}
	if err == nil {
		log.Debug("restic ok")
		return out.Bytes(), nil
	}
	code := exitCode(err)
	msg := escape.Lines(exitMessage(cmd.Stderr.Bytes())) // restic's own text, and the repository's
	switch {
	case ctx.Err() != nil:
		// Stopped by our deadline: say so, with what restic was retrying
		// (an unreachable repository retries for minutes).
		msg = strings.TrimSuffix(context.Cause(ctx).Error()+"; "+msg, "; ")
		code = -1
	case code == -1:
		msg = err.Error()
	case code == 12:
		// restic says "wrong password or no key found": the Kind, again.
		msg = ""
	}
	e := &Error{Op: op, Code: code, Msg: r.redact(msg), Kind: kindOf(code)}
	log.Warn("restic failed", "code", code, "error", e.Msg)
	return out.Bytes(), e
}

// runProducing runs cmd with produce writing its stdin. When produce
// fails because restic stopped reading (a broken pipe: restic failed on its
// own), restic's exit says why and perr is nil. When produce fails for its
// own reason (the dump failed), restic is interrupted (cancel) while its
// input is still open, and only then is its stdin closed: whatever restic
// exits with then (130, or 12 when the interrupt came while it opened the
// repository's keys), perr is the reason.
func runProducing(cmd *proc.Cmd, cancel func(), produce func(io.Writer) error) (err, perr error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err, nil
	}
	if err := cmd.Start(); err != nil {
		return err, nil
	}
	if perr = produce(stdin); perr != nil {
		if errors.Is(perr, syscall.EPIPE) || errors.Is(perr, os.ErrClosed) {
			stdin.Close()
			if err = cmd.Wait(); err != nil {
				return err, nil
			}
			return errors.New("restic stopped reading its input"), perr
		}
		cancel()
		err = cmd.Wait()
		stdin.Close()
		return err, perr
	}
	if err := stdin.Close(); err != nil {
		cancel()
		return errors.Join(cmd.Wait(), err), nil
	}
	return cmd.Wait(), nil
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// exitMessage is restic's exit_error message, else its last stderr lines.
func exitMessage(stderr []byte) string {
	var last []string
	sc := bufio.NewScanner(bytes.NewReader(stderr))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var m struct {
			Type    string `json:"message_type"`
			Message string `json:"message"`
			Error   struct {
				Message string `json:"message"`
			} `json:"error"`
			Item string `json:"item"`
		}
		if json.Unmarshal(line, &m) == nil && m.Type != "" {
			switch m.Type {
			case "exit_error":
				msg := strings.Join(strings.Fields(strings.TrimPrefix(m.Message, "Fatal: ")), " ")
				if len(last) > 0 {
					// what restic retried before giving up (connection refused...)
					msg += "; last: " + last[len(last)-1]
				}
				return msg
			case "error":
				last = append(last, strings.TrimSpace(m.Item+": "+m.Error.Message))
			}
			continue
		}
		if s := strings.TrimSpace(string(line)); s != "" && !strings.HasPrefix(s, "signal ") {
			last = append(last, s)
		}
	}
	if len(last) > 3 {
		last = last[len(last)-3:]
	}
	return strings.Join(last, "; ")
}

// withUnlock runs c; when restic still reports a lock after --retry-lock,
// it runs `restic unlock` (which removes only stale locks: older than 30
// minutes, or made on this host by a dead process; never --remove-all, so
// a live run on another host keeps its lock) and tries once more.
func (r *Restic) withUnlock(ctx context.Context, c call) ([]byte, error) {
	out, err := r.run(ctx, c)
	if !errors.Is(err, ErrLocked) {
		return out, err
	}
	r.log().Info("repository still locked; removing stale locks", "op", c.args[0])
	if _, uerr := r.run(ctx, call{args: []string{"unlock"}}); uerr != nil {
		return out, errors.Join(err, uerr)
	}
	return r.run(ctx, c)
}

// Ensure initialises the repository when it does not exist yet.
func (r *Restic) Ensure(ctx context.Context) error {
	open := r.OpenTimeout
	if open <= 0 {
		open = DefaultOpenTimeout
	}
	pctx, cancel := context.WithTimeoutCause(ctx, open, fmt.Errorf("no answer within %s", open))
	defer cancel()
	_, err := r.run(pctx, call{args: []string{"cat", "config"}, stdout: io.Discard})
	var e *Error
	if ctx.Err() == nil && pctx.Err() != nil && errors.As(err, &e) {
		e.Kind = ErrUnreachable
	}
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrNoRepository) {
		return err
	}
	r.log().Info("initialising the restic repository")
	_, err = r.run(ctx, call{args: []string{"init"}})
	return err
}

// Unlock removes stale locks: `restic unlock` removes only those of a dead
// process of this host, or older than 30 minutes (a live run refreshes its
// lock), never another's live one and never with --remove-all.
func (r *Restic) Unlock(ctx context.Context) error {
	_, err := r.run(ctx, call{args: []string{"unlock"}})
	return err
}

// Summary is restic backup's summary message.
type Summary struct {
	SnapshotID          string  `json:"snapshot_id"`
	FilesNew            int     `json:"files_new"`
	FilesChanged        int     `json:"files_changed"`
	FilesUnmodified     int     `json:"files_unmodified"`
	DataAdded           int64   `json:"data_added"`
	TotalFilesProcessed int     `json:"total_files_processed"`
	TotalBytesProcessed int64   `json:"total_bytes_processed"`
	TotalDuration       float64 `json:"total_duration"`
}

func parseSummary(out []byte) (Summary, bool) {
	var s Summary
	found := false
	for line := range bytes.SplitSeq(out, []byte("\n")) {
		var m struct {
			Type string `json:"message_type"`
		}
		if json.Unmarshal(line, &m) != nil || m.Type != "summary" {
			continue
		}
		if json.Unmarshal(line, &s) == nil {
			found = true
		}
	}
	return s, found
}

// Part is one snapshot of a run: what is saved and how it is tagged.
type Part struct {
	Host   string
	App    string
	Commit string
	Run    string // the run's ID, shared by its parts
	Parts  int    // how many parts the run has
	Kind   string // its own tag: "paths", "volume:<name>", "dump:<file>"
	Extra  []string
	// Time backdates the snapshot (tests, imports); zero is now.
	Time time.Time
}

func (p Part) tags() []string {
	t := []string{"host:" + p.Host, "app:" + p.App, "run:" + p.Run, "parts:" + strconv.Itoa(p.Parts), p.Kind}
	if p.Commit != "" {
		t = append(t, "commit:"+p.Commit)
	}
	return append(t, p.Extra...)
}

func (p Part) args(op string) []string {
	a := []string{op, "--host", p.Host}
	for _, t := range p.tags() {
		a = append(a, "--tag", t)
	}
	if !p.Time.IsZero() {
		a = append(a, "--time", p.Time.Local().Format("2006-01-02 15:04:05"))
	}
	return a
}

// Backup saves paths as one snapshot. A partial backup (exit 3) returns
// its summary and an error wrapping ErrPartial; its snapshot is tagged
// "partial" so it never counts towards a complete run.
func (r *Restic) Backup(ctx context.Context, p Part, paths ...string) (Summary, error) {
	if len(paths) == 0 {
		return Summary{}, fmt.Errorf("backup %s: no paths", p.Kind)
	}
	args := append(p.args("backup"), "--")
	return r.backup(ctx, p, call{args: append(args, paths...), progress: &Progress{Op: "backup", App: p.App, Kind: p.Kind}})
}

// BackupStream saves what produce writes as one file, filename, with the
// semantics of restic's --stdin-from-command: when produce fails, restic
// is stopped before the stream ends and saves no snapshot, so a failed
// dump never looks good. produce may be called again (a locked repository
// is retried), so it must start its stream afresh each time.
func (r *Restic) BackupStream(ctx context.Context, p Part, filename string, produce func(io.Writer) error) (Summary, error) {
	if filename == "" || produce == nil {
		return Summary{}, fmt.Errorf("backup %s: a dump needs a stream and a filename", p.Kind)
	}
	args := append(p.args("backup"), "--stdin", "--stdin-filename", filename)
	return r.backup(ctx, p, call{args: args, produce: produce, progress: &Progress{Op: "backup", App: p.App, Kind: p.Kind}})
}

func (r *Restic) backup(ctx context.Context, p Part, c call) (Summary, error) {
	out, err := r.withUnlock(ctx, c)
	s, ok := parseSummary(out)
	if err == nil && (!ok || s.SnapshotID == "") {
		err = &Error{Op: "backup", Code: 0, Msg: "no summary with a snapshot ID", Kind: ErrFailed}
	}
	if errors.Is(err, ErrPartial) && s.SnapshotID != "" {
		if _, terr := r.run(ctx, call{args: []string{"tag", "--add", "partial", s.SnapshotID}}); terr != nil {
			err = errors.Join(err, terr)
		}
	}
	if err != nil {
		return s, fmt.Errorf("back up %s of %s: %w", p.Kind, p.App, err)
	}
	r.log().Info("snapshot saved", "app", p.App, "kind", p.Kind, "snapshot", short(s.SnapshotID),
		"files_new", s.FilesNew, "files_changed", s.FilesChanged, "data_added", s.DataAdded)
	return s, nil
}

func short(id string) string { return id[:min(8, len(id))] }

// Snapshot is one entry of `restic snapshots --json`.
type Snapshot struct {
	ID       string    `json:"id"`
	ShortID  string    `json:"short_id"`
	Time     time.Time `json:"time"`
	Hostname string    `json:"hostname"`
	Paths    []string  `json:"paths"`
	Tags     []string  `json:"tags"`
	Summary  *Summary  `json:"summary"`
}

// Tag returns the value of the snapshot's tag prefix:<value>, or "".
func (s Snapshot) Tag(prefix string) string {
	for _, t := range s.Tags {
		if v, ok := strings.CutPrefix(t, prefix+":"); ok {
			return v
		}
	}
	return ""
}

// HasTag reports whether the snapshot carries tag t.
func (s Snapshot) HasTag(t string) bool {
	for _, x := range s.Tags {
		if x == t {
			return true
		}
	}
	return false
}

// Snapshots lists the snapshots of app on host (app "" for all of the
// host's), oldest first.
func (r *Restic) Snapshots(ctx context.Context, host, app string) ([]Snapshot, error) {
	filter := "host:" + host
	if app != "" {
		filter = "app:" + app + "," + filter
	}
	out, err := r.withUnlock(ctx, call{args: []string{"snapshots", "--host", host, "--tag", filter}})
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var ss []Snapshot
	if err := json.Unmarshal(out, &ss); err != nil {
		return nil, fmt.Errorf("list snapshots: parse restic's output: %w", err)
	}
	// The repository is shared with every host holding its password: what
	// it lists is checked here, where it enters.
	if err := checkSnapshots(ss); err != nil {
		return nil, fmt.Errorf("list snapshots of host %s: %w", host, err)
	}
	return ss, nil
}

// Keep is a retention policy.
type Keep struct{ Daily, Weekly, Monthly int }

// DefaultKeep is the policy when host.yaml sets none.
var DefaultKeep = Keep{Daily: 7, Weekly: 4, Monthly: 6}

// ForgetGroup is one group of `restic forget --json`.
type ForgetGroup struct {
	Host    string     `json:"host"`
	Tags    []string   `json:"tags"`
	Keep    []Snapshot `json:"keep"`
	Remove  []Snapshot `json:"remove"`
	Reasons []struct {
		Snapshot Snapshot `json:"snapshot"`
		Matches  []string `json:"matches"`
	} `json:"reasons"`
}

// Forget applies keep to app's snapshots on host, in one call grouped by
// host and paths: each kind (a volume, the paths, each dump's file) saves
// paths of its own, so one kind never thins out another. Grouping by
// restic's tags would make every snapshot a group of its own (the run,
// commit and parts tags differ between runs) and keep them all. Snapshots
// tagged pre-restore are kept (what a restore replaced). Data is freed by
// Prune.
func (r *Restic) Forget(ctx context.Context, host, app string, keep Keep) ([]ForgetGroup, error) {
	if keep == (Keep{}) {
		keep = DefaultKeep
	}
	args := []string{"forget", "--host", host, "--tag", "app:" + app + ",host:" + host, "--group-by", "host,paths",
		"--keep-daily", strconv.Itoa(keep.Daily), "--keep-weekly", strconv.Itoa(keep.Weekly), "--keep-monthly", strconv.Itoa(keep.Monthly),
		"--keep-tag", "pre-restore"}
	out, err := r.withUnlock(ctx, call{args: args})
	if err != nil {
		return nil, fmt.Errorf("forget snapshots of %s: %w", app, err)
	}
	var groups []ForgetGroup
	if err := json.Unmarshal(out, &groups); err != nil {
		return nil, fmt.Errorf("forget snapshots of %s: parse restic's output: %w", app, err)
	}
	return groups, nil
}

// Kind is what the snapshot saved: "paths", "volume:<key>" or
// "dump:<file>" ("" for a snapshot syncd did not make).
func (s Snapshot) Kind() string {
	for _, t := range s.Tags {
		if t == "paths" || strings.HasPrefix(t, "volume:") || strings.HasPrefix(t, "dump:") {
			return t
		}
	}
	return ""
}

// Prune frees the data no snapshot refers to any more (run on its own:
// `forget --prune` mixes JSON with text).
func (r *Restic) Prune(ctx context.Context) error {
	_, err := r.withUnlock(ctx, call{args: []string{"prune"}, stdout: io.Discard})
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	return nil
}

// CheckResult is `restic check --json`'s summary.
type CheckResult struct {
	NumErrors          int  `json:"num_errors"`
	SuggestRepairIndex bool `json:"suggest_repair_index"`
	SuggestPrune       bool `json:"suggest_prune"`
}

// Check verifies the repository's structure; readDataSubset ("1/4",
// "5%"), when set, also reads that part of the data.
func (r *Restic) Check(ctx context.Context, readDataSubset string) (CheckResult, error) {
	args := []string{"check"}
	if readDataSubset != "" {
		args = append(args, "--read-data-subset", readDataSubset)
	}
	out, err := r.withUnlock(ctx, call{args: args})
	var res CheckResult
	for line := range bytes.SplitSeq(out, []byte("\n")) {
		var m struct {
			Type string `json:"message_type"`
		}
		if json.Unmarshal(line, &m) == nil && m.Type == "summary" {
			_ = json.Unmarshal(line, &res)
		}
	}
	if err != nil {
		return res, fmt.Errorf("check: %w", err)
	}
	if res.NumErrors > 0 {
		return res, fmt.Errorf("check: %d errors in the repository", res.NumErrors)
	}
	return res, nil
}

// Restore extracts snapshot id into dir, with the snapshot's absolute
// paths below it.
func (r *Restic) Restore(ctx context.Context, id, dir string) error {
	_, err := r.withUnlock(ctx, call{args: []string{"restore", id, "--target", dir}, stdout: io.Discard})
	if err != nil {
		return fmt.Errorf("restore %s: %w", short(id), err)
	}
	return nil
}

// RestoreTree writes what the snapshot id saved of path into dir (restic
// restore <id>:<path>). With exact, what dir has beyond it is deleted
// (--delete): an in-place restore, after its pre-restore backup; an
// extraction into a directory of the user's deletes nothing. The caller
// makes dir (an extraction: beneath its root, no symlink on the way).
// include, when given, restores only what those patterns (restic's
// --include, relative to path, with a leading /) match.
func (r *Restic) RestoreTree(ctx context.Context, id, path, dir string, exact bool, include ...string) error {
	args := []string{"restore", id + ":" + path, "--target", dir}
	if exact {
		args = append(args, "--delete")
	}
	for _, p := range include {
		args = append(args, "--include", p)
	}
	_, err := r.withUnlock(ctx, call{args: args, stdout: io.Discard, progress: &Progress{Op: "restore", Kind: path}})
	if err != nil {
		return fmt.Errorf("restore %s of %s into %s: %w", path, short(id), dir, err)
	}
	return nil
}

// Dump writes file of snapshot id to w (a dump's stream, for its
// restore_command).
func (r *Restic) Dump(ctx context.Context, id, file string, w io.Writer) error {
	// --json would not change dump's output; the stream is the file.
	if !strings.HasPrefix(file, "/") {
		file = "/" + file // where --stdin-filename puts it
	}
	_, err := r.withUnlock(ctx, call{args: []string{"dump", id, file}, stdout: w})
	if err != nil {
		return fmt.Errorf("dump %s from %s: %w", file, short(id), err)
	}
	return nil
}

// Node is one entry of `restic ls --json`: a file, directory or link a
// snapshot holds, at its absolute path in the snapshot.
type Node struct {
	Name  string    `json:"name"`
	Type  string    `json:"type"` // file, dir, symlink, dev, chardev, fifo, socket
	Path  string    `json:"path"`
	Size  uint64    `json:"size"`
	Mtime time.Time `json:"mtime"`
}

// maxLsLine caps one line of `restic ls --json` (a node with its path):
// a longer one is refused, never held whole.
const maxLsLine = 1 << 20

// Ls calls each with every node of snapshot id, in restic's order, as
// restic lists them: streamed, so a run of millions of files is never
// held whole.
func (r *Restic) Ls(ctx context.Context, id string, each func(Node)) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), maxLsLine)
		for sc.Scan() {
			var n struct {
				Node
				Type string `json:"struct_type"`
			}
			if json.Unmarshal(sc.Bytes(), &n) != nil || n.Type != "node" {
				continue // the snapshot's own line, or restic's messages
			}
			each(n.Node)
		}
		err := sc.Err()
		pr.CloseWithError(cmp.Or(err, io.EOF)) // restic's further output fails its write, and ends it
		done <- err
	}()
	_, err := r.withUnlock(ctx, call{args: []string{"ls", id}, stdout: pw})
	pw.Close()
	serr := <-done
	if err == nil && serr != nil {
		err = fmt.Errorf("parse restic's output: %w", serr)
	}
	if err != nil {
		return fmt.Errorf("list the files of snapshot %s: %w", short(id), err)
	}
	return nil
}
