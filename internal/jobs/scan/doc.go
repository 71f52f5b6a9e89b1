// Package scan runs trivy on the images a host runs and judges its
// findings by the repository's scan policy: the deploy gate (Admit, called
// between the pull of a new image and the creation of any container from
// it) and the scan of what runs (ScanRunning, for the schedule and `syncd
// scan`).
//
// It owns the trivy adapter (the binary, `trivy image --format json`, the
// image given by ID from the local Docker engine, trivy's own TRIVY_*
// environment passed through), the policy (refuse_severity,
// ignore_unfixed, ignore entries that run out, on_error) and the cache of
// results by image ID and vulnerability-DB version in the state directory.
//
// It knows nothing of Compose or of the loop: callers name the images by
// reference and ID. It must not import the engine, reconcile, the source,
// the host runtime or cmd/syncd.
package scan
