package probe

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
)

// cpuTime is the CPU this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rss(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			var kb int64
			fmt.Sscan(f[1], &kb)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkProbeLoop: 100 HTTP probes every 10 s on one host (the monitor
// as the agent runs it, against a loopback server in this process, whose
// work is counted too), for 30 s of real time, against the same 30 s idle.
// It reports the share of one core each takes, and the RSS.
func BenchmarkProbeLoop(b *testing.B) {
	const probes, window = 100, 30 * time.Second
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"status":"ok"}`)) }))
	defer srv.Close()
	var ps []desired.Probe
	for i := range probes {
		ps = append(ps, desired.Probe{Name: fmt.Sprintf("p%03d", i), Schedule: "@every 10s",
			HTTP: &desired.HTTPProbe{URL: fmt.Sprintf("%s/status/%d", srv.URL, i), Status: 200, Body: "ok"}})
	}
	project := &desired.Project{App: &desired.App{Name: "bench"}, Probes: ps}
	// One window each says it; the testing package calls the function
	// again for -benchtime's count, which would only repeat it.
	if measured != nil {
		measured(b)
		return
	}
	var idle, busy float64
	var mem int64
	{
		start, cpu := time.Now(), cpuTime(b)
		time.Sleep(window)
		idle = float64(cpuTime(b)-cpu) / float64(time.Since(start))

		m, err := NewMonitor(Options{StateDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Set([]*desired.Project{project}, nil); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), window)
		start, cpu = time.Now(), cpuTime(b)
		m.Run(ctx)
		busy = float64(cpuTime(b)-cpu) / float64(time.Since(start))
		cancel()
		mem = rss(b)
		up := 0
		for _, s := range m.Snapshots() {
			if s.Status == Up {
				up++
			}
		}
		if up != probes {
			b.Fatalf("%d of %d probes up after %s", up, probes, window)
		}
	}
	measured = func(b *testing.B) {
		b.ReportMetric(busy*100, "loop-%core")
		b.ReportMetric(idle*100, "idle-%core")
		b.ReportMetric(float64(mem)/(1<<20), "rss-MiB")
		b.Logf("100 HTTP probes every 10s: %.2f%% of a core (idle: %.2f%%), RSS %.1f MiB", busy*100, idle*100, float64(mem)/(1<<20))
	}
	measured(b)
}

// measured reports the probe loop's figures once they are known.
var measured func(*testing.B)
