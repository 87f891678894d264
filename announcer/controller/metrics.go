package controller

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

var (
	announcedIPs = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace:      "baremetal_announcer",
		Name:           "announced_ips",
		Help:           "IPs this node announces, by protocol.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"protocol"})
	reconciles = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "baremetal_announcer",
		Name:           "reconciles_total",
		Help:           "Passes computing the desired announcements, by result (ok or error).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})
	quorumClaims = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace:      "baremetal_announcer",
		Name:           "quorum",
		Help:           "1 when the split-brain guard lets this node claim layer2 IPs (it sees a majority of the announcers and hears from them), 0 when it claims none.",
		StabilityLevel: metrics.ALPHA,
	})
	reconcileDuration = metrics.NewHistogram(&metrics.HistogramOpts{
		Namespace:      "baremetal_announcer",
		Name:           "reconcile_duration_seconds",
		Help:           "Time to compute and apply the desired announcements.",
		Buckets:        []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
		StabilityLevel: metrics.ALPHA,
	})
)

var registerOnce sync.Once

// RegisterMetrics registers this package's metrics with the legacy
// registry served on /metrics.
func RegisterMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(announcedIPs, reconciles, reconcileDuration, quorumClaims, statusWrites)
	})
}
