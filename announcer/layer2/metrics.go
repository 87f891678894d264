package layer2

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// Protocol label values.
const (
	protoARP = "arp"
	protoNDP = "ndp"
)

var (
	requestsAnswered = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "baremetal_announcer",
		Subsystem:      "layer2",
		Name:           "requests_answered_total",
		Help:           "ARP requests and IPv6 neighbor solicitations answered for announced IPs, by protocol.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"protocol"})
	gratuitousSent = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "baremetal_announcer",
		Subsystem:      "layer2",
		Name:           "gratuitous_sent_total",
		Help:           "Gratuitous ARP and unsolicited neighbor advertisements sent on takeover, by protocol.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"protocol"})
	addressConflicts = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "baremetal_announcer",
		Name:           "address_conflicts_total",
		Help:           "Times another MAC announced (gratuitous ARP, ARP reply, neighbor advertisement) an IP that this node announced, and this node still announced it a second later: split-brain evidence. Each IP and MAC counts at most once per 30 s.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"ip"})
	socketErrors = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "baremetal_announcer",
		Subsystem:      "layer2",
		Name:           "socket_errors_total",
		Help:           "Errors opening, reading or writing ARP and NDP sockets, by protocol.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"protocol"})
)

var registerOnce sync.Once

// RegisterMetrics registers this package's metrics with the legacy
// registry served on /metrics. Metrics count nothing until registered.
func RegisterMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(requestsAnswered, gratuitousSent, socketErrors, addressConflicts)
	})
}
