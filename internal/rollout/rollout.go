// Package rollout is the wave gate (DESIGN §2, Waves): whether a host of
// wave N may apply commit C, judged only from what the hosts of the lower
// waves report on the status branch. It is pure: it reads the documents it
// is handed and the time it is told, and needs no Git, no engine and no
// clock of its own.
//
// The rules, revision-exact and fresh-only (argo-cd#29410 judged a step on
// stale status and let prod go before dev had synced):
//   - a host of the lowest wave applies at once;
//   - otherwise every host of every lower wave must report that it applied
//     exactly C, converged and healthy, for at least the bake time, in a
//     document no older than twice the heartbeat; a missing, stale or other
//     commit's document does not count;
//   - and that report must be one the host wrote after its bake ended,
//     attesting the bake of C (Report.Baked): a document written before,
//     kept or pushed again once the host stopped mid-bake, does not count;
//   - a lower-wave host that reports C failed (rolled back, refused, held)
//     halts C for every higher wave;
//   - a document that does not count (Report.Untrusted: forged, signed by
//     another key, a replay) neither advances nor halts anything: its
//     host is waited for;
//   - a document dated more than MaxSkew ahead of the clock is not fresh;
//   - hosts listed in waves.skip are passed over, and named.
//
// It imports nothing of syncd but abbrev (how a commit is shortened):
// callers turn status documents into Reports.
package rollout

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/syncd-dev/syncd/internal/abbrev"
)

// Report is what one host's status document says, as the gate reads it.
type Report struct {
	Host string
	// Applied is the commit the host runs (applied_commit).
	Applied string
	// Converged is true when the host's state is converged and its
	// projects (and probes) are healthy.
	Converged bool
	// Since is when the host became converged and healthy at Applied.
	Since time.Time
	// Baked is the commit whose bake the host attests in this document
	// (baked_commit): it ran it converged and healthy from Since for the
	// bake time. Only a document that attests the commit gated and was
	// written (UpdatedAt) after Since plus the bake time lets a higher
	// wave go: one written before, kept or pushed again after the host
	// stopped mid-bake, says nothing of the rest of the bake.
	Baked string
	// Failed is the commit that failed on the host (rolled back, refused,
	// held), with why; "" for none.
	Failed, FailedError string
	// UpdatedAt is when the document was written (the heartbeat).
	UpdatedAt time.Time
	// Untrusted says why the document does not count (it does not verify
	// against the host's enrolled status key, or is a replay); "" for one
	// that does. Nothing else of such a document is read.
	Untrusted string
}

// MaxSkew is how far ahead of the reader's clock a document may be dated
// and still be fresh: hosts' clocks differ a little, and a document dated
// days ahead would otherwise stay fresh for days.
const MaxSkew = 5 * time.Minute

// Input is one question to the gate.
type Input struct {
	// Host asks, in wave Wave, whether it may apply Commit.
	Host   string
	Wave   int
	Commit string
	// Fleet maps every host of the repository at Commit to its wave: the
	// hosts that must report, whether they have or not.
	Fleet map[string]int
	// Reports are the status documents found, by host.
	Reports map[string]Report
	// BakeTime is how long the lower waves must have been converged at
	// Commit (syncd.yaml waves.bake_time).
	BakeTime time.Duration
	// Heartbeat is how often a host rewrites its document at the latest;
	// one older than twice that is stale.
	Heartbeat time.Duration
	// Skip are the hosts the gate passes over (waves.skip).
	Skip []string
	Now  time.Time
}

// Decision is what the gate says.
type Decision string

// Decisions.
const (
	Apply Decision = "apply"
	Wait  Decision = "waiting"
	Halt  Decision = "halted"
)

// Verdict is the gate's answer, with its reasons.
type Verdict struct {
	Decision Decision
	// Waiting lists, for Wait, each host the rollout waits for and why.
	Waiting []Blocker
	// Halted names, for Halt, the hosts that failed Commit and how.
	Halted []Blocker
	// Skipped are the lower-wave hosts passed over by waves.skip.
	Skipped []string
	// Until is, when every wait is a bake, when the last one ends.
	Until time.Time
}

// Blocker is one host that holds the rollout back.
type Blocker struct {
	Host   string
	Wave   int
	Reason string
}

// Gate decides whether in.Host may apply in.Commit.
func Gate(in Input) Verdict {
	var v Verdict
	baking := true
	for _, host := range slices.Sorted(maps.Keys(in.Fleet)) {
		wave := in.Fleet[host]
		if wave >= in.Wave || host == in.Host {
			continue
		}
		if slices.Contains(in.Skip, host) {
			v.Skipped = append(v.Skipped, host)
			continue
		}
		r, ok := in.Reports[host]
		block := func(reason string, args ...any) {
			v.Waiting = append(v.Waiting, Blocker{Host: host, Wave: wave, Reason: fmt.Sprintf(reason, args...)})
		}
		switch {
		case ok && r.Untrusted != "":
			block("its status document does not count: %s", r.Untrusted)
			baking = false
		case ok && r.Failed == in.Commit && in.Commit != "":
			v.Halted = append(v.Halted, Blocker{Host: host, Wave: wave, Reason: cmp.Or(r.FailedError, "the release failed")})
		case !ok:
			block("has not reported on the status branch (if it is gone for good, list it under waves.skip in syncd.yaml)")
			baking = false
		case r.UpdatedAt.After(in.Now.Add(MaxSkew)):
			block("its report is dated %s, %s ahead of this host's clock (more than the %s allowed): not fresh; check both clocks (NTP)",
				r.UpdatedAt.UTC().Format(time.RFC3339), r.UpdatedAt.Sub(in.Now).Round(time.Second), MaxSkew)
			baking = false
		case in.Heartbeat > 0 && in.Now.Sub(r.UpdatedAt) > 2*in.Heartbeat:
			block("its report is stale: last written %s, more than twice the heartbeat (%s) ago (if it is down for good, list it under waves.skip in syncd.yaml)",
				r.UpdatedAt.UTC().Format(time.RFC3339), in.Heartbeat)
			baking = false
		case r.Applied != in.Commit:
			block("has not applied %s yet (runs %s)", abbrev.Commit(in.Commit), cmp.Or(abbrev.Commit(r.Applied), "nothing"))
			baking = false
		case !r.Converged:
			block("runs %s but is not converged and healthy", abbrev.Commit(in.Commit))
			baking = false
		case r.Since.Add(in.BakeTime).After(in.Now):
			until := r.Since.Add(in.BakeTime)
			block("baking until %s (converged since %s, bake time %s)", until.UTC().Format(time.RFC3339), r.Since.UTC().Format(time.RFC3339), in.BakeTime)
			if until.After(v.Until) {
				v.Until = until
			}
		case r.UpdatedAt.Before(r.Since.Add(in.BakeTime)):
			block("its last report was written %s, before its bake ended (%s): waiting for a report written after it (a host writes one when its bake ends; one that stopped mid-bake never does)",
				r.UpdatedAt.UTC().Format(time.RFC3339), r.Since.Add(in.BakeTime).UTC().Format(time.RFC3339))
			baking = false
		case r.Baked != in.Commit:
			block("its report does not attest the bake of %s (baked_commit %s): waiting for one that does",
				abbrev.Commit(in.Commit), cmp.Or(abbrev.Commit(r.Baked), "none"))
			baking = false
		}
	}
	switch {
	case len(v.Halted) > 0:
		v.Decision = Halt
	case len(v.Waiting) > 0:
		v.Decision = Wait
		if !baking {
			v.Until = time.Time{}
		}
	default:
		v.Decision, v.Until = Apply, time.Time{}
	}
	return v
}

// Newest returns the newest of candidates (newest first: the branch head,
// then its ancestors down to what the host runs) that the gate lets the
// host apply, and the verdict about the head. A host applies the newest
// commit that passed even when the head has not; "" means none did.
func Newest(in Input, candidates []string) (string, Verdict) {
	var head Verdict
	for i, c := range candidates {
		q := in
		q.Commit = c
		v := Gate(q)
		if i == 0 {
			head = v
		}
		if v.Decision == Apply {
			return c, head
		}
	}
	return "", head
}

// String says the verdict in one paragraph, for sync's output, the status
// and the log.
func (v Verdict) String() string {
	var b strings.Builder
	b.WriteString(string(v.Decision))
	line := func(bs []Blocker) {
		for _, x := range bs {
			fmt.Fprintf(&b, "\n  %s (wave %d): %s", x.Host, x.Wave, x.Reason)
		}
	}
	switch v.Decision {
	case Halt:
		b.WriteString(": a lower wave failed this commit; it resumes with a fixing commit")
		line(v.Halted)
	case Wait:
		if !v.Until.IsZero() {
			fmt.Fprintf(&b, " until %s", v.Until.UTC().Format(time.RFC3339))
		}
		line(v.Waiting)
	}
	if len(v.Skipped) > 0 {
		fmt.Fprintf(&b, "\n  passed over (waves.skip): %s", strings.Join(v.Skipped, ", "))
	}
	return b.String()
}
