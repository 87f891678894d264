// Package provider is the cloud provider named "baremetal": the
// cloudprovider.Interface that the standard cloud-controller-manager runs.
//
// It registers itself under ProviderName when imported. It implements two
// parts of the interface: LoadBalancer (addresses from the cloud-config's
// pools, in package loadbalancer) and InstancesV2 (so that kubelets started
// with --cloud-provider=external lose their uninitialized taint). Routes,
// Zones and Clusters have no meaning on bare metal and are not implemented.
package provider
