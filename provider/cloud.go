package provider

import (
	"context"
	"fmt"
	"io"

	"k8s.io/client-go/informers"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/klog/v2"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/loadbalancer"
)

// ProviderName is the name given to --cloud-provider.
const ProviderName = "baremetal"

var (
	_ cloudprovider.Interface    = (*Cloud)(nil)
	_ cloudprovider.InformerUser = (*Cloud)(nil)
)

func init() {
	cloudprovider.RegisterCloudProvider(ProviderName, func(r io.Reader) (cloudprovider.Interface, error) {
		if r == nil {
			return nil, fmt.Errorf("the %s cloud provider needs --cloud-config: a file with at least one address pool", ProviderName)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("reading --cloud-config: %w", err)
		}
		cfg, err := config.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("--cloud-config is invalid:\n%w", err)
		}
		for _, w := range cfg.Warnings {
			klog.InfoS("Warning in --cloud-config", "warning", w)
		}
		c := New(cfg)
		c.loaded = data
		return c, nil
	})
}

// Cloud is the baremetal cloud provider.
type Cloud struct {
	// initial is the config the provider was created with, for
	// Initialize's log line; Reconfigure hands later versions straight to
	// lb and instances, which hold the config in effect.
	initial   *config.Config
	lb        *loadbalancer.LoadBalancer
	instances *Instances

	clientBuilder cloudprovider.ControllerClientBuilder
	stop          <-chan struct{}
	// configPath, when set, is polled for changes (WatchConfigFile).
	configPath string
	// loaded is the file's content that initial was parsed from, if known.
	loaded []byte
}

// New returns the provider for a parsed, validated config.
func New(cfg *config.Config) *Cloud {
	return &Cloud{
		initial:   cfg,
		lb:        loadbalancer.New(cfg),
		instances: NewInstances(cfg),
	}
}

// Initialize provides the cloud with a kubernetes client builder and may spawn goroutines
// to perform housekeeping or run custom controllers specific to the cloud provider.
func (c *Cloud) Initialize(clientBuilder cloudprovider.ControllerClientBuilder, stop <-chan struct{}) {
	c.clientBuilder = clientBuilder
	c.stop = stop
	klog.InfoS("Initialized the baremetal cloud provider", "pools", len(c.initial.Pools), "clusterID", c.initial.ClusterID)
}

// SetInformers sets the informer on the cloud object. The app calls it right
// after Initialize and before it starts the informers.
func (c *Cloud) SetInformers(f informers.SharedInformerFactory) {
	c.lb.SetInformers(f)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-c.stop
		cancel()
	}()
	c.lb.Start(ctx, c.clientBuilder.ClientOrDie("baremetal-loadbalancer"))
	if c.configPath != "" {
		go c.watchConfig(ctx)
	}
}

// LoadBalancer returns a balancer interface. Also returns true if the interface is supported, false otherwise.
func (c *Cloud) LoadBalancer() (cloudprovider.LoadBalancer, bool) { return c.lb, true }

// Instances returns an instances interface. Also returns true if the interface is supported, false otherwise.
func (c *Cloud) Instances() (cloudprovider.Instances, bool) { return nil, false }

// InstancesV2 is an implementation for instances and should only be implemented by external cloud providers.
func (c *Cloud) InstancesV2() (cloudprovider.InstancesV2, bool) { return c.instances, true }

// Zones returns a zones interface. Also returns true if the interface is supported, false otherwise.
func (c *Cloud) Zones() (cloudprovider.Zones, bool) { return nil, false }

// Clusters returns a clusters interface.  Also returns true if the interface is supported, false otherwise.
func (c *Cloud) Clusters() (cloudprovider.Clusters, bool) { return nil, false }

// Routes returns a routes interface along with whether the interface is supported.
func (c *Cloud) Routes() (cloudprovider.Routes, bool) { return nil, false }

// ProviderName returns the cloud provider ID.
func (c *Cloud) ProviderName() string { return ProviderName }

// HasClusterID returns true if a ClusterID is required and set. The cluster
// ID defaults to "baremetal" and can be set with cluster-id.
func (c *Cloud) HasClusterID() bool { return true }
