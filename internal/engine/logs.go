package engine

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/proc"
)

// MaxLogLine caps one log line as it is shown: the rest of a longer line
// is counted, not kept, so a container that writes without newlines never
// fills memory, and a redactor always sees a whole line (a secret never
// straddles two).
const MaxLogLine = 16 << 10

// LogLineMargin is how much of a line is kept past MaxLogLine, for the
// redactor only: a secret that straddles MaxLogLine is whole in what it
// sees (or, longer than the margin, has more than a fragment's length in
// it), so no prefix of it survives the cut the caller makes after
// redacting.
const LogLineMargin = 4 << 10

// LogOptions selects what Logs streams, as `docker logs` flags do.
type LogOptions struct {
	Follow bool      // go on until ctx ends
	Since  time.Time // zero: from the start
	Until  time.Time // zero: to the end
	Tail   int       // the last Tail lines of the log; < 0: all of it
}

// LogLine is one line a container wrote.
type LogLine struct {
	Time   time.Time // as the engine stamped it
	Stderr bool
	Text   string // without its newline; at most MaxLogLine+LogLineMargin bytes: redact, then cut to MaxLogLine
	Cut    int64  // bytes of the line left out past Text
}

// LogStream is a container's log, line by line.
type LogStream struct {
	lines  chan LogLine
	err    error // set before lines is closed
	cancel func()
}

// Next returns the next line; false at the log's end (without Follow), or
// once ctx ended or Close was called. Err says why it ended.
func (s *LogStream) Next() (LogLine, bool) {
	l, ok := <-s.lines
	return l, ok
}

// Err is the stream's error once Next returned false (nil at the log's
// end, or when ctx ended).
func (s *LogStream) Err() error { return s.err }

// Close stops the stream.
func (s *LogStream) Close() {
	s.cancel()
	for range s.lines {
	}
}

// Logs streams the log of container id, as the engine's API gives it
// (never the docker CLI): stdout and stderr apart (stdcopy demultiplexes
// them; a TTY container has one stream), each cut into whole lines of at
// most MaxLogLine bytes with their time.
func (e *Engine) Logs(ctx context.Context, id string, o LogOptions) (*LogStream, error) {
	ins, err := e.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, e.wrap(ctx, "logs of container "+abbrev.ID(id), err)
	}
	tty := ins.Container.Config != nil && ins.Container.Config.Tty
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: o.Follow, Tail: "all"}
	if o.Tail >= 0 {
		opts.Tail = strconv.Itoa(o.Tail)
	}
	if !o.Since.IsZero() {
		opts.Since = unixNano(o.Since)
	}
	if !o.Until.IsZero() {
		opts.Until = unixNano(o.Until)
	}
	cctx, cancel := context.WithCancel(ctx)
	rc, err := e.api.ContainerLogs(cctx, id, opts)
	if err != nil {
		cancel()
		return nil, e.wrap(ctx, "logs of container "+abbrev.ID(id), err)
	}
	s := &LogStream{lines: make(chan LogLine, 64), cancel: cancel}
	go func() {
		defer close(s.lines)
		defer cancel()
		defer rc.Close()
		stop := context.AfterFunc(cctx, func() { rc.Close() })
		defer stop()
		emit := func(l LogLine) { // stdcopy writes both streams from this goroutine
			select {
			case s.lines <- l:
			case <-cctx.Done():
			}
		}
		out, errOut := newLineWriter(false, emit), newLineWriter(true, emit)
		if tty {
			_, err = io.Copy(out, rc)
		} else {
			_, err = stdcopy.StdCopy(out, errOut, rc)
		}
		out.flush()
		errOut.flush()
		if err != nil && cctx.Err() == nil {
			s.err = e.wrap(ctx, "logs of container "+abbrev.ID(id), err)
		}
	}()
	return s, nil
}

// unixNano is t as the API's since and until take it: seconds.nanoseconds.
func unixNano(t time.Time) string {
	return strconv.FormatInt(t.Unix(), 10) + "." + strconv.FormatInt(int64(t.Nanosecond())+1e9, 10)[1:]
}

// lineWriter cuts one stream into lines, each kept in a capped buffer.
type lineWriter struct {
	stderr bool
	emit   func(LogLine)
	line   *proc.Buffer
}

func newLineWriter(stderr bool, emit func(LogLine)) *lineWriter {
	// Room for the engine's time stamp before the line's own bytes.
	return &lineWriter{stderr: stderr, emit: emit, line: proc.NewLimit(MaxLogLine+LogLineMargin+64, nil)}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.line.Write(p) // past the cap, the rest is counted (Full), not kept
			break
		}
		w.line.Write(p[:i])
		w.flush()
		p = p[i+1:]
	}
	return n, nil
}

// flush emits the line held, if any.
func (w *lineWriter) flush() {
	if w.line.Written() == 0 {
		return
	}
	b := w.line.Bytes()
	l := LogLine{Stderr: w.stderr}
	// Each line starts with the engine's RFC 3339 time and a space.
	stamp := 0
	if i := bytes.IndexByte(b, ' '); i > 0 {
		if t, err := time.Parse(time.RFC3339Nano, string(b[:i])); err == nil {
			l.Time, stamp = t, i+1
		}
	}
	b = b[stamp:]
	if len(b) > MaxLogLine+LogLineMargin {
		b = b[:MaxLogLine+LogLineMargin]
	}
	l.Text = string(b)
	l.Cut = w.line.Written() - int64(stamp) - int64(len(l.Text))
	w.line.Reset()
	w.emit(l)
}

// MergeLogs calls each with every line of streams, interleaved by time as
// `docker compose logs` shows several containers' (each stream is in time
// order already: one line ahead of each is held), until every stream
// ended. i is the line's stream.
func MergeLogs(streams []*LogStream, each func(i int, l LogLine)) {
	heads := make([]LogLine, len(streams))
	live := make([]bool, len(streams))
	for i, s := range streams {
		heads[i], live[i] = s.Next()
	}
	for {
		at := -1
		for i := range streams {
			if live[i] && (at < 0 || heads[i].Time.Before(heads[at].Time)) {
				at = i
			}
		}
		if at < 0 {
			return
		}
		each(at, heads[at])
		heads[at], live[at] = streams[at].Next()
	}
}

// FollowLogs calls each with every line of streams as it comes, one call
// at a time, until every stream ended (ctx ended, for streams that
// follow).
func FollowLogs(streams []*LogStream, each func(i int, l LogLine)) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Go(func() {
			for l, ok := s.Next(); ok; l, ok = s.Next() {
				mu.Lock()
				each(i, l)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
