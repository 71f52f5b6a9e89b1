package main

import "flag"

// gitFlags are the flags of a Git source.
type gitFlags struct {
	branch, tokenFile, sshKey, knownHosts, allowedSigners, pgpKeyring string
}

func (g *gitFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.branch, "branch", "main", "the `branch` of a Git --repo to follow")
	fs.StringVar(&g.tokenFile, "token-file", "", "https: a `file` holding the access token (never put it in the URL)")
	fs.StringVar(&g.sshKey, "ssh-key", "/etc/syncd/deploy_key", "ssh: the deploy key `file`")
	fs.StringVar(&g.knownHosts, "known-hosts", "/etc/syncd/known_hosts", "ssh: the known_hosts `file` the server's key must be in")
	fs.StringVar(&g.allowedSigners, "allowed-signers", "", "SSH allowed_signers `file`: only commits signed by these keys are applied")
	fs.StringVar(&g.pgpKeyring, "pgp-keyring", "", "armored OpenPGP public keys `file`: only commits signed by these keys are applied")
}
