package bfd

import (
	"strings"
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

var (
	sessionFlaps = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "baremetal_announcer",
		Subsystem:      "bfd",
		Name:           "session_flaps_total",
		Help:           "Times a BFD session left Up, by peer and reason: detection_time_expired (nothing heard for the detection time), neighbor_signaled_down, neighbor_admin_down, admin_down.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"peer", "reason"})

	packetsDropped = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "baremetal_announcer",
		Subsystem:      "bfd",
		Name:           "packets_dropped_total",
		Help:           "Received BFD packets dropped, by reason: malformed, authentication, ttl (single hop not at 255, multihop below minimum-ttl), unknown_session, discriminator, queue_full.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"reason"})

	stateDesc = metrics.NewDesc("baremetal_announcer_bfd_session_state",
		"1 for the current state of the BFD session with the peer (admin_down, down, init, up), 0 for the others.",
		[]string{"peer", "state"}, nil, metrics.ALPHA, "")
	detectionDesc = metrics.NewDesc("baremetal_announcer_bfd_detection_time_seconds",
		"Negotiated detection time of the BFD session with the peer: silence this long takes it down; 0 before the peer was heard.",
		[]string{"peer"}, nil, metrics.ALPHA, "")
	receivedDesc = metrics.NewDesc("baremetal_announcer_bfd_packets_received_total",
		"BFD control packets accepted from the peer since its session was configured.",
		[]string{"peer"}, nil, metrics.ALPHA, "")
)

// managerSet holds the live Managers, which the collector asks at scrape
// time.
type managerSet struct {
	mu  sync.Mutex
	set map[*Manager]struct{}
}

var managers = &managerSet{set: map[*Manager]struct{}{}}

func (ms *managerSet) add(m *Manager) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.set[m] = struct{}{}
}

func (ms *managerSet) remove(m *Manager) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	delete(ms.set, m)
}

func (ms *managerSet) list() []*Manager {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	out := make([]*Manager, 0, len(ms.set))
	for m := range ms.set {
		out = append(out, m)
	}
	return out
}

type collector struct {
	metrics.BaseStableCollector
}

func (collector) DescribeWithStability(ch chan<- *metrics.Desc) {
	ch <- stateDesc
	ch <- detectionDesc
	ch <- receivedDesc
}

var allStates = []State{AdminDown, Down, Init, Up}

// stateLabel is a state as a label value: admin_down, down, init, up.
func stateLabel(s State) string {
	if s == AdminDown {
		return "admin_down"
	}
	return strings.ToLower(s.String())
}

func (collector) CollectWithStability(ch chan<- metrics.Metric) {
	for _, m := range managers.list() {
		for _, st := range m.Statuses() {
			peer := st.Peer.String()
			for _, s := range allStates {
				v := 0.0
				if s == st.State {
					v = 1
				}
				ch <- metrics.NewLazyConstMetric(stateDesc, metrics.GaugeValue, v, peer, stateLabel(s))
			}
			ch <- metrics.NewLazyConstMetric(detectionDesc, metrics.GaugeValue, st.DetectionTime.Seconds(), peer)
			ch <- metrics.NewLazyConstMetric(receivedDesc, metrics.CounterValue, float64(st.Received), peer)
		}
	}
}

var registerOnce sync.Once

// RegisterMetrics registers this package's metrics with the legacy
// registry served on /metrics.
func RegisterMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(sessionFlaps, packetsDropped)
		legacyregistry.CustomMustRegister(&collector{})
	})
}
