package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/syncd-dev/syncd/internal/state"
)

// madeFile records, in the state directory, the snapshots this host's
// syncd made. Anyone holding the repository's password can make snapshots
// in this host's name (restic backup --host), so the repository cannot say
// which are this host's own; this record can. A restore of "latest" picks
// among the runs it holds.
const madeFile = "backup-made.json"

// maxMade bounds the record: the newest snapshot IDs are kept (retention
// forgets the old ones in the repository long before).
const maxMade = 20000

type madeEntry struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// recordMade adds snapshot ids to the record of what this host made. A
// record that cannot be written fails the part: a backup that a later
// "latest" would not find must not look like one that worked.
func (r *Runner) recordMade(ids ...string) error {
	if r.StateDir == "" || len(ids) == 0 {
		return nil
	}
	list, err := r.readMade()
	if err != nil {
		return err
	}
	now := r.now().UTC()
	for _, id := range ids {
		list = append(list, madeEntry{ID: id, At: now})
	}
	if len(list) > maxMade {
		list = list[len(list)-maxMade:]
	}
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := state.WriteFile(filepath.Join(r.StateDir, madeFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("record the snapshot in %s: %w", filepath.Join(r.StateDir, madeFile), err)
	}
	return nil
}

func (r *Runner) readMade() ([]madeEntry, error) {
	p := filepath.Join(r.StateDir, madeFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []madeEntry
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("%s: %w (move it aside: `syncd restore` then needs --snapshot RUN)", p, err)
	}
	return list, nil
}

// MadeHere reports, per run, whether this host's syncd made every one of
// its snapshots; known is false without a state directory (no record to
// judge by: every run counts).
func (r *Runner) MadeHere(runs []Run) (here map[string]bool, known bool, err error) {
	if r.StateDir == "" {
		return nil, false, nil
	}
	list, err := r.readMade()
	if err != nil {
		return nil, true, err
	}
	ids := make(map[string]bool, len(list))
	for _, e := range list {
		ids[e.ID] = true
	}
	here = map[string]bool{}
	for _, run := range runs {
		here[run.ID] = len(run.Snapshots) > 0 && !slices.ContainsFunc(run.Snapshots, func(s Snapshot) bool { return !ids[s.ID] })
	}
	return here, true, nil
}
