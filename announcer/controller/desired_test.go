package controller

import (
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/eligibility"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/owner"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/config"
)

const testConfig = `
address-pools:
- name: default
  protocol: layer2
  addresses:
  - 203.0.113.200-203.0.113.210
  - 2001:db8:1::200-2001:db8:1::20f
- name: pinned
  protocol: layer2
  interfaces: [eth1, eth2]
  node-selectors:
  - match-labels:
      rack: a
  addresses:
  - 192.0.2.0/28
- name: routed
  protocol: bgp
  addresses:
  - 198.51.100.0/24
`

func testCloud(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func readyNode(name string, lbls map[string]string, ip string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}},
		},
	}
}

func lbService(ns, name string, etp corev1.ServiceExternalTrafficPolicy, ips ...string) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(ns + "-" + name)},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: etp},
	}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

// ownerAmong is owner.Pick, spelt out so the tests say what they expect.
func ownerAmong(ip string, nodes ...string) string {
	return owner.Pick(netip.MustParseAddr(ip), nodes)
}

// decideNodes are the nodes TestDecide and TestDecideBGP decide among:
// node1 and node3 in rack a and node2 in rack b, all Ready; node4, not
// Ready, and node5, labelled to be excluded, in no rack.
func decideNodes() (ready []*corev1.Node, notReady, excluded *corev1.Node) {
	ready = []*corev1.Node{
		readyNode("node1", map[string]string{"rack": "a"}, "203.0.113.11"),
		readyNode("node2", map[string]string{"rack": "b"}, "203.0.113.12"),
		readyNode("node3", map[string]string{"rack": "a"}, "203.0.113.13"),
	}
	notReady = readyNode("node4", nil, "203.0.113.14")
	notReady.Status.Conditions[0].Status = corev1.ConditionFalse
	excluded = readyNode("node5", map[string]string{eligibility.ExcludeLabel: ""}, "203.0.113.15")
	return ready, notReady, excluded
}

// endpointsOn is a snapshot's endpointNodes: the nodes with a ready
// endpoint of each Service, by Service name.
func endpointsOn(m map[string][]string) func(*corev1.Service) map[string]bool {
	return func(s *corev1.Service) map[string]bool {
		out := map[string]bool{}
		for _, n := range m[s.Name] {
			out[n] = true
		}
		return out
	}
}

func TestDecide(t *testing.T) {
	cloud := testCloud(t)
	nodes, notReady, excluded := decideNodes()
	allLive := map[string]bool{"node1": true, "node2": true, "node3": true, "node4": true, "node5": true}
	noEndpoints := func(*corev1.Service) map[string]bool { return nil }
	cluster, local := corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal

	tests := []struct {
		name      string
		services  []*corev1.Service
		nodes     []*corev1.Node
		live      map[string]bool
		endpoints func(*corev1.Service) map[string]bool
		defIface  string
		// want maps each decided IP to its owner ("" for none).
		want map[string]string
		// wantIfaces are the interfaces of the IPs self (the owner of
		// each IP in turn) announces.
		wantIfaces map[string][]string
	}{
		{
			name:     "layer2 IPv4 and IPv6 go to their rendezvous owner",
			services: []*corev1.Service{lbService("ns", "web", cluster, "203.0.113.200", "2001:db8:1::200")},
			want: map[string]string{
				"203.0.113.200":   ownerAmong("203.0.113.200", "node1", "node2", "node3"),
				"2001:db8:1::200": ownerAmong("2001:db8:1::200", "node1", "node2", "node3"),
			},
			wantIfaces: map[string][]string{"203.0.113.200": {"eth0"}, "2001:db8:1::200": {"eth0"}},
		},
		{
			name: "only layer2 pool IPs of our LoadBalancer Services (no class) are decided",
			services: []*corev1.Service{
				lbService("ns", "bgp", cluster, "198.51.100.7"),
				lbService("ns", "outside", cluster, "192.0.2.100"),
				lbService("ns", "garbage", cluster, "not-an-ip"),
				{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "was-lb"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP},
					Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.201"}}}}},
				{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "foreign"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr("example.com/other")},
					Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.202"}}}}},
			},
			want: map[string]string{},
		},
		{
			name:     "dead members never own",
			services: []*corev1.Service{lbService("ns", "web", cluster, "203.0.113.200")},
			live:     map[string]bool{"node2": true},
			want:     map[string]string{"203.0.113.200": "node2"},
		},
		{
			name:     "not ready and excluded nodes never own",
			services: []*corev1.Service{lbService("ns", "web", cluster, "203.0.113.200", "203.0.113.201", "203.0.113.202")},
			nodes:    []*corev1.Node{notReady, excluded},
			want:     map[string]string{"203.0.113.200": "", "203.0.113.201": "", "203.0.113.202": ""},
		},
		{
			name:      "Local: only nodes with a ready endpoint",
			services:  []*corev1.Service{lbService("ns", "web", local, "203.0.113.200")},
			endpoints: endpointsOn(map[string][]string{"web": {"node2"}}),
			want:      map[string]string{"203.0.113.200": "node2"},
		},
		{
			name:     "Local without endpoints: nobody",
			services: []*corev1.Service{lbService("ns", "web", local, "203.0.113.200")},
			want:     map[string]string{"203.0.113.200": ""},
		},
		{
			name:       "pool node selector and interfaces",
			services:   []*corev1.Service{lbService("ns", "web", cluster, "192.0.2.5")},
			want:       map[string]string{"192.0.2.5": ownerAmong("192.0.2.5", "node1", "node3")},
			wantIfaces: map[string][]string{"192.0.2.5": {"eth1", "eth2"}},
		},
		{
			name: "shared IP: a node that suits both Local Services",
			services: []*corev1.Service{
				lbService("ns", "tcp", local, "203.0.113.200"),
				lbService("ns", "udp", local, "203.0.113.200"),
			},
			endpoints: endpointsOn(map[string][]string{"tcp": {"node1", "node3"}, "udp": {"node3", "node2"}}),
			want:      map[string]string{"203.0.113.200": "node3"},
		},
		{
			name: "shared IP: Local and Cluster",
			services: []*corev1.Service{
				lbService("ns", "tcp", cluster, "203.0.113.200"),
				lbService("ns", "udp", local, "203.0.113.200"),
			},
			endpoints: endpointsOn(map[string][]string{"udp": {"node2"}}),
			want:      map[string]string{"203.0.113.200": "node2"},
		},
		{
			name: "shared IP: no common node, any of them",
			services: []*corev1.Service{
				lbService("ns", "tcp", local, "203.0.113.200"),
				lbService("ns", "udp", local, "203.0.113.200"),
			},
			endpoints: endpointsOn(map[string][]string{"tcp": {"node1"}, "udp": {"node2"}}),
			want:      map[string]string{"203.0.113.200": ownerAmong("203.0.113.200", "node1", "node2")},
		},
		{
			name:     "default interface unknown: decided but not announced",
			services: []*corev1.Service{lbService("ns", "web", cluster, "203.0.113.200")},
			defIface: "-",
			want:     map[string]string{"203.0.113.200": ownerAmong("203.0.113.200", "node1", "node2", "node3")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live := tt.live
			if live == nil {
				live = allLive
			}
			eps := tt.endpoints
			if eps == nil {
				eps = noEndpoints
			}
			defIface := "eth0"
			if tt.defIface == "-" {
				defIface = ""
			}
			allNodes := append(slices.Clone(nodes), tt.nodes...)
			if tt.nodes != nil {
				allNodes = tt.nodes
			}
			// Decide from every node's point of view: each IP must be in
			// exactly the owner's announcements.
			for _, self := range []string{"node1", "node2", "node3", "node4", "node5"} {
				decisions, mine := decide(snapshot{
					cloud: cloud, self: self, defaultInterface: defIface,
					services: tt.services, nodes: allNodes, endpointNodes: eps, live: live,
				})
				got := map[string]string{}
				for ip, d := range decisions {
					got[ip.String()] = d.owner
				}
				if len(got) != len(tt.want) {
					t.Fatalf("%s decided %v, want %v", self, got, tt.want)
				}
				for ip, w := range tt.want {
					if got[ip] != w {
						t.Errorf("%s: owner of %s = %q, want %q", self, ip, got[ip], w)
					}
					an, announced := mine[netip.MustParseAddr(ip)]
					if wantAnnounced := w == self && defIface != "" || w == self && tt.wantIfaces[ip] != nil; announced != wantAnnounced {
						t.Errorf("%s announces %s: %v, want %v", self, ip, announced, wantAnnounced)
					}
					if announced && tt.wantIfaces[ip] != nil && !slices.Equal(an.Interfaces, tt.wantIfaces[ip]) {
						t.Errorf("%s announces %s on %v, want %v", self, ip, an.Interfaces, tt.wantIfaces[ip])
					}
				}
			}
		})
	}
}

func TestDecideSharedIPListsServices(t *testing.T) {
	cloud := testCloud(t)
	nodes := []*corev1.Node{readyNode("node1", nil, "203.0.113.11")}
	_, mine := decide(snapshot{
		cloud: cloud, self: "node1", defaultInterface: "eth0",
		services: []*corev1.Service{
			lbService("b", "udp", corev1.ServiceExternalTrafficPolicyCluster, "203.0.113.200"),
			lbService("a", "tcp", corev1.ServiceExternalTrafficPolicyCluster, "203.0.113.200"),
		},
		nodes: nodes, endpointNodes: func(*corev1.Service) map[string]bool { return nil },
		live: map[string]bool{"node1": true},
	})
	want := announcer.Announcement{Pool: "default", Interfaces: []string{"eth0"}, Services: []types.NamespacedName{{Namespace: "a", Name: "tcp"}, {Namespace: "b", Name: "udp"}}}
	got := mine[netip.MustParseAddr("203.0.113.200")]
	if got.Pool != want.Pool || !slices.Equal(got.Interfaces, want.Interfaces) || !slices.Equal(got.Services, want.Services) {
		t.Errorf("announcement %+v, want %+v", got, want)
	}
}

func TestDecideSpreadsAndMovesOnlyDeadNodesIPs(t *testing.T) {
	cloud := testCloud(t)
	nodes := []*corev1.Node{
		readyNode("node1", nil, "203.0.113.11"),
		readyNode("node2", nil, "203.0.113.12"),
		readyNode("node3", nil, "203.0.113.13"),
	}
	var services []*corev1.Service
	for i := range 11 {
		services = append(services, lbService("ns", "svc"+string(rune('a'+i)), corev1.ServiceExternalTrafficPolicyCluster, netip.AddrFrom4([4]byte{203, 0, 113, byte(200 + i)}).String()))
	}
	snap := func(live ...string) map[netip.Addr]*ipDecision {
		l := map[string]bool{}
		for _, n := range live {
			l[n] = true
		}
		d, _ := decide(snapshot{cloud: cloud, self: "node1", defaultInterface: "eth0", services: services, nodes: nodes,
			endpointNodes: func(*corev1.Service) map[string]bool { return nil }, live: l})
		return d
	}
	before, after := snap("node1", "node2", "node3"), snap("node1", "node3")
	owners := map[string]int{}
	for ip, d := range before {
		owners[d.owner]++
		if d.owner != "node2" && after[ip].owner != d.owner {
			t.Errorf("%s moved from %s to %s when node2 died", ip, d.owner, after[ip].owner)
		}
		if after[ip].owner == "node2" {
			t.Errorf("%s still owned by dead node2", ip)
		}
	}
	if len(owners) != 3 {
		t.Errorf("11 IPs over 3 nodes went to %v", owners)
	}
}
