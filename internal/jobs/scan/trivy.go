package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// DefaultTimeout bounds one trivy run when Scanner.Timeout is 0. A first
// run on a host downloads the DB; a large image takes minutes.
const DefaultTimeout = 10 * time.Minute

// timeoutGrace is how long trivy gets past its own --timeout to stop by
// itself before it is killed.
const timeoutGrace = 10 * time.Second

// ScanError is a scan that could not be made: trivy missing, crashed,
// timed out, or without a DB. It is temporary: a later try may succeed.
type ScanError struct {
	Image Image
	Err   error
}

func (e *ScanError) Error() string { return fmt.Sprintf("scan %s: %v", e.Image, e.Err) }
func (e *ScanError) Unwrap() error { return e.Err }

// Temporary says that trying again later may succeed: the scan failed,
// not the image.
func (e *ScanError) Temporary() bool { return true }

// ErrTrivyMissing is a trivy binary that is not there.
var ErrTrivyMissing = errors.New("trivy not found")

// ErrTimeout is a trivy run that did not finish in time.
var ErrTimeout = errors.New("trivy timed out")

// trivyReport is the part of trivy's JSON report (pkg/types/report.go,
// schema 2) that syncd reads. Results is left out when nothing was found.
type trivyReport struct {
	SchemaVersion int
	ArtifactName  string
	Metadata      struct {
		ImageID string
	}
	Results []struct {
		Target          string
		Vulnerabilities []struct {
			VulnerabilityID  string
			PkgName          string
			InstalledVersion string
			FixedVersion     string
			Severity         string
		}
	}
}

// trivy runs `trivy image` on one image of the local Docker engine and
// returns its findings, one per (ID, package, version).
func (s *Scanner) trivy(ctx context.Context, img Image) ([]Finding, error) {
	bin := s.Trivy
	if bin == "" {
		bin = "trivy"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("%w (%s): install trivy 0.74 or later, or give its path with --trivy", ErrTrivyMissing, bin)
	}
	timeout := s.timeout()
	args := []string{"image",
		"--format", "json",
		"--scanners", "vuln",
		// The image is the engine's, by ID: never a registry's image of
		// the same name.
		"--image-src", "docker",
		"--timeout", timeout.String(),
		"--no-progress",
		"--skip-version-check",
		"--disable-telemetry",
	}
	env := s.env()
	if s.CacheDir != "" && lookup(env, "TRIVY_CACHE_DIR") == "" {
		args = append(args, "--cache-dir", s.CacheDir)
	}
	args = append(args, img.ID)

	ctx, cancel := context.WithTimeout(ctx, timeout+min(timeoutGrace, timeout/10))
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	began := time.Now()
	err = cmd.Run()
	switch {
	case ctx.Err() == context.DeadlineExceeded || (err != nil && strings.Contains(stderr.String(), "context deadline exceeded")):
		return nil, fmt.Errorf("%w: no result within %s (a first run downloads the vulnerability DB; a large image takes long)", ErrTimeout, time.Since(began).Round(time.Second))
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, fmt.Errorf("trivy failed (%v): %s", err, lastLines(stderr.String(), 3))
	}
	var rep trivyReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return nil, fmt.Errorf("trivy's output is not a JSON report (%v): %s", err, lastLines(stderr.String(), 3))
	}
	if rep.SchemaVersion != 2 {
		return nil, fmt.Errorf("trivy's report has schema version %d; syncd reads version 2 (trivy 0.74 and later)", rep.SchemaVersion)
	}
	if rep.Metadata.ImageID != "" && rep.Metadata.ImageID != img.ID {
		return nil, fmt.Errorf("trivy scanned image %s, not %s", rep.Metadata.ImageID, img.ID)
	}
	seen := map[Finding]bool{}
	var out []Finding
	for _, r := range rep.Results {
		for _, v := range r.Vulnerabilities {
			f := Finding{ID: v.VulnerabilityID, Package: v.PkgName, Installed: v.InstalledVersion, Fixed: v.FixedVersion, Severity: strings.ToUpper(v.Severity)}
			if f.Severity == "" {
				f.Severity = "UNKNOWN"
			}
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	sortFindings(out)
	return out, nil
}

// dbMeta is trivy's db/metadata.json.
type dbMeta struct {
	Version    int
	NextUpdate time.Time
	UpdatedAt  time.Time
}

// db reads the version of the vulnerability DB trivy will use: the
// metadata.json of its cache directory. Zero when there is none yet.
func (s *Scanner) db() DB {
	dir := s.trivyCacheDir()
	data, err := os.ReadFile(filepath.Join(dir, "db", "metadata.json"))
	if err != nil {
		return DB{}
	}
	var m dbMeta
	if json.Unmarshal(data, &m) != nil {
		return DB{}
	}
	return DB{UpdatedAt: m.UpdatedAt.UTC(), Schema: m.Version}
}

// trivyCacheDir is the cache directory trivy will use with the
// environment it gets: TRIVY_CACHE_DIR, else Scanner.CacheDir, else its
// default (os.UserCacheDir()/trivy, computed from that environment).
func (s *Scanner) trivyCacheDir() string {
	env := s.env()
	if d := lookup(env, "TRIVY_CACHE_DIR"); d != "" {
		return d
	}
	if s.CacheDir != "" {
		return s.CacheDir
	}
	if d := lookup(env, "XDG_CACHE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "trivy")
	}
	if h := lookup(env, "HOME"); h != "" {
		return filepath.Join(h, ".cache", "trivy")
	}
	tmp := lookup(env, "TMPDIR")
	if tmp == "" {
		tmp = "/tmp"
	}
	return filepath.Join(tmp, "trivy")
}

func (s *Scanner) env() []string {
	if s.Env != nil {
		return s.Env
	}
	return os.Environ()
}

func (s *Scanner) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return DefaultTimeout
}

// lookup returns the last value of name in env ("" when unset).
func lookup(env []string, name string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v = val
		}
	}
	return v
}

// lastLines returns the last n non-empty lines of s, joined by "; ".
func lastLines(s string, n int) string {
	var lines []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return "no error output"
	}
	return strings.Join(lines[max(0, len(lines)-n):], "; ")
}

// tailBuffer keeps the last max bytes written to it: trivy's error output
// can be long, its end says what went wrong.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }
