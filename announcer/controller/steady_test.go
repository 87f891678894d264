package controller

import (
	"strings"
	"time"
)

// Bounds of neverAnnounces and holds. holdPeriod covers five memberlist
// probe rounds and ten gossip rounds (membership.go: ProbeInterval 100 ms,
// GossipInterval 50 ms), the time in which a late member event would
// arrive; holdPasses makes sure passes really ran in it, whatever the
// machine's load; holdLimit bounds the wait for them.
const (
	holdPeriod = 500 * time.Millisecond
	holdPasses = 5
	holdLimit  = 10 * time.Second
)

// neverAnnounces proves that the node announces nothing, not only at the
// first pass: it waits for the first full pass (caches synced, members
// read), then drives at least holdPasses more passes over at least
// holdPeriod, each started by a membership event (what a gossip round
// delivers) or a Kubernetes change, and fails if any pass announced
// anything.
func (h *harness) neverAnnounces() {
	h.t.Helper()
	h.hold()
	if ever := h.layer2.everAnnounced(); len(ever) > 0 {
		h.t.Fatalf("announced %s during %v and %d passes after the first one; want nothing at any pass", strings.Join(ever, ","), holdPeriod, h.layer2.passes()-1)
	}
}

// hold waits for the first pass, then drives more passes for holdPeriod
// and until at least holdPasses of them ran.
func (h *harness) hold() {
	h.t.Helper()
	h.eventually("the first pass", func() bool { return h.layer2.passes() >= 1 })
	first := h.layer2.passes()
	start := time.Now()
	for time.Since(start) < holdPeriod || h.layer2.passes() < first+holdPasses {
		if time.Since(start) > holdLimit {
			h.t.Fatalf("only %d passes in %v after the first one, want %d", h.layer2.passes()-first, holdLimit, holdPasses)
		}
		// The same members again: memberlist reports updates and
		// refutations as changes too, and the controller runs a pass
		// on each.
		h.members.set(h.members.Members()...)
		h.ctrl.Trigger()
		time.Sleep(20 * time.Millisecond)
	}
}
