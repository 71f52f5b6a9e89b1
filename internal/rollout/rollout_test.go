package rollout

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncd-dev/syncd/internal/abbrev"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const (
	c1 = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"
	c2 = "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// fleet: two canaries in wave 0, two hosts in wave 1, one in wave 2.
func base() Input {
	return Input{
		Host: "client-a", Wave: 1, Commit: c2,
		Fleet:     map[string]int{"canary-1": 0, "canary-2": 0, "client-a": 1, "client-b": 1, "client-c": 2},
		BakeTime:  30 * time.Minute,
		Heartbeat: time.Hour,
		Now:       now,
		Reports: map[string]Report{
			"canary-1": {Host: "canary-1", Applied: c2, Converged: true, Since: now.Add(-time.Hour), Baked: c2, UpdatedAt: now.Add(-time.Minute)},
			"canary-2": {Host: "canary-2", Applied: c2, Converged: true, Since: now.Add(-2 * time.Hour), Baked: c2, UpdatedAt: now.Add(-10 * time.Minute)},
		},
	}
}

func with(f func(*Input)) Input {
	in := base()
	in.Reports = map[string]Report{}
	for k, v := range base().Reports {
		in.Reports[k] = v
	}
	f(&in)
	return in
}

func report(in *Input, host string, f func(*Report)) {
	r := in.Reports[host]
	f(&r)
	in.Reports[host] = r
}

var cases = map[string]struct {
	in         Input
	candidates []string // for Newest; nil: Gate alone
}{
	"lowest_wave_applies_at_once": {in: with(func(in *Input) {
		in.Host, in.Wave = "canary-1", 0
		in.Reports = nil
	})},
	"lower_waves_converged_and_baked": {in: base()},
	"baking": {in: with(func(in *Input) {
		report(in, "canary-1", func(r *Report) { r.Since = now.Add(-10 * time.Minute) })
	})},
	"not_yet_applied": {in: with(func(in *Input) {
		report(in, "canary-2", func(r *Report) { r.Applied = c1 })
	})},
	"no_report": {in: with(func(in *Input) { delete(in.Reports, "canary-2") })},
	// argo-cd#29410: a document that says C is healthy, written long ago:
	// it must not let the wave advance.
	"stale_healthy_document": {in: with(func(in *Input) {
		report(in, "canary-2", func(r *Report) { r.UpdatedAt = now.Add(-3 * time.Hour) })
	})},
	"healthy_at_another_commit": {in: with(func(in *Input) {
		report(in, "canary-1", func(r *Report) { r.Applied, r.Since = c1, now.Add(-24*time.Hour) })
	})},
	"unhealthy": {in: with(func(in *Input) {
		report(in, "canary-1", func(r *Report) { r.Converged = false })
	})},
	// A document that says C is healthy, from a host whose status key it
	// does not verify against (another host's key forged it): it must not
	// let the wave advance.
	"forged_healthy_document": {in: with(func(in *Input) {
		report(in, "canary-2", func(r *Report) { r.Untrusted = "unverified: signed by key SHA256:other, not by the host's SHA256:own" })
	})},
	// A forged failed_commit must not halt the rollout either.
	"forged_failure_does_not_halt": {in: with(func(in *Input) {
		report(in, "canary-1", func(r *Report) {
			r.Failed, r.FailedError, r.Untrusted = c2, "forged", "unverified: not signed, and main enrols a status key for it"
		})
	})},
	// A document dated 3 days ahead would stay fresh for 3 days.
	"document_dated_in_the_future": {in: with(func(in *Input) {
		report(in, "canary-2", func(r *Report) { r.UpdatedAt = now.Add(72 * time.Hour) })
	})},
	"within_the_clock_skew": {in: with(func(in *Input) {
		report(in, "canary-2", func(r *Report) { r.UpdatedAt = now.Add(4 * time.Minute) })
	})},
	// The canary's genuine document, written right after it applied C
	// and before its bake ended (it stopped mid-bake, or an attacker
	// pushed that document again): the bake time has passed by the clock,
	// yet nothing the canary wrote says it baked.
	"report_written_before_the_bake_ended": {in: with(func(in *Input) {
		report(in, "canary-1", func(r *Report) { r.UpdatedAt, r.Baked = r.Since.Add(time.Minute), "" })
	})},
	// Written after the bake would have ended, yet not attesting it (an
	// older syncd, or a host that was not healthy throughout).
	"bake_not_attested": {in: with(func(in *Input) {
		report(in, "canary-1", func(r *Report) { r.Baked = "" })
	})},
	"bake_attested_for_another_commit": {in: with(func(in *Input) {
		report(in, "canary-2", func(r *Report) { r.Baked = c1 })
	})},
	"canary_failed_halts": {in: with(func(in *Input) {
		report(in, "canary-1", func(r *Report) {
			r.Applied, r.Converged, r.Failed, r.FailedError = c1, true, c2, "project web not healthy: service app unhealthy; rolled back to c1"
		})
	})},
	"halt_wins_over_waiting": {in: with(func(in *Input) {
		report(in, "canary-1", func(r *Report) { r.Failed, r.FailedError = c2, "image refused" })
		delete(in.Reports, "canary-2")
	})},
	"skip_passes_a_host_that_never_reports": {in: with(func(in *Input) {
		delete(in.Reports, "canary-2")
		in.Skip = []string{"canary-2"}
	})},
	"wave_two_waits_for_wave_one_too": {in: with(func(in *Input) {
		in.Host, in.Wave = "client-c", 2
		in.Reports["client-a"] = Report{Host: "client-a", Applied: c2, Converged: true, Since: now.Add(-5 * time.Minute), UpdatedAt: now}
	})},
	"a_failure_of_an_older_commit_does_not_halt": {in: with(func(in *Input) {
		report(in, "canary-1", func(r *Report) { r.Failed = c1 })
	})},
	// The head is not through the gate yet; the commit before it is: a
	// gated host applies that one.
	"newest_that_passed_is_older_than_head": {candidates: []string{c2, c1}, in: with(func(in *Input) {
		for _, h := range []string{"canary-1", "canary-2"} {
			report(in, h, func(r *Report) { r.Applied, r.Baked = c1, c1 })
		}
	})},
	"newest_is_head": {candidates: []string{c2, c1}, in: base()},
	"none_passed": {candidates: []string{c2, c1}, in: with(func(in *Input) {
		report(in, "canary-1", func(r *Report) { r.Converged = false })
	})},
}

func TestGateGolden(t *testing.T) {
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var got string
			if c.candidates != nil {
				picked, head := Newest(c.in, c.candidates)
				got = fmt.Sprintf("head %s: %s\napply: %s\n", abbrev.Commit(c.candidates[0]), head, picked)
			} else {
				got = Gate(c.in).String() + "\n"
			}
			path := filepath.Join("testdata", name+".golden")
			if *update {
				os.MkdirAll("testdata", 0o755)
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs:\n--- got\n%s--- want\n%s", path, got, want)
			}
		})
	}
}

// The rules the golden files show, asserted so that an -update cannot
// bless a wrong answer.
func TestGateRules(t *testing.T) {
	want := map[string]Decision{
		"lowest_wave_applies_at_once":                Apply,
		"lower_waves_converged_and_baked":            Apply,
		"baking":                                     Wait,
		"not_yet_applied":                            Wait,
		"no_report":                                  Wait,
		"stale_healthy_document":                     Wait,
		"healthy_at_another_commit":                  Wait,
		"unhealthy":                                  Wait,
		"canary_failed_halts":                        Halt,
		"halt_wins_over_waiting":                     Halt,
		"skip_passes_a_host_that_never_reports":      Apply,
		"wave_two_waits_for_wave_one_too":            Wait,
		"a_failure_of_an_older_commit_does_not_halt": Apply,
		"forged_healthy_document":                    Wait,
		"forged_failure_does_not_halt":               Wait,
		"document_dated_in_the_future":               Wait,
		"within_the_clock_skew":                      Apply,
		"report_written_before_the_bake_ended":       Wait,
		"bake_not_attested":                          Wait,
		"bake_attested_for_another_commit":           Wait,
	}
	for name, d := range want {
		if got := Gate(cases[name].in).Decision; got != d {
			t.Errorf("%s: %s, want %s", name, got, d)
		}
	}
	if v := Gate(cases["baking"].in); !v.Until.Equal(now.Add(20 * time.Minute)) {
		t.Errorf("baking until %v, want %v", v.Until, now.Add(20*time.Minute))
	}
	if v := Gate(cases["stale_healthy_document"].in); len(v.Waiting) != 1 || !strings.Contains(v.Waiting[0].Reason, "stale") {
		t.Errorf("stale document: %+v", v)
	}
	if v := Gate(cases["document_dated_in_the_future"].in); len(v.Waiting) != 1 || !strings.Contains(v.Waiting[0].Reason, "ahead of this host's clock") {
		t.Errorf("a document from the future: %+v", v)
	}
	if v := Gate(cases["forged_failure_does_not_halt"].in); len(v.Halted) != 0 || len(v.Waiting) != 1 || !strings.Contains(v.Waiting[0].Reason, "does not count") {
		t.Errorf("a forged failure: %+v", v)
	}
	if v := Gate(cases["report_written_before_the_bake_ended"].in); len(v.Waiting) != 1 || v.Waiting[0].Host != "canary-1" || !strings.Contains(v.Waiting[0].Reason, "before its bake ended") {
		t.Errorf("a report written before the bake ended: %+v", v)
	}
	if got, _ := Newest(cases["newest_that_passed_is_older_than_head"].in, cases["newest_that_passed_is_older_than_head"].candidates); got != c1 {
		t.Errorf("newest that passed: %q, want the older commit", got)
	}
	if got, _ := Newest(cases["none_passed"].in, cases["none_passed"].candidates); got != "" {
		t.Errorf("none passed, yet %q", got)
	}
}
