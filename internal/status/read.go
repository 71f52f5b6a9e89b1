package status

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/syncd-dev/syncd/internal/escape"
	"github.com/syncd-dev/syncd/internal/rollout"
)

// ErrNoBranch means no host has reported yet: the status branch does not
// exist.
var ErrNoBranch = errors.New("the status branch does not exist yet: no host has reported")

// ReadAll fetches the status branch (depth 1, in memory) and parses every
// hosts/*.yaml. A file that cannot be read is reported by name in the
// joined error and the others are still returned, sorted by host.
func ReadAll(ctx context.Context, url, branch string, auth transport.AuthMethod) ([]Host, error) {
	if branch == "" {
		branch = DefaultBranch
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, networkTimeout)
		defer cancel()
	}
	st := memory.NewStorage()
	remote := git.NewRemote(st, &config.RemoteConfig{Name: "origin", URLs: []string{url}})
	tip, err := fetchTip(ctx, remote, st, branch, auth)
	if err != nil {
		return nil, err
	}
	if tip == nil {
		return nil, ErrNoBranch
	}
	root, err := tip.Tree()
	if err != nil {
		return nil, err
	}
	hostsTree, err := root.Tree("hosts")
	if err != nil {
		return nil, fmt.Errorf("%s has no hosts/ directory: %w", branch, err)
	}
	var (
		hosts []Host
		errs  []error
	)
	for _, e := range hostsTree.Entries {
		name := "hosts/" + e.Name
		if !e.Mode.IsFile() || path.Ext(e.Name) != ".yaml" {
			continue
		}
		if e.Mode == filemode.Symlink {
			errs = append(errs, fmt.Errorf("%s: a symbolic link, not a status document", name))
			continue
		}
		h, err := readHostFile(hostsTree, e.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		hosts = append(hosts, h)
	}
	slices.SortFunc(hosts, func(a, b Host) int { return strings.Compare(a.Host, b.Host) })
	return hosts, errors.Join(errs...)
}

func readHostFile(t *object.Tree, name string) (Host, error) {
	f, err := t.File(name)
	if err != nil {
		return Host{}, err
	}
	if f.Size > maxDocument {
		return Host{}, fmt.Errorf("%d bytes, more than a status document can be (%d)", f.Size, maxDocument)
	}
	data, err := f.Contents()
	if err != nil {
		return Host{}, err
	}
	h, err := unmarshal([]byte(data))
	if err != nil {
		return Host{}, err
	}
	if want := strings.TrimSuffix(name, ".yaml"); h.Host != want {
		return Host{}, fmt.Errorf("names host %q, not %q", h.Host, want)
	}
	// The exact bytes, for the signature: escaping below changes only the
	// fields shown.
	h.raw = []byte(data)
	// The signature beside it, when there is one; one that cannot be
	// read is no signature (the document is judged unsigned by it).
	if e, err := t.FindEntry(name + sigSuffix); err == nil && e.Mode == filemode.Regular {
		if f, err := t.File(name + sigSuffix); err == nil && f.Size <= maxSignature {
			if sig, err := f.Contents(); err == nil {
				h.sig = sig
			}
		}
	}
	// Every host can push the status branch: its text is another party's,
	// escaped here, where it enters, for every view that shows it.
	escape.Strings(&h)
	return h, nil
}

// sigSuffix names a document's signature: hosts/<host>.yaml.sig, an
// armored SSHSIG over the document's exact bytes (Namespace).
const sigSuffix = ".sig"

// maxSignature caps what is read of a signature (an ed25519 SSHSIG is
// about 300 bytes).
const maxSignature = 8 << 10

// Table writes hosts as a fixed-width table sorted by wave then host:
// HOST WAVE APPLIED STATE AGE SIGNATURE. A host whose applied commit is
// not its desired commit is marked with "*" after the applied commit; AGE
// is the time since its last document ("+3d" for one dated ahead of now);
// SIGNATURE is what the reader made of it (Judge). Notes below say why a
// document does not count, and which are dated ahead of the clock.
func Table(w io.Writer, hosts []Host, now time.Time) {
	hosts = slices.Clone(hosts)
	slices.SortStableFunc(hosts, func(a, b Host) int {
		if a.Wave != b.Wave {
			return a.Wave - b.Wave
		}
		return strings.Compare(a.Host, b.Host)
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tWAVE\tAPPLIED\tSTATE\tAGE\tSIGNATURE")
	behind := false
	var notes []string
	for _, h := range hosts {
		applied := short(h.AppliedCommit)
		if h.AppliedCommit != h.DesiredCommit {
			applied += "*"
			behind = true
		}
		st := string(h.State)
		if st == "" {
			st = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", h.Host, h.Wave, applied, st, age(now, h.UpdatedAt), cmp.Or(string(h.Trust), "-"))
		if h.Trust == Unverified {
			notes = append(notes, fmt.Sprintf("! %s: unverified: %s", h.Host, h.Why))
		}
		if h.Ahead(now) {
			notes = append(notes, fmt.Sprintf("! %s: dated %s ahead of this clock (more than %s): not fresh", h.Host, h.UpdatedAt.Sub(now).Round(time.Second), rollout.MaxSkew))
		}
	}
	tw.Flush()
	if behind {
		fmt.Fprintln(w, "* applied commit differs from the desired commit")
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
}

// age is how long ago t was, in its largest whole unit: 42s, 5m, 3h, 2d;
// "+2d" for a time ahead of now.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d, sign := now.Sub(t), ""
	if d < 0 {
		d, sign = -d, "+"
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%s%ds", sign, int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%s%dm", sign, int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%s%dh", sign, int(d/time.Hour))
	}
	return fmt.Sprintf("%s%dd", sign, int(d/(24*time.Hour)))
}
