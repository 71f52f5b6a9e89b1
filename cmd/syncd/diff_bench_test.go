package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkDiff: `syncd diff` of a 50-host × 20-app repository (one app's
// image bumped, one host's variable changed) against what a reviewer would
// script without it: `syncd render` of every host at base and at head
// (two worktrees made beforehand, outside the clock). Both run the built
// binary, as a CI job does.
func BenchmarkDiff(b *testing.B) {
	const hosts, apps = 50, 20
	repo := filepath.Join(b.TempDir(), "fleet")
	writeBenchFleet(b, repo, hosts, apps)
	git(b, repo, "init", "-q", "-b", "main")
	git(b, repo, "add", "-A")
	git(b, repo, "commit", "-q", "-m", "base")
	bump := filepath.Join(repo, "apps", "app07", "compose.yaml")
	data, err := os.ReadFile(bump)
	if err != nil {
		b.Fatal(err)
	}
	benchWrite(b, bump, strings.Replace(string(data), "nginx:1.27.3", "nginx:1.27.4", 1))
	host := filepath.Join(repo, "hosts", "h017", "host.yaml")
	data, err = os.ReadFile(host)
	if err != nil {
		b.Fatal(err)
	}
	benchWrite(b, host, strings.Replace(string(data), "LOG_LEVEL: info", "LOG_LEVEL: debug", 1))
	git(b, repo, "commit", "-q", "-a", "-m", "head")
	trees := b.TempDir()
	git(b, repo, "worktree", "add", "-q", filepath.Join(trees, "base"), "HEAD~1")
	git(b, repo, "worktree", "add", "-q", filepath.Join(trees, "head"), "HEAD")
	bin := buildSyncd(b)
	env := append(os.Environ(), "DOCKER_HOST=tcp://127.0.0.1:1")
	runBin := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}

	var diffTook, renderTook time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		out, err := runBin("diff", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD")
		diffTook += time.Since(start)
		if err != nil || !strings.Contains(out, fmt.Sprintf("%d of %d host(s) change", hosts, hosts)) {
			b.Fatalf("syncd diff: %v\n%.2000s", err, out)
		}
		start = time.Now()
		for i := range hosts {
			for _, side := range []string{"base", "head"} {
				if out, err := runBin("render", "--repo", filepath.Join(trees, side), "--host", fmt.Sprintf("h%03d", i)); err != nil {
					b.Fatalf("syncd render: %v\n%.2000s", err, out)
				}
			}
		}
		renderTook += time.Since(start)
	}
	n := float64(b.N)
	diffMS, renderMS := float64(diffTook.Microseconds())/1000/n, float64(renderTook.Microseconds())/1000/n
	b.ReportMetric(diffMS, "diff-ms")
	b.ReportMetric(renderMS, "render-loop-ms")
	b.ReportMetric(renderMS/diffMS, "render-loop/diff")
	b.ReportMetric(0, "ns/op")
}

// writeBenchFleet writes a repository of hosts that each run every one of
// apps apps (two services each, with ports, a healthcheck and variables).
func writeBenchFleet(b *testing.B, dir string, hosts, apps int) {
	b.Helper()
	benchWrite(b, filepath.Join(dir, "syncd.yaml"), "defaults:\n  vars:\n    TZ: UTC\n    LOG_LEVEL: info\n")
	var names []string
	for a := range apps {
		name := fmt.Sprintf("app%02d", a)
		names = append(names, name)
		benchWrite(b, filepath.Join(dir, "apps", name, "compose.yaml"), fmt.Sprintf(`services:
  web:
    image: nginx:1.27.3
    environment:
      TZ: ${TZ}
      LOG_LEVEL: ${LOG_LEVEL}
      SITE: %[1]s.${DOMAIN}
    ports:
      - "127.0.0.1:${PORT_%[1]s}:80"
    labels:
      traefik.http.routers.%[1]s.rule: Host(`+"`%[1]s.${DOMAIN}`"+`)
    security_opt: ["no-new-privileges:true"]
    cap_drop: [ALL]
    pids_limit: 64
    mem_limit: 64m
    read_only: true
    healthcheck:
      test: [CMD, wget, -q, --spider, http://127.0.0.1/]
      interval: 30s
  cache:
    image: redis:7.4.2-alpine
    command: [redis-server, --save, ""]
    security_opt: ["no-new-privileges:true"]
    cap_drop: [ALL]
    pids_limit: 64
    mem_limit: 64m
    read_only: true
    healthcheck:
      test: [CMD, redis-cli, ping]
`, name))
	}
	for h := range hosts {
		var y strings.Builder
		fmt.Fprintf(&y, "apps: [%s]\nwave: %d\nvars:\n  DOMAIN: h%03d.example.org\n  LOG_LEVEL: info\n", strings.Join(names, ", "), h%3, h)
		for a, name := range names {
			fmt.Fprintf(&y, "  PORT_%s: \"%d\"\n", name, 8000+a)
		}
		benchWrite(b, filepath.Join(dir, "hosts", fmt.Sprintf("h%03d", h), "host.yaml"), y.String())
	}
}
