package backup

import "syscall"

// childAttr makes restic die with syncd.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
