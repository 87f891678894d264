package controller

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// BenchmarkDecide is one pass over 5,000 layer2 Services on 3 and 100
// nodes: the cost paid after every coalesced change.
func BenchmarkDecide(b *testing.B) {
	for _, nodes := range []int{3, 100} {
		b.Run(fmt.Sprintf("5000 services, %d nodes", nodes), func(b *testing.B) {
			s := bigSnapshot(b, nodes)
			for b.Loop() {
				decide(s)
			}
		})
	}
}

// bigSnapshot is what the benchmarks pass over, as node0 sees it: 5,000
// layer2 Services of one IPv6 pool, with externalTrafficPolicy: Cluster,
// on the given number of live, Ready nodes.
func bigSnapshot(b *testing.B, nodes int) snapshot {
	b.Helper()
	cloud, err := config.Parse([]byte("address-pools:\n- name: big\n  protocol: layer2\n  addresses: [\"2001:db8:1::1:0/112\"]\n"))
	if err != nil {
		b.Fatal(err)
	}
	var ns []*corev1.Node
	live := map[string]bool{}
	for i := range nodes {
		name := fmt.Sprintf("node%d", i)
		ns = append(ns, readyNode(name, nil, "203.0.113.1"))
		live[name] = true
	}
	var svcs []*corev1.Service
	for i := range 5000 {
		a := netip.MustParseAddr("2001:db8:1::1:0").As16()
		a[14], a[15] = byte(i>>8), byte(i)
		svcs = append(svcs, lbService("ns", fmt.Sprint("s", i), corev1.ServiceExternalTrafficPolicyCluster, netip.AddrFrom16(a).String()))
	}
	return snapshot{cloud: cloud, self: "node0", defaultInterface: "eth0", services: svcs, nodes: ns,
		endpointNodes: func(*corev1.Service) map[string]bool { return nil }, live: live}
}
