// Package desired owns the desired-state repository: the fleet settings,
// apps and hosts a user writes (DESIGN §1), the checks of their schema, and
// the rendering of one host into the Compose projects it must run.
//
// Rendering is pure: it reads the repository and the host's secret values it
// is handed, and returns compose-go projects. Decrypting those values is the
// caller's business (package secrets); desired must not import the Compose
// SDK, go-git, sops or os/exec.
package desired
