package scan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// The test binary started again with helperTrivy set acts as a syncd that
// scans someImage with that trivy (its environment in helperEnv, one
// variable a line) and is killed by the test before the scan ends.
const (
	helperTrivy = "SYNCD_SCAN_HELPER_TRIVY"
	helperEnv   = "SYNCD_SCAN_HELPER_ENV"
)

func TestMain(m *testing.M) {
	if bin := os.Getenv(helperTrivy); bin != "" {
		s := &Scanner{Trivy: bin, Env: strings.Split(os.Getenv(helperEnv), "\n"), Timeout: time.Hour}
		_, err := s.Scan(context.Background(), someImage)
		fmt.Println("the scan ended:", err)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// startScanningSyncd starts the helper syncd scanning with trivy and env,
// and returns it with the PID of the trivy it runs (comm: its command
// name once running).
func startScanningSyncd(t *testing.T, trivy, comm string, env []string) (*exec.Cmd, int) {
	t.Helper()
	syncd := exec.Command(os.Args[0])
	syncd.Env = append(os.Environ(), helperTrivy+"="+trivy, helperEnv+"="+strings.Join(env, "\n"))
	out := &strings.Builder{}
	syncd.Stdout, syncd.Stderr = out, out
	if err := syncd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { syncd.Wait(); close(exited) }()
	t.Cleanup(func() { syncd.Process.Kill(); <-exited })
	for range 500 {
		if pid := testenv.ChildOf(t, syncd.Process.Pid, comm); pid != 0 {
			// On a failure, what the child left is killed here, whatever
			// group it is in.
			t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL); syscall.Kill(-pid, syscall.SIGKILL) })
			return syncd, pid
		}
		select {
		case <-exited:
			t.Fatalf("the helper syncd exited before starting trivy: %s", out)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("the helper syncd started no %s within 10 s: %s", comm, out)
	return nil, 0
}

// TestTrivyDiesWithSyncdKilled: a syncd killed with SIGKILL mid-scan
// takes trivy (here a stand-in that waits) with it, instead of leaving it
// to PID 1.
func TestTrivyDiesWithSyncdKilled(t *testing.T) {
	trivy := fakeTrivy(t, "exec sleep 1000")
	syncd, pid := startScanningSyncd(t, trivy, "sleep", []string{"PATH=/usr/bin:/bin"})
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("trivy runs in process group %d (%v), not its own", pgid, err)
	}
	if err := syncd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testenv.WaitGroupGone(t, pid, "after syncd's kill -9")
}

// TestRealTrivyDiesWithSyncdKilled: the same with the real trivy, held
// mid-scan by a Docker socket that accepts and never answers.
func TestRealTrivyDiesWithSyncdKilled(t *testing.T) {
	bin, cache := testenv.Trivy(t)
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	syncd, pid := startScanningSyncd(t, bin, "trivy", append(testenv.TrivyEnv(cache), "DOCKER_HOST=unix://"+sock))
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(time.Minute):
		t.Fatal("trivy never asked the Docker socket")
	}
	if !testenv.GroupAlive(t, pid) {
		t.Fatal("trivy does not run")
	}
	if err := syncd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testenv.WaitGroupGone(t, pid, "after syncd's kill -9")
}

// TestReportOverTheCap: a report larger than MaxReport is an error that
// says so, and syncd stops reading it there: the stand-in trivy, writing
// 64 KiB at a time and counting what got out, is stopped within a pipe's
// buffer of the cap.
func TestReportOverTheCap(t *testing.T) {
	count := filepath.Join(t.TempDir(), "written")
	trivy := fakeTrivy(t, `i=0
while [ $i -lt 256 ]; do
  head -c 65536 /dev/zero || exit 9
  i=$((i+1))
  echo $i > `+count+`
done`)
	const limit = 1 << 20
	s := &Scanner{Trivy: trivy, MaxReport: limit, Env: []string{"PATH=/usr/bin:/bin"}, StateDir: t.TempDir()}
	_, err := s.Scan(context.Background(), someImage)
	if !errors.Is(err, ErrReportTooLarge) || !strings.Contains(err.Error(), "trivy's report is too large: more than 1 MiB; syncd stopped reading it at that cap and stopped trivy; raise --trivy-max-report") {
		t.Fatalf("err = %v", err)
	}
	data, _ := os.ReadFile(count)
	chunks, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	// A pipe holds 64 KiB more; one chunk may be cut mid-way.
	if written := chunks << 16; written > limit+2<<16 {
		t.Errorf("trivy got %d bytes out under a cap of %d: the report was read on", written, limit)
	}
	var se *ScanError
	if !errors.As(err, &se) {
		t.Errorf("not a *ScanError: %T", err)
	}
}
