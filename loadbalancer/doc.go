// Package loadbalancer is the provider's cloudprovider.LoadBalancer: it
// turns a LoadBalancer Service into an allocation request (pool, requested
// IPs, sharing, IP families), asks the ipam allocator, and returns the
// addresses for the service controller to write into the Service status.
//
// It never touches the network; the announcer makes the addresses reachable.
// It reads MetalLB's annotations (metallb.universe.tf/, metallb.io/) as well
// as its own (cloud-provider-baremetal.io/), so Services written for MetalLB
// keep working.
package loadbalancer
