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

// poolTotals reads baremetal_loadbalancer_pool_addresses_total: the size
// of every pool, per family, in the config the CCM has in effect. Keys are
// "pool/family".
func poolTotals(metrics string) map[string]int {
	const name = "baremetal_loadbalancer_pool_addresses_total{"
	out := map[string]int{}
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		labels := map[string]string{}
		for _, kv := range strings.Split(line[len(name):end], ",") {
			k, v, _ := strings.Cut(kv, "=")
			labels[k] = strings.Trim(v, `"`)
		}
		f := strings.Fields(line[end+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[labels["pool"]+"/"+labels["family"]] = int(v)
	}
	return out
}

// expectedTotals is what poolTotals should read for cfg.
func expectedTotals(cfg *cloudConfig) map[string]int {
	out := map[string]int{}
	for i := range cfg.Pools {
		p := &cfg.Pools[i]
		if n := len(cfg.addresses(p, true)); n > 0 {
			out[p.Name+"/IPv4"] = n
		}
		if n := len(cfg.addresses(p, false)); n > 0 {
			out[p.Name+"/IPv6"] = n
		}
	}
	return out
}
