package status

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/syncd-dev/syncd/internal/rollout"
)

// FleetView is the rollout as the status branch tells it, from the
// documents alone: per wave, which hosts run which commit, and which hosts
// wait at the wave gate or are halted, and why.
type FleetView struct {
	Waves []WaveView `json:"waves"`
	// Unverified are the documents that do not count (Host.Counts): they
	// are in no wave, and their claims are not shown as the fleet's.
	Unverified []HostView `json:"unverified,omitempty"`
	// UnsignedCommits are the hosts whose documents say they apply
	// commits without checking signatures.
	UnsignedCommits []string `json:"unsigned_commits,omitempty"`
}

// WaveView is one wave of the fleet.
type WaveView struct {
	Wave int `json:"wave"`
	// Running maps a commit to the hosts that run it.
	Running map[string][]string `json:"running"`
	// Waiting and Halted are the hosts whose gate holds the head back.
	Waiting []string `json:"waiting,omitempty"`
	Halted  []string `json:"halted,omitempty"`
	// Hosts are the documents, for each host's reasons and age.
	Hosts []HostView `json:"hosts"`
}

// HostView is one host in the rollout view.
type HostView struct {
	Host    string    `json:"host"`
	Applied string    `json:"applied_commit"`
	Desired string    `json:"desired_commit"`
	State   State     `json:"state"`
	Updated time.Time `json:"updated_at"`
	Failed  string    `json:"failed_commit,omitempty"`
	Rollout *Rollout  `json:"rollout,omitempty"`
	// Trust is the document's (verified, unsigned, unverified), Why why
	// it does not count.
	Trust Trust  `json:"trust"`
	Why   string `json:"why,omitempty"`
	// Ahead: dated more than rollout.MaxSkew ahead of the reader's clock,
	// so not fresh.
	Ahead bool `json:"ahead_of_clock,omitempty"`
	// Suspended are the host's suspended projects, by name.
	Suspended map[string]Suspension `json:"suspended,omitempty"`
}

// View groups the documents that count by wave, lowest first; the others
// are listed apart. Hosts must have been judged (Reader.Judge).
func View(hosts []Host, now time.Time) FleetView {
	byWave := map[int]*WaveView{}
	var v FleetView
	for _, h := range hosts {
		hv := HostView{Host: h.Host, Applied: h.AppliedCommit, Desired: h.DesiredCommit, State: h.State,
			Updated: h.UpdatedAt, Failed: h.FailedCommit, Rollout: h.Rollout, Trust: h.Trust, Why: h.Why, Ahead: h.Ahead(now)}
		for _, p := range h.Projects {
			if p.Suspended != nil {
				if hv.Suspended == nil {
					hv.Suspended = map[string]Suspension{}
				}
				hv.Suspended[p.Name] = *p.Suspended
			}
		}
		if !h.Counts() {
			v.Unverified = append(v.Unverified, hv)
			continue
		}
		if h.UnsignedCommits {
			v.UnsignedCommits = append(v.UnsignedCommits, h.Host)
		}
		w := byWave[h.Wave]
		if w == nil {
			w = &WaveView{Wave: h.Wave, Running: map[string][]string{}}
			byWave[h.Wave] = w
		}
		applied := h.AppliedCommit
		if applied == "" {
			applied = "-"
		}
		w.Running[applied] = append(w.Running[applied], h.Host)
		if h.Rollout != nil {
			switch h.Rollout.State {
			case "halted":
				w.Halted = append(w.Halted, h.Host)
			default:
				w.Waiting = append(w.Waiting, h.Host)
			}
		}
		w.Hosts = append(w.Hosts, hv)
	}
	slices.SortFunc(v.Unverified, func(a, b HostView) int { return strings.Compare(a.Host, b.Host) })
	slices.Sort(v.UnsignedCommits)
	for _, wave := range slices.Sorted(maps.Keys(byWave)) {
		w := byWave[wave]
		for _, hs := range w.Running {
			slices.Sort(hs)
		}
		slices.Sort(w.Waiting)
		slices.Sort(w.Halted)
		slices.SortFunc(w.Hosts, func(a, b HostView) int { return strings.Compare(a.Host, b.Host) })
		v.Waves = append(v.Waves, *w)
	}
	return v
}

// maxListed caps the host names one line of the view lists.
const maxListed = 8

// Write prints the view: per wave the commits run and by whom, then each
// host held back with the first reason.
func (v FleetView) Write(w io.Writer, now time.Time) {
	for _, wave := range v.Waves {
		fmt.Fprintf(w, "wave %d: %d host(s)", wave.Wave, len(wave.Hosts))
		if n := len(wave.Waiting); n > 0 {
			fmt.Fprintf(w, ", %d waiting", n)
		}
		if n := len(wave.Halted); n > 0 {
			fmt.Fprintf(w, ", %d halted", n)
		}
		fmt.Fprintln(w)
		commits := slices.SortedFunc(maps.Keys(wave.Running), func(a, b string) int {
			return len(wave.Running[b]) - len(wave.Running[a])
		})
		for _, c := range commits {
			fmt.Fprintf(w, "  runs %-12s  %s\n", short(c), list(wave.Running[c]))
		}
		for _, h := range wave.Hosts {
			ro := h.Rollout
			if ro == nil {
				continue
			}
			fmt.Fprintf(w, "  %s %s: %s", h.Host, ro.State, short(ro.Commit))
			if !ro.Until.IsZero() {
				fmt.Fprintf(w, " until %s", ro.Until.UTC().Format(time.RFC3339))
			}
			if len(ro.Hosts) > 0 {
				fmt.Fprintf(w, "; %s (wave %d): %s", ro.Hosts[0].Host, ro.Hosts[0].Wave, ro.Hosts[0].Reason)
				if n := len(ro.Hosts) - 1; n > 0 {
					fmt.Fprintf(w, "; and %d more", n)
				}
			}
			fmt.Fprintf(w, " (%s ago)\n", age(now, h.Updated))
		}
		for _, h := range wave.Hosts {
			for _, app := range slices.Sorted(maps.Keys(h.Suspended)) {
				fmt.Fprintf(w, "  %s: %s suspended %s\n", h.Host, app, h.Suspended[app])
			}
			if h.Ahead {
				fmt.Fprintf(w, "  %s: its document is dated %s, %s ahead of this clock (more than %s): not fresh; check the host's clock\n",
					h.Host, h.Updated.UTC().Format(time.RFC3339), h.Updated.Sub(now).Round(time.Second), rollout.MaxSkew)
			}
		}
	}
	for _, h := range v.Unverified {
		fmt.Fprintf(w, "unverified: %s: %s; it counts for nothing (no wave advances or halts by it)\n", h.Host, h.Why)
	}
	if len(v.UnsignedCommits) > 0 {
		fmt.Fprintf(w, "warning: %s apply(s) commits without checking their signatures (no allowed signers): whoever can push main, a deploy key read from a host's user-data included, deploys to them; give them --allowed-signers\n",
			list(v.UnsignedCommits))
	}
}

func list(hosts []string) string {
	if len(hosts) <= maxListed {
		return strings.Join(hosts, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(hosts[:maxListed], ", "), len(hosts)-maxListed)
}
