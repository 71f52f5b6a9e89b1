package backup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Progress is where a backup or a restore of one part stands, from
// restic's status messages: what Backrest shows as it runs.
type Progress struct {
	Op, App, Kind string // "backup" or "restore"; the part
	Percent       float64
	FilesDone     int64
	Files         int64
	BytesDone     int64
	Bytes         int64
	Left          time.Duration // restic's estimate; 0 when it has none
}

// String is the progress in one line: `backup db volume:data: 45% ·
// 1.2 GiB of 2.6 GiB · 1234 of 5000 files · about 1m20s left`.
func (p Progress) String() string {
	what := strings.TrimSpace(p.App + " " + p.Kind)
	s := fmt.Sprintf("%s %s: %.0f%% · %s of %s · %d of %d files", p.Op, what, 100*p.Percent, Bytes(p.BytesDone), Bytes(p.Bytes), p.FilesDone, p.Files)
	if p.Left > 0 {
		s += fmt.Sprintf(" · about %s left", p.Left.Round(time.Second))
	}
	return s
}

// Bytes is n in binary units, as restic prints sizes.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// progressFPS is how often restic writes a status message (RESTIC_PROGRESS_FPS):
// every 5 s. restic's default with --json is 60 a second, which a long
// backup's captured output would hold by the hundred thousand.
const progressFPS = "0.2"

// maxStatusLine bounds a line of restic's output held while it is
// incomplete.
const maxStatusLine = 1 << 20

// statusFilter passes restic's stdout on to keep, but for its status
// messages, which go to each (when set) and are never kept.
type statusFilter struct {
	keep    *bytes.Buffer
	each    func(line []byte)
	partial []byte
}

func (f *statusFilter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(f.partial)+len(p) > maxStatusLine {
				f.flush() // a line this long is no status message
			}
			f.partial = append(f.partial, p...)
			break
		}
		f.partial = append(f.partial, p[:i+1]...)
		f.line()
		p = p[i+1:]
	}
	return n, nil
}

func (f *statusFilter) line() {
	line := f.partial
	f.partial = f.partial[:0]
	if bytes.Contains(line, []byte(`"message_type":"status"`)) {
		if f.each != nil {
			f.each(bytes.TrimSpace(line))
		}
		return
	}
	f.keep.Write(line)
}

// flush keeps what is held of an incomplete line.
func (f *statusFilter) flush() {
	f.keep.Write(f.partial)
	f.partial = f.partial[:0]
}

// parseStatus reads one status message of `restic backup` or `restic
// restore` (which name their counts differently).
func parseStatus(op string, line []byte) (Progress, bool) {
	var m struct {
		Percent       float64 `json:"percent_done"`
		TotalFiles    int64   `json:"total_files"`
		FilesDone     int64   `json:"files_done"`
		FilesRestored int64   `json:"files_restored"`
		TotalBytes    int64   `json:"total_bytes"`
		BytesDone     int64   `json:"bytes_done"`
		BytesRestored int64   `json:"bytes_restored"`
		Remaining     int64   `json:"seconds_remaining"`
	}
	if json.Unmarshal(line, &m) != nil {
		return Progress{}, false
	}
	p := Progress{Op: op, Percent: m.Percent, Files: m.TotalFiles, FilesDone: m.FilesDone, Bytes: m.TotalBytes, BytesDone: m.BytesDone,
		Left: time.Duration(m.Remaining) * time.Second}
	if op == "restore" {
		p.FilesDone, p.BytesDone = m.FilesRestored, m.BytesRestored
	}
	return p, true
}
