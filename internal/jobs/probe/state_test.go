package probe

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// run feeds results written as a string ("+" pass, "-" fail) into s, one a
// minute, and returns the events as "i:kind" (i the result's index).
func run(s *State, pol Policy, results string, hold bool) []string {
	var out []string
	for i, c := range results {
		r := Result{At: t0.Add(time.Duration(len(s.Results)+i) * time.Minute), OK: c == '+'}
		if !r.OK {
			r.Error = fmt.Sprintf("failure %d", i)
		}
		for _, k := range s.Observe(pol, r, hold) {
			out = append(out, fmt.Sprintf("%d:%s", i, k))
		}
	}
	return out
}

func TestObserveThresholds(t *testing.T) {
	pol := Policy{Failures: 3, Successes: 2}
	cases := []struct {
		name    string
		results string
		want    []string
		status  Status
	}{
		{"first success is up, silently", "+", nil, Up},
		{"one lost packet is no outage", "+-++-+", nil, Up},
		{"two failures are not three", "+--+--+", nil, Up},
		{"three failures in a row: down once", "+-----", []string{"3:probe_down"}, Down},
		{"down from the start is reported", "---", []string{"2:probe_down"}, Down},
		{"one success does not end an outage", "+---+-", []string{"3:probe_down"}, Down},
		{"two successes do", "+---++", []string{"3:probe_down", "5:probe_up"}, Up},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s State
			got := run(&s, pol, c.results, false)
			if !slices.Equal(got, c.want) || s.Status != c.status {
				t.Errorf("events %v, status %s; want %v, %s", got, s.Status, c.want, c.status)
			}
		})
	}
}

func TestObserveKeepsTwentyResultsAndCounts(t *testing.T) {
	var s State
	run(&s, Policy{Failures: 3, Successes: 2}, strings.Repeat("+", 25)+"--", false)
	if len(s.Results) != 20 || s.Checks != 27 || s.Failed != 2 || s.Failures != 2 || s.LastError != "failure 26" {
		t.Errorf("results %d, checks %d, failed %d, run %d, last error %q", len(s.Results), s.Checks, s.Failed, s.Failures, s.LastError)
	}
	if want := t0.Add(25 * time.Minute); !s.Since.Equal(t0) || !s.Results[19].At.After(want) {
		t.Errorf("since %v, last result %v", s.Since, s.Results[19].At)
	}
}

// A probe that flips four times within its last twenty results is reported
// once as flapping, not at each flip; when it settles, where it settled is
// reported once.
func TestObserveFlapping(t *testing.T) {
	pol := Policy{Failures: 1, Successes: 1}
	var s State
	got := run(&s, pol, "+-+-+-+-+-", false)
	want := []string{"1:probe_down", "2:probe_up", "3:probe_down", "4:probe_flapping"}
	if !slices.Equal(got, want) || !s.Flapping {
		t.Fatalf("events %v, flapping %v; want %v", got, s.Flapping, want)
	}
	// Settling down: no event until the flips leave the window, then one.
	got = run(&s, pol, strings.Repeat("-", 20), false)
	if len(got) != 1 || !strings.HasSuffix(got[0], ":probe_down") || s.Flapping {
		t.Errorf("settling: events %v, flapping %v", got, s.Flapping)
	}
	// And a recovery afterwards is reported as usual.
	if got := run(&s, pol, "+", false); !slices.Equal(got, []string{"0:probe_up"}) {
		t.Errorf("recovery after settling: %v", got)
	}
}

func TestObserveFlappingWithThresholds(t *testing.T) {
	// With the default thresholds, 200/503 alternating never changes the
	// status: no flip, no event (hysteresis absorbs it).
	var s State
	if got := run(&s, Policy{Failures: 3, Successes: 2}, strings.Repeat("+-", 10), false); got != nil || s.Status != Up {
		t.Errorf("alternating results: %v, %s", got, s.Status)
	}
	// Outages of three, recoveries of two, over and over: flapping once.
	s = State{}
	got := run(&s, Policy{Failures: 3, Successes: 2}, strings.Repeat("---++", 6), false)
	flaps := 0
	for _, e := range got {
		if strings.HasSuffix(e, "probe_flapping") {
			flaps++
		}
	}
	if flaps != 1 || !strings.HasSuffix(got[len(got)-1], "probe_flapping") {
		t.Errorf("events %v", got)
	}
}

// While the engine is unreachable, down events are held back, the probe
// still changes status, and a down still true afterwards is reported then;
// an up after a down nobody heard of is no news.
func TestObserveHold(t *testing.T) {
	pol := Policy{Failures: 2, Successes: 1}
	var s State
	if got := run(&s, pol, "+---", true); got != nil || s.Status != Down || s.Alerted {
		t.Fatalf("held: %v %s alerted=%v", got, s.Status, s.Alerted)
	}
	if got := run(&s, pol, "+", false); got != nil || s.Status != Up {
		t.Errorf("up after a held-back down: %v", got)
	}
	s = State{}
	run(&s, pol, "+--", true)
	if got := run(&s, pol, "-", false); !slices.Equal(got, []string{"0:probe_down"}) {
		t.Errorf("down still true once the engine answers: %v", got)
	}
}

func TestObserveCertificate(t *testing.T) {
	pol := Policy{Failures: 3, Successes: 2, CertDays: 14}
	var s State
	days := func(d int) Result { return Result{At: t0, OK: true, CertDays: &d} }
	var got []Kind
	for _, d := range []int{30, 13, 12, 11, 60, 5} {
		got = append(got, s.Observe(pol, days(d), false)...)
	}
	// Once when it first drops below, again only after a renewal.
	if !slices.Equal(got, []Kind{CertExpiring, CertExpiring}) || *s.CertDays != 5 || s.Status != Up {
		t.Errorf("events %v, days %d", got, *s.CertDays)
	}
}
