package probe

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/syncd-dev/syncd/internal/desired"
)

// Gate is the deploy gate: after an apply, a release must pass each of its
// app's gating probes success_threshold times in a row within the health
// timeout, or it is rolled back.
type Gate struct {
	Checker *Checker
	// Interval is the pause between two checks of one probe (default 1s).
	Interval time.Duration
}

// FailedError says which gating probes a release did not pass.
type FailedError struct {
	Project string
	Timeout time.Duration
	// Probes maps each probe that did not pass to its last error.
	Probes map[string]string
}

func (e *FailedError) Error() string {
	names := slices.Sorted(maps.Keys(e.Probes))
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("probe %s: %s", n, e.Probes[n])
	}
	return fmt.Sprintf("project %s did not pass its probes within %s: %s", e.Project, e.Timeout, strings.Join(parts, "; "))
}

// Verify checks p's gating probes until each passed success_threshold
// times in a row, or timeout passes (a *FailedError then). redact scrubs
// the host's secret values from errors. A project without gating probes
// passes at once.
func (g *Gate) Verify(ctx context.Context, p *desired.Project, redact func(string) string, timeout time.Duration) error {
	var gating []desired.Probe
	for _, pr := range p.Probes {
		if pr.Gates() {
			gating = append(gating, pr)
		}
	}
	if len(gating) == 0 {
		return nil
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := g.Interval
	if interval <= 0 {
		interval = time.Second
	}
	var (
		mu     sync.Mutex
		failed = map[string]string{}
		wg     sync.WaitGroup
	)
	for _, pr := range gating {
		wg.Add(1)
		go func() {
			defer wg.Done()
			need, passed := pr.SuccessesOr(), 0
			last := "not checked before the timeout"
			for {
				r := g.Checker.Check(ctx, p.Name(), pr, redact)
				if ctx.Err() != nil {
					break
				}
				if r.OK {
					if passed++; passed >= need {
						return
					}
				} else {
					passed, last = 0, r.Error
				}
				select {
				case <-ctx.Done():
				case <-time.After(interval):
				}
				if ctx.Err() != nil {
					break
				}
			}
			if passed > 0 {
				last = fmt.Sprintf("passed %d of the %d checks in a row it needs; before: %s", passed, need, last)
			}
			mu.Lock()
			failed[pr.Name] = last
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(failed) == 0 {
		return nil
	}
	if err := parent.Err(); err != nil {
		return fmt.Errorf("probes of %s: %w", p.Name(), err)
	}
	return &FailedError{Project: p.Name(), Timeout: timeout, Probes: failed}
}
