// Package config parses and validates the provider's --cloud-config file.
//
// The file says which addresses LoadBalancer Services may get (address
// pools), how the announcer DaemonSet makes them reachable (layer 2 ARP/NDP
// or BGP, with the BGP peers and how routes are advertised), and a few
// cluster facts the cloud-controller-manager needs (cluster ID, node
// regions and zones, nodes that are gone for good).
//
// # Format
//
// The file is YAML. Its schema is the "config" block of MetalLB's classic
// ConfigMap (MetalLB v0.9 to v0.12): peers, bgp-communities, address-pools
// and bfd-profiles, with the same keys and meanings. On top of that come a
// few extensions, marked as such in the Go types and in REFERENCE.md:
// cluster-id, node-topology, removed-nodes, and per-pool priority,
// namespaces, service-selectors, node-selectors and interfaces, per-peer
// password-secret, and per-advertisement large-communities.
//
// Parse also accepts the whole MetalLB ConfigMap manifest (a document with
// "kind: ConfigMap"): it then reads the block under data.config and ignores
// the rest. So a MetalLB user can point --cloud-config at their existing
// example-layer2-config.yaml without editing it. Line numbers in errors are
// lines of that file when data.config is a literal block ("config: |").
//
// # Why MetalLB's schema
//
// This provider replaces MetalLB, and most clusters it will run on already
// have a MetalLB configuration that someone debugged against their network.
// Taking that file unchanged makes migration a matter of pointing a flag at
// it, keeps MetalLB's documentation and community answers applicable, and
// avoids inventing a second vocabulary for the same ideas. The classic
// ConfigMap schema, rather than MetalLB v0.13's CRDs, is used because the
// cloud-config is a file read at startup, not a set of API objects, and the
// classic block is exactly such a file.
//
// # Validation
//
// Parse checks everything before anything runs: unknown keys (with a
// suggestion), values of the wrong type, addresses, ranges, overlaps
// between and within pools, BGP settings, label selectors and names. It
// reports every problem at once, one per line, each naming the key's path,
// the offending value and its line:
//
//	address-pools[1].addresses[0]: "192.168.1.300-192.168.1.310" is not an IP range: ParseAddr("192.168.1.300"): IPv4 field has value >255 (line 11)
//
// Parse also refuses pools that overlap special-purpose address space or
// hold a BGP peer's address, never quotes what may be a secret, and
// cannot be stalled: YAML aliases are refused and the work is bounded
// before parsing (limits.go). Valid but odd files carry Warnings.
//
// Where this package is stricter than MetalLB v0.12 it is to refuse
// configurations that would silently do something other than what was
// meant: a CIDR with host bits set (MetalLB masked it), a hold-time below
// one second (MetalLB turned it into 0, no keepalives), and a
// bfd-profile with echo-mode, which the embedded BFD does not implement.
package config
