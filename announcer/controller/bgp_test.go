package controller

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

const bgpTestConfig = `
peers:
- peer-address: 203.0.113.1
  peer-asn: 64512
  my-asn: 64513
- peer-address: 203.0.113.2
  peer-asn: 64512
  my-asn: 64513
  password-secret: {name: bgp-password}
  node-selectors:
  - match-labels: {rack: a}
- peer-address: 2001:db8:1::1
  peer-asn: 64512
  my-asn: 64513
  password: literal
  node-selectors:
  - match-expressions:
    - {key: rack, operator: In, values: [b]}
address-pools:
- name: routed
  protocol: bgp
  addresses: [198.51.100.0/24, 2001:db8:2::/120]
  bgp-advertisements:
  - communities: ["65000:1"]
  - aggregation-length: 24
- name: rack-a
  protocol: bgp
  addresses: [192.0.2.0/24]
  node-selectors:
  - match-labels: {rack: a}
- name: lan
  protocol: layer2
  addresses: [203.0.113.200-203.0.113.210]
`

func bgpCloud(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(bgpTestConfig))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestDecideBGP checks which bgp IPs each node announces: every eligible
// node, with no owner and no liveness.
func TestDecideBGP(t *testing.T) {
	cloud := bgpCloud(t)
	nodes, notReady, excluded := decideNodes()
	cluster, local := corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal
	clusterIP := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "was-lb"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "198.51.100.99"}}}}}

	tests := []struct {
		name      string
		services  []*corev1.Service
		endpoints func(*corev1.Service) map[string]bool
		// want maps each node to the IPs it announces.
		want map[string][]string
	}{{
		name:     "every eligible node announces, IPv4 and IPv6, whatever the members",
		services: []*corev1.Service{lbService("ns", "web", cluster, "198.51.100.10", "2001:db8:2::10")},
		want: map[string][]string{
			"node1": {"198.51.100.10", "2001:db8:2::10"}, "node2": {"198.51.100.10", "2001:db8:2::10"},
			"node3": {"198.51.100.10", "2001:db8:2::10"}, "node4": nil, "node5": nil,
		},
	}, {
		name:     "the pool's node selector",
		services: []*corev1.Service{lbService("ns", "web", cluster, "192.0.2.10")},
		want:     map[string][]string{"node1": {"192.0.2.10"}, "node2": nil, "node3": {"192.0.2.10"}},
	}, {
		name:      "Local: only nodes with a ready endpoint",
		services:  []*corev1.Service{lbService("ns", "web", local, "198.51.100.10")},
		endpoints: endpointsOn(map[string][]string{"web": {"node2", "node4"}}),
		want:      map[string][]string{"node1": nil, "node2": {"198.51.100.10"}, "node3": nil, "node4": nil},
	}, {
		name:     "Local without endpoints: nobody",
		services: []*corev1.Service{lbService("ns", "web", local, "198.51.100.10")},
		want:     map[string][]string{"node1": nil, "node2": nil, "node3": nil},
	}, {
		name: "shared IP: the nodes that suit both Local Services",
		services: []*corev1.Service{
			lbService("ns", "tcp", local, "198.51.100.10"),
			lbService("ns", "udp", local, "198.51.100.10"),
		},
		endpoints: endpointsOn(map[string][]string{"tcp": {"node1", "node3"}, "udp": {"node3", "node2"}}),
		want:      map[string][]string{"node1": nil, "node2": nil, "node3": {"198.51.100.10"}},
	}, {
		name: "not bgp pools, not LoadBalancer, not ours: nothing",
		services: []*corev1.Service{
			lbService("ns", "l2", cluster, "203.0.113.200"),
			lbService("ns", "outside", cluster, "192.168.1.1"),
			clusterIP,
		},
		want: map[string][]string{"node1": nil, "node2": nil, "node3": nil},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eps := tt.endpoints
			if eps == nil {
				eps = func(*corev1.Service) map[string]bool { return nil }
			}
			for self, want := range tt.want {
				mine := decideBGP(snapshot{
					cloud: cloud, self: self, services: tt.services, endpointNodes: eps,
					nodes: append(slices.Clone(nodes), notReady, excluded),
				})
				var got []string
				for ip, an := range mine {
					got = append(got, ip.String())
					pool := poolOf(cloud, ip)
					if an.Pool != pool.Name || len(an.Advertisements) != len(pool.BGPAdvertisements) || len(an.Services) == 0 {
						t.Errorf("%s: announcement of %s = %+v, want pool %s with its advertisements and Services", self, ip, an, pool.Name)
					}
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("%s announces %v, want %v", self, got, want)
				}
			}
		})
	}
}
