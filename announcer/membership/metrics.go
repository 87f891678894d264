package membership

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

var members = metrics.NewGauge(&metrics.GaugeOpts{
	Namespace:      "baremetal_announcer",
	Subsystem:      "membership",
	Name:           "members",
	Help:           "Live announcers in this node's view of the memberlist cluster, itself included.",
	StabilityLevel: metrics.ALPHA,
})

var registerOnce sync.Once

// RegisterMetrics registers this package's metrics with the legacy
// registry served on /metrics.
func RegisterMetrics() {
	registerOnce.Do(func() { legacyregistry.MustRegister(members) })
}
