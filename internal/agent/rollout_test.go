package agent

import (
	"testing"
	"time"
)

// The rollout gauges follow the gate's state; a quiet poll (no Rollout)
// leaves them as they were.
func TestRolloutMetrics(t *testing.T) {
	h := newHarness(t, Config{Poll: time.Minute})
	h.run()
	h.expect("start").finish(Result{Commit: "c1", Rollout: &Rollout{State: RolloutWaiting, Commit: "c2"}}, nil)
	h.idle()
	m := scrape(t, h.a)
	if metricValue(t, m, "syncd_rollout_waiting") != 1 || metricValue(t, m, "syncd_rollout_halted") != 0 {
		t.Errorf("waiting: %v %v", metricValue(t, m, "syncd_rollout_waiting"), metricValue(t, m, "syncd_rollout_halted"))
	}
	h.fire()
	h.expect("poll").finish(Result{Commit: "c1", Rollout: &Rollout{State: RolloutHalted, Commit: "c2", Was: RolloutWaiting}}, nil)
	h.fire()
	h.expect("poll").finish(Result{Quiet: true}, nil)
	h.idle()
	m = scrape(t, h.a)
	if metricValue(t, m, "syncd_rollout_waiting") != 0 || metricValue(t, m, "syncd_rollout_halted") != 1 {
		t.Errorf("halted: %v %v", metricValue(t, m, "syncd_rollout_waiting"), metricValue(t, m, "syncd_rollout_halted"))
	}
	h.fire()
	h.expect("poll").finish(Result{Commit: "c3", Rollout: &Rollout{Was: RolloutHalted}}, nil)
	h.idle()
	if m = scrape(t, h.a); metricValue(t, m, "syncd_rollout_halted") != 0 {
		t.Errorf("resumed, yet halted = %v", metricValue(t, m, "syncd_rollout_halted"))
	}
	if !(&Rollout{Was: RolloutHalted}).Changed() || (&Rollout{State: RolloutHalted, Was: RolloutHalted}).Changed() {
		t.Error("Changed")
	}
}
