package main

import (
	"strings"
	"testing"

	"github.com/syncd-dev/syncd/internal/testenv"
)

// TestPlanNamesTheChangedSetting: a recreate for a changed configuration
// names the settings that changed (as syncd diff does), from what the last
// apply recorded, secret values named, never shown.
func TestPlanNamesTheChangedSetting(t *testing.T) {
	t.Parallel()
	testenv.Docker(t)
	f := newFleet(t)
	app := f.app()
	f.commit()
	f.mustSync()
	f.vars["MSG"] = "a new greeting"
	f.secrets["api_token"] = "tok-Rotated-Qm4v81LzP0"
	f.commit()
	code, out := f.syncd("plan")
	if code != 0 || !strings.Contains(out, "  web: recreate (configuration changed") || !strings.Contains(out, "    environment.DEMO_MESSAGE: hello → a new greeting\n") {
		t.Errorf("plan of a changed setting of %s: exit %d, want the setting named:\n%s", app, code, out)
	}
	if strings.Contains(out, "tok-") {
		t.Errorf("the plan shows a secret value:\n%s", out)
	}
}
