// Package servicestatus is the answer to "who announces my IP?" as it is
// kept on the Service itself: one condition in status.conditions, of type
// ConditionType, written by the announcers with server-side apply under
// FieldManager.
//
// Why a condition on the Service and not a CRD (MetalLB's ServiceL2Status)
// or Leases (Cilium): it lives and dies with the Service, so there is
// nothing to clean up; `kubectl get svc -o yaml` shows it next to the IP;
// and the service controller's status patches only carry the fields they
// change (status.loadBalancer), so they leave it alone. Server-side apply
// under a field manager of our own makes that explicit in managedFields.
//
// Why one condition per Service, written by one node: 5,000 Services on
// 100 nodes must not mean 500,000 writes. All announcers compute the same
// decisions from the same caches, so each can tell who writes: the layer2
// owner of the Service's first owned IP, else the first live node that
// advertises it by BGP, else the first live node (package controller,
// status.go). All nodes share FieldManager, so whichever node writes next
// replaces the whole condition, and a node that stops writing leaves
// nothing of its own behind.
//
// The message holds one entry per IP of the Service, in a fixed grammar
// that Format writes and Parse reads back (the kubectl plugin, package
// overview, reads it):
//
//	203.0.113.200 from pool lan via layer2: announced by node1 on eth0
//	198.51.100.7 from pool edge via bgp: advertised by node1, node2 to 203.0.113.1
//	203.0.113.201 from pool lan via layer2: not announced (NoEligibleNode): no live node ...
//	192.0.2.9: not announced (NotInPool): the address is in no pool of the cloud-config
//
// Entries are separated by "; ". The pool is the announcer's: the pool
// whose definition it announces the address under (cloud-config, else the
// CCM's retained addresses), the same one the CCM allocated from.
package servicestatus
