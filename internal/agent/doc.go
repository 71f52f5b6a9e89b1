// Package agent owns the reconcile loop of `syncd agent` and its triggers:
// the poll ticker with jitter, the periodic drift cycle, webhooks, explicit
// triggers (a signal, a file watch) and `syncd sync` requests over a unix
// socket. One goroutine runs cycles one at a time; triggers that arrive
// while a cycle runs are merged into one following cycle. It also serves
// the agent's Prometheus metrics and /healthz.
//
// What a cycle does is injected (a Cycle function): this package must not
// import engine, reconcile, source or status, and it decides nothing about
// projects. Time is injected too (a Clock), so tests never sleep.
package agent
