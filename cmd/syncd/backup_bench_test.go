package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/jobs/backup"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/testenv"
)

// benchVolume is a Docker volume holding size bytes of random data in
// files of 64 MiB, with a demoweb container mounting it at /data; it
// returns the volume's mountpoint and the container's ID.
func benchVolume(b *testing.B, size int64) (string, string) {
	b.Helper()
	testenv.Docker(b)
	testenv.DemoImage(b, demoImage, false)
	name := fmt.Sprintf("syncd-bench-%d", time.Now().UnixNano())
	testenv.DockerCLI(b, "volume", "create", name)
	id := strings.TrimSpace(testenv.DockerCLI(b, "run", "-d", "-u", "0", "-v", name+":/data", demoImage))
	b.Cleanup(func() {
		exec.Command("docker", "rm", "-f", id).Run()
		exec.Command("docker", "volume", "rm", name).Run()
	})
	mount := strings.TrimSpace(testenv.DockerCLI(b, "volume", "inspect", "--format", "{{.Mountpoint}}", name))
	chunk := make([]byte, 64<<20)
	for i := int64(0); i*int64(len(chunk)) < size; i++ {
		rand.Read(chunk)
		if err := os.WriteFile(filepath.Join(mount, fmt.Sprintf("part%03d", i)), chunk, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return mount, id
}

// resticEnv is a fresh local repository's environment for the baseline.
func resticEnv(b *testing.B, bin, repo string) []string {
	env := append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD="+resticPass, "RESTIC_CACHE_DIR="+filepath.Join(repo, "..", "cache"))
	cmd := exec.Command(bin, "init")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("restic init: %v\n%s", err, out)
	}
	return env
}

// coldCache drops the page cache (as root) so that syncd and the baseline
// each read the data from disk, whichever runs first.
func coldCache(b *testing.B) {
	exec.Command("sync").Run()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200); err != nil {
		b.Logf("page cache not dropped (%v): the second reader may read from memory", err)
	}
}

// rssWatch samples this process's resident memory until stopped and
// returns its growth over the start.
func rssWatch(b *testing.B) func() int64 {
	start := benchMemory(b, os.Getpid()).rss
	var peak int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if m := benchMemory(b, os.Getpid()).rss; m > peak {
				peak = m
			}
		}
	})
	return func() int64 {
		close(done)
		wg.Wait()
		return max(peak-start, 0)
	}
}

// BenchmarkBackupVolume: syncd's backup of a 1 GiB volume, where the engine
// keeps it, against plain `restic backup` of the same path; each run into
// a new local repository (a first backup: every byte is read, hashed,
// compressed and written), from a cold page cache. syncd's job does what a
// plain backup does not: it checks the repository first and applies the
// retention after.
func BenchmarkBackupVolume(b *testing.B) {
	const size = 1 << 30
	bin := testenv.Tool(b, "restic")
	mount, _ := benchVolume(b, size)
	eng, err := engine.New(context.Background(), engine.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	volume := filepath.Base(filepath.Dir(mount))
	var syncdTime, resticTime, forgetTime time.Duration
	var growth int64
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		r := &backup.Runner{Host: "bench", Engine: eng, Restic: &backup.Restic{Binary: bin, Repository: filepath.Join(dir, "syncd"),
			Password: resticPass, CacheDir: filepath.Join(dir, "cache-syncd")}}
		if err := r.Restic.Ensure(context.Background()); err != nil {
			b.Fatal(err)
		}
		coldCache(b)
		watch := rssWatch(b)
		start := time.Now()
		if _, err := r.Backup(context.Background(), backup.App{Name: "bench", Volumes: []backup.Volume{{Key: "data", Name: volume}}}, ""); err != nil {
			b.Fatal(err)
		}
		syncdTime += time.Since(start)
		growth = max(growth, watch())

		env := resticEnv(b, bin, filepath.Join(dir, "plain"))
		coldCache(b)
		start = time.Now()
		cmd := exec.Command(bin, "backup", "--json", "--host", "bench", "--tag", "app:bench", mount)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("restic backup: %v\n%s", err, out)
		}
		resticTime += time.Since(start)
		// What a cron script adds: the retention syncd's job applies.
		start = time.Now()
		cmd = exec.Command(bin, "forget", "--json", "--host", "bench", "--tag", "app:bench", "--group-by", "host,paths", "--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "6")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("restic forget: %v\n%s", err, out)
		}
		forgetTime += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(syncdTime.Seconds()/n, "syncd-s/op")
	b.ReportMetric(resticTime.Seconds()/n, "restic-s/op")
	b.ReportMetric(syncdTime.Seconds()/resticTime.Seconds(), "ratio")
	b.ReportMetric(syncdTime.Seconds()/(resticTime+forgetTime).Seconds(), "ratio-with-forget")
	b.ReportMetric(float64(growth)/(1<<20), "syncd-rss-growth-MiB")
	b.Logf("1 GiB volume: syncd %.2fs, plain restic backup %.2fs (ratio %.3f), restic backup + forget %.2fs (ratio %.3f); syncd's RSS grew at most %.1f MiB",
		syncdTime.Seconds()/n, resticTime.Seconds()/n, syncdTime.Seconds()/resticTime.Seconds(),
		(resticTime+forgetTime).Seconds()/n, syncdTime.Seconds()/(resticTime+forgetTime).Seconds(), float64(growth)/(1<<20))
}

// BenchmarkBackupDump: a 1 GiB dump streamed from the container through
// syncd (Engine API exec → restic --stdin) against the shell pipeline a
// user would write, `docker exec … | restic backup --stdin`. syncd's RSS
// must stay flat: the stream passes through, never buffered.
func BenchmarkBackupDump(b *testing.B) {
	const size = 1 << 30
	bin := testenv.Tool(b, "restic")
	_, id := benchVolume(b, size)
	eng, err := engine.New(context.Background(), engine.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	dump := desired.Dump{Service: "db", Command: []string{"/demoweb", "dump", "/data"}, Filename: "data.dump"}
	stream := &fixedContainer{Engine: eng, id: id}
	var syncdTime, shellTime time.Duration
	var growth int64
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		r := &backup.Runner{Host: "bench", Engine: stream, Restic: &backup.Restic{Binary: bin, Repository: filepath.Join(dir, "syncd"),
			Password: resticPass, CacheDir: filepath.Join(dir, "cache-syncd")}}
		if err := r.Restic.Ensure(context.Background()); err != nil {
			b.Fatal(err)
		}
		coldCache(b)
		watch := rssWatch(b)
		start := time.Now()
		if _, err := r.Backup(context.Background(), backup.App{Name: "bench", Dumps: []desired.Dump{dump}}, ""); err != nil {
			b.Fatal(err)
		}
		syncdTime += time.Since(start)
		growth = max(growth, watch())

		env := resticEnv(b, bin, filepath.Join(dir, "plain"))
		coldCache(b)
		start = time.Now()
		cmd := exec.Command("bash", "-c", `set -o pipefail; docker exec "$1" /demoweb dump /data | "$2" backup --json --host bench --stdin --stdin-filename data.dump`, "bash", id, bin)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("docker exec | restic backup --stdin: %v\n%s", err, out)
		}
		shellTime += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(syncdTime.Seconds()/n, "syncd-s/op")
	b.ReportMetric(shellTime.Seconds()/n, "pipeline-s/op")
	b.ReportMetric(syncdTime.Seconds()/shellTime.Seconds(), "ratio")
	b.ReportMetric(float64(growth)/(1<<20), "syncd-rss-growth-MiB")
	b.Logf("1 GiB dump: syncd %.2fs, docker exec | restic %.2fs, ratio %.3f; syncd's RSS grew at most %.1f MiB while streaming it",
		syncdTime.Seconds()/n, shellTime.Seconds()/n, syncdTime.Seconds()/shellTime.Seconds(), float64(growth)/(1<<20))
}

// fixedContainer is the engine with every service being one container
// (the benchmark's, which no Compose project owns).
type fixedContainer struct {
	*engine.Engine
	id string
}

func (f *fixedContainer) Containers(context.Context, string) ([]plan.Container, error) {
	return []plan.Container{{ID: f.id, Service: "db", State: "running"}}, nil
}

func (f *fixedContainer) Exec(ctx context.Context, _ string, argv []string, stdin io.Reader, stdout io.Writer) error {
	return f.Engine.Exec(ctx, f.id, argv, stdin, stdout)
}
