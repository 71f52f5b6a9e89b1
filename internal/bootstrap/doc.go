// Package bootstrap owns how a host joins and leaves a fleet (DESIGN §5):
// `syncd init-host` (the host's SSH deploy key, its one-time enrolment
// token, and its cloud-init user-data, which holds no age key and turns
// the signed-commit gate on with the allowed signers it is given) and
// `syncd enroll` (what the host published, checked against the token's
// MAC; its self-made age recipient into .sops.yaml, the host's secrets
// files re-encrypted to it, its status key into host.yaml; on removal,
// the recipient taken out and the data key of every file it could read
// rotated).
//
// It edits .sops.yaml as YAML and leaves every sops and age operation to
// the adapter behind the small Keys interface (internal/secrets in the
// wiring). It must not import sops, age, go-git, the engine, reconcile or
// the agent.
package bootstrap
