// Package probe owns the health probes of a host's apps (app.yaml
// `probes:`): checking them (HTTP(S) status, body and certificate, TCP, a
// container's own healthcheck), the state of each probe with its hysteresis
// (failure and success thresholds) and flap detection, kept in the state
// directory so a restart never alerts twice, the events worth a
// notification, and the deploy gate a release must pass after its apply.
//
// Docker sits behind the small Containers interface declared here; the
// engine package implements it. The package must not import the engine,
// reconcile, the agent, notify or status: the caller connects events to
// notify and snapshots to the status document. Time is injected (Now), so
// tests never sleep for a schedule.
package probe
