package agent

import "time"

// Clock is the time the loop runs on: the real clock in production, a fake
// one in tests so that polls, backoff and the shutdown grace are driven by
// the test instead of by sleeping.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that delivers once on C after d.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the loop uses.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }
