package provider

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	cloudprovider "k8s.io/cloud-provider"
	cloudproviderapi "k8s.io/cloud-provider/api"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

var _ cloudprovider.InstancesV2 = (*Instances)(nil)

// providerIDPrefix starts every providerID we set: baremetal://<node-name>.
const providerIDPrefix = ProviderName + "://"

// Instances implements InstancesV2 from the Node object alone: on bare metal
// there is no inventory API to ask, so the kubelet's provided node IP and the
// config's topology rules are the whole truth.
type Instances struct {
	// cfg is swapped whole when the cloud-config file changes.
	cfg atomic.Pointer[config.Config]
}

// NewInstances returns the InstancesV2 for cfg.
func NewInstances(cfg *config.Config) *Instances {
	i := &Instances{}
	i.cfg.Store(cfg)
	return i
}

// setConfig makes later calls use cfg's removed-nodes and topology rules.
func (i *Instances) setConfig(cfg *config.Config) { i.cfg.Store(cfg) }

// InstanceExists returns true if the instance for the given node exists according to the cloud provider.
// A machine is gone only when the config lists it under removed-nodes: a
// powered-off server is not a deleted one, so we never delete Nodes on a guess.
func (i *Instances) InstanceExists(ctx context.Context, node *v1.Node) (bool, error) {
	return !slices.Contains(i.cfg.Load().RemovedNodes, node.Name), nil
}

// InstanceShutdown returns true if the instance is shutdown according to the cloud provider.
// We have no out-of-band view of power state, so we never claim one.
func (i *Instances) InstanceShutdown(ctx context.Context, node *v1.Node) (bool, error) {
	return false, nil
}

// InstanceMetadata returns the instance's metadata. The values returned in InstanceMetadata are
// translated into specific fields and labels in the Node object on registration.
func (i *Instances) InstanceMetadata(ctx context.Context, node *v1.Node) (*cloudprovider.InstanceMetadata, error) {
	addrs, err := nodeAddresses(node)
	if err != nil {
		return nil, err
	}
	md := &cloudprovider.InstanceMetadata{
		ProviderID:    providerIDPrefix + node.Name,
		InstanceType:  "baremetal",
		NodeAddresses: addrs,
	}
	if rule := i.topologyFor(node, addrs); rule != nil {
		md.Region, md.Zone = rule.Region, rule.Zone
	}
	return md, nil
}

// nodeAddresses is the kubelet's provided node IP(s) as InternalIP, any
// address the node already reports, and its hostname.
func nodeAddresses(node *v1.Node) ([]v1.NodeAddress, error) {
	var out []v1.NodeAddress
	add := func(a v1.NodeAddress) {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if s, ok := node.Annotations[cloudproviderapi.AnnotationAlphaProvidedIPAddr]; ok && s != "" {
		for _, part := range strings.Split(s, ",") {
			ip, err := netip.ParseAddr(strings.TrimSpace(part))
			if err != nil {
				return nil, fmt.Errorf("node %s: annotation %s: %q is not an IP address", node.Name, cloudproviderapi.AnnotationAlphaProvidedIPAddr, s)
			}
			add(v1.NodeAddress{Type: v1.NodeInternalIP, Address: ip.String()})
		}
	}
	for _, a := range node.Status.Addresses {
		if a.Type == v1.NodeInternalIP || a.Type == v1.NodeExternalIP {
			add(a)
		}
	}
	add(v1.NodeAddress{Type: v1.NodeHostName, Address: node.Name})
	return out, nil
}

// topologyFor returns the first node-topology rule the node matches, by
// label selector or by one of its addresses lying in the rule's subnets.
func (i *Instances) topologyFor(node *v1.Node, addrs []v1.NodeAddress) *config.TopologyRule {
	cfg := i.cfg.Load()
	for k := range cfg.NodeTopology {
		rule := &cfg.NodeTopology[k]
		if rule.Selector != nil && !rule.Selector.Empty() && rule.Selector.Matches(labels.Set(node.Labels)) {
			return rule
		}
		for _, a := range addrs {
			ip, err := netip.ParseAddr(a.Address)
			if err != nil {
				continue
			}
			for _, p := range rule.Prefixes {
				if p.Contains(ip) {
					return rule
				}
			}
		}
	}
	return nil
}
