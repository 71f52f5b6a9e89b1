package reconcile

import "github.com/syncd-dev/syncd/internal/state"

// The record step: what a project runs, kept in the state directory.

func (r *Reconciler) recordOf(prep *Prepared, commit string, t *target) *state.Project {
	rec := &state.Project{Commit: commit, AppliedAt: r.now(), LastGood: commit, Services: map[string]state.Service{}}
	// The settings as applied, for the next plan to name what changed; a
	// project that cannot say them is recorded without.
	fields := t.fields
	if key, err := r.Store.HashKey(); fields == nil && err == nil {
		fields, _ = t.project.Fields(prep.secrets, key)
	}
	for _, m := range t.project.Mounts {
		if m.Data() {
			rec.Data = append(rec.Data, m.Path)
		}
	}
	for name, s := range t.project.Compose.Services {
		rec.Services[name] = state.Service{ConfigHash: t.hashes[name], Image: s.Image, Secrets: t.secrets[name], Fields: fields[name]}
	}
	return rec
}

func lastGood(records state.Projects) []string {
	var keep []string
	for _, rec := range records {
		if rec.LastGood != "" {
			keep = append(keep, rec.LastGood)
		}
	}
	return keep
}
