package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/syncd-dev/syncd/internal/bootstrap"
	"github.com/syncd-dev/syncd/internal/secrets"
	"github.com/syncd-dev/syncd/internal/source"
	"github.com/syncd-dev/syncd/internal/status"
)

func runInitHost(ctx context.Context, c *cli, args []string) int {
	fs := newFlags(c, "init-host", "--host NAME --repo URL [--out DIR] [--known-hosts FILE | --host-key-fingerprint SHA256:… | --token-file FILE]")
	host := fs.String("host", "", "the new host's `name` (its directory under hosts/; required)")
	repo := fs.String("repo", "", "the desired-state repository's `URL`: ssh (ssh://… or git@host:path; a deploy key is made) or https with --token-file (required)")
	tokenFile := fs.String("token-file", "", "https: a `file` holding the host's access token (scoped to the repository, write access for the status branch)")
	branch := fs.String("branch", "main", "the `branch` the host follows")
	out := fs.String("out", "", "`directory` for the deploy key and user-data (default ./NAME)")
	knownHosts := fs.String("known-hosts", "", "known_hosts `file` with the Git server's key (default: scan it, confirmed by --host-key-fingerprint)")
	fingerprint := fs.String("host-key-fingerprint", "", "the Git server's host key `fingerprint` (SHA256:…) you checked against what your forge publishes")
	installURL := fs.String("install-url", "", "`URL` of the install.sh the host runs (default: this syncd's release, or the latest)")
	installSum := fs.String("install-sha256", "", "the install.sh's `sha256` (from the release's SHA256SUMS): the host checks it before running it")
	allowedSigners := fs.String("allowed-signers", "", "SSH allowed_signers `file` of the keys that sign main's commits: the host applies only commits they signed (required, or --unsigned)")
	unsigned := fs.Bool("unsigned", false, "write a config without the signed-commit gate: the host applies any commit pushed to its branch, and warns about it")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(c.stderr, "syncd init-host: "+format+"\n", a...)
		return exitFailure
	}
	if *host == "" || *repo == "" {
		fmt.Fprintln(c.stderr, "syncd init-host: --host and --repo are required")
		return exitUsage
	}
	if *out == "" {
		*out = *host
	}
	if *installURL == "" {
		*installURL = defaultInstallURL()
	}
	var signers []byte
	if *allowedSigners != "" {
		// Checked as the host will read it: a file it would refuse would
		// stop it at its first start.
		if _, err := source.LoadSigners(*allowedSigners, ""); err != nil {
			return fail("--allowed-signers: %v", err)
		}
		b, err := os.ReadFile(*allowedSigners)
		if err != nil {
			return fail("--allowed-signers: %v", err)
		}
		signers = b
	}
	var kh, token []byte
	https := strings.HasPrefix(*repo, "https://")
	switch {
	case https && *tokenFile == "":
		return fail("--repo %s is https: pass --token-file FILE (or use an ssh URL, and init-host makes a deploy key)", displayRepo(*repo))
	case https:
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fail("--token-file: %v", err)
		}
		token = b
	case *knownHosts != "":
		b, err := os.ReadFile(*knownHosts)
		if err != nil {
			return fail("--known-hosts: %v", err)
		}
		kh = b
	default:
		addr, err := bootstrap.SSHAddress(*repo)
		if err != nil {
			return fail("%v", err)
		}
		line, fp, err := bootstrap.ScanHostKey(ctx, addr)
		if err != nil {
			return fail("%v; or pass --known-hosts FILE", err)
		}
		if *fingerprint == "" {
			return fail("the Git server %s shows the host key %s.\nCheck it against the fingerprints your forge publishes (GitHub, GitLab and Gitea list them in their docs or admin pages), then run again with --host-key-fingerprint %s; or pass --known-hosts FILE", addr, fp, fp)
		}
		if *fingerprint != fp {
			return fail("the Git server %s shows the host key %s, not the %s you confirmed: nothing was written. Find out why before going on (a changed server key or someone in between)", addr, fp, *fingerprint)
		}
		kh = line
	}
	res, err := bootstrap.InitHost{Host: *host, Repo: *repo, Branch: *branch, Out: *out, KnownHosts: kh, Token: token, InstallURL: *installURL, InstallSHA256: *installSum,
		AllowedSigners: signers, Unsigned: *unsigned}.Run()
	if err != nil {
		return fail("%v", err)
	}
	gate := "It applies only commits signed by a key of " + *allowedSigners + "."
	if *unsigned {
		gate = "UNSIGNED (--unsigned): it applies any commit pushed to " + *branch + ", and warns about it on every cycle; whoever reads its credential from the user-data can deploy to it."
	}
	// The host publishes to a branch of its own (the agent's default --status-branch).
	statusBranch := (&source.StatusBranches{}).Branch(*host)
	if https {
		fmt.Fprintf(c.stdout, `Host %[1]s: wrote its cloud-init user-data %[2]s (0600, %[3]d bytes), with the token of %[4]s in it, and its enrolment token %[7]s (0600).
%[8]s

1. The token must be allowed to read the repository and to push the branch %[9]s (not main: see the README's forge settings).
2. Create the server with %[2]s as its user-data (Hetzner: "Cloud config" field, or hcloud server create --user-data-from-file %[2]s).
   Its one command:
   %[5]s
   The user-data holds the token and no age key: cloud VMs serve user-data to any local process.
3. On its first start the host makes its own age key and status key and publishes their public halves on %[9]s,
   with a MAC under the enrolment token. Then, in your working copy:
   syncd enroll --repo . --host %[1]s --token %[7]s       # needs your age key: SOPS_AGE_KEY_FILE
   git add .sops.yaml hosts/%[1]s && git commit -m "enroll %[1]s" && git push
4. Watch it converge: syncd status --fleet --repo %[6]s --token-file FILE
`, *host, res.UserData, res.UserDataSize, *tokenFile, res.RunCommand, displayRepo(*repo), res.Token, gate, statusBranch)
		return exitOK
	}
	fmt.Fprintf(c.stdout, `Host %[1]s: made its deploy key %[2]s (0600), its cloud-init user-data %[3]s (0600, %[4]d bytes) and its enrolment token %[8]s (0600).
%[9]s

1. Add this deploy key to the repository, with write access (the host pushes its status to the branch %[10]s),
   and keep deploy keys off main with a branch rule (README: "Forge settings"):
   %[5]s
2. Create the server with %[3]s as its user-data (Hetzner: "Cloud config" field, or hcloud server create --user-data-from-file %[3]s).
   Its one command:
   %[6]s
   The user-data holds the deploy key and no age key: cloud VMs serve user-data to any local process.
3. On its first start the host makes its own age key and status key and publishes their public halves on %[10]s,
   with a MAC under the enrolment token. Then, in your working copy:
   syncd enroll --repo . --host %[1]s --token %[8]s       # needs your age key: SOPS_AGE_KEY_FILE
   git add .sops.yaml hosts/%[1]s && git commit -m "enroll %[1]s" && git push
4. Watch it converge: syncd status --fleet --repo %[7]s
`, *host, res.DeployKey, res.UserData, res.UserDataSize, res.PublicKey, res.RunCommand, *repo, res.Token, gate, statusBranch)
	return exitOK
}

// defaultInstallURL is the install.sh of this syncd's release, or of the
// latest release for a development build.
func defaultInstallURL() string {
	v := version()
	if strings.HasPrefix(v, "v") && !strings.Contains(v, "devel") && !strings.Contains(v, "dirty") {
		return bootstrap.ReleaseURL + "/" + v + "/install.sh"
	}
	return strings.TrimSuffix(bootstrap.ReleaseURL, "/download") + "/latest/download/install.sh"
}

func runEnroll(ctx context.Context, c *cli, args []string) int {
	var g gitFlags
	fs := newFlags(c, "enroll", "--repo DIR --host NAME (--token FILE | --recipient age1…) [--remove]")
	repo := fs.String("repo", ".", "your working copy of the desired-state repository (`directory`)")
	host := fs.String("host", "", "the host's `name` (required)")
	token := fs.String("token", "", "the host's enrolment token `file` (init-host's NAME/enroll_token): what the host published on the status branch is trusted only when its MAC verifies with it")
	recipient := fs.String("recipient", "", "the host's age `recipient`, read on the host itself (`syncd status`), instead of --token")
	remove := fs.Bool("remove", false, "take the host's recipient out and rotate the data key of every file it could read")
	statusRepo := fs.String("status-repo", "", "Git `URL` whose status branch holds the host's publication (default: the working copy's origin)")
	statusBranch := fs.String("status-branch", "syncd/status", "the status `branch`")
	g.register(fs)
	home := c.getenv("HOME")
	fs.Lookup("ssh-key").DefValue = filepath.Join(home, ".ssh", "id_ed25519")
	fs.Set("ssh-key", fs.Lookup("ssh-key").DefValue)
	fs.Lookup("known-hosts").DefValue = filepath.Join(home, ".ssh", "known_hosts")
	fs.Set("known-hosts", fs.Lookup("known-hosts").DefValue)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(c.stderr, "syncd enroll: %v\n", err)
		return exitFailure
	}
	switch {
	case *host == "":
		fmt.Fprintln(c.stderr, "syncd enroll: --host is required")
		return exitUsage
	case *token != "" && (*recipient != "" || *remove):
		fmt.Fprintln(c.stderr, "syncd enroll: --token enrols what the host published; it goes with neither --recipient nor --remove")
		return exitUsage
	}
	id, err := secrets.OperatorIdentity(c.getenv)
	if err != nil {
		return fail(fmt.Errorf("%w; nothing was changed", err))
	}
	if *recipient != "" {
		r, err := secrets.ParseRecipient(*recipient)
		if err != nil {
			return fail(fmt.Errorf("--recipient: %w; nothing was changed", err))
		}
		*recipient = r
	}
	keys := secrets.Operator{Identity: id}
	pub := publication{repo: *repo, url: *statusRepo, branch: *statusBranch, host: *host, g: g}
	if *remove {
		if *recipient == "" {
			// Also the key the host published, when its document verifies
			// against the host's status key here: a host enrolled by hand
			// has no marked recipient in its rule, and an unverified
			// document could name another host's recipient.
			*recipient, _ = pub.enrolledRecipient(ctx)
		}
		res, err := bootstrap.Remove(*repo, *host, *recipient, keys)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(c.stdout, "Took %s (host %s) out of .sops.yaml.\n", strings.Join(res.Recipients, ", "), *host)
		for _, f := range res.Files {
			fmt.Fprintf(c.stdout, "%s: data key rotated; host %s knew the values of: %s\n", f.Path, *host, strings.Join(f.Keys, ", "))
		}
		if len(res.Files) > 0 {
			fmt.Fprintf(c.stdout, "A new data key stops the host reading new versions; it still knows those values: change them at their source, then `sops edit` them.\n")
		}
		fmt.Fprintf(c.stdout, "Next: remove hosts/%s and its deploy key from the repository, review (git diff) and commit.\n", *host)
		return exitOK
	}
	statusKey := ""
	switch {
	case *token != "":
		h, err := pub.verified(ctx, *token)
		if err != nil {
			return fail(fmt.Errorf("%w; nothing was changed", err))
		}
		*recipient, statusKey = h.AgeRecipient, h.StatusKey
		fmt.Fprintf(c.stdout, "Host %s's publication (hosts/%s.yaml on %s) verifies with the enrolment token %s:\n  age recipient  %s\n  status key     %s %s\nCompare them with `syncd status` on the host.\n",
			*host, *host, pub.where(), *token, h.AgeRecipient, strings.Fields(h.StatusKey)[0], status.Fingerprint(h.StatusKey))
	case *recipient == "":
		r, err := pub.enrolledRecipient(ctx)
		if err != nil {
			return fail(fmt.Errorf("%w; nothing was changed", err))
		}
		*recipient = r
	}
	res, err := bootstrap.Enroll(*repo, *host, *recipient, statusKey, keys)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(c.stdout, "Host %s enrolled with recipient %s: its rule in .sops.yaml now encrypts to %s.\n", *host, *recipient, strings.Join(res.Recipients, ", "))
	if statusKey != "" {
		fmt.Fprintf(c.stdout, "hosts/%s/host.yaml: status_key set to %s\n", *host, status.Fingerprint(statusKey))
	}
	for _, f := range res.Files {
		fmt.Fprintf(c.stdout, "%s: %s\n", f.Path, f.Action)
	}
	fmt.Fprintf(c.stdout, "Next: review (git diff), then git add .sops.yaml hosts/%s && git commit -m \"enroll %s\" && git push; the host's next cycle decrypts and converges.\n", *host, *host)
	if *token != "" {
		fmt.Fprintf(c.stdout, "Once pushed, delete %s: the host deletes its own copy when it sees itself enrolled.\n", *token)
	}
	return exitOK
}

// publication is where a host's status document is found: the status
// branch of the working copy's origin, or of url.
type publication struct {
	repo, url, branch, host string
	g                       gitFlags
}

// document reads the host's status document from the status branch.
func (p publication) where() string {
	return (&source.StatusBranches{Name: p.branch}).Branch(p.host)
}

func (p publication) document(ctx context.Context) (status.Host, error) {
	url := p.url
	if url == "" {
		u, err := source.OriginURL(p.repo)
		if err != nil {
			return status.Host{}, fmt.Errorf("find the repository's origin: %w; pass --status-repo URL, or --recipient age1… (the host's `syncd status` shows it)", err)
		}
		url = u
	}
	git := &source.Git{URL: url, TokenFile: p.g.tokenFile, SSHKeyFile: p.g.sshKey, KnownHostsFile: p.g.knownHosts}
	hosts, err := status.ReadAll(ctx, &source.StatusBranches{Git: git, Name: p.branch})
	for _, h := range hosts {
		if h.Host == p.host {
			return h, nil
		}
	}
	if err != nil {
		return status.Host{}, fmt.Errorf("read the status branch %s of %s: %w", p.branch, displayRepo(url), err)
	}
	return status.Host{}, fmt.Errorf("host %s has no status on %s yet: it has not run a cycle (check that it started, and that its deploy key may push)", p.host, p.where())
}

// verified is the host's document when what it publishes for enrolment
// verifies with the enrolment token in tokenFile: the MAC over its name,
// age recipient and status key, and the document's signature by that
// status key (the host holds its private half).
func (p publication) verified(ctx context.Context, tokenFile string) (status.Host, error) {
	secret, err := bootstrap.ReadToken(tokenFile)
	if err != nil {
		return status.Host{}, err
	}
	h, err := p.document(ctx)
	if err != nil {
		return status.Host{}, err
	}
	where := fmt.Sprintf("host %s's publication (hosts/%s.yaml on %s) is refused", p.host, p.host, p.where())
	recipient := h.AgeRecipient
	if recipient != "" {
		if recipient, err = secrets.ParseRecipient(recipient); err != nil {
			return status.Host{}, fmt.Errorf("%s: age_recipient: %w", where, err)
		}
	}
	if err := (bootstrap.Publication{Host: p.host, AgeRecipient: recipient, StatusKey: h.StatusKey, MAC: h.EnrolmentMAC}).Verify(secret); err != nil {
		return status.Host{}, fmt.Errorf("%s: %w", where, err)
	}
	if err := status.VerifyDocument(h, h.StatusKey); err != nil {
		return status.Host{}, fmt.Errorf("%s: the document is not signed by the status key it publishes: %w", where, err)
	}
	h.AgeRecipient = recipient
	return h, nil
}

// enrolledRecipient is the age recipient the host publishes, when its
// document verifies against the status key the working copy enrols for it
// (a host enrolled before, whose age key is new). Without that key, what
// the status branch says is anyone's word.
func (p publication) enrolledRecipient(ctx context.Context) (string, error) {
	keys, err := keysOf(p.repo)
	if err != nil {
		return "", err
	}
	key := keys[p.host]
	if key == "" {
		return "", fmt.Errorf("every host may push the status branch, so what it says of host %s is trusted only with its enrolment token: pass --token FILE (init-host's %s/%s), or --recipient age1… read on the host (`syncd status`)", p.host, p.host, bootstrap.TokenFile)
	}
	h, err := p.document(ctx)
	if err != nil {
		return "", err
	}
	if err := status.VerifyDocument(h, key); err != nil {
		return "", fmt.Errorf("hosts/%s.yaml on %s does not verify against the status_key of hosts/%s/host.yaml (%s): %w; pass --token FILE or --recipient age1…", p.host, p.where(), p.host, status.Fingerprint(key), err)
	}
	if h.AgeRecipient == "" {
		return "", fmt.Errorf("host %s's status (hosts/%s.yaml on %s) has no age_recipient: has it started a syncd that makes its own key? pass --recipient age1… otherwise", p.host, p.host, p.where())
	}
	r, err := secrets.ParseRecipient(h.AgeRecipient)
	if err != nil {
		return "", fmt.Errorf("hosts/%s.yaml on %s: age_recipient: %w", p.host, p.where(), err)
	}
	return r, nil
}
