package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// suspendedFile holds the suspensions made on the host (`syncd suspend`).
const suspendedFile = "suspended.json"

// Suspension is one app suspended on the host: who, why, until when (zero:
// until `syncd resume`).
type Suspension struct {
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	Until  time.Time `json:"until,omitzero"`
}

// Expired reports whether s has run out at now.
func (s Suspension) Expired(now time.Time) bool { return !s.Until.IsZero() && !now.Before(s.Until) }

// Suspensions reads the host's suspensions, by app; a missing file is
// none. `syncd suspend` writes them while an agent may run: each write
// replaces the file whole.
func (s *Store) Suspensions() (map[string]Suspension, error) {
	p := filepath.Join(s.dir, suspendedFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Suspension{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]Suspension{}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s: %w (fix or remove it: `syncd resume --app A` rewrites it)", p, err)
	}
	return out, nil
}

// Suspend records app as suspended (replacing an earlier suspension of it);
// a zero s resumes it. Expired suspensions are dropped on the way.
func (s *Store) Suspend(app string, sus Suspension, now time.Time) error {
	if s.readOnly {
		return ErrReadOnly
	}
	all, err := s.Suspensions()
	if err != nil && sus != (Suspension{}) {
		return err
	}
	if all == nil {
		all = map[string]Suspension{}
	}
	for name, x := range all {
		if x.Expired(now) {
			delete(all, name)
		}
	}
	if sus == (Suspension{}) {
		delete(all, app)
	} else {
		all[app] = sus
	}
	data, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	return WriteFile(filepath.Join(s.dir, suspendedFile), append(data, '\n'), 0o600)
}
