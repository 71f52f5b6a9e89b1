package backup

import (
	"slices"
	"strconv"
	"time"
)

// Run is the snapshots of one backup run of an app: its paths and volumes
// and each dump, sharing a run:<id> tag.
type Run struct {
	ID        string
	Host, App string
	Time      time.Time // of its newest part
	Snapshots []Snapshot
}

// Complete reports whether every part of the run was saved in full: as
// many distinct kinds as its parts tag says, none partial. A dump that
// failed left no snapshot, so its run falls short of its count.
func (r Run) Complete() bool {
	want := -1
	kinds := map[string]bool{}
	for _, s := range r.Snapshots {
		n, err := strconv.Atoi(s.Tag("parts"))
		if err != nil || n <= 0 || (want != -1 && n != want) || s.HasTag("partial") {
			return false
		}
		want = n
		kinds[s.Kind()] = true
	}
	delete(kinds, "")
	return want > 0 && len(kinds) == want
}

// Runs groups the snapshots of app on host by their run tag, newest first.
func Runs(snaps []Snapshot, host, app string) []Run {
	byID := map[string]*Run{}
	var runs []*Run
	for _, s := range snaps {
		if s.Tag("host") != host || s.Tag("app") != app || s.Hostname != host {
			continue
		}
		id := s.Tag("run")
		if id == "" {
			continue
		}
		r := byID[id]
		if r == nil {
			r = &Run{ID: id, Host: host, App: app}
			byID[id] = r
			runs = append(runs, r)
		}
		r.Snapshots = append(r.Snapshots, s)
		if s.Time.After(r.Time) {
			r.Time = s.Time
		}
	}
	out := make([]Run, 0, len(runs))
	for _, r := range runs {
		out = append(out, *r)
	}
	slices.SortStableFunc(out, func(a, b Run) int { return b.Time.Compare(a.Time) })
	return out
}

// NewestComplete returns the newest complete run of app on host.
func NewestComplete(snaps []Snapshot, host, app string) (Run, bool) {
	for _, r := range Runs(snaps, host, app) {
		if r.Complete() {
			return r, true
		}
	}
	return Run{}, false
}
