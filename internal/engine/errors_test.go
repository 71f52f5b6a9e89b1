package engine

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestResourceErrorsAreNotRaces(t *testing.T) {
	pool := errors.Join(errdefs.ErrConflict, errors.New("Error response from daemon: could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"))
	if raced(pool) {
		t.Error("address pool exhaustion (a Conflict) taken for an interrupted run's race")
	}
	if h := resourceHint(pool); h == "" {
		t.Error("address pool exhaustion not recognised")
	}
	e := &Engine{}
	err := e.wrap(t.Context(), "apply web", pool)
	if !errors.Is(err, ErrResources) || errors.Is(err, ErrEngine) {
		t.Errorf("wrap: %v", err)
	}
	if got := err.Error(); !strings.Contains(got, "default-address-pools") {
		t.Errorf("the error does not say what to do: %s", got)
	}
	if !raced(errors.New("Error response from daemon: No such container: abc")) {
		t.Error("a vanished container is a race")
	}
}
