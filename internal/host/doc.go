// Package host is the runtime that `syncd agent` and `syncd sync` share:
// one cycle (source head, checkout, reconcile) and its report (the
// status document, written locally and pushed to the status branch). The
// agent's loop calls Runtime.Cycle; `syncd sync` calls it once, so both
// publish the same status.
//
// It wires domain packages together and owns no adapter: it must not
// import go-git, the Compose SDK, sops or os/exec itself (they sit behind
// source, engine, secrets and status).
package host
