package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// applyConfigFile sets, from the YAML file at path, every flag of fs that
// was not given on the command line: the file's keys are the flags' names.
// A key that fs lacks but others has (the agent's flags, in the file a
// one-shot command shares with the agent) is skipped; one that neither has
// is an error. A missing file is fine unless required (given with
// --config).
func applyConfigFile(fs *flag.FlagSet, path string, required bool, others *flag.FlagSet) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !required {
		return nil
	}
	if err != nil {
		return err
	}
	var settings map[string]yaml.Node
	if err := yaml.Unmarshal(data, &settings); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	for _, key := range sortedKeys(settings) {
		n := settings[key]
		if key == "config" || (fs.Lookup(key) == nil && (others == nil || others.Lookup(key) == nil)) {
			errs = append(errs, fmt.Errorf("%s:%d: unknown setting %q; settings are the flags' names: %s", path, n.Line, key, strings.Join(settingNames(fs, others), ", ")))
			continue
		}
		if fs.Lookup(key) == nil || given[key] {
			continue // another command's (the agent's), or the command line wins
		}
		if n.Kind != yaml.ScalarNode {
			errs = append(errs, fmt.Errorf("%s:%d: %s: expected a single value", path, n.Line, key))
			continue
		}
		if err := fs.Set(key, n.Value); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %s: %v", path, n.Line, key, err))
		}
	}
	return errors.Join(errs...)
}

// settingNames are the keys a config file may hold: the flags of fs and
// others but config, sorted.
func settingNames(fs, others *flag.FlagSet) []string {
	var names []string
	add := func(f *flag.Flag) {
		if f.Name != "config" && !slices.Contains(names, f.Name) {
			names = append(names, f.Name)
		}
	}
	fs.VisitAll(add)
	if others != nil {
		others.VisitAll(add)
	}
	slices.Sort(names)
	return names
}

func sortedKeys(m map[string]yaml.Node) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sdNotify tells systemd about the service's state (Type=notify); outside
// systemd it does nothing.
func sdNotify(getenv func(string) string, state string) {
	addr := getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	conn.Write([]byte(state))
}
