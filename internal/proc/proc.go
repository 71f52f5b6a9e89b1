// Package proc owns starting syncd's child processes (restic, trivy):
// every child is started through Command, so each
//
//   - dies with syncd, kill -9 included (Pdeathsig on Linux, sent when
//     the thread that forked the child exits: the child is started and
//     reaped from a goroutine locked to its OS thread until then, so no
//     other goroutine's exit can end that thread early);
//   - runs in its own process group, and the whole group is signalled
//     when its context ends: SIGKILL, or SIGINT first and SIGKILL after a
//     grace (restic removes its lock on SIGINT);
//   - has its error output kept in a capped Buffer (the last StderrCap
//     bytes: its end says what went wrong), never without bound.
//
// Buffer is also the house's one capped buffer for other output (a
// docker exec's error stream, a report read under a cap). Only this
// package starts processes; callers set the argv, the environment and
// where the output goes.
package proc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// StderrCap is how much of a child's error output is kept.
const StderrCap = 64 << 10

// killDelay is how long, after the group was killed, Wait waits for the
// child's output to close (a grandchild outside the group may hold it).
const killDelay = 5 * time.Second

// Cmd is a child process. Use its Start, Wait and Run, not exec.Cmd's
// (nor Output or CombinedOutput): they start the child elsewhere than on
// the locked thread Pdeathsig needs.
type Cmd struct {
	*exec.Cmd
	// Stderr is where the child's error output goes unless the caller
	// sets Cmd.Stderr to something else.
	Stderr *Buffer

	waited chan struct{}
	err    error
}

// Command returns the child name args, run under ctx. When ctx ends, the
// child's process group gets SIGKILL, or with grace > 0, SIGINT, then
// SIGKILL grace later if the child has not exited by then.
func Command(ctx context.Context, grace time.Duration, name string, args ...string) *Cmd {
	c := &Cmd{Cmd: exec.CommandContext(ctx, name, args...), Stderr: NewTail(StderrCap), waited: make(chan struct{})}
	c.Cmd.Stderr = c.Stderr
	c.Cmd.SysProcAttr = sysProcAttr()
	c.Cmd.WaitDelay = max(grace, 0) + killDelay
	c.Cmd.Cancel = func() error {
		if grace <= 0 {
			return signalGroup(c.Process, syscall.SIGKILL)
		}
		time.AfterFunc(grace, func() {
			select {
			case <-c.waited:
			default:
				signalGroup(c.Process, syscall.SIGKILL)
			}
		})
		return signalGroup(c.Process, syscall.SIGINT)
	}
	return c
}

// Start starts the child. A goroutine locked to its OS thread forks it
// and reaps it: that thread lives as long as the child, so Pdeathsig
// fires only when syncd dies.
func (c *Cmd) Start() error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := c.Cmd.Start(); err != nil {
			c.err = err
			close(c.waited)
			started <- err
			return
		}
		started <- nil
		c.err = c.Cmd.Wait()
		close(c.waited)
	}()
	return <-started
}

// Wait waits for the child to exit and its output to be copied, and
// returns what exec.Cmd.Wait returns.
func (c *Cmd) Wait() error {
	<-c.waited
	return c.err
}

// Run starts the child and waits for it.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

// Done is closed once the child was reaped (or failed to start).
func (c *Cmd) Done() <-chan struct{} { return c.waited }

// signalGroup signals p's process group (its ID is p's PID: p leads it);
// a group that is gone already is os.ErrProcessDone, as exec.Cmd.Cancel
// expects.
func signalGroup(p *os.Process, sig syscall.Signal) error {
	if err := syscall.Kill(-p.Pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	return nil
}
