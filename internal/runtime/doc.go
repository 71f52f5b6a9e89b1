// Package runtime is the cycle that `syncd agent` and `syncd sync` share,
// made by one constructor (New) from the adapters the wiring opened: the
// source's head and checkout, the wave gate (Gate, judging the fleet's
// status documents through package rollout), the reconcile, and the
// report (the status document built from what the cycle did, handed to
// the one writer of it, status.Writer). The agent's loop calls
// Runtime.Cycle and Run; `syncd sync` calls Cycle once, so both publish
// the same status.
//
// It links domain packages and owns no adapter: it must not import go-git,
// the Compose SDK, sops or os/exec (they sit behind source, engine,
// secrets and status), nor cmd/syncd.
package runtime
