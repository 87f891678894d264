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

	retainedAddresses = metrics.NewGauge(&metrics.GaugeOpts{
		Name:           "baremetal_retained_addresses",
		Help:           "Addresses in use that the cloud-config in effect would not give their Services now (outside every pool, skipped by avoid-buggy-ips, or excluded by a pool's restrictions). They stay with their Services until released; see the AddressRetained events.",
		StabilityLevel: metrics.ALPHA,
	})
	duplicatesRepaired = metrics.NewCounter(&metrics.CounterOpts{
		Name:           "baremetal_duplicate_addresses_repaired_total",
		Help:           "Addresses removed from a Service's status because an older Service's status showed them too; see the DuplicateAddress events.",
		StabilityLevel: metrics.ALPHA,
	})

	registerOnce sync.Once
)

// registerMetrics adds the metrics to the registry the CCM serves on
// /metrics.
func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(poolInUse, poolTotal, allocationErrors, retainedAddresses, duplicatesRepaired)
		legacyregistry.CustomMustRegister(&stateCollector{})
	})
}
