package chaos

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/loadbalancer"
)

// stateFingerprint is contract C3's summary of who holds which address,
// the function whose value the CCM exports as baremetal_allocator_state_info.
// The suite applies it to what status says; TestStateFingerprintFollowsC3
// pins it to the contract's definition, so a change to it cannot hide a
// difference between the allocator and status.
func stateFingerprint(held map[string][]netip.Addr) string {
	return loadbalancer.StateFingerprint(held)
}

// heldByStatus is what status says the allocator should hold: the addresses
// of every Service that holds its address (C3: type LoadBalancer with no
// class, or still carrying the cleanup finalizer).
func heldByStatus(svcs []corev1.Service) (map[string][]netip.Addr, int) {
	held := map[string][]netip.Addr{}
	n := 0
	for i := range svcs {
		s := &svcs[i]
		ips := statusIPs(s)
		if len(ips) == 0 || !holdsAddress(s) {
			continue
		}
		held[s.Namespace+"/"+s.Name] = ips
		n += len(ips)
	}
	return held, n
}

// allocatorState is the C3 series read from a /metrics text.
type allocatorState struct {
	Fingerprint string
	Held        int
}

// parseAllocatorState reads baremetal_allocator_state_info and
// baremetal_allocator_addresses_held; ok is false when the CCM does not
// export them (a build from before contract C3).
func parseAllocatorState(metrics string) (st allocatorState, ok bool, err error) {
	var haveFP, haveHeld bool
	for _, line := range strings.Split(metrics, "\n") {
		switch {
		case strings.HasPrefix(line, "baremetal_allocator_state_info{"):
			const key = `fingerprint="`
			i := strings.Index(line, key)
			if i < 0 {
				return st, false, fmt.Errorf("no fingerprint label in %q", line)
			}
			rest := line[i+len(key):]
			j := strings.IndexByte(rest, '"')
			if j < 0 {
				return st, false, fmt.Errorf("unterminated fingerprint label in %q", line)
			}
			if haveFP {
				return st, false, fmt.Errorf("more than one baremetal_allocator_state_info series")
			}
			st.Fingerprint, haveFP = rest[:j], true
		case strings.HasPrefix(line, "baremetal_allocator_addresses_held "):
			f := strings.Fields(line)
			v, perr := strconv.ParseFloat(f[len(f)-1], 64)
			if perr != nil {
				return st, false, fmt.Errorf("baremetal_allocator_addresses_held: %v", perr)
			}
			st.Held, haveHeld = int(v), true
		}
	}
	if !haveFP && !haveHeld {
		return st, false, nil
	}
	if !haveFP || !haveHeld {
		return st, false, fmt.Errorf("only one of baremetal_allocator_state_info and baremetal_allocator_addresses_held is exported")
	}
	return st, true, nil
}
