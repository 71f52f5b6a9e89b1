// Package notify sends state changes (a backup failed, a cycle recovered, a
// release was rolled back) to the sinks of syncd.yaml `notify:`, shoutrrr
// URLs (DESIGN §3). It owns the event names, the wording of what a sink is
// sent (Event.Text: a title, and a body that names the host, the app, the
// probe, job or commit and what happened on its own, as several services
// drop the title), the deduplication of repeated failures, the queue and
// its retries; the shoutrrr adapter sits behind
// Sender so the queue is tested with a fake.
//
// Notify never blocks its caller: a sink that is down or hangs never slows
// or fails a cycle or a job. A sink URL may carry a token: it never appears
// in a log line or an error, only scheme://host does (Redacted).
//
// It must not import other syncd packages but escape and redact (desired imports it to check
// syncd.yaml), the engine or os/exec. Time is the time package's: tests run
// in testing/synctest bubbles and never sleep.
package notify
