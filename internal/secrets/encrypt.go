package secrets

// This file is the writing half of the adapter: a host's own age key, the
// operator's key as sops finds it, the recipients .sops.yaml gives a file,
// and re-encryption (`sops updatekeys`) and data-key rotation (`sops
// rotate`) by the sops CLI. Like the reading half, no error quotes a value.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"gopkg.in/yaml.v3"

	"github.com/syncd-dev/syncd/internal/atomicfile"
	"github.com/syncd-dev/syncd/internal/proc"
)

// GenerateIdentityFile makes a new age X25519 identity and writes it to
// path in age-keygen's format, mode 0600, with comment as a header line.
// The file is created exclusively: one that exists is never replaced. It
// returns the identity's recipient (age1…), which is public.
func GenerateIdentityFile(path, comment string) (recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", fmt.Errorf("age key %s: generate: %v", path, err)
	}
	recipient = id.Recipient().String()
	var b strings.Builder
	fmt.Fprintf(&b, "# created: %s\n# public key: %s\n", time.Now().UTC().Format(time.RFC3339), recipient)
	if comment != "" {
		fmt.Fprintf(&b, "# %s\n", comment)
	}
	b.WriteString(id.String() + "\n")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("age key %s: %w", path, unwrapPathErr(err))
	}
	// Written whole beside the target, fsynced and linked into place: a
	// full disk or a crash leaves no key under the name, never a short
	// one, and an existing key is never replaced.
	err = atomicfile.Create(path, []byte(b.String()), 0o600)
	if errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("age key %s exists already; syncd never replaces a key (remove it yourself if you mean to)", path)
	}
	if err != nil {
		return "", fmt.Errorf("age key: %w; no key was made", err)
	}
	return recipient, nil
}

// ParseRecipient checks that s is an age recipient (age1…, or an age1pq1…
// hybrid one) and returns it trimmed.
func ParseRecipient(s string) (string, error) {
	s = strings.TrimSpace(s)
	if _, err := age.ParseX25519Recipient(s); err == nil {
		return s, nil
	}
	if _, err := age.ParseHybridRecipient(s); err == nil {
		return s, nil
	}
	if strings.HasPrefix(s, "AGE-SECRET-KEY-") {
		return "", errors.New("that is an age private key, not a recipient: never paste it anywhere; the recipient is the `# public key: age1…` line (age-keygen -y prints it)")
	}
	return "", fmt.Errorf("%q is not an age recipient (age1… as age-keygen -y prints it)", s)
}

// OperatorIdentity loads the operator's age key where sops looks for it:
// $SOPS_AGE_KEY_FILE, else $XDG_CONFIG_HOME/sops/age/keys.txt, else
// ~/.config/sops/age/keys.txt. The file must be mode 0600 (LoadIdentity).
func OperatorIdentity(getenv func(string) string) (*Identity, error) {
	p := getenv("SOPS_AGE_KEY_FILE")
	if p == "" {
		dir := getenv("XDG_CONFIG_HOME")
		if dir == "" {
			home := getenv("HOME")
			if home == "" {
				return nil, errors.New("no operator age key: set SOPS_AGE_KEY_FILE to the file of your age key (the one that opens the secrets files today)")
			}
			dir = filepath.Join(home, ".config")
		}
		p = filepath.Join(dir, "sops", "age", "keys.txt")
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no operator age key: SOPS_AGE_KEY_FILE is not set and %s does not exist; set SOPS_AGE_KEY_FILE to the file of your age key (the one that opens the secrets files today)", p)
		}
	}
	return LoadIdentity(p)
}

// RuleRecipients returns the age recipients the creation rules in
// sopsConfig (the content of a .sops.yaml) give file, a slash path relative
// to the repository, as sops's config.LoadCreationRuleForFile decides: the
// first rule without a path_regex, or whose path_regex matches, wins. It
// errors when no rule matches or the rule names something other than age
// recipients in one key group.
func RuleRecipients(sopsConfig []byte, file string) ([]string, error) {
	var conf struct {
		CreationRules []struct {
			PathRegex string `yaml:"path_regex"`
			Age       any    `yaml:"age"`
			KeyGroups []struct {
				Age   []string       `yaml:"age"`
				Merge []any          `yaml:"merge"`
				Other map[string]any `yaml:",inline"`
			} `yaml:"key_groups"`
			Rest map[string]any `yaml:",inline"`
		} `yaml:"creation_rules"`
	}
	if err := yaml.Unmarshal(sopsConfig, &conf); err != nil {
		return nil, fmt.Errorf(".sops.yaml: not valid: %s", yamlErr(err))
	}
	if conf.CreationRules == nil {
		return nil, fmt.Errorf(".sops.yaml has no creation_rules; add one for %s", file)
	}
	n := -1
	for i, r := range conf.CreationRules {
		if r.PathRegex == "" {
			n = i
			break
		}
		re, err := regexp.Compile(r.PathRegex)
		if err != nil {
			return nil, fmt.Errorf(".sops.yaml: creation rule %d: path_regex %q does not compile: %v", i+1, r.PathRegex, err)
		}
		if re.MatchString(file) {
			n = i
			break
		}
	}
	if n < 0 {
		return nil, fmt.Errorf(".sops.yaml: %s: error loading config: no matching creation rules found", file)
	}
	rule := conf.CreationRules[n]
	var out []string
	add := func(list string) error {
		for _, r := range strings.Split(list, ",") {
			if r = strings.TrimSpace(r); r == "" {
				continue
			}
			if _, err := ParseRecipient(r); err != nil {
				return fmt.Errorf(".sops.yaml: the rule for %s: %v", file, err)
			}
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
		return nil
	}
	if len(rule.KeyGroups) > 0 {
		if len(rule.KeyGroups) != 1 {
			return nil, fmt.Errorf(".sops.yaml: the rule for %s has %d key groups; syncd uses one", file, len(rule.KeyGroups))
		}
		g := rule.KeyGroups[0]
		if len(g.Merge) > 0 || len(g.Other) > 0 {
			return nil, fmt.Errorf(".sops.yaml: the rule for %s names keys other than age recipients; syncd encrypts to age recipients only", file)
		}
		for _, a := range g.Age {
			if err := add(a); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	for _, kind := range []string{"kms", "pgp", "gcp_kms", "hckms", "azure_keyvault", "hc_vault_transit_uri"} {
		if v, ok := rule.Rest[kind]; ok && v != nil && v != "" {
			return nil, fmt.Errorf(".sops.yaml: the rule for %s names a %s key; syncd encrypts to age recipients only", file, kind)
		}
	}
	switch a := rule.Age.(type) {
	case nil:
	case string:
		if err := add(a); err != nil {
			return nil, err
		}
	case []any:
		for _, x := range a {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf(".sops.yaml: the rule for %s: invalid age key configuration: expected string in list", file)
			}
			if err := add(s); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf(".sops.yaml: the rule for %s: invalid age key configuration: expected a string or a list", file)
	}
	return out, nil
}

// FileRecipients returns the age recipients a SOPS file is encrypted to.
func FileRecipients(name string, data []byte) (recipients []string, err error) {
	defer recoverReader(name, &err)
	f, err := load(name, data)
	if err != nil {
		return nil, err
	}
	for _, g := range f.meta.groups {
		for _, k := range g.age {
			recipients = append(recipients, k.recipient)
		}
	}
	return recipients, nil
}

// sopsTimeout bounds one run of the sops CLI.
const sopsTimeout = 2 * time.Minute

// Rekey re-encrypts a SOPS file's data key to recipients with `sops
// updatekeys`: the values and the MAC stay as they are. id must be one of
// the file's recipients.
func (o Operator) Rekey(name string, data []byte, recipients []string) ([]byte, error) {
	f, err := load(name, data)
	if err != nil {
		return nil, err
	}
	key, err := dataKey(o.Identity, name, f)
	if err != nil {
		return nil, err
	}
	recipients, err = checkRecipients(name, recipients)
	if err != nil {
		return nil, err
	}
	// updatekeys takes the recipients from a creation rule: one, for
	// every file, in a config of its own.
	rule, err := yaml.Marshal(map[string]any{"creation_rules": []map[string]string{{"age": strings.Join(recipients, ",")}}})
	if err != nil {
		return nil, err
	}
	return o.runSops(name, data, rule, knownValues(f, key), "updatekeys", "--yes")
}

// Rotate gives a SOPS file a new data key, encrypted to recipients, and
// encrypts every value again with it, with `sops rotate`; the MAC is
// verified first. It returns the file's key names: the values someone who
// had the old data key knows.
func (o Operator) Rotate(name string, data []byte, recipients []string) ([]byte, []string, error) {
	f, err := load(name, data)
	if err != nil {
		return nil, nil, err
	}
	keys, err := checkLeaves(name, f)
	if err != nil {
		return nil, nil, err
	}
	key, err := dataKey(o.Identity, name, f)
	if err != nil {
		return nil, nil, err
	}
	if _, err := f.decryptTree(key); err != nil {
		if errors.Is(err, errMAC) {
			return nil, nil, fmt.Errorf("%s: MAC mismatch: the file was changed without sops; restore it from Git before rotating", name)
		}
		return nil, nil, fmt.Errorf("%s: a value cannot be decrypted (the file was edited by hand or damaged); restore it from Git", name)
	}
	recipients, err = checkRecipients(name, recipients)
	if err != nil {
		return nil, nil, err
	}
	var have []string
	for _, k := range f.meta.groups[0].age {
		have = append(have, k.recipient)
	}
	args := []string{"rotate"}
	if add := without(recipients, have); len(add) > 0 {
		args = append(args, "--add-age", strings.Join(add, ","))
	}
	if rm := without(have, recipients); len(rm) > 0 {
		args = append(args, "--rm-age", strings.Join(rm, ","))
	}
	out, err := o.runSops(name, data, nil, knownValues(f, key), append(args, "--in-place")...)
	if err != nil {
		return nil, nil, err
	}
	return out, keys, nil
}

func checkRecipients(name string, recipients []string) ([]string, error) {
	if len(recipients) == 0 {
		return nil, fmt.Errorf("%s: no recipient left to encrypt it to", name)
	}
	var out []string
	for _, r := range recipients {
		if _, err := ParseRecipient(r); err != nil {
			return nil, fmt.Errorf("%s: recipient %q is not an age recipient", name, r)
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

func without(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// knownValues are the file's plaintext values, so that none of them passes
// from the sops CLI's error output into an error; nil when they cannot be
// read (the output is withheld then).
func knownValues(f *sopsFile, key []byte) []string {
	plain, err := f.decryptTree(key)
	if err != nil {
		return nil
	}
	out := []string{}
	for _, b := range plain {
		walkBranch(b, nil, nil, func(v any, _ []string, _ [][]string) (any, error) {
			if _, isComment := v.(comment); !isComment {
				if s := scalarString(v); len(s) >= 3 {
					out = append(out, s)
				}
			}
			return v, nil
		}, 0)
	}
	return out
}

// runSops runs the sops CLI on a copy of the file in a private directory,
// with the operator's key file in SOPS_AGE_KEY_FILE (never on the command
// line), config (when not nil) as its .sops.yaml and no other key or
// configuration of the user's, and returns the file as sops left it.
func (o Operator) runSops(name string, data, config []byte, values []string, args ...string) ([]byte, error) {
	bin := o.Sops
	if bin == "" {
		bin = "sops"
	}
	dir, err := os.MkdirTemp("", "syncd-sops-")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, filepath.Base(name))
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if config == nil {
		config = []byte("{}\n")
	}
	conf := filepath.Join(dir, ".sops.yaml")
	if err := os.WriteFile(conf, config, 0o600); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	format, err := formatOf(name)
	if err != nil {
		return nil, err
	}
	// sops runs in its own directory: a key file given relative to ours
	// (SOPS_AGE_KEY_FILE=operator.agekey) must still be found.
	keyFile, err := filepath.Abs(o.Identity.path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sopsTimeout)
	defer cancel()
	argv := append([]string{"--config", conf, "--input-type", format, "--output-type", format}, args...)
	cmd := proc.Command(ctx, 0, bin, append(argv, file)...)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"SOPS_AGE_KEY_FILE=" + keyFile,
		"SOPS_DISABLE_VERSION_CHECK=1",
	}
	if err := cmd.Run(); err != nil {
		what := args[0]
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("%s: sops %s: the sops CLI is not on PATH; install sops (https://github.com/getsops/sops) to enrol or remove a host", name, what)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: sops %s did not finish in %s", name, what, sopsTimeout)
		}
		return nil, fmt.Errorf("%s: sops %s failed (%v): %s; nothing was changed", name, what, err, sopsMessage(cmd.Stderr, file, name, values))
	}
	out, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// sopsMessage is the last lines of sops's error output, when they quote
// nothing of the file: sops's own errors may quote a value ("Input string
// %s does not match").
func sopsMessage(stderr *proc.Buffer, file, name string, values []string) string {
	msg := strings.ReplaceAll(stderr.LastLines(3), file, name)
	if values == nil || strings.Contains(msg, "ENC[") {
		return "its message is withheld, as it may quote the file"
	}
	for _, v := range values {
		if strings.Contains(msg, v) {
			return "its message is withheld, as it quotes a value of the file"
		}
	}
	return msg
}

// Operator is the operator's key bound to the re-encryption calls, as
// enrolment needs them; they run the sops CLI.
type Operator struct {
	Identity *Identity
	// Sops is the sops CLI to run; "" is sops on PATH.
	Sops string
}

// Operator returns the recipients of the operator's key.
func (o Operator) Operator() []string { return o.Identity.Recipients() }

// RuleRecipients is the package function RuleRecipients.
func (Operator) RuleRecipients(config []byte, file string) ([]string, error) {
	return RuleRecipients(config, file)
}

// FileRecipients is the package function FileRecipients.
func (Operator) FileRecipients(name string, data []byte) ([]string, error) {
	return FileRecipients(name, data)
}
