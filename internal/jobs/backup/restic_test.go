package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/testenv"
)

const (
	testPassword = "correct-horse-battery-9f3k"
	restUser     = "syncd"
	restPass     = "url-secret-7Qx2"
)

// repo is a Restic under test with the secrets it must never show.
type repo struct {
	*Restic
	secrets []string
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newRepo(t *testing.T, location, password string, secrets ...string) *repo {
	t.Helper()
	bin := testenv.Tool(t, "restic")
	secrets = append(secrets, password)
	logs := &syncBuffer{}
	return &repo{
		Restic: &Restic{
			Binary: bin, Repository: location, Password: password,
			CacheDir: t.TempDir(),
			Redact: func(s string) string {
				for _, x := range secrets {
					s = strings.ReplaceAll(s, x, "[redacted]")
				}
				return s
			},
			Log:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			RetryLock: time.Second,
		},
		secrets: secrets,
		logs:    logs,
	}
}

// noSecret fails when text shows one of r's secrets.
func (r *repo) noSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range r.secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s shows a secret: %s", what, text)
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestRoundTrip backs up files and a dump, changes the files, restores
// them and the dump, and finds the bytes identical; a failing dump leaves
// no snapshot and its run is not complete. No secret appears in a restic
// command line, an error or a log line.
func TestRoundTrip(t *testing.T) {
	for _, backend := range []string{"local", "rest"} {
		t.Run(backend, func(t *testing.T) {
			t.Setenv("RESTIC_PASSWORD", "from-the-parent") // must not reach the child
			var r *repo
			if backend == "rest" {
				r = newRepo(t, testenv.RestServer(t, restUser, restPass), testPassword, restPass)
			} else {
				r = newRepo(t, filepath.Join(t.TempDir(), "repo"), testPassword)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
			defer cancel()
			stop := testenv.WatchCmdlines(t, r.secrets)
			defer func() {
				if n := stop(); n == 0 {
					t.Error("the /proc watcher never saw a restic process")
				}
				r.noSecret(t, "the log", r.logs.String())
			}()

			if err := r.Ensure(ctx); err != nil {
				t.Fatalf("Ensure (init): %v", err)
			}
			if err := r.Ensure(ctx); err != nil {
				t.Fatalf("Ensure on an existing repository: %v", err)
			}
			src := t.TempDir()
			big := random(t, 8<<20)
			writeFile(t, filepath.Join(src, "data", "big.bin"), big)
			writeFile(t, filepath.Join(src, "data", "conf", "a.txt"), []byte("alpha\n"))
			dump := random(t, 1<<20)
			writeFile(t, filepath.Join(t.TempDir(), "x"), nil)
			dumpFile := filepath.Join(t.TempDir(), "dump.src")
			writeFile(t, dumpFile, dump)

			p := Part{Host: "h1", App: "db", Commit: "abc123", Run: "run1", Parts: 2, Kind: "paths"}
			start := time.Now()
			sum, err := r.Backup(ctx, p, filepath.Join(src, "data"))
			if err != nil {
				t.Fatalf("Backup: %v", err)
			}
			t.Logf("%s: backup of %d MiB in %v: %d new files, %d bytes added", backend, len(big)>>20, time.Since(start).Round(time.Millisecond), sum.FilesNew, sum.DataAdded)
			if sum.SnapshotID == "" || sum.FilesNew != 2 || sum.TotalBytesProcessed != int64(len(big)+6) {
				t.Errorf("summary = %+v", sum)
			}
			p.Kind = "dump:db.sql"
			// slow enough for the /proc watcher to see restic at work
			dsum, err := r.BackupStream(ctx, p, "db.sql", command("sh", "-c", "sleep 0.5; cat "+dumpFile))
			if err != nil {
				t.Fatalf("BackupStream: %v", err)
			}

			// a second run whose dump fails
			p2 := Part{Host: "h1", App: "db", Commit: "def456", Run: "run2", Parts: 2, Kind: "paths"}
			if _, err := r.Backup(ctx, p2, filepath.Join(src, "data")); err != nil {
				t.Fatal(err)
			}
			p2.Kind = "dump:db.sql"
			_, err = r.BackupStream(ctx, p2, "db.sql", command("sh", "-c", "echo half a dump; exit 3"))
			if !errors.Is(err, ErrProducer) {
				t.Errorf("failing dump: err = %v, want ErrProducer", err)
			} else {
				t.Logf("failing dump: %v", err)
				r.noSecret(t, "an error", err.Error())
			}

			snaps, err := r.Snapshots(ctx, "h1", "db")
			if err != nil {
				t.Fatal(err)
			}
			if len(snaps) != 3 {
				t.Fatalf("snapshots = %d, want 3 (the failing dump saves none)", len(snaps))
			}
			for _, s := range snaps {
				if s.Tag("run") == "run2" && s.Tag("dump") != "" {
					t.Errorf("the failed dump left snapshot %s", s.ShortID)
				}
			}
			run, ok := NewestComplete(snaps, "h1", "db")
			if !ok || run.ID != "run1" {
				t.Fatalf("NewestComplete = %q %v, want run1 (run2's dump failed)", run.ID, ok)
			}
			if other, _ := r.Snapshots(ctx, "h1", "web"); len(other) != 0 {
				t.Errorf("app web lists %d snapshots", len(other))
			}

			// change the data, then restore run1
			writeFile(t, filepath.Join(src, "data", "big.bin"), random(t, 1<<10))
			os.Remove(filepath.Join(src, "data", "conf", "a.txt"))
			var pathsID string
			for _, s := range run.Snapshots {
				if s.HasTag("paths") {
					pathsID = s.ID
				}
			}
			target := t.TempDir()
			if err := r.Restore(ctx, pathsID, target); err != nil {
				t.Fatal(err)
			}
			restored := filepath.Join(target, src, "data")
			if got, _ := os.ReadFile(filepath.Join(restored, "big.bin")); !bytes.Equal(got, big) {
				t.Errorf("restored big.bin differs (%d bytes, want %d)", len(got), len(big))
			}
			if got, _ := os.ReadFile(filepath.Join(restored, "conf", "a.txt")); string(got) != "alpha\n" {
				t.Errorf("restored a.txt = %q", got)
			}
			var out bytes.Buffer
			if err := r.Dump(ctx, dsum.SnapshotID, "db.sql", &out); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), dump) {
				t.Errorf("dumped db.sql differs (%d bytes, want %d)", out.Len(), len(dump))
			}
			if err := r.Restore(ctx, "deadbeef", t.TempDir()); err == nil {
				t.Error("restore of a snapshot that does not exist succeeded")
			} else {
				r.noSecret(t, "an error", err.Error())
			}
			if _, err := r.Check(ctx, ""); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

func TestWrongPassword(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	good := newRepo(t, dir, testPassword)
	if err := good.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	bad := newRepo(t, dir, "not-the-password-x1")
	_, err := bad.Snapshots(t.Context(), "h1", "db")
	if !errors.Is(err, ErrWrongPassword) || !Permanent(err) {
		t.Fatalf("err = %v, want ErrWrongPassword (permanent)", err)
	}
	// Ensure must not take a wrong password for a missing repository.
	if err := bad.Ensure(t.Context()); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("Ensure: err = %v, want ErrWrongPassword", err)
	}
	bad.noSecret(t, "an error", err.Error())
	bad.noSecret(t, "the log", bad.logs.String())
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	r := newRepo(t, fmt.Sprintf("rest:http://%s:%s@%s/", restUser, restPass, addr), testPassword, restPass)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	err = r.Ensure(ctx)
	if err == nil {
		t.Fatal("Ensure of an unreachable repository succeeded")
	}
	t.Logf("unreachable: %v", err)
	if !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("error does not say why: %v", err)
	}
	r.noSecret(t, "an error", err.Error())
	r.noSecret(t, "the log", r.logs.String())
}

// command is a stream from a process's stdout that fails when the process
// exits non-zero, as a dump run in a container does.
func command(name string, args ...string) func(io.Writer) error {
	return func(w io.Writer) error {
		cmd := exec.Command(name, args...)
		cmd.Stdout = w
		return cmd.Run()
	}
}

// TestStreamFailingAtOnce: a stream that fails before restic has even
// opened the repository interrupts it there (restic then says "wrong
// password", its exit for an interrupted key search): the stream's failure
// is the error, and no snapshot is saved.
func TestStreamFailingAtOnce(t *testing.T) {
	r := newRepo(t, filepath.Join(t.TempDir(), "repo"), testPassword)
	ctx := context.Background()
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, err := r.BackupStream(ctx, Part{Host: "h1", App: "a", Run: "r", Parts: 1, Kind: "dump:x"}, "x",
			func(io.Writer) error { return errors.New("the dump failed at once") })
		if !errors.Is(err, ErrProducer) || errors.Is(err, ErrWrongPassword) || !strings.Contains(err.Error(), "the dump failed at once") {
			t.Fatalf("err = %v, want the stream's failure", err)
		}
	}
	if snaps, err := r.Snapshots(ctx, "h1", "a"); err != nil || len(snaps) != 0 {
		t.Errorf("snapshots after failed streams: %d (%v), want none", len(snaps), err)
	}
}
