package scan

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
)

// fakeTrivy writes a shell script standing in for a broken trivy (only
// for the fault cases: real scans run the real trivy).
func fakeTrivy(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "trivy")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

var someImage = Image{Ref: "app:1.0", ID: "sha256:" + strings.Repeat("ab", 32)}

func TestScanFaults(t *testing.T) {
	cases := []struct {
		name    string
		trivy   string
		timeout time.Duration
		want    []string
		is      error
	}{
		{"missing", filepath.Join(t.TempDir(), "no-trivy-here"), 0,
			[]string{"scan app:1.0 (abababababab): trivy not found", "install trivy 0.74 or later, or give its path with --trivy"}, ErrTrivyMissing},
		{"crashing", fakeTrivy(t, "echo 'starting' >&2\necho '2026-01-01T00:00:00Z\tFATAL\tFatal error: init error: DB error: failed to open db' >&2\nexit 1"), 0,
			[]string{"trivy failed (exit status 1)", "FATAL", "failed to open db"}, nil},
		{"killed", fakeTrivy(t, "kill -SEGV $$"), 0,
			[]string{"trivy failed (signal: segmentation fault)"}, nil},
		{"timing out", fakeTrivy(t, "exec sleep 30"), time.Second,
			[]string{"trivy timed out: no result within 1s"}, ErrTimeout},
		{"not JSON", fakeTrivy(t, "echo 'panic: nil map'"), 0,
			[]string{"trivy's output is not a JSON report"}, nil},
		{"another schema", fakeTrivy(t, `echo '{"SchemaVersion": 3}'`), 0,
			[]string{"schema version 3; syncd reads version 2"}, nil},
		// trivy's own text is escaped: a terminal escape in its stderr
		// (an image's file names reach it) does not act.
		{"hostile stderr", fakeTrivy(t, `printf 'FATAL \033]0;pwned\007\033[2J\n' >&2; exit 1`), 0,
			[]string{`FATAL \x1b]0;pwned\x07\x1b[2J`}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &Scanner{Trivy: c.trivy, Timeout: c.timeout, Env: []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, StateDir: t.TempDir()}
			began := time.Now()
			_, err := s.Scan(context.Background(), someImage)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			var se *ScanError
			if !errors.As(err, &se) || !se.Temporary() {
				t.Errorf("error is not a temporary *ScanError: %T", err)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error is not %v", c.is)
			}
			if took := time.Since(began); took > 10*time.Second {
				t.Errorf("took %s", took)
			}
		})
	}
}

// TestGateOnError: a failed scan admits the image with on_error allow and
// keeps it out, retryably, with on_error refuse.
func TestGateOnError(t *testing.T) {
	s := &Scanner{Trivy: fakeTrivy(t, "exit 3"), Env: []string{"PATH=/usr/bin:/bin"}}
	images := map[string]string{someImage.Ref: someImage.ID}
	allow := desired.ScanPolicy{RefuseSeverity: "CRITICAL", OnError: desired.ScanOnErrorAllow}
	if err := s.Admit(context.Background(), "app", allow, images); err != nil {
		t.Errorf("on_error allow: %v", err)
	}
	refuse := allow
	refuse.OnError = desired.ScanOnErrorRefuse
	err := s.Admit(context.Background(), "app", refuse, images)
	var tmp interface{ Temporary() bool }
	if err == nil || !errors.As(err, &tmp) || !tmp.Temporary() || !strings.Contains(err.Error(), "scan.on_error: refuse keeps the new images out") {
		t.Errorf("on_error refuse: %v", err)
	}
	var refused *RefusedError
	if errors.As(err, &refused) {
		t.Errorf("a failed scan is not a finding: %v", err)
	}
	// No refuse_severity: nothing to gate, trivy never runs.
	if err := s.Admit(context.Background(), "app", desired.ScanPolicy{OnError: desired.ScanOnErrorRefuse}, images); err != nil {
		t.Errorf("without refuse_severity: %v", err)
	}
}

// TestDBAge: a DB older than a week earns a warning naming its date.
func TestDBAge(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "db"), 0o755)
	os.WriteFile(filepath.Join(dir, "db", "metadata.json"), []byte(`{"Version":2,"UpdatedAt":"2027-01-01T00:00:00Z"}`), 0o644)
	now := time.Date(2027, 1, 9, 0, 0, 0, 0, time.UTC)
	s := &Scanner{Env: []string{"TRIVY_CACHE_DIR=" + dir}, Now: func() time.Time { return now }}
	db := s.db()
	if !db.UpdatedAt.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("db = %+v", db)
	}
	w := s.warnings(db)
	if len(w) != 1 || !strings.Contains(w[0], "the vulnerability DB is 8 days old (built 2027-01-01)") {
		t.Errorf("warnings = %q", w)
	}
	now = time.Date(2027, 1, 7, 0, 0, 0, 0, time.UTC)
	if w := s.warnings(db); len(w) != 0 {
		t.Errorf("a 6-day-old DB: %q", w)
	}
}

// TestFindingsAreEscaped: a finding's text comes from the image (package
// names) and the DB; a control character of it is escaped where the report
// is read.
func TestFindingsAreEscaped(t *testing.T) {
	report := `{"SchemaVersion":2,"Metadata":{"ImageID":"` + someImage.ID + `"},"Results":[{"Vulnerabilities":[` +
		`{"VulnerabilityID":"CVE-2026-1\u001b[2J","PkgName":"pkg\u001b]0;pwned\u0007","InstalledVersion":"1\u009b","FixedVersion":"2","Severity":"HIGH"}]}]}`
	s := &Scanner{Trivy: fakeTrivy(t, "cat <<'EOF'\n"+report+"\nEOF"), Env: []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, StateDir: t.TempDir()}
	rep, err := s.Scan(context.Background(), someImage)
	if err != nil {
		t.Fatal(err)
	}
	fs := rep.Findings
	if len(fs) != 1 || fs[0].Package != `pkg\x1b]0;pwned\x07` || fs[0].ID != `CVE-2026-1\x1b[2J` || fs[0].Installed != `1\u009b` {
		t.Errorf("findings not escaped: %q", fs)
	}
}
