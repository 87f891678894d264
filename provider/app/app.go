// Package app assembles the baremetal cloud-controller-manager command: the
// standard k8s.io/cloud-provider command with our provider and our defaults.
package app

import (
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	cloudprovider "k8s.io/cloud-provider"
	ccmapp "k8s.io/cloud-provider/app"
	ccmconfig "k8s.io/cloud-provider/app/config"
	"k8s.io/cloud-provider/names"
	"k8s.io/cloud-provider/options"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/klog/v2"

	// Registers the provider under its name.
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/provider"
)

// Defaults that differ from the upstream command's. Each is still a flag.
//
// The upstream defaults (1 service sync at a time, 20 QPS, burst 30) suit a
// cloud whose load-balancer API takes seconds per call. Our Ensure is an
// in-memory allocation, so the API client is the bottleneck: every sync
// writes a finalizer, a status patch and two events. These values were the
// best measured for 1,000 Services at once (bench/results/burst-1000*.txt,
// backlog-1000.txt): upstream defaults take ~186 s, these keep up with the
// creates.
const (
	DefaultConcurrentServiceSyncs = 20
	DefaultKubeAPIQPS             = 400
	DefaultKubeAPIBurst           = 800
)

// NewCommand returns the cloud-controller-manager command.
func NewCommand() (*cobra.Command, error) {
	opts, err := options.NewCloudControllerManagerOptions()
	if err != nil {
		return nil, err
	}
	opts.KubeCloudShared.CloudProvider.Name = provider.ProviderName
	opts.ServiceController.ConcurrentServiceSyncs = DefaultConcurrentServiceSyncs
	opts.Generic.ClientConnection.QPS = DefaultKubeAPIQPS
	opts.Generic.ClientConnection.Burst = DefaultKubeAPIBurst

	fss := cliflag.NamedFlagSets{}
	cmd := ccmapp.NewCloudControllerManagerCommand(opts, initCloud, ccmapp.DefaultInitFuncConstructors, names.CCMControllerAliases(), fss, wait.NeverStop)
	cmd.Use = "baremetal-cloud-controller-manager"
	cmd.Short = "The Kubernetes cloud-controller-manager for bare metal: LoadBalancer IPs from address pools, and node initialization."
	return cmd, nil
}

func initCloud(c *ccmconfig.CompletedConfig) cloudprovider.Interface {
	shared := c.ComponentConfig.KubeCloudShared.CloudProvider
	cloud, err := cloudprovider.InitCloudProvider(shared.Name, shared.CloudConfigFile)
	if err != nil {
		klog.Fatalf("Cloud provider %q could not be initialized: %v", shared.Name, err)
	}
	if cloud == nil {
		klog.Fatalf("Unknown cloud provider %q: this binary only knows %q", shared.Name, provider.ProviderName)
	}
	// Pools edited in the ConfigMap apply without a restart, as MetalLB's do.
	if bm, ok := cloud.(*provider.Cloud); ok && shared.CloudConfigFile != "" {
		bm.WatchConfigFile(shared.CloudConfigFile)
	}
	// A leader frozen past its lease must not write once it wakes up, and
	// one starved until its lease is about to lapse must not write either:
	// its write could land after the next leader's.
	if le := c.ComponentConfig.Generic.LeaderElection; le.LeaderElect {
		if bm, ok := cloud.(*provider.Cloud); ok {
			bm.ExitAfterStall(le.LeaseDuration.Duration)
			if le.ResourceLock == resourcelock.LeasesResourceLock {
				bm.FenceOnLease(le.ResourceNamespace, le.ResourceName, le.RenewDeadline.Duration, le.RetryPeriod.Duration)
			} else {
				klog.Warningf("--leader-elect-resource-lock=%s: the lease fence needs %q, so a starved leader's late writes are caught only by the duplicate audit", le.ResourceLock, resourcelock.LeasesResourceLock)
			}
		}
	}
	return cloud
}
