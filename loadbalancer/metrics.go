package loadbalancer

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

const metricsSubsystem = "baremetal_loadbalancer"

var (
	poolInUse = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Subsystem:      metricsSubsystem,
		Name:           "pool_addresses_in_use",
		Help:           "Addresses of the pool held by Services.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"pool", "family"})
	poolTotal = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Subsystem:      metricsSubsystem,
		Name:           "pool_addresses_total",
		Help:           "Addresses the pool can hand out (saturates at 2^64-1 for large IPv6 pools).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"pool", "family"})
	allocationErrors = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      metricsSubsystem,
		Name:           "allocation_errors_total",
		Help:           "Failed allocations, by reason.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"reason"})

	registerOnce sync.Once
)

// registerMetrics adds the metrics to the registry the CCM serves on
// /metrics.
func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(poolInUse, poolTotal, allocationErrors)
		legacyregistry.CustomMustRegister(&stateCollector{})
	})
}
