package scan

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/syncd-dev/syncd/internal/escape"
	"github.com/syncd-dev/syncd/internal/proc"
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

// ErrReportTooLarge is a trivy report larger than Scanner.MaxReport: it is
// not read on, and trivy is stopped.
var ErrReportTooLarge = errors.New("trivy's report is too large")

// DefaultMaxReport caps trivy's report when Scanner.MaxReport is 0: the
// report is held whole to be decoded, and an image with many packages and
// findings makes one of tens of MiB.
const DefaultMaxReport = 256 << 20

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
	cmd := proc.Command(ctx, 0, path, args...)
	cmd.Env = env
	// The report is read under a cap: one past it stops trivy (cancel)
	// rather than syncd's memory.
	limit := s.maxReport()
	stdout := proc.NewLimit(limit, cancel)
	cmd.Stdout = stdout
	began := time.Now()
	err = cmd.Run()
	stderr := escape.Lines(cmp.Or(cmd.Stderr.LastLines(3), "no error output")) // trivy's own text
	switch {
	case stdout.Full():
		return nil, fmt.Errorf("%w: more than %s; syncd stopped reading it at that cap and stopped trivy; raise --trivy-max-report (MiB) if this image's report is that large", ErrReportTooLarge, mib(limit))
	case ctx.Err() == context.DeadlineExceeded || (err != nil && strings.Contains(cmd.Stderr.String(), "context deadline exceeded")):
		return nil, fmt.Errorf("%w: no result within %s (a first run downloads the vulnerability DB; a large image takes long)", ErrTimeout, time.Since(began).Round(time.Second))
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, fmt.Errorf("trivy failed (%v): %s", err, stderr)
	}
	var rep trivyReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return nil, fmt.Errorf("trivy's output is not a JSON report (%v): %s", err, stderr)
	}
	// A finding's text is the vulnerability DB's and the image's (package
	// names and versions come from files in the image): escaped where it
	// enters, for the table, the status, the logs and notifications.
	escape.Strings(&rep)
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

func (s *Scanner) maxReport() int {
	if s.MaxReport > 0 {
		return s.MaxReport
	}
	return DefaultMaxReport
}

// mib says n bytes in MiB, or in bytes under one.
func mib(n int) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%d MiB", n>>20)
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
