package bgp

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestServiceRoutedByECMP is the user's story: a Service gets IPs from a
// bgp pool; the router learns a route to each from every node, installs
// it with all three as equal-cost next hops, and a request from the
// router to the VIP reaches a node's server. IPv4 and IPv6.
func TestServiceRoutedByECMP(t *testing.T) {
	tb := newTestbed(t, options{})
	tb.startAll()
	tb.createService("web", corev1.ServiceExternalTrafficPolicyCluster, "198.51.100.10", "2001:db8:2::10")
	for _, ip := range []string{"198.51.100.10", "2001:db8:2::10"} {
		took := tb.waitRoute(ip, "node1", "node2", "node3")
		t.Logf("%s routed via the 3 nodes %v after the status write", ip, took)
		seen := map[string]int{}
		for range 12 {
			node, err := tb.get(ip)
			if err != nil {
				t.Fatalf("GET %s from the router: %v", ip, err)
			}
			seen[node]++
		}
		t.Logf("GET %s from the router, 12 connections: answered by %v", ip, seen)
	}
}
