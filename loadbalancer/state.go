package loadbalancer

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"slices"
	"sync/atomic"

	"k8s.io/component-base/metrics"
)

// StateFingerprint summarises which addresses which Services hold, so that
// a test can compare the allocator's view with the Services' status without
// a debug endpoint. held maps "namespace/name" to addresses. The keys are
// sorted, each key's addresses are sorted, the lines "<key> <addr>\n" are
// hashed with SHA-256 in that order, and the first 16 hex digits are
// returned. An empty map gives the hash of nothing. The chaos suite computes
// the same function from Service status (contract C3), so it must not change.
func StateFingerprint(held map[string][]netip.Addr) string {
	keys := make([]string, 0, len(held))
	for k := range held {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	var line []byte
	for _, k := range keys {
		addrs := slices.Clone(held[k])
		slices.SortFunc(addrs, netip.Addr.Compare)
		for _, a := range addrs {
			line = append(line[:0], k...)
			line = append(line, ' ')
			line = a.AppendTo(line)
			line = append(line, '\n')
			h.Write(line)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

var (
	addressesHeldDesc = metrics.NewDesc("baremetal_allocator_addresses_held",
		"Number of (Service, address) pairs the allocator holds.",
		nil, nil, metrics.ALPHA, "")
	stateInfoDesc = metrics.NewDesc("baremetal_allocator_state_info",
		"Always 1; the label fingerprint is loadbalancer.StateFingerprint of what the allocator holds, for comparing with the Services' status.",
		[]string{"fingerprint"}, nil, metrics.ALPHA, "")
)

// stateCollector computes the allocator-state metrics when /metrics is
// scraped rather than on every allocation: hashing every held address is
// linear in the number of Services, and scrapes are rare.
type stateCollector struct {
	metrics.BaseStableCollector
}

// collected is the load balancer the state metrics describe: the newest one
// made by New (the CCM makes exactly one).
var collected atomic.Pointer[LoadBalancer]

func (stateCollector) DescribeWithStability(ch chan<- *metrics.Desc) {
	ch <- addressesHeldDesc
	ch <- stateInfoDesc
}

func (stateCollector) CollectWithStability(ch chan<- metrics.Metric) {
	lb := collected.Load()
	if lb == nil {
		return
	}
	held := lb.alloc.Held()
	n := 0
	for _, addrs := range held {
		n += len(addrs)
	}
	ch <- metrics.NewLazyConstMetric(addressesHeldDesc, metrics.GaugeValue, float64(n))
	ch <- metrics.NewLazyConstMetric(stateInfoDesc, metrics.GaugeValue, 1, StateFingerprint(held))
}
