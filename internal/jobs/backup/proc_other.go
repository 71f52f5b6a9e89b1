//go:build !linux

package backup

import "syscall"

func childAttr() *syscall.SysProcAttr { return nil }
