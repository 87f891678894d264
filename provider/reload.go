package provider

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

var (
	configReloads = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem:      "baremetal_cloud_config",
		Name:           "reloads_total",
		Help:           "Changes of the cloud-config file seen, by result: applied, or invalid (does not parse or validate; the previous config stays in effect). A valid config is always applied: addresses in use that it no longer covers are retained, see baremetal_retained_addresses.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"result"})
	configStale = metrics.NewGauge(&metrics.GaugeOpts{
		Subsystem:      "baremetal_cloud_config",
		Name:           "stale",
		Help:           "1 when the cloud-config file differs from the config in effect because the file's version is invalid; see the log.",
		StabilityLevel: metrics.ALPHA,
	})
	registerReloadMetrics sync.Once
)

// ExitAfterStall makes the load balancer end the process once it finds
// that the process was frozen for longer than the leader-election lease,
// since another replica may lead by then (see loadbalancer.ExitAfterStall).
func (c *Cloud) ExitAfterStall(lease time.Duration) { c.lb.ExitAfterStall(lease) }

// FenceOnLease makes the load balancer allocate only while this replica's
// leader-election Lease is fresh, and exit once another replica holds it
// (see loadbalancer.FenceOnLease).
func (c *Cloud) FenceOnLease(namespace, name string, renewDeadline, retryPeriod time.Duration) {
	c.lb.FenceOnLease(namespace, name, renewDeadline, retryPeriod)
}

// WatchConfigFile makes the provider follow changes of the cloud-config
// file at path from the moment its informers are set. The app calls it with
// the --cloud-config path, which the provider's factory is not told.
func (c *Cloud) WatchConfigFile(path string) {
	c.configPath = path
}

// watchConfig polls the cloud-config file until ctx ends and applies each
// new version. It starts from the content the factory parsed, so a replica
// that waited as a standby while the file changed applies the file's
// current version as soon as it leads.
func (c *Cloud) watchConfig(ctx context.Context) {
	registerReloadMetrics.Do(func() { legacyregistry.MustRegister(configReloads, configStale) })
	logger := klog.FromContext(ctx).WithValues("file", c.configPath)
	readErr := func(err error) {
		logger.Error(err, "Reading the cloud-config file; changes to it will apply when it is readable again")
	}
	apply := func(data []byte) {
		if err := c.Reconfigure(ctx, data); err != nil {
			configStale.Set(1)
			logger.Error(err, "Cloud-config changed but was not applied; the previous config stays in effect")
			return
		}
		configStale.Set(0)
	}
	if c.loaded != nil {
		config.WatchFileSince(ctx, c.configPath, config.PollInterval, c.loaded, apply)
		return
	}
	config.WatchFile(ctx, c.configPath, config.PollInterval, readErr, apply)
}

// Reconfigure applies a new version of the cloud-config: new pools for the
// load balancer and new node rules for InstancesV2.
//
// "Refused" means only invalid: a file that does not parse or validate
// changes nothing, and the previous config stays in effect. A valid config
// is always applied, even one that no longer covers addresses in use: those
// stay with their Services as retained addresses (flagged by an event, a
// metric and a log line) until the Services release them. That is also
// what a restart with the file does, so the outcome of an edit does not
// depend on whether the CCM restarts (contract C1).
func (c *Cloud) Reconfigure(ctx context.Context, data []byte) error {
	cfg, err := config.Parse(data)
	if err != nil {
		configReloads.WithLabelValues("invalid").Inc()
		return fmt.Errorf("--cloud-config is invalid:\n%w", err)
	}
	// This fails only when ctx ends before the state is restored.
	if err := c.lb.Reconfigure(ctx, cfg); err != nil {
		return err
	}
	c.instances.setConfig(cfg)
	configReloads.WithLabelValues("applied").Inc()
	klog.FromContext(ctx).Info("Applied a new cloud-config", "pools", len(cfg.Pools))
	for _, w := range cfg.Warnings {
		klog.FromContext(ctx).Info("Warning in --cloud-config", "warning", w)
	}
	return nil
}
