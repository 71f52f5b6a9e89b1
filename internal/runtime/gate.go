package runtime

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/agent"
	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/rollout"
	"github.com/syncd-dev/syncd/internal/status"
)

// Gate is the wave gate step of a cycle (DESIGN §2, Waves): a host of a
// higher wave applies the head only when the hosts of the lower waves
// report on the status branch that they run it, converged, for the bake
// time; otherwise the newest commit that passed, or nothing new.
type Gate struct {
	// Fleet reads every host's status document and judges it against
	// the status keys of the commit gated (status.Writer.Fleet): one
	// shallow fetch of the status branch, made only when a commit waits
	// at the gate.
	Fleet interface {
		Fleet(ctx context.Context, keys status.Keys) ([]status.Host, error)
	}
	// History lists the head and the commits before it down to what the
	// host runs, newest first (source.Git.Ancestors).
	History interface {
		Ancestors(ctx context.Context, head, until string) ([]string, error)
	}
	// Heartbeat is the status writer's: a document older than twice it is
	// stale.
	Heartbeat time.Duration
	Now       func() time.Time
	Log       *slog.Logger

	// candidates are the last History answer, for head and until: they do
	// not change while a head waits.
	candidates          []string
	candHead, candUntil string
	// readErr is the last error of reading the status branch logged.
	readErr string
}

// waves is what the gate needs of the repository at one head.
type waves struct {
	commit string
	wave   int
	fleet  map[string]int
	bake   time.Duration
	skip   []string
	// keys are the hosts' status keys at commit (host.yaml status_key):
	// only documents that verify against them count.
	keys status.Keys
}

// lowest reports whether no host (but skipped ones) is of a lower wave
// than this one: the canaries apply at once, without reading the status.
func (w *waves) lowest() bool {
	for h, wave := range w.fleet {
		if wave < w.wave && !slices.Contains(w.skip, h) {
			return false
		}
	}
	return true
}

// wavesAt reads the fleet's waves from the checkout of head; nil when the
// repository there is invalid (the cycle refuses it: nothing is applied,
// so nothing needs gating) or does not know the host.
func wavesAt(dir, head, host string) *waves {
	repo, ps := desired.Load(dir)
	if ps.HasErrors() || repo.Hosts[host] == nil {
		return nil
	}
	w := &waves{commit: head, wave: repo.Hosts[host].Wave, fleet: map[string]int{},
		bake: repo.Fleet.Waves.BakeTime, skip: repo.Fleet.Waves.Skip, keys: status.Keys{}}
	for name, h := range repo.Hosts {
		w.fleet[name] = h.Wave
		w.keys[name] = h.StatusKey
	}
	return w
}

// verdict is the gate's answer about a head.
type verdict struct {
	rollout.Verdict
	head   string
	target string // the newest commit through the gate; "" for none
}

// decide asks the gate about head for the host running applied.
func (g *Gate) decide(ctx context.Context, host, head, applied string, w *waves) (*verdict, error) {
	// The keys and waves of the head judge older candidates too: a key
	// main no longer enrols counts for no commit.
	docs, err := g.Fleet.Fleet(ctx, w.keys)
	switch {
	case err != nil && len(docs) == 0:
		// No document yet is no report from anyone: the gate waits.
		g.Log.Warn("wave gate: cannot read the status branch; judging as if no host had reported", "err", err)
	case err != nil && err.Error() != g.readErr:
		// A file that cannot be read (or the memory of documents seen)
		// is said once, not at every poll.
		g.Log.Warn("wave gate: the status branch, in part", "err", err)
	}
	g.readErr = ""
	if err != nil {
		g.readErr = err.Error()
	}
	reports := map[string]rollout.Report{}
	for _, d := range docs {
		reports[d.Host] = reportOf(d)
	}
	in := rollout.Input{Host: host, Wave: w.wave, Commit: head, Fleet: w.fleet, Reports: reports,
		BakeTime: w.bake, Heartbeat: cmp.Or(g.Heartbeat, time.Hour), Skip: w.skip, Now: g.Now()}
	v := rollout.Gate(in)
	if v.Decision == rollout.Apply {
		return &verdict{Verdict: v, head: head, target: head}, nil
	}
	if g.candidates == nil || g.candHead != head || g.candUntil != applied {
		candidates, err := g.History.Ancestors(ctx, head, applied)
		if err != nil {
			return nil, err
		}
		g.candidates, g.candHead, g.candUntil = candidates, head, applied
	}
	target, _ := rollout.Newest(in, g.candidates)
	return &verdict{Verdict: v, head: head, target: target}, nil
}

// reportOf is a status document as the gate reads it.
// A document that does not count (forged, another key's, a replay) is
// one whose claims are not read at all.
func reportOf(d status.Host) rollout.Report {
	if !d.Counts() {
		return rollout.Report{Host: d.Host, Untrusted: cmp.Or(d.Why, string(d.Trust))}
	}
	return rollout.Report{Host: d.Host, Applied: d.AppliedCommit, Converged: d.State == status.Converged,
		Since: d.ConvergedSince, Baked: d.BakedCommit, Failed: d.FailedCommit, FailedError: d.FailedError, UpdatedAt: d.UpdatedAt}
}

// document is the verdict as the status document says it; nil once the
// head is through.
func (v *verdict) document() *status.Rollout {
	if v == nil || v.Decision == rollout.Apply {
		return nil
	}
	ro := &status.Rollout{State: string(v.Decision), Commit: v.head, Until: v.Until, Skipped: v.Skipped}
	hosts := v.Waiting
	if v.Decision == rollout.Halt {
		hosts = v.Halted
	}
	// A few are enough to say who holds the rollout back; listing all of
	// a large wave would rewrite the document as each of them moves.
	for _, b := range hosts[:min(len(hosts), maxBlockers)] {
		ro.Hosts = append(ro.Hosts, status.RolloutHost{Host: b.Host, Wave: b.Wave, Reason: b.Reason})
	}
	return ro
}

// maxBlockers caps the hosts a status document lists as holding it back.
const maxBlockers = 5

// state is the agent's view of the verdict.
func (v *verdict) state() string {
	if v == nil || v.Decision == rollout.Apply {
		return ""
	}
	return string(v.Decision)
}

// message is the verdict for sync's output and the log: who holds the
// head back, and what the host does meanwhile.
func (v *verdict) message(host, applied string) string {
	if v == nil || v.Decision == rollout.Apply {
		return ""
	}
	what := "keeps running " + cmp.Or(abbrev.Commit(applied), "nothing yet")
	if v.target != "" && v.target != applied {
		what = "applies " + abbrev.Commit(v.target) + ", the newest commit through the gate"
	}
	return fmt.Sprintf("host %s: rollout of %s %s\n  meanwhile host %s %s\n", host, abbrev.Commit(v.head), v.Verdict.String(), host, what)
}

// rolloutResult is what the agent is told about the gate after a cycle.
func rolloutResult(v *verdict, was, applied string) *agent.Rollout {
	return &agent.Rollout{State: v.state(), Commit: v.headOr(), Applied: applied, Was: was, Text: v.textOr()}
}

func (v *verdict) headOr() string {
	if v == nil {
		return ""
	}
	return v.head
}

func (v *verdict) textOr() string {
	if v == nil {
		return ""
	}
	return v.Verdict.String()
}
