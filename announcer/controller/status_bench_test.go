package controller

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

// BenchmarkDesiredStatus is what keeping the conditions adds to a pass
// over 5,000 layer2 Services on 3 and 100 nodes (decide's cost excluded):
// the conditions of the Services this node writes, built and compared in
// memory, with no API call unless one changed.
func BenchmarkDesiredStatus(b *testing.B) {
	cloud, err := config.Parse([]byte("address-pools:\n- name: big\n  protocol: layer2\n  addresses: [\"2001:db8:1::1:0/112\"]\n"))
	if err != nil {
		b.Fatal(err)
	}
	for _, nodes := range []int{3, 100} {
		b.Run(fmt.Sprintf("5000 services, %d nodes", nodes), func(b *testing.B) {
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
			s := snapshot{cloud: cloud, self: "node0", defaultInterface: "eth0", services: svcs, nodes: ns,
				endpointNodes: func(*corev1.Service) map[string]bool { return nil }, live: live}
			decisions, mine := decide(s)
			var written int
			for b.Loop() {
				written = len(desiredStatus(s, decisions, mine))
			}
			b.ReportMetric(float64(written), "services-written-by-node0")
		})
	}
}
