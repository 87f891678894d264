// Package loadbalancer is the provider's cloudprovider.LoadBalancer: it
// turns a LoadBalancer Service into an allocation request (pool, requested
// IPs, sharing, IP families), asks the ipam allocator, and returns the
// addresses for the service controller to write into the Service status.
//
// It never touches the network; the announcer makes the addresses reachable.
// It reads MetalLB's annotations (metallb.universe.tf/, metallb.io/) as well
// as its own (cloud-provider-baremetal.io/), so Services written for MetalLB
// keep working.
//
// A Service's address changes only when its own spec asks for it (contract
// C1; the ipam package has the rule). Around the allocator this package
// keeps that promise where the API is involved:
//
//   - A status index, fed by the shared Service informer, keeps an address
//     that another Service's status still shows from being handed out, so a
//     status patch that lags or fails cannot make a duplicate.
//   - Retained addresses (in use, but no longer given by the config in
//     effect) are flagged with an AddressRetained Warning event, the gauge
//     baremetal_retained_addresses and a log line, and published in the
//     ConfigMap baremetal-retained-addresses for the announcers (C2).
//   - A duplicate audit repairs what only a fault outside this process can
//     cause: the younger of two Services showing one address loses it, with
//     a DuplicateAddress event, and is given a new one.
//   - The retrier wakes pending Services when an address they can use is
//     really free, and forgets Services that no longer want one.
//
// The provider is initialised only in the elected leader, so every one of
// these runs, and writes, only there.
package loadbalancer
