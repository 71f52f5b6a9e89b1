package main

import (
	"context"
	"errors"
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
	res, err := bootstrap.InitHost{Host: *host, Repo: *repo, Branch: *branch, Out: *out, KnownHosts: kh, Token: token, InstallURL: *installURL, InstallSHA256: *installSum}.Run()
	if err != nil {
		return fail("%v", err)
	}
	if https {
		fmt.Fprintf(c.stdout, `Host %[1]s: wrote its cloud-init user-data %[2]s (0600, %[3]d bytes), with the token of %[4]s in it.

1. The token must be allowed to read the repository and to push the branch syncd/status.
2. Create the server with %[2]s as its user-data (Hetzner: "Cloud config" field, or hcloud server create --user-data-from-file %[2]s).
   Its one command:
   %[5]s
   The user-data holds the token and no age key: cloud VMs serve user-data to any local process.
3. On its first start the host makes its own age key and publishes the public half on syncd/status. Then, in your working copy:
   syncd enroll --repo . --host %[1]s       # needs your age key: SOPS_AGE_KEY_FILE
   git add .sops.yaml hosts/%[1]s && git commit -m "enroll %[1]s" && git push
4. Watch it converge: syncd status --fleet --repo %[6]s --token-file FILE
`, *host, res.UserData, res.UserDataSize, *tokenFile, res.RunCommand, displayRepo(*repo))
		return exitOK
	}
	fmt.Fprintf(c.stdout, `Host %[1]s: made its deploy key %[2]s (0600) and its cloud-init user-data %[3]s (0600, %[4]d bytes).

1. Add this deploy key to the repository, with write access (the host pushes its status to the branch syncd/status):
   %[5]s
2. Create the server with %[3]s as its user-data (Hetzner: "Cloud config" field, or hcloud server create --user-data-from-file %[3]s).
   Its one command:
   %[6]s
   The user-data holds the deploy key and no age key: cloud VMs serve user-data to any local process.
3. On its first start the host makes its own age key and publishes the public half on syncd/status. Then, in your working copy:
   syncd enroll --repo . --host %[1]s       # needs your age key: SOPS_AGE_KEY_FILE
   git add .sops.yaml hosts/%[1]s && git commit -m "enroll %[1]s" && git push
4. Watch it converge: syncd status --fleet --repo %[7]s
`, *host, res.DeployKey, res.UserData, res.UserDataSize, res.PublicKey, res.RunCommand, *repo)
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
	fs := newFlags(c, "enroll", "--repo DIR --host NAME [--recipient age1…] [--remove]")
	repo := fs.String("repo", ".", "your working copy of the desired-state repository (`directory`)")
	host := fs.String("host", "", "the host's `name` (required)")
	recipient := fs.String("recipient", "", "the host's age `recipient` (default: what the host published on the status branch)")
	remove := fs.Bool("remove", false, "take the host's recipient out and rotate the data key of every file it could read")
	statusRepo := fs.String("status-repo", "", "Git `URL` whose status branch holds the host's recipient (default: the working copy's origin)")
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
	if *host == "" {
		fmt.Fprintln(c.stderr, "syncd enroll: --host is required")
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
	if *remove {
		if *recipient == "" {
			// Also the key the host published, when it can be read: a
			// host enrolled by hand has no marked recipient in its rule.
			*recipient, _ = publishedRecipient(ctx, *repo, *statusRepo, *statusBranch, *host, g)
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
	if *recipient == "" {
		r, err := publishedRecipient(ctx, *repo, *statusRepo, *statusBranch, *host, g)
		if err != nil {
			return fail(fmt.Errorf("%w; nothing was changed", err))
		}
		*recipient = r
	}
	res, err := bootstrap.Enroll(*repo, *host, *recipient, keys)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(c.stdout, "Host %s enrolled with recipient %s: its rule in .sops.yaml now encrypts to %s.\n", *host, *recipient, strings.Join(res.Recipients, ", "))
	for _, f := range res.Files {
		fmt.Fprintf(c.stdout, "%s: %s\n", f.Path, f.Action)
	}
	fmt.Fprintf(c.stdout, "Next: review (git diff), then git add .sops.yaml hosts/%s && git commit -m \"enroll %s\" && git push; the host's next cycle decrypts and converges.\n", *host, *host)
	return exitOK
}

// publishedRecipient reads the recipient the host published in its status
// document.
func publishedRecipient(ctx context.Context, repo, url, branch, host string, g gitFlags) (string, error) {
	if url == "" {
		u, err := bootstrap.OriginURL(repo)
		if err != nil {
			return "", fmt.Errorf("%w; or pass --recipient age1… (the host's status shows it)", err)
		}
		url = u
	}
	auth, err := (&source.Git{URL: url, TokenFile: g.tokenFile, SSHKeyFile: g.sshKey, KnownHostsFile: g.knownHosts}).Auth()
	if err != nil {
		return "", err
	}
	hosts, err := status.ReadAll(ctx, url, branch, auth)
	if err != nil && len(hosts) == 0 {
		return "", fmt.Errorf("read the status branch %s of %s: %w", branch, displayRepo(url), err)
	}
	for _, h := range hosts {
		if h.Host != host {
			continue
		}
		if h.AgeRecipient == "" {
			return "", fmt.Errorf("host %s's status (%s on %s) has no age_recipient: has it started a syncd that makes its own key? pass --recipient age1… otherwise", host, "hosts/"+host+".yaml", branch)
		}
		r, err := secrets.ParseRecipient(h.AgeRecipient)
		if err != nil {
			return "", fmt.Errorf("hosts/%s.yaml on %s: age_recipient: %w", host, branch, err)
		}
		return r, nil
	}
	return "", errors.New("host " + host + " has no status on " + branch + " yet: it has not run a cycle (check that it started, and that its deploy key may push)")
}
