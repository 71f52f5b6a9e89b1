package bootstrap

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/syncd-dev/syncd/internal/state"
)

// Keys is what enrolment needs of the sops/age adapter, bound to the
// operator's own age key.
type Keys interface {
	// Operator returns the operator key's recipients.
	Operator() []string
	// RuleRecipients returns the recipients the creation rules in config
	// give file (slash path relative to the repository), as sops decides.
	RuleRecipients(config []byte, file string) ([]string, error)
	// FileRecipients returns the recipients a sops file is encrypted to.
	FileRecipients(name string, data []byte) ([]string, error)
	// Rekey re-encrypts the file's data key to recipients (updatekeys).
	Rekey(name string, data []byte, recipients []string) ([]byte, error)
	// Rotate gives the file a new data key encrypted to recipients and
	// returns its key names.
	Rotate(name string, data []byte, recipients []string) ([]byte, []string, error)
}

// File is what enroll did to one secrets file.
type File struct {
	Path   string // slash path relative to the repository
	Action string // "re-encrypted", "unchanged", "rotated"
	// Keys are the key names of a rotated file: values the removed host
	// knew, to change.
	Keys []string
}

// Result is what Enroll or Remove changed; nothing is written unless every
// file could be done.
type Result struct {
	Recipients []string // the host's rule now (Enroll) or what was taken out (Remove)
	Files      []File
}

var hostRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

func checkHost(host string) error {
	if !hostRE.MatchString(host) {
		return fmt.Errorf("--host %q: a host name is lower-case letters, digits, - and _ (its directory under hosts/)", host)
	}
	return nil
}

// Enroll adds recipient (already checked to be an age recipient) as the
// host's key to its creation rule in repo/.sops.yaml, with the operator's
// recipients beside it, and re-encrypts every secrets file that rule covers
// to the rule's recipients. A recipient this host had before (marked by a
// comment) is replaced. A statusKey, when given, becomes status_key in
// hosts/<host>/host.yaml (the rest of the file as it was). Nothing is
// written unless all of it can be.
func Enroll(repo, host, recipient, statusKey string, keys Keys) (Result, error) {
	if err := checkHost(host); err != nil {
		return Result{}, err
	}
	extra := map[string][]byte{}
	if statusKey != "" {
		rel := "hosts/" + host + "/host.yaml"
		data, err := os.ReadFile(filepath.Join(repo, filepath.FromSlash(rel)))
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w; add the host (its apps) first. Nothing was changed", rel, err)
		}
		if extra[rel], err = setStatusKey(rel, data, statusKey); err != nil {
			return Result{}, fmt.Errorf("%w. Nothing was changed", err)
		}
	}
	confPath := filepath.Join(repo, ".sops.yaml")
	data, err := os.ReadFile(confPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Result{}, err
	}
	c, err := parseSopsConfig(data)
	if err != nil {
		return Result{}, err
	}
	rule := c.hostRule(host)
	if rule == nil {
		rule = c.addHostRule(host, "hosts/"+host+"/secrets.sops.yaml")
	}
	list, err := ageList(rule)
	if err != nil {
		return Result{}, err
	}
	removeRecipients(list, []string{recipient}, hostMarker(host))
	for _, op := range keys.Operator() {
		if !slices.Contains(recipientsOf(list), op) {
			list.Content = append(list.Content, scalar(op))
		}
	}
	item := scalar(recipient)
	item.LineComment = hostMarker(host)
	list.Content = append(list.Content, item)
	out, err := c.marshal()
	if err != nil {
		return Result{}, err
	}
	// sops decides which rule a file gets: an earlier rule that matches the
	// host's files would keep the host out.
	probe := "hosts/" + host + "/secrets.sops.yaml"
	got, err := keys.RuleRecipients(out, probe)
	if err != nil {
		return Result{}, err
	}
	if !slices.Contains(got, recipient) {
		return Result{}, fmt.Errorf(".sops.yaml: an earlier rule than %s matches %s, so sops would not encrypt to the host; move the host's rule above it. Nothing was changed", hostRuleRegex(host), probe)
	}
	re := regexp.MustCompile(hostRuleRegex(host))
	files, err := rewrite(repo, out, extra, func(f string, data []byte) (*File, []byte, error) {
		if !re.MatchString(f) {
			return nil, nil, nil
		}
		return rekeyFile(f, data, out, keys)
	})
	return Result{Recipients: recipientsOf(list), Files: files}, err
}

// rewrite calls do for every secrets file of the repository and, when none
// failed, writes the new contents it returned, the extra files, and then
// config; when one failed, nothing. do returns the file to list (or nil)
// and its new content (nil: unchanged).
func rewrite(repo string, config []byte, extra map[string][]byte, do func(f string, data []byte) (*File, []byte, error)) ([]File, error) {
	files, err := sopsFiles(repo)
	if err != nil {
		return nil, err
	}
	var (
		listed  []File
		pending = map[string][]byte{}
		errs    []error
	)
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(repo, filepath.FromSlash(f)))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fc, newData, err := do(f, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if newData != nil {
			pending[f] = newData
		}
		if fc != nil {
			listed = append(listed, *fc)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w\nnothing was changed: .sops.yaml and the secrets files are as they were", err)
	}
	maps.Copy(pending, extra)
	return listed, write(repo, config, pending)
}

func rekeyFile(f string, data, config []byte, keys Keys) (*File, []byte, error) {
	want, err := keys.RuleRecipients(config, f)
	if err != nil {
		return nil, nil, err
	}
	have, err := keys.FileRecipients(f, data)
	if err != nil {
		return nil, nil, err
	}
	if sameSet(want, have) {
		return &File{Path: f, Action: "unchanged"}, nil, nil
	}
	newData, err := keys.Rekey(f, data, want)
	if err != nil {
		return nil, nil, err
	}
	return &File{Path: f, Action: "re-encrypted"}, newData, nil
}

// Remove takes the host's recipient out of every rule of repo/.sops.yaml
// (the one marked as the host's in its rule, and recipient when given) and
// rotates the data key of every secrets file encrypted to it, to the
// recipients its rule gives now. The result lists each file's key names:
// the values that host knew.
func Remove(repo, host, recipient string, keys Keys) (Result, error) {
	if err := checkHost(host); err != nil {
		return Result{}, err
	}
	confPath := filepath.Join(repo, ".sops.yaml")
	data, err := os.ReadFile(confPath)
	if err != nil {
		return Result{}, fmt.Errorf("%w; nothing to remove the host from", err)
	}
	c, err := parseSopsConfig(data)
	if err != nil {
		return Result{}, err
	}
	var drop []string
	if recipient != "" {
		drop = append(drop, recipient)
	}
	if rule := c.hostRule(host); rule != nil {
		list, err := ageList(rule)
		if err != nil {
			return Result{}, err
		}
		drop = append(drop, removeRecipients(list, drop, hostMarker(host))...)
	}
	slices.Sort(drop)
	drop = slices.Compact(drop)
	if len(drop) == 0 {
		return Result{}, fmt.Errorf(".sops.yaml: no recipient of host %s is marked in its rule (%s); pass the host's recipient with --recipient age1…", host, hostRuleRegex(host))
	}
	// What is dropped is taken out of every rule: never the operator's own
	// key, nor a key another host also holds (a copied rule, a marker
	// someone moved, a mistyped --recipient).
	for _, r := range drop {
		if slices.Contains(keys.Operator(), r) {
			return Result{}, fmt.Errorf(".sops.yaml: %s, to be taken out as host %s's, is your own operator key's recipient: removing it would lock you out of every secrets file; fix the host's rule (%s) or pass the host's own --recipient; nothing was changed", r, host, hostRuleRegex(host))
		}
		if other, line := c.sharedWith(r, host); other != "" {
			return Result{}, fmt.Errorf(".sops.yaml:%d: %s, to be taken out as host %s's, is also host %s's: removing it would cut %s off too; give each host its own key (syncd enroll --host %s) first; nothing was changed", line, r, host, other, other, other)
		}
	}
	for _, r := range c.rules.Content {
		list, err := ageList(r)
		if err != nil {
			return Result{}, err
		}
		removeRecipients(list, drop, "")
		if len(list.Content) == 0 {
			return Result{}, fmt.Errorf(".sops.yaml:%d: the rule %s would have no recipient left; add your own recipient to it first", r.Line, mapValue(r, "path_regex").Value)
		}
	}
	out, err := c.marshal()
	if err != nil {
		return Result{}, err
	}
	files, err := rewrite(repo, out, nil, func(f string, data []byte) (*File, []byte, error) {
		return rotateFile(f, data, out, drop, keys)
	})
	return Result{Recipients: drop, Files: files}, err
}

func rotateFile(f string, data, config []byte, drop []string, keys Keys) (*File, []byte, error) {
	have, err := keys.FileRecipients(f, data)
	if err != nil {
		return nil, nil, err
	}
	if !slices.ContainsFunc(have, func(r string) bool { return slices.Contains(drop, r) }) {
		return nil, nil, nil // the host could not read it
	}
	want, err := keys.RuleRecipients(config, f)
	if err != nil {
		return nil, nil, err
	}
	newData, names, err := keys.Rotate(f, data, want)
	if err != nil {
		return nil, nil, err
	}
	return &File{Path: f, Action: "rotated", Keys: names}, newData, nil
}

// write puts the files (secrets files, host.yaml), then .sops.yaml, in
// place, each atomically.
func write(repo string, config []byte, files map[string][]byte) error {
	for _, f := range slices.Sorted(maps.Keys(files)) {
		p := filepath.Join(repo, filepath.FromSlash(f))
		mode := os.FileMode(0o644)
		if st, err := os.Stat(p); err == nil {
			mode = st.Mode().Perm()
		}
		if err := state.WriteFile(p, files[f], mode); err != nil {
			return fmt.Errorf("write %s: %w", f, err)
		}
	}
	if err := state.WriteFile(filepath.Join(repo, ".sops.yaml"), config, 0o644); err != nil {
		return fmt.Errorf("write .sops.yaml: %w", err)
	}
	return nil
}

// sopsFiles lists the repository's secrets files (*.sops.*), as slash
// paths, outside .git.
func sopsFiles(repo string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && strings.Contains(d.Name()[1:], ".sops.") { // not .sops.yaml itself
			rel, err := filepath.Rel(repo, p)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("--repo %s: %w", repo, err)
	}
	slices.Sort(out)
	return out, nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
