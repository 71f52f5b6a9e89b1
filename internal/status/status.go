// Package status owns the status document of a host (DESIGN §4): its
// model, the one writer of it (Writer: state/status.json on the host, and
// through a Publisher the host's own status branch, hosts/<host>.yaml on
// syncd/status-<host>, committed only when its content changes, plus an
// hourly heartbeat), and the reading of every host's document (ReadAll,
// Reader) for the wave gate, `syncd status --fleet` and the fleet views.
//
// The branches are untrusted input: every host's key may push any of
// them. So each host signs its own document with a key it made (Key,
// SSHSIG through package source, hosts/<host>.yaml.sig), and readers
// (Reader) count a document only when it verifies against the status key
// main enrols for its host (Keys), is not older than one already seen (a
// replay), and is not dated ahead of the clock; the others are Unverified
// and never advance or halt anything. Their text is escaped where it is
// read.
//
// Git is package source's (source.StatusBranches implements Publisher
// and Branches): status does not import go-git. It must not import the
// engine, reconcile, plan or the agent.
//
// Never a secret value: Writer.Redact, the document's one redaction, runs
// over every string of it before the document is written anywhere.
package status

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/syncd-dev/syncd/internal/escape"
	"github.com/syncd-dev/syncd/internal/state"
)

// State is what a host, or one of its projects, is doing.
type State string

// States.
const (
	Converged   State = "converged"   // running what the desired commit says
	Applying    State = "applying"    // a cycle is changing things
	Degraded    State = "degraded"    // running, but something is unhealthy or drifted
	Failed      State = "failed"      // a release failed (rolled back or taken down)
	Held        State = "held"        // a failed commit is held until a newer one arrives
	Waiting     State = "waiting"     // left for the next cycle (a job holds it; its backup before upgrade failed)
	Invalid     State = "invalid"     // the repository cannot be rendered; nothing changed
	Unreachable State = "unreachable" // the source or the engine cannot be reached
	// Enrolling: the host made its own age key, which is not yet a
	// recipient of its secrets; apps without secrets run.
	Enrolling State = "enrolling"
	// Suspended: left as it runs, by `suspended:` in Git or `syncd
	// suspend` on the host (Project.Suspended says who, why, until when).
	Suspended State = "suspended"
)

// Health of a project's containers.
type Health string

// Healths.
const (
	Healthy   Health = "healthy"
	Unhealthy Health = "unhealthy"
	Starting  Health = "starting"
	NoHealth  Health = "none" // no healthcheck
)

// Host is the status document of one host: hosts/<host>.yaml on the status
// branch, state/status.json on the host.
type Host struct {
	Host          string `yaml:"host" json:"host"`
	Wave          int    `yaml:"wave" json:"wave"`
	DesiredCommit string `yaml:"desired_commit" json:"desired_commit"`
	AppliedCommit string `yaml:"applied_commit" json:"applied_commit"`
	State         State  `yaml:"state" json:"state"`
	// UpdatedAt is when the document was written: the heartbeat. Equal
	// leaves it out.
	UpdatedAt time.Time `yaml:"updated_at" json:"updated_at"`
	// Sequence counts the documents the host pushed: with UpdatedAt it
	// orders them, so that a reader knows an older one (a replay) from
	// the newest it has seen. Equal leaves it out.
	Sequence     uint64 `yaml:"sequence,omitempty" json:"sequence,omitempty"`
	SyncdVersion string `yaml:"syncd_version,omitempty" json:"syncd_version,omitempty"`
	// AgeRecipient is the public half of the host's age key, for `syncd
	// enroll`.
	AgeRecipient string `yaml:"age_recipient,omitempty" json:"age_recipient,omitempty"`
	// StatusKey is the public half of the key this document is signed
	// with (authorized_keys form), for `syncd enroll`.
	StatusKey string `yaml:"status_key,omitempty" json:"status_key,omitempty"`
	// EnrolmentMAC binds AgeRecipient and StatusKey to the host under
	// the one-time enrolment secret init-host made (HMAC-SHA256, hex),
	// until the host is enrolled: what `syncd enroll --token` checks.
	EnrolmentMAC string `yaml:"enrolment_mac,omitempty" json:"enrolment_mac,omitempty"`
	// UnsignedCommits says the host applies commits without checking
	// their signatures (no allowed signers: `init-host --unsigned`).
	UnsignedCommits bool `yaml:"unsigned_commits,omitempty" json:"unsigned_commits,omitempty"`
	// Message says what a person must do, when something must be done.
	Message   string `yaml:"message,omitempty" json:"message,omitempty"`
	LastCycle Cycle  `yaml:"last_cycle,omitempty" json:"last_cycle,omitzero"`
	// ConvergedSince is when the host became converged and healthy at
	// AppliedCommit (kept while it stays so): the wave gate's bake time
	// counts from it.
	ConvergedSince time.Time `yaml:"converged_since,omitempty" json:"converged_since,omitzero"`
	// BakedCommit is this host's attestation, in its signed document,
	// that it ran that commit converged and healthy from ConvergedSince
	// for the bake time (syncd.yaml waves.bake_time), which ended at
	// BakedAt. The wave gate lets the next wave go only on a document that
	// attests the commit gated and was written after its bake ended: the
	// document written right after the apply, kept or pushed again once
	// the host stopped mid-bake, never does.
	BakedCommit string    `yaml:"baked_commit,omitempty" json:"baked_commit,omitempty"`
	BakedAt     time.Time `yaml:"baked_at,omitempty" json:"baked_at,omitzero"`
	// FailedCommit is a commit whose release failed on this host (rolled
	// back, refused, held, invalid), with FailedError (redacted): it halts
	// that commit's rollout for the higher waves.
	FailedCommit string `yaml:"failed_commit,omitempty" json:"failed_commit,omitempty"`
	FailedError  string `yaml:"failed_error,omitempty" json:"failed_error,omitempty"`
	// Rollout is this host's wave gate when it holds the head back.
	Rollout *Rollout `yaml:"rollout,omitempty" json:"rollout,omitempty"`
	// Drift is how many containers the last cycle found changed by hand.
	Drift    int       `yaml:"drift" json:"drift"`
	Projects []Project `yaml:"projects,omitempty" json:"projects,omitempty"`
	// Jobs holds the last result of each day-2 job (backup, scan, probe).
	Jobs []Job `yaml:"jobs,omitempty" json:"jobs,omitempty"`

	// Trust is what the reader made of the document's signature (Judge);
	// Why says why when it does not count. Neither is part of the
	// document.
	Trust Trust  `yaml:"-" json:"-"`
	Why   string `yaml:"-" json:"-"`
	// raw and sig are the document's exact bytes on the status branch and
	// its armored signature beside it ("" for none).
	raw []byte
	sig string
}

// Rollout is what the wave gate says about the head for this host: it
// waits for lower-wave hosts, or the head is halted by one that failed it.
type Rollout struct {
	// State is "waiting" or "halted".
	State string `yaml:"state" json:"state"`
	// Commit is the head commit held back.
	Commit string `yaml:"commit" json:"commit"`
	// Until is, when every wait is a bake, when the last one ends.
	Until time.Time `yaml:"until,omitempty" json:"until,omitzero"`
	// Hosts are the lower-wave hosts it waits for, or that failed Commit.
	Hosts []RolloutHost `yaml:"hosts,omitempty" json:"hosts,omitempty"`
	// Skipped are the lower-wave hosts passed over (waves.skip).
	Skipped []string `yaml:"skipped,omitempty" json:"skipped,omitempty"`
}

// RolloutHost is one host that holds a rollout back, and why.
type RolloutHost struct {
	Host   string `yaml:"host" json:"host"`
	Wave   int    `yaml:"wave" json:"wave"`
	Reason string `yaml:"reason" json:"reason"`
}

// Cycle is the last reconcile cycle. Equal leaves out At and DurationMS.
type Cycle struct {
	At         time.Time `yaml:"at,omitempty" json:"at,omitzero"`
	DurationMS int64     `yaml:"duration_ms,omitempty" json:"duration_ms,omitempty"`
	Result     string    `yaml:"result,omitempty" json:"result,omitempty"`
	// Error is redacted.
	Error string `yaml:"error,omitempty" json:"error,omitempty"`
}

// Project is one Compose project of the host.
type Project struct {
	Name   string `yaml:"name" json:"name"`
	State  State  `yaml:"state" json:"state"`
	Commit string `yaml:"commit,omitempty" json:"commit,omitempty"`
	// ConfigHash maps a service to Compose's config hash.
	ConfigHash map[string]string `yaml:"config_hash,omitempty" json:"config_hash,omitempty"`
	Images     []Image           `yaml:"images,omitempty" json:"images,omitempty"`
	Health     Health            `yaml:"health,omitempty" json:"health,omitempty"`
	// Data are the paths of the project directory that hold what its
	// containers write (relative bind mounts): kept like volumes.
	Data []string `yaml:"data,omitempty" json:"data,omitempty"`
	// LastError is redacted.
	LastError string `yaml:"last_error,omitempty" json:"last_error,omitempty"`
	// Probes are the project's health probes (probes.go).
	Probes []Probe `yaml:"probes,omitempty" json:"probes,omitempty"`
	// Scan summarises the last scan of each image the project runs.
	Scan []ImageScan `yaml:"scan,omitempty" json:"scan,omitempty"`
	// Suspended says who suspended the project, why and until when.
	Suspended *Suspension `yaml:"suspended,omitempty" json:"suspended,omitempty"`
}

// String says who suspended it, until when and why ("by … until …: …").
func (s Suspension) String() string {
	until := ""
	if !s.Until.IsZero() {
		until = " until " + s.Until.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("by %s%s: %s", escape.Text(s.By), until, escape.Text(s.Reason)) // one line, as plan's
}

// Suspension is who left a project as it runs (a file of the repository,
// or a person on the host), why, and until when (zero: until resumed).
type Suspension struct {
	By     string    `yaml:"by" json:"by"`
	Reason string    `yaml:"reason" json:"reason"`
	Until  time.Time `yaml:"until,omitempty" json:"until,omitzero"`
}

// Image is what one service runs.
type Image struct {
	Service string `yaml:"service" json:"service"`
	Ref     string `yaml:"ref" json:"ref"`
	ID      string `yaml:"id" json:"id"` // sha256:…
	// Digest is the repository digest, when the engine knows one.
	Digest string `yaml:"digest,omitempty" json:"digest,omitempty"`
}

// Job is the last run of one day-2 job. Equal leaves out At and DurationMS.
type Job struct {
	Name       string    `yaml:"name" json:"name"`
	At         time.Time `yaml:"at,omitempty" json:"at,omitzero"`
	DurationMS int64     `yaml:"duration_ms,omitempty" json:"duration_ms,omitempty"`
	Result     string    `yaml:"result" json:"result"`
	// Error is redacted.
	Error string `yaml:"error,omitempty" json:"error,omitempty"`
	// LastSuccess is when the job last succeeded; Detail what its last run
	// did (a backup: its run, snapshots and bytes added). Equal leaves
	// both out.
	LastSuccess time.Time `yaml:"last_success,omitempty" json:"last_success,omitzero"`
	Detail      string    `yaml:"detail,omitempty" json:"detail,omitempty"`
	// LastDrill, on an app's backup job, is the last restore drill of its
	// backups (`syncd drill`). Equal leaves out its time, duration and
	// detail.
	LastDrill *Drill `yaml:"last_drill,omitempty" json:"last_drill,omitempty"`
}

// Drill results.
const (
	DrillPassed = "passed"
	DrillFailed = "failed"
)

// Drill is the last restore drill of one app: the run it restored into a
// throwaway project, and whether every check passed.
type Drill struct {
	Run        string    `yaml:"run" json:"run"`
	At         time.Time `yaml:"at" json:"at"`
	DurationMS int64     `yaml:"duration_ms" json:"duration_ms"`
	Result     string    `yaml:"result" json:"result"`
	// Detail is what passed, or the check that failed and why (redacted).
	Detail string `yaml:"detail,omitempty" json:"detail,omitempty"`
}

// Equal reports whether a and b say the same thing: the heartbeat time and
// the times and durations of the last cycle and jobs are left out, so a
// poll that changed nothing commits nothing.
func Equal(a, b Host) bool {
	ya, erra := marshal(significant(a))
	yb, errb := marshal(significant(b))
	return erra == nil && errb == nil && bytes.Equal(ya, yb)
}

// significant is h without what Equal leaves out.
func significant(h Host) Host {
	h = normalise(h)
	h.UpdatedAt, h.Sequence = time.Time{}, 0
	h.LastCycle.At, h.LastCycle.DurationMS = time.Time{}, 0
	for i := range h.Jobs {
		h.Jobs[i].At, h.Jobs[i].DurationMS = time.Time{}, 0
		h.Jobs[i].LastSuccess, h.Jobs[i].Detail = time.Time{}, ""
		if d := h.Jobs[i].LastDrill; d != nil {
			h.Jobs[i].LastDrill = &Drill{Run: d.Run, Result: d.Result}
		}
	}
	return h
}

// normalise returns a deep copy of h in its canonical order (projects and
// jobs by name, images by service), times in UTC to the second.
func normalise(h Host) Host {
	h.UpdatedAt = h.UpdatedAt.UTC().Truncate(time.Second)
	h.LastCycle.At = h.LastCycle.At.UTC().Truncate(time.Second)
	h.ConvergedSince = h.ConvergedSince.UTC().Truncate(time.Second)
	h.BakedAt = h.BakedAt.UTC().Truncate(time.Second)
	if h.Rollout != nil {
		ro := *h.Rollout
		ro.Until = ro.Until.UTC().Truncate(time.Second)
		ro.Hosts = slices.Clone(ro.Hosts)
		ro.Skipped = slices.Clone(ro.Skipped)
		h.Rollout = &ro
	}
	h.Projects = slices.Clone(h.Projects)
	for i := range h.Projects {
		p := &h.Projects[i]
		if len(p.ConfigHash) > 0 {
			m := make(map[string]string, len(p.ConfigHash))
			for k, v := range p.ConfigHash {
				m[k] = v
			}
			p.ConfigHash = m
		}
		p.Images = slices.Clone(p.Images)
		slices.SortStableFunc(p.Images, func(a, b Image) int {
			if c := strings.Compare(a.Service, b.Service); c != 0 {
				return c
			}
			return strings.Compare(a.Ref, b.Ref)
		})
		p.Probes = normaliseProbes(p.Probes)
	}
	slices.SortStableFunc(h.Projects, func(a, b Project) int { return strings.Compare(a.Name, b.Name) })
	h.Jobs = slices.Clone(h.Jobs)
	for i := range h.Jobs {
		h.Jobs[i].At = h.Jobs[i].At.UTC().Truncate(time.Second)
		if d := h.Jobs[i].LastDrill; d != nil {
			cp := *d
			cp.At = cp.At.UTC().Truncate(time.Second)
			h.Jobs[i].LastDrill = &cp
		}
	}
	slices.SortStableFunc(h.Jobs, func(a, b Job) int { return strings.Compare(a.Name, b.Name) })
	return h
}

// redacted applies redact to every error string of h (already a copy).
func redacted(h Host, redact func(string) string) Host {
	if redact == nil {
		return h
	}
	// Every string of the document, not a list of fields that might hold
	// a secret: an image reference, a probe target or a job's detail can
	// be made of one. The copy leaves the caller's document as it was.
	cp, err := deepCopy(h)
	if err != nil {
		return Host{Host: h.Host, State: h.State} // cannot happen: Host is plain data
	}
	escape.Map(&cp, redact)
	cp.Trust, cp.Why = h.Trust, h.Why
	return cp
}

// deepCopy copies a document through JSON, so no slice, map or pointer is
// shared with the original.
func deepCopy(h Host) (Host, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return Host{}, err
	}
	var cp Host
	err = json.Unmarshal(b, &cp)
	return cp, err
}

func marshal(h Host) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(h); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// maxDocument caps what is read of one status file: a host's document is a
// few kilobytes; anything far larger is not one.
const maxDocument = 1 << 20

func unmarshal(data []byte) (Host, error) {
	var h Host
	if len(data) > maxDocument {
		return h, fmt.Errorf("%d bytes, more than a status document can be (%d)", len(data), maxDocument)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(false) // a newer syncd may add fields
	if err := dec.Decode(&h); err != nil {
		return Host{}, err
	}
	return h, nil
}

const localFile = "status.json"

// WriteLocal writes h as stateDir/status.json, atomically, mode 0600. The
// caller passes a redacted document (Writer.Write does this for it).
func WriteLocal(stateDir string, h Host) error {
	data, err := json.MarshalIndent(normalise(h), "", "  ")
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	return state.WriteFile(filepath.Join(stateDir, localFile), append(data, '\n'), 0o600)
}

// ReadLocal reads stateDir/status.json, for `syncd status` on the host.
func ReadLocal(stateDir string) (Host, error) {
	p := filepath.Join(stateDir, localFile)
	data, err := os.ReadFile(p)
	if err != nil {
		// The error names the file; the caller says what to do (fs.ErrNotExist: no cycle yet).
		return Host{}, err
	}
	var h Host
	if err := json.Unmarshal(data, &h); err != nil {
		return Host{}, fmt.Errorf("read %s: %w", p, err)
	}
	return h, nil
}
