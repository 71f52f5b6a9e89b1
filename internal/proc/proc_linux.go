package proc

import "syscall"

// sysProcAttr: the child gets SIGKILL when the thread that forked it
// exits (Start keeps that thread until the child is reaped), and leads a
// process group of its own.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
