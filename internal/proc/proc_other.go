//go:build !linux

package proc

import "syscall"

// sysProcAttr: a process group of its own. Only Linux has Pdeathsig:
// elsewhere a child outlives a syncd that is killed (syncd runs on Linux;
// this is for building on a laptop).
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
