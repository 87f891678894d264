// Package controller decides which load-balancer IPs this node announces,
// by each protocol, and keeps the announcers in step with the cluster.
//
// It watches Services (their status IPs and externalTrafficPolicy),
// EndpointSlices and Nodes, and listens to membership changes. On any
// change it recomputes the whole desired state from its caches, in one
// goroutine, and hands each protocol's share to that protocol's Announcer
// (Config.Announcers, keyed by config.Protocol):
//
//   - layer2: for every IP in a Service's status that lies in a layer2
//     pool, the eligible nodes (package eligibility) intersected with the
//     live announcers (package membership), and the owner among them
//     (package owner). The IPs this node owns go to the layer2 Announcer.
//   - bgp: every IP of a bgp pool this node is eligible for goes to the BGP
//     speaker; there is no owner, as the routers spread traffic by ECMP.
//     The speaker picks its peers itself (announcer.NodeFollower).
//
// The node's own facts (its Node, its IP, the other nodes' IPs for
// memberlist) are read in node.go.
//
// The split-brain guard (guard.go) narrows the layer2 choice: the pool of each
// address in use comes from the cloud-config, else the CCM's retained
// addresses, else this node's memory (package coverage); only the live
// members that share this node's definition of a pool, and can serve it,
// are candidates, and only when they are the majority (package agreement,
// over the metadata this node publishes, package nodemeta); and this node
// announces nothing unless it sees a majority of the announcers the API
// expects (package quorum). A node whose standing for a pool just changed
// waits SettleTime before taking its IPs over, so that the nodes that held
// them withdraw first.
//
// Recomputing everything is deliberate: a DaemonSet sees at most a few
// thousand Services, a full pass costs milliseconds, and it leaves no
// per-object state to get out of step. Changes arriving during a pass are
// coalesced into one more pass.
//
// The Kubernetes API going away does not stop a working announcement: the
// informer caches keep the last known state, and membership changes still
// re-run the ownership with it, so a dead node's IPs still move.
package controller
