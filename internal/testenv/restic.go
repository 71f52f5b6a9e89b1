package testenv

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// RestServer starts rest-server on loopback with htpasswd credentials and
// returns the repository URL carrying them.
func RestServer(t testing.TB, user, password string) string {
	t.Helper()
	bin := Tool(t, "rest-server")
	dir := t.TempDir()
	sum := sha1.Sum([]byte(password))
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":{SHA}"+base64.StdEncoding.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--path", filepath.Join(dir, "data"), "--listen", addr, "--htpasswd-file", htpasswd, "--no-verify-upload")
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i == 100 {
			t.Fatalf("rest-server did not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Sprintf("rest:http://%s:%s@%s/", user, password, addr)
}

// WatchCmdlines polls every restic process's command line until stop is called
// and fails the test when one shows a secret.
func WatchCmdlines(t testing.TB, secrets []string) (stop func() int) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
			for _, f := range dirs {
				b, err := os.ReadFile(f)
				if err != nil || len(b) == 0 {
					continue
				}
				line := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
				if !strings.Contains(line, "restic") {
					continue
				}
				mu.Lock()
				seen++
				mu.Unlock()
				for _, s := range secrets {
					if strings.Contains(line, s) {
						t.Errorf("%s shows a secret: %s", f, line)
					}
				}
			}
		}
	}()
	return func() int {
		close(done)
		wg.Wait()
		return seen
	}
}
