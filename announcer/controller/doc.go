// Package controller decides which load-balancer IPs this node announces
// and keeps the announcers in step with the cluster.
//
// It watches Services (their status IPs and externalTrafficPolicy),
// EndpointSlices and Nodes, and listens to membership changes. On any
// change it recomputes the whole desired state from its caches, in one
// goroutine: for every IP in a Service's status that lies in a layer2
// pool, the eligible nodes (package eligibility) intersected with the live
// announcers (package membership), and the owner among them (package
// owner). The IPs this node owns go to the layer2 Announcer.
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
