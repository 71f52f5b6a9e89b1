package proc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// helperEnv makes the test binary, started again, act as a syncd that
// starts one child through Command (argv in SYNCD_PROC_HELPER_ARGV, split
// on spaces), prints its PID, and waits to be killed.
const helperEnv = "SYNCD_PROC_HELPER_ARGV"

func TestMain(m *testing.M) {
	if argv := os.Getenv(helperEnv); argv != "" {
		args := strings.Fields(argv)
		c := Command(context.Background(), 0, args[0], args[1:]...)
		if err := c.Start(); err != nil {
			fmt.Println("start:", err)
			os.Exit(1)
		}
		fmt.Println(c.Process.Pid)
		select {}
	}
	os.Exit(m.Run())
}

func TestImports(t *testing.T) {
	testenv.CheckImports(t, "github.com/syncd-dev/syncd/")
}

// TestChildrenDieWithSyncdKilled: a syncd killed with SIGKILL takes its
// child's process group with it; nothing is re-parented to PID 1.
func TestChildrenDieWithSyncdKilled(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	syncd := exec.Command(os.Args[0])
	syncd.Env = append(os.Environ(), helperEnv+"="+sleep+" 1000")
	out, err := syncd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := syncd.Start(); err != nil {
		t.Fatal(err)
	}
	defer syncd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		t.Fatalf("helper said %q (%v)", line, err)
	}
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) })
	if !testenv.GroupAlive(t, pid) {
		t.Fatal("the child's group does not run")
	}
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("the child's process group is %d (%v), want its own (%d)", pgid, err, pid)
	}
	if err := syncd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	syncd.Wait()
	testenv.WaitGroupGone(t, pid, "after syncd's kill -9")
}

// TestTheStartingThreadsExitDoesNotKillTheChild: Pdeathsig follows the
// thread that forked the child. A caller whose goroutine is locked to its
// thread and returns (so the runtime ends that thread) must not take the
// child with it.
func TestTheStartingThreadsExitDoesNotKillTheChild(t *testing.T) {
	type started struct {
		c   *Cmd
		tid int
		err error
	}
	ch := make(chan started, 1)
	var s started
	for {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
			if syscall.Gettid() == syscall.Getpid() {
				// The main thread is never ended, only parked: try another.
				runtime.UnlockOSThread()
				ch <- started{}
				return
			}
			c := Command(t.Context(), 0, "sleep", "1000")
			ch <- started{c, syscall.Gettid(), c.Start()}
		}()
		if s = <-ch; s.c != nil {
			break
		}
	}
	if s.err != nil {
		t.Fatal(s.err)
	}
	t.Cleanup(func() { syscall.Kill(-s.c.Process.Pid, syscall.SIGKILL); s.c.Wait() })
	task := fmt.Sprintf("/proc/self/task/%d", s.tid)
	for i := 0; ; i++ {
		if _, err := os.Stat(task); errors.Is(err, os.ErrNotExist) {
			break
		}
		if i == 500 {
			t.Fatal("the starting goroutine's thread did not end")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-s.c.Done():
		t.Fatalf("the child died with the thread that started it: %v", s.c.Wait())
	default:
	}
	if !testenv.GroupAlive(t, s.c.Process.Pid) {
		t.Fatal("the child died with the thread that started it")
	}
}

// TestCancelKillsTheWholeGroup: a cancelled child's own children go too.
func TestCancelKillsTheWholeGroup(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(t.Context())
	c := Command(ctx, 0, "sh", "-c", "sleep 1000 & echo $!; wait")
	c.Cmd.Stdout = w
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	line, _ := bufio.NewReader(r).ReadString('\n')
	grandchild, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("sh said %q", line)
	}
	cancel()
	var ee *exec.ExitError
	if err := c.Wait(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Wait = %v, want killed", err)
	}
	testenv.WaitGroupGone(t, c.Process.Pid, "after cancel")
	if testenv.GroupAlive(t, grandchild) {
		t.Errorf("the child's own child %d lives on", grandchild)
	}
}

// TestGraceInterruptsFirst: with a grace, the group gets SIGINT (restic
// removes its lock), and SIGKILL grace later for what is still there.
func TestGraceInterruptsFirst(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	// A non-interactive sh's background job ignores SIGINT: it is what
	// the SIGKILL after the grace ends; sh itself traps it and exits 3.
	c := Command(ctx, 200*time.Millisecond, "sh", "-c", "trap 'echo interrupted; exit 3' INT; sleep 1000 & echo ready; wait")
	var out strings.Builder
	c.Cmd.Stdout = &syncWriter{w: &out}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(c.Cmd.Stdout.(*syncWriter).String(), "ready") {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	err := c.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Wait = %v, want sh's exit 3 from its INT trap", err)
	}
	if got := c.Cmd.Stdout.(*syncWriter).String(); !strings.Contains(got, "interrupted") {
		t.Errorf("output %q: no SIGINT came first", got)
	}
	testenv.WaitGroupGone(t, c.Process.Pid, "after the grace")

	// A child that ignores SIGINT is killed after the grace.
	ctx, cancel = context.WithCancel(t.Context())
	c = Command(ctx, 100*time.Millisecond, "sh", "-c", "trap '' INT; echo ready; exec sleep 1000")
	ready := &syncWriter{w: io.Discard}
	c.Cmd.Stdout = ready
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(ready.String(), "ready") {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := c.Wait(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Wait = %v, want killed after the grace", err)
	}
}

type syncWriter struct {
	mu chan struct{}
	w  io.Writer
	b  strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.lock()
	defer s.unlock()
	s.b.Write(p)
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.lock()
	defer s.unlock()
	return s.b.String()
}

func (s *syncWriter) lock() {
	if s.mu == nil {
		s.mu = make(chan struct{}, 1)
	}
	s.mu <- struct{}{}
}
func (s *syncWriter) unlock() { <-s.mu }

func TestStartFailureIsReturned(t *testing.T) {
	c := Command(t.Context(), 0, filepath.Join(t.TempDir(), "no-such-binary"))
	if err := c.Run(); err == nil {
		t.Fatal("no error")
	}
	if err := c.Wait(); err == nil {
		t.Fatal("Wait after a failed Start: no error")
	}
}

func TestStderrIsCapped(t *testing.T) {
	c := Command(t.Context(), 0, "sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x >&2; echo >&2; echo 'Fatal: the end' >&2; exit 1")
	if err := c.Run(); err == nil {
		t.Fatal("no error")
	}
	if n := len(c.Stderr.Bytes()); n != StderrCap {
		t.Errorf("kept %d bytes of stderr, want %d", n, StderrCap)
	}
	if got := c.Stderr.LastLines(1); got != "Fatal: the end" {
		t.Errorf("last line %.80q…", got)
	}
}
