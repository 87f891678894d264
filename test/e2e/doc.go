// Package e2e holds the cluster the announcer's end-to-end suites
// (test/e2e/layer2, test/e2e/bgp) run in: one real kube-apiserver per test
// binary (package controlplane) with deploy/base applied and the announcer
// built once, and per test a lab (package lab) whose nodes have Node
// objects, an apiserver forward, the Services' IPs on lo and an HTTP
// server, plus a namespace for Services and the real baremetal-announcer
// in each node's network namespace, with its own RBAC identity.
//
// No cloud-controller-manager runs: the tests write the Service status IPs
// themselves, which is exactly the announcer's input, so a failure points
// at the announcer alone.
package e2e
