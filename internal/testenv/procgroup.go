package testenv

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// GroupAlive reports whether process pid, or a process of the group it
// leads (ID pid), still runs. A zombie does not: a child re-parented to
// PID 1 may wait long to be reaped, by an init that may never reap.
func GroupAlive(t testing.TB, pid int) bool {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range stats {
		f := procStat(p)
		if len(f) > 3 && f[1] != "Z" && f[1] != "X" && (f[0] == strconv.Itoa(pid) || f[3] == strconv.Itoa(pid)) {
			return true
		}
	}
	return false
}

// ChildOf returns the PID of a running child of parent whose command
// name is comm, or 0.
func ChildOf(t testing.TB, parent int, comm string) int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range stats {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(data)
		name := s[strings.IndexByte(s, '(')+1 : strings.LastIndexByte(s, ')')]
		if f := procStat(p); len(f) > 2 && name == comm && f[2] == strconv.Itoa(parent) {
			pid, _ := strconv.Atoi(f[0])
			return pid
		}
	}
	return 0
}

// procStat is /proc/<pid>/stat's pid, state, ppid, pgrp, … (the command
// name, which may hold spaces and parens, left out); nil when gone.
func procStat(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	s := string(data)
	open, end := strings.IndexByte(s, ' '), strings.LastIndexByte(s, ')')
	if open < 0 || end < 0 {
		return nil
	}
	return append([]string{s[:open]}, strings.Fields(s[end+1:])...)
}

// WaitGroupGone polls GroupAlive, for at most 10 s, until neither pid
// nor a process of the group it leads runs, or fails t saying what it
// waited after.
func WaitGroupGone(t testing.TB, pid int, after string) {
	t.Helper()
	for range 500 {
		if !GroupAlive(t, pid) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: process %d (or its group) still runs 10 s later", after, pid)
}
