package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/syncd-dev/syncd/internal/bootstrap"
	"github.com/syncd-dev/syncd/internal/engine"
	"github.com/syncd-dev/syncd/internal/jobs"
	"github.com/syncd-dev/syncd/internal/jobs/probe"
	"github.com/syncd-dev/syncd/internal/jobs/scan"
	"github.com/syncd-dev/syncd/internal/notify"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/reconcile"
	"github.com/syncd-dev/syncd/internal/redact"
	"github.com/syncd-dev/syncd/internal/runtime"
	"github.com/syncd-dev/syncd/internal/schedule"
	"github.com/syncd-dev/syncd/internal/secrets"
	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/state"
	"github.com/syncd-dev/syncd/internal/status"
)

// host is what a host's cycles and jobs are made of, opened once from the
// flags, the same way for `syncd agent`, `syncd sync` and the one-shot
// jobs: every capability is a field, none is found by a type assertion.
type host struct {
	rec     *reconcile.Reconciler
	eng     *engine.Engine
	store   *state.Store
	scanner *scan.Scanner // nil without the state directory's lock (plan)
	jobs    *jobs.Runner
	close   func()
}

// open opens the host's state directory (locked, or only read for plan),
// the engine and the reconciler, and the jobs that share its locks.
func (f *cycleFlags) open(ctx context.Context, c *cli, lock bool, n *notify.Notifier) (*host, error) {
	log, err := newLogger(c, f.logFormat)
	if err != nil {
		return nil, err
	}
	// Without the lock (plan), the state directory is only read: a running
	// agent or sync owns it.
	store := state.OpenReadOnly(f.stateDir)
	unlock := func() {}
	if lock {
		if store, err = state.Open(f.stateDir); err != nil {
			return nil, err
		}
		if unlock, err = store.Lock(); err != nil {
			return nil, err
		}
		if err := store.Upgrade(); err != nil {
			unlock()
			return nil, err
		}
	}
	eng, err := engine.New(ctx, engine.Options{Logger: log.With("component", "engine")})
	if err != nil {
		unlock()
		return nil, err
	}
	h := &host{eng: eng, store: store, close: func() { eng.Close(); unlock() }}
	locks := &schedule.Locks{}
	h.rec = &reconcile.Reconciler{Host: f.host, Engine: eng, Store: store, Decrypter: &lazyDecrypter{path: f.ageKey}, Logger: log,
		Redaction: &c.redaction, Probes: &probe.Gate{Checker: &probe.Checker{Containers: eng}}, Locks: locks}
	h.jobs = &jobs.Runner{Host: f.host, Restic: f.restic, Engine: eng, Drills: drillEngine{eng}, Store: store, Locks: locks, Notify: n, Log: log.With("component", "jobs")}
	if lock {
		// plan never pulls or scans: the gate belongs to apply. The
		// scheduled scan shares the deploy gate's scanner and its cache.
		h.scanner = f.scanner(log)
		h.rec.Gate = h.scanner
		h.jobs.Scanner = h.scanner
		h.jobs.Observe = func(ctx context.Context) (plan.Observed, error) { return eng.Observe(ctx, f.host) }
		h.rec.BeforeUpgrade = h.jobs.BeforeUpgrade
	}
	return h, nil
}

// runtime makes the host's runtime: the source --repo names, the one
// writer of its status (on its status branch for a Git source, unless
// statusBranch is ""), the wave gate, and its self-enrolment.
func (f *cycleFlags) runtime(ctx context.Context, c *cli, h *host, g gitFlags, statusBranch, enrollToken string, n *notify.Notifier, m *probe.Monitor) (*runtime.Runtime, error) {
	log := h.rec.Logger
	src, git, err := newSource(f.repo, f.stateDir, g)
	if err != nil {
		return nil, err
	}
	// The host's own age key, made at its first start (its private half
	// never leaves it); a key it made itself lets it enrol.
	key, err := secrets.OpenHostKey(f.ageKey, f.host)
	if err != nil {
		log.Warn("cannot make the host's age key; hosts with secrets need one", "err", err)
	} else if key.Made {
		log.Info("made the host's own age key; its recipient is published in the status for `syncd enroll`", "file", f.ageKey, "recipient", key.Recipient)
	}
	h.rec.Enrolling = key
	w := &status.Writer{Dir: filepath.Join(f.stateDir, "status-repo"), StateDir: f.stateDir, Host: f.host, Now: c.now,
		Logger: log.With("component", "status"), Redact: func(s string) string { return c.redaction.Get().Text(s) }}
	var history runtime.History
	if git != nil && statusBranch != "" {
		b := &source.StatusBranches{Git: git, Name: statusBranch}
		w.Publisher, w.Branches, history = b, b, git
		// The host signs its documents with a key of its own, made at its
		// first start; main enrols its public half (host.yaml status_key).
		sk, made, err := status.OpenKey(f.stateDir, f.host)
		if err != nil {
			return nil, err
		}
		if made {
			log.Info("made the host's status key; its public half is published in the status for `syncd enroll`", "file", filepath.Join(f.stateDir, status.KeyFile), "status_key", sk.Public())
		}
		w.Key = sk
	}
	en := runtime.Enrolment{AgeRecipient: key.Recipient, UnsignedCommits: git != nil && git.Signers == nil}
	if w.Key != nil {
		en.MAC, en.Done = bootstrap.Enrolment(enrollToken, f.host, key.Recipient, w.Key.Public(), log)
	}
	return runtime.New(runtime.Deps{Host: f.host, Version: version(), Source: src, Reconciler: h.rec, Engine: h.eng, Status: w,
		Jobs: h.jobs, Notify: n, Probes: m, History: history, Scans: scanSummaries(h.scanner), Enrolment: en, Now: c.now, Log: log}), nil
}

// scanSummaries is the status's view of the gate's scan results: the
// same Scanner, whose cache is in memory as well as on disk.
func scanSummaries(s *scan.Scanner) func(string) (status.ImageScan, bool) {
	if s == nil {
		return nil
	}
	return func(id string) (status.ImageScan, bool) {
		sum, ok := s.Summary(id)
		if !ok {
			return status.ImageScan{}, false
		}
		return status.ImageScan{Counts: sum.Counts, Refused: sum.Refusing, DB: sum.DB.UpdatedAt.Format(time.DateOnly)}, true
	}
}

// newSource builds the source --repo names (a Git checkout lives in the
// state directory); git is the Git source, nil for a local directory.
func newSource(repo, stateDir string, g gitFlags) (src runtime.Source, git *source.Git, err error) {
	if !source.IsURL(repo) {
		if g.allowedSigners != "" || g.pgpKeyring != "" {
			return nil, nil, fmt.Errorf("--allowed-signers and --pgp-keyring need a Git URL as --repo; %s is a directory", repo)
		}
		dir, err := filepath.Abs(repo)
		if err != nil {
			return nil, nil, err
		}
		return source.Local{Dir: dir}, nil, nil
	}
	git = &source.Git{URL: repo, Branch: g.branch, Dir: stateDir, TokenFile: g.tokenFile, SSHKeyFile: g.sshKey, KnownHostsFile: g.knownHosts}
	if g.allowedSigners != "" || g.pgpKeyring != "" {
		if git.Signers, err = source.LoadSigners(g.allowedSigners, g.pgpKeyring); err != nil {
			return nil, nil, err
		}
	}
	return git, git, nil
}

// displayRepo shows a repository without credentials someone put in it.
func displayRepo(repo string) string { return redact.URL(repo) }

// drillEngine is the engine as a restore drill uses it: Up is Apply with
// the drill's health timeout, no soak (the drill's own checks follow).
type drillEngine struct{ *engine.Engine }

func (e drillEngine) Up(ctx context.Context, p *types.Project, timeout time.Duration) error {
	return e.Apply(ctx, p, engine.ApplyOptions{Timeout: timeout})
}
