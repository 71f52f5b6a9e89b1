package backup

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStatusFilter: restic's status messages never pile up in what is kept
// of its output (at its default rate a long backup writes 60 a second),
// they go to the progress callback, whole, however the writes split them.
func TestStatusFilter(t *testing.T) {
	var keep bytes.Buffer
	var got []string
	f := &statusFilter{keep: &keep, each: func(l []byte) { got = append(got, string(l)) }}
	out := `{"message_type":"status","percent_done":0.5}` + "\n" + `{"message_type":"summary","snapshot_id":"ab"}` + "\n" + `{"message_type":"status","percent_done":1}`
	for i := 0; i < len(out); i += 7 {
		f.Write([]byte(out[i:min(i+7, len(out))]))
	}
	f.Write([]byte("\n"))
	f.flush()
	if keep.String() != `{"message_type":"summary","snapshot_id":"ab"}`+"\n" || len(got) != 2 || got[1] != `{"message_type":"status","percent_done":1}` {
		t.Errorf("kept %q, status %q", keep.String(), got)
	}
	for op, line := range map[string]string{
		"backup":  `{"message_type":"status","percent_done":0.25,"total_files":8,"files_done":2,"total_bytes":4194304,"bytes_done":1048576,"seconds_remaining":90}`,
		"restore": `{"message_type":"status","percent_done":0.25,"total_files":8,"files_restored":2,"total_bytes":4194304,"bytes_restored":1048576,"seconds_remaining":90}`,
	} {
		p, ok := parseStatus(op, []byte(line))
		p.App, p.Kind = "db", "volume:data"
		if want := op + " db volume:data: 25% · 1.0 MiB of 4.0 MiB · 2 of 8 files · about 1m30s left"; !ok || p.String() != want {
			t.Errorf("%s: %q, want %q", op, p.String(), want)
		}
	}
}

// TestBackupAndRestoreReportProgress: the real restic's status messages
// reach Progress for a backup and a restore, named by their part.
func TestBackupAndRestoreReportProgress(t *testing.T) {
	r := newRepo(t, filepath.Join(t.TempDir(), "repo"), testPassword)
	r.fps = "60"
	var mu sync.Mutex
	var seen []Progress
	r.Progress = func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, p)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for i := range 200 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%03d", i)), random(t, 64<<10))
	}
	s, err := r.Backup(ctx, Part{Host: "h1", App: "db", Run: "r1", Parts: 1, Kind: "paths"}, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RestoreTree(ctx, s.SnapshotID, src, t.TempDir(), false); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var backups, restores int
	for _, p := range seen {
		switch {
		case p.Op == "backup" && p.App == "db" && p.Kind == "paths":
			backups++
		case p.Op == "restore" && p.Kind == src:
			restores++
		default:
			t.Errorf("progress of what? %+v", p)
		}
	}
	if backups == 0 || restores == 0 {
		t.Errorf("progress: %d of the backup, %d of the restore, want some of each: %+v", backups, restores, seen)
	}
	if last := seen[len(seen)-1]; !strings.HasPrefix(last.String(), "restore ") {
		t.Errorf("last progress %q", last)
	}
}
