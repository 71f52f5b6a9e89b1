package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/syncd-dev/syncd/internal/abbrev"
	"github.com/syncd-dev/syncd/internal/desired"
	"github.com/syncd-dev/syncd/internal/escape"
	"github.com/syncd-dev/syncd/internal/plan"
	"github.com/syncd-dev/syncd/internal/proc"
)

// LabelDrill marks everything a restore drill creates (its containers,
// network and volumes) with the app's name. The app's own project never
// carries it: the drill's project name, and every name derived from it,
// is the app's name, "-drill-" and the run's short form.
const LabelDrill = "dev.syncd.drill"

// DrillEngine is what a drill needs of Docker beyond Engine
// (internal/engine implements it, through the wiring's Up).
type DrillEngine interface {
	// Up creates and starts a project and waits until every service runs
	// and is healthy, within timeout.
	Up(ctx context.Context, p *types.Project, timeout time.Duration) error
	// CreateBindVolume makes a labelled local volume whose data is dir.
	CreateBindVolume(ctx context.Context, name, dir string, labels map[string]string) error
	// RemoveLabelled removes the containers, networks and volumes
	// labelled key=value whose project or name starts with prefix.
	RemoveLabelled(ctx context.Context, key, value, prefix string) (int, error)
}

// exitCoder is a command that ran in a container and exited non-zero
// (engine.ExitError).
type exitCoder interface {
	ExitCode() int
	ErrOutput() string
}

// Check is the verdict of one step of a drill.
type Check struct {
	Name   string
	Passed bool
	// Detail says why it failed (escaped and redacted), or what it did.
	Detail string
}

// DrillResult is what a drill did.
type DrillResult struct {
	Run     string
	Project string
	Checks  []Check
	// Detail is one line: what passed, or the first failure.
	Detail string
}

// maxCheckOutput is how much of a verify command's standard output is
// read (and matched against its pattern).
const maxCheckOutput = 1 << 20

// DrillPrefix is what the names of every drill of app start with.
func DrillPrefix(app string) string { return app + "-drill-" }

// DrillName is the Compose project name of app's drill of run: the run's
// random suffix when it is plain hex, else a hash of the run's ID (a run
// ID is a tag anyone holding the repository's password writes).
func DrillName(app, run string) string {
	short := run[strings.LastIndexByte(run, '-')+1:]
	if len(short) < 4 || len(short) > 12 || strings.Trim(short, "0123456789abcdef") != "" {
		sum := sha256.Sum256([]byte(run))
		short = hex.EncodeToString(sum[:4])
	}
	return DrillPrefix(app) + short
}

// DrillDir is where app's drill keeps what it extracted, in the state
// directory.
func (r *Runner) DrillDir(app string) string { return filepath.Join(r.StateDir, "drills", app) }

// CleanDrills removes what a drill of app left: its containers, network
// and volumes (by label and name) and its directory.
func (r *Runner) CleanDrills(ctx context.Context, eng DrillEngine, app string) error {
	n, err := eng.RemoveLabelled(ctx, LabelDrill, app, DrillPrefix(app))
	if n > 0 {
		r.log().Info("drill: removed what a drill left", "app", app, "removed", n)
	}
	if rerr := os.RemoveAll(r.DrillDir(app)); rerr != nil {
		err = errors.Join(err, fmt.Errorf("remove the drill directory: %w", rerr))
	}
	return err
}

// Drill proves run of app restorable without touching what runs: it
// brings up a throwaway project (DrillName) from the app's rendered
// project p, with no published ports, a network of its own, volumes of
// its own and bind paths under its own directory (DrillDir), all filled
// from the run; streams the run's dumps into it with their
// restore_command; waits for its healthchecks; runs checks inside it; and
// removes it all, whatever happened. The error names the first step that
// failed; the result has every step's verdict.
func (r *Runner) Drill(ctx context.Context, eng DrillEngine, app App, p *desired.Project, checks []desired.DrillCheck, run Run) (res DrillResult, err error) {
	res = DrillResult{Run: run.ID, Project: DrillName(app.Name, run.ID)}
	fail := func(name string, err error) (DrillResult, error) {
		msg := escape.Text(abbrev.Line(r.Restic.redact(err.Error())))
		res.Checks = append(res.Checks, Check{Name: name, Detail: msg})
		res.Detail = name + ": " + msg
		return res, fmt.Errorf("drill of %s from run %s failed: %s", app.Name, run.ID, res.Detail)
	}
	if !run.Complete() {
		return fail("run", fmt.Errorf("run %s is incomplete (%s): drill a complete run", run.ID, run.partNames()))
	}
	if r.StateDir == "" {
		return fail("setup", errors.New("a drill needs the state directory (its drill directory is there)"))
	}
	// What a killed drill left goes first; all of this one goes at the
	// end, whatever happened, even when ctx ended.
	if err := r.CleanDrills(ctx, eng, app.Name); err != nil {
		return fail("setup", fmt.Errorf("remove what an earlier drill left: %w", err))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if cerr := r.CleanDrills(cctx, eng, app.Name); cerr != nil {
			r.log().Error("drill: could not remove the drill project", "app", app.Name, "project", res.Project, "err", cerr)
			if err == nil {
				res, err = fail("cleanup", cerr)
			}
		}
	}()
	cs, err := r.Engine.Containers(ctx, res.Project)
	if err != nil {
		return fail("setup", err)
	}
	if len(cs) > 0 {
		return fail("setup", fmt.Errorf("containers of project %s that are not a drill's run on the engine (%s): the drill refuses to share its name", res.Project, cs[0].Name))
	}
	dir := r.DrillDir(app.Name)
	proj, binds, err := drillProject(p, app, res.Project, dir)
	if err != nil {
		return fail("setup", err)
	}

	// The run's volumes and paths, into the drill directory only.
	if _, err := r.extract(ctx, run, dir, false); err != nil {
		return fail("restore", err)
	}
	root, err := extractRoot(dir)
	if err != nil {
		return fail("restore", err)
	}
	defer root.Close()
	labels := map[string]string{LabelDrill: app.Name}
	for _, key := range slices.Sorted(maps.Keys(proj.Volumes)) {
		at, err := beneath(root, filepath.Join("volumes", key))
		if err == nil {
			err = eng.CreateBindVolume(ctx, proj.Volumes[key].Name, at, labels)
		}
		if err != nil {
			return fail("restore", fmt.Errorf("volume %s: %w", key, err))
		}
	}
	for _, rel := range binds {
		if err := bindPlace(root, rel); err != nil {
			return fail("restore", err)
		}
	}
	res.Checks = append(res.Checks, Check{Name: "restore", Passed: true,
		Detail: fmt.Sprintf("%d volume(s) and %d path(s) restored into %s", len(proj.Volumes), len(binds), dir)})

	if err := eng.Up(ctx, proj, app.Ready); err != nil {
		return fail("healthchecks", fmt.Errorf("the drill project %s did not start healthy: %w", res.Project, err))
	}
	res.Checks = append(res.Checks, Check{Name: "healthchecks", Passed: true, Detail: "every service runs and is healthy"})

	if cs, err = r.Engine.Containers(ctx, res.Project); err != nil {
		return fail("dumps", err)
	}
	dumps := map[string]desired.Dump{}
	for _, d := range app.Dumps {
		dumps[d.Filename] = d
	}
	for _, s := range run.Snapshots {
		file, ok := strings.CutPrefix(s.Kind(), kindDump)
		if !ok {
			continue
		}
		name := "dump " + escape.Text(file)
		d, ok := dumps[file]
		if !ok || len(d.RestoreCommand) == 0 {
			return fail(name, fmt.Errorf("apps/%s/app.yaml backup.dumps has no restore_command for %s: a drill restores every dump of the run", app.Name, escape.Text(file)))
		}
		id, err := running(cs, res.Project, d.Service, "a restore_command")
		if err == nil {
			err = r.streamDump(ctx, id, d, s)
		}
		if err != nil {
			return fail(name, err)
		}
		res.Checks = append(res.Checks, Check{Name: name, Passed: true, Detail: "restored with its restore_command"})
	}

	for i, c := range checks {
		name := verifyName(i, c)
		id, err := running(cs, res.Project, c.Service, "a verify check")
		if err != nil {
			return fail(name, err)
		}
		if err := r.verify(ctx, id, c); err != nil {
			return fail(name, err)
		}
		res.Checks = append(res.Checks, Check{Name: name, Passed: true, Detail: "passed"})
	}
	res.Detail = fmt.Sprintf("run %s restored into %s: %d step(s) passed", run.ID, res.Project, len(res.Checks))
	return res, nil
}

// verifyName names verify check i as app.yaml holds it.
func verifyName(i int, c desired.DrillCheck) string {
	return fmt.Sprintf("verify[%d] (%s: %s)", i, c.Service, abbrev.Text(escape.Text(strings.Join(c.Command, " ")), 80))
}

// verify runs check c in container id: its exit code and, with a pattern,
// its standard output must be what c wants.
func (r *Runner) verify(ctx context.Context, id string, c desired.DrillCheck) error {
	re, err := regexp.Compile(c.Output) // validated with app.yaml
	if err != nil {
		return err
	}
	out := proc.NewLimit(maxCheckOutput, nil)
	err = r.Engine.Exec(ctx, id, c.Command, nil, out)
	code, errText := 0, ""
	var xe exitCoder
	switch {
	case errors.As(err, &xe):
		code, errText = xe.ExitCode(), xe.ErrOutput()
	case err != nil:
		return err
	}
	first := firstLine(out.String())
	if first == "" {
		first = firstLine(errText)
	}
	shown := "no output"
	if first != "" {
		shown = "first line: " + escape.Text(abbrev.Text(r.Restic.redact(first), 200))
	}
	switch {
	case code != c.Exit:
		return fmt.Errorf("exited %d, want %d (%s)", code, c.Exit, shown)
	case c.Output != "" && !re.Match(out.Bytes()):
		return fmt.Errorf("exited %d, but its output does not match %q (%s)", code, c.Output, shown)
	}
	return nil
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

// bindPlace makes rel, beneath root, the place a bind mount of the drill
// reads: what the run restored there (a file or a directory), or an empty
// directory. A symlink is refused, never followed.
func bindPlace(root *os.Root, rel string) error {
	if _, err := beneath(root, filepath.Dir(rel)); err != nil {
		return err
	}
	fi, err := root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		_, err = beneath(root, rel)
		return err
	case err != nil:
		return fmt.Errorf("drill: %w", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("drill: %s is a symlink in the run; a drill mounts only files and directories of its own", filepath.Join(root.Name(), rel))
	}
	return nil
}

// drillProject is p made into app's drill project name: every published
// port removed, one network of its own, every named volume the drill's
// own (created by the drill, external to Compose), every bind of the
// app's project directory or of a backup path moved beneath dir, no
// container_name, none of syncd's labels and LabelDrill on everything.
// It returns the project and the bind places it uses, relative to dir.
// A read-only bind elsewhere is kept; a writable one is refused.
func drillProject(p *desired.Project, app App, name, dir string) (*types.Project, []string, error) {
	if p == nil || p.Compose == nil {
		return nil, nil, fmt.Errorf("app %s has no rendered project", app.Name)
	}
	proj := p.Compose.WithoutUnresolvedOptionalDependencies() // a deep copy
	proj.Name = name
	labels := types.Labels{LabelDrill: app.Name}

	vols := types.Volumes{}
	for key := range proj.Volumes {
		vols[key] = types.VolumeConfig{Name: name + "_" + key, External: true, Labels: labels}
	}
	proj.Volumes = vols
	proj.Networks = types.Networks{"default": types.NetworkConfig{Name: name + "_default", Labels: labels}}

	// Where a bind's source lies in the app's own places, it is moved
	// beneath the drill directory: paths/<absolute source>, where the
	// run's paths are extracted.
	backedUp := func(src string) bool {
		return slices.ContainsFunc(app.Paths, func(bp string) bool { _, ok := inside(filepath.Clean(bp), src); return ok })
	}
	inProject := func(src string) bool {
		_, ok := inside(filepath.Clean(p.Dir), src)
		return ok && p.Dir != ""
	}
	var binds []string
	var errs []error
	for _, svcName := range slices.Sorted(maps.Keys(proj.Services)) {
		svc := proj.Services[svcName]
		svc.Ports = nil
		svc.ContainerName = ""
		svc.ExternalLinks = nil
		if !strings.HasPrefix(svc.NetworkMode, types.ServicePrefix) {
			svc.NetworkMode = ""
			svc.Networks = map[string]*types.ServiceNetworkConfig{"default": nil}
		}
		// A namespace shared with a container that is not the drill's
		// (the app's own) is dropped; its volumes are refused.
		for _, mode := range []*string{&svc.Ipc, &svc.Pid} {
			if strings.HasPrefix(*mode, types.ContainerPrefix) || *mode == "host" {
				*mode = ""
			}
		}
		for _, from := range svc.VolumesFrom {
			if strings.HasPrefix(from, types.ContainerPrefix) {
				errs = append(errs, fmt.Errorf("service %s takes volumes_from %s, a container that is not the drill's: a drill would mount what it holds", svcName, from))
			}
		}
		for _, l := range []string{plan.LabelManaged, plan.LabelHost, plan.LabelCommit, plan.LabelSecrets, plan.LabelOwner} {
			delete(svc.CustomLabels, l)
		}
		svc.CustomLabels = svc.CustomLabels.Add(LabelDrill, app.Name)
		for i, v := range svc.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			src := filepath.Clean(v.Source)
			switch {
			case backedUp(src) || (!v.ReadOnly && inProject(src)):
				rel := filepath.Join("paths", src)
				svc.Volumes[i].Source = filepath.Join(dir, rel)
				binds = append(binds, rel)
			case v.ReadOnly:
				// Read-only: the drill reads it as the app does (a
				// repository file of the project directory, /etc/localtime).
			default:
				errs = append(errs, fmt.Errorf("service %s binds %s read-write, outside the app's project directory and backup.paths: a drill would write where the host keeps it; mount it read-only, or list it in backup.paths", svcName, src))
			}
		}
		proj.Services[svcName] = svc
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("drill of %s: %w", app.Name, err)
	}
	slices.Sort(binds)
	return proj, slices.Compact(binds), nil
}
