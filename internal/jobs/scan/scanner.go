package scan

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/state"
)

// Image is an image of the local engine: the reference it was pulled or
// tagged as (for messages) and its ID (sha256:…), which is what is scanned.
type Image struct {
	Ref string
	ID  string
}

func (i Image) String() string {
	id := strings.TrimPrefix(i.ID, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	if i.Ref == "" {
		return id
	}
	return i.Ref + " (" + id + ")"
}

// DB is the version of trivy's vulnerability DB: when it was built.
type DB struct {
	UpdatedAt time.Time `json:"updated_at"`
	Schema    int       `json:"schema,omitempty"`
}

// StaleAfter is the age of a vulnerability DB that earns a warning: its
// findings miss a week of advisories.
const StaleAfter = 7 * 24 * time.Hour

// Report is one image's scan.
type Report struct {
	Image     Image
	DB        DB
	ScannedAt time.Time
	// Cached is set when the image and the DB did not change since the
	// last scan: trivy did not run.
	Cached   bool
	Findings []Finding
	// Warnings are what the operator should know (an old DB).
	Warnings []string
}

// Scanner runs trivy and remembers its results. Its zero value scans with
// `trivy` from PATH, in the process's environment, and caches nothing.
type Scanner struct {
	// Trivy is the binary: a path, or a name looked up in PATH ("" is
	// "trivy").
	Trivy string
	// Env is trivy's whole environment (nil: this process's); TRIVY_*
	// variables there (TRIVY_CACHE_DIR, TRIVY_DB_REPOSITORY,
	// TRIVY_SKIP_DB_UPDATE, TRIVY_OFFLINE_SCAN…) are trivy's own settings.
	Env []string
	// CacheDir is trivy's --cache-dir when Env has no TRIVY_CACHE_DIR;
	// "" leaves trivy's default.
	CacheDir string
	// StateDir is where results are cached (StateDir/scans.json); "" keeps
	// them in memory only.
	StateDir string
	// Timeout bounds one trivy run (DefaultTimeout when 0).
	Timeout time.Duration
	// MaxReport caps trivy's report in bytes (DefaultMaxReport when 0):
	// a larger one is ErrReportTooLarge, and trivy is stopped.
	MaxReport int
	Logger    *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time

	// run serialises trivy: its DB and its own cache are bbolt files that
	// one process at a time opens.
	run sync.Mutex
	mu  sync.Mutex
	mem *cacheFile
	// last is ScanRunning's last results, for the metrics.
	last []Result
}

// cacheFile is StateDir/scans.json.
type cacheFile struct {
	Images map[string]*cacheEntry `json:"images"`
}

type cacheEntry struct {
	DB        DB        `json:"db"`
	ScannedAt time.Time `json:"scanned_at"`
	Findings  []Finding `json:"findings"`
	// Reported are the refusing finding IDs ScanRunning last reported for
	// this image, so only new ones are news.
	Reported []string `json:"reported,omitempty"`
	// Counts and Refusing are the last verdict on the image (by the
	// policy of the project it was judged for), for the status.
	Counts   map[string]int `json:"counts,omitempty"`
	Refusing []string       `json:"refusing,omitempty"`
}

const cacheName = "scans.json"

// cacheKeep is how long an image's result is kept after its last scan.
const cacheKeep = 90 * 24 * time.Hour

// Scan returns img's findings: from the cache when neither the image nor
// the DB changed since its last scan, else from trivy. A failed scan is a
// *ScanError.
func (s *Scanner) Scan(ctx context.Context, img Image) (Report, error) {
	if img.ID == "" {
		return Report{}, &ScanError{Image: img, Err: errors.New("no image ID: the image is not on the engine")}
	}
	db := s.db()
	if r, ok := s.cached(img, db); ok {
		return r, nil
	}
	s.run.Lock()
	defer s.run.Unlock()
	// Another scan of the same image may have finished while this waited.
	db = s.db()
	if r, ok := s.cached(img, db); ok {
		return r, nil
	}
	began := s.now()
	findings, err := s.trivy(ctx, img)
	if err != nil {
		return Report{}, &ScanError{Image: img, Err: err}
	}
	// trivy may have downloaded a newer DB for this very scan.
	after := s.db()
	r := Report{Image: img, DB: after, ScannedAt: s.now(), Findings: findings}
	r.Warnings = s.warnings(after)
	s.log().Info("scanned", "image", img.String(), "findings", len(findings), "db", after.UpdatedAt.Format(time.DateOnly), "took", s.now().Sub(began).Round(time.Millisecond))
	if err := s.store(img.ID, func(e *cacheEntry) {
		*e = cacheEntry{DB: after, ScannedAt: r.ScannedAt, Findings: findings, Reported: e.Reported, Counts: Judge(desired.ScanPolicy{}, findings, r.ScannedAt).Counts}
	}); err != nil {
		r.Warnings = append(r.Warnings, err.Error())
	}
	return r, nil
}

func (s *Scanner) cached(img Image, db DB) (Report, bool) {
	if db.UpdatedAt.IsZero() {
		return Report{}, false // no DB yet: trivy must fetch one
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.load()
	e := c.Images[img.ID]
	if e == nil || !e.DB.UpdatedAt.Equal(db.UpdatedAt) {
		return Report{}, false
	}
	return Report{Image: img, DB: e.DB, ScannedAt: e.ScannedAt, Cached: true, Findings: slices.Clone(e.Findings), Warnings: s.warnings(db)}, true
}

func (s *Scanner) warnings(db DB) []string {
	if age := s.now().Sub(db.UpdatedAt); !db.UpdatedAt.IsZero() && age > StaleAfter {
		msg := fmt.Sprintf("the vulnerability DB is %d days old (built %s): findings published since are missed; let trivy update it (TRIVY_DB_REPOSITORY names a mirror for an air-gapped host)",
			int(age.Hours()/24), db.UpdatedAt.Format(time.DateOnly))
		return []string{msg}
	}
	return nil
}

// load returns the cache, read once from the state directory. Callers
// hold s.mu.
func (s *Scanner) load() *cacheFile {
	if s.mem != nil {
		return s.mem
	}
	s.mem = &cacheFile{Images: map[string]*cacheEntry{}}
	if s.StateDir == "" {
		return s.mem
	}
	data, err := os.ReadFile(filepath.Join(s.StateDir, cacheName))
	if err == nil {
		var c cacheFile
		if err := json.Unmarshal(data, &c); err == nil && c.Images != nil {
			s.mem = &c
		} else {
			s.log().Warn("scan cache unreadable; images are scanned again", "file", filepath.Join(s.StateDir, cacheName))
		}
	}
	return s.mem
}

// store changes one image's entry and writes the cache.
func (s *Scanner) store(id string, change func(*cacheEntry)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.load()
	e := c.Images[id]
	if e == nil {
		e = &cacheEntry{}
		c.Images[id] = e
	}
	change(e)
	now := s.now()
	for k, e := range c.Images {
		if now.Sub(e.ScannedAt) > cacheKeep {
			delete(c.Images, k)
		}
	}
	if s.StateDir == "" {
		return nil
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.StateDir, 0o700); err != nil {
		return fmt.Errorf("scan cache: %w", err)
	}
	if err := state.WriteFile(filepath.Join(s.StateDir, cacheName), data, 0o600); err != nil {
		return fmt.Errorf("scan cache (the image is scanned again next time): %w", err)
	}
	return nil
}

// Admit is the deploy gate: it scans the new images of project (reference
// → image ID), pulled and not yet started, and refuses them with a
// *RefusedError when one has a finding the policy does not accept. A scan
// that fails admits the images (on_error: allow, with a warning) or
// refuses them with a temporary *ScanError (on_error: refuse), so a later
// cycle tries again. Without refuse_severity nothing is scanned.
func (s *Scanner) Admit(ctx context.Context, project string, policy desired.ScanPolicy, images map[string]string) error {
	if policy.RefuseSeverity == "" || len(images) == 0 {
		return nil
	}
	refused := &RefusedError{Project: project, Severity: policy.RefuseSeverity}
	var failed []error
	for _, ref := range slices.Sorted(maps.Keys(images)) {
		img := Image{Ref: ref, ID: images[ref]}
		rep, err := s.Scan(ctx, img)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			if policy.OnError == desired.ScanOnErrorRefuse {
				failed = append(failed, err)
				continue
			}
			s.log().Warn("scan failed; the image is admitted (scan.on_error: allow)", "project", project, "err", err)
			continue
		}
		for _, w := range rep.Warnings {
			s.log().Warn(w, "project", project, "image", img.String())
		}
		v := Judge(policy, rep.Findings, s.now())
		s.remember(img.ID, v)
		if !v.Refused() {
			continue
		}
		ri := RefusedImage{Image: img, Findings: v.Refusing}
		for _, x := range v.Expired {
			if slices.Contains(IDs(v.Refusing), x.ID) {
				ri.Expired = append(ri.Expired, x)
			}
		}
		refused.Images = append(refused.Images, ri)
	}
	if len(refused.Images) > 0 {
		return refused // the caller logs what it does about it
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w; scan.on_error: refuse keeps the new images out until a scan succeeds", errors.Join(failed...))
	}
	return nil
}

// Running is one image a project runs, with the project's policy.
type Running struct {
	Project string
	Image   Image
	Policy  desired.ScanPolicy
}

// Result is a running image's scan judged by its project's policy.
type Result struct {
	Running
	Report  Report
	Verdict Verdict
	// New are the refusing findings this image had not had when it was
	// last reported: what a notification announces (only once).
	New []Finding
	// Err is a failed scan (*ScanError).
	Err error
}

// ScanRunning scans every image that runs (an image that did not change
// and a DB that did not change are not scanned again) and judges each by
// its project's policy. Results come in the order of images. Each
// result's New lists the refusing findings not reported before for its
// image, and they count as reported from now on: call it from the one
// place that notifies (the schedule).
func (s *Scanner) ScanRunning(ctx context.Context, images []Running) []Result {
	res := s.scanRunning(ctx, images, true)
	s.mu.Lock()
	s.last = res
	s.mu.Unlock()
	return res
}

// Check is ScanRunning without New: it reports nothing as news and leaves
// what was reported as it is (for `syncd scan`).
func (s *Scanner) Check(ctx context.Context, images []Running) []Result {
	return s.scanRunning(ctx, images, false)
}

func (s *Scanner) scanRunning(ctx context.Context, images []Running, report bool) []Result {
	out := make([]Result, 0, len(images))
	for _, run := range images {
		res := Result{Running: run}
		rep, err := s.Scan(ctx, run.Image)
		if err != nil {
			res.Err = err
			out = append(out, res)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		res.Report = rep
		res.Verdict = Judge(run.Policy, rep.Findings, s.now())
		s.remember(run.Image.ID, res.Verdict)
		if !report {
			out = append(out, res)
			continue
		}
		ids := IDs(res.Verdict.Refusing)
		_ = s.store(run.Image.ID, func(e *cacheEntry) {
			for _, f := range res.Verdict.Refusing {
				if !slices.Contains(e.Reported, f.ID) {
					res.New = append(res.New, f)
				}
			}
			// Kept per image: the same image in two projects is news once;
			// a finding that went away and came back is news again.
			e.Reported = slices.Sorted(slices.Values(ids))
		})
		out = append(out, res)
	}
	return out
}

// remember keeps v as the image's last verdict (for Summary).
func (s *Scanner) remember(id string, v Verdict) {
	s.mu.Lock()
	e := s.load().Images[id]
	same := e != nil && maps.Equal(e.Counts, v.Counts) && slices.Equal(e.Refusing, IDs(v.Refusing))
	s.mu.Unlock()
	if same {
		return // a cached scan judged alike writes nothing
	}
	_ = s.store(id, func(e *cacheEntry) {
		e.Counts, e.Refusing = v.Counts, IDs(v.Refusing)
	})
}

// Summary returns what the last scan of the image id found and the last
// verdict on it, from the cache (trivy does not run); false when it was
// never scanned.
func (s *Scanner) Summary(id string) (Summary, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.load().Images[id]
	if e == nil || e.ScannedAt.IsZero() {
		return Summary{}, false
	}
	return Summary{Image: Image{ID: id}, DB: e.DB, Counts: maps.Clone(e.Counts), Refusing: slices.Clone(e.Refusing)}, true
}

// Summary is what the status document says of one image's scan.
type Summary struct {
	Image    Image
	DB       DB
	Counts   map[string]int
	Refusing []string
}

// Summarise turns results into per-project summaries.
func Summarise(results []Result) map[string][]Summary {
	out := map[string][]Summary{}
	for _, r := range results {
		if r.Err != nil {
			continue
		}
		out[r.Project] = append(out[r.Project], Summary{Image: r.Image, DB: r.Report.DB, Counts: r.Verdict.Counts, Refusing: IDs(r.Verdict.Refusing)})
	}
	for _, ss := range out {
		slices.SortFunc(ss, func(a, b Summary) int { return cmp.Compare(a.Image.Ref, b.Image.Ref) })
	}
	return out
}

func (s *Scanner) now() time.Time {
	if s.Now == nil {
		return time.Now().UTC()
	}
	return s.Now().UTC()
}

func (s *Scanner) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// RunningOf lists the images the host's own projects run (each distinct
// image once per project, in project order) with each project's policy:
// what ScanRunning scans.
func RunningOf(observed plan.Observed, policy func(project string) desired.ScanPolicy) []Running {
	var out []Running
	for _, name := range slices.Sorted(maps.Keys(observed.Projects)) {
		op := observed.Projects[name]
		if !op.Owned {
			continue
		}
		p := policy(name)
		seen := map[string]bool{}
		for _, c := range op.Containers {
			if c.ImageID == "" || seen[c.ImageID] {
				continue
			}
			seen[c.ImageID] = true
			out = append(out, Running{Project: name, Image: Image{Ref: c.Image, ID: c.ImageID}, Policy: p})
		}
	}
	return out
}
