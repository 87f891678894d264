package controller

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/owner"
	"github.com/cloud-provider-baremetal/cloud-provider-baremetal/announcer/quorum"
)

// TestDecideSticky: with claim records, node1 coming back leaves its old
// IPs with the node that holds them, takes new ones, and takes nothing
// while a candidate's record is missing.
func TestDecideSticky(t *testing.T) {
	cloud := testCloud(t)
	nodes := []*corev1.Node{
		readyNode("node1", nil, "203.0.113.11"),
		readyNode("node2", nil, "203.0.113.12"),
		readyNode("node3", nil, "203.0.113.13"),
	}
	all := []string{"node1", "node2", "node3"}
	var services []*corev1.Service
	var held, fresh netip.Addr // node1's by rendezvous: one node2 took over, one new
	for i := range 11 {
		ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(200 + i)})
		services = append(services, lbService("ns", "svc"+string(rune('a'+i)), corev1.ServiceExternalTrafficPolicyCluster, ip.String()))
		if owner.Pick(ip, all) != "node1" {
			continue
		}
		switch {
		case !held.IsValid() && owner.Pick(ip, all[1:]) == "node2":
			held = ip
		case !fresh.IsValid():
			fresh = ip
		}
	}
	if !held.IsValid() || !fresh.IsValid() {
		t.Fatal("the pool has no two IPs of node1 for the test")
	}
	record := func(node string, ips ...netip.Addr) owner.Record { return owner.NewRecord(node, 1, 1, ips) }
	tests := []struct {
		name      string
		announced []netip.Addr
		claims    owner.Claims
		wantMine  map[netip.Addr]bool
		wantHeld  map[netip.Addr]string
		wantOwner map[netip.Addr]string
	}{
		{
			name:      "not sticky: node1 takes back what node2 holds",
			wantMine:  map[netip.Addr]bool{held: true, fresh: true},
			wantOwner: map[netip.Addr]string{held: "node1", fresh: "node1"},
		},
		{
			name:      "sticky, back with every record: node2 keeps its IP, node1 takes the new one",
			claims:    owner.Snapshot{"node2": record("node2", held), "node3": record("node3")},
			wantMine:  map[netip.Addr]bool{fresh: true},
			wantOwner: map[netip.Addr]string{held: "node2", fresh: "node1"},
		},
		{
			name:      "sticky, node2's record missing: node1 takes nothing yet",
			claims:    owner.Snapshot{"node3": record("node3")},
			wantHeld:  map[netip.Addr]string{held: heldClaims, fresh: heldClaims},
			wantOwner: map[netip.Addr]string{held: "node1", fresh: "node1"},
		},
		{
			name:      "sticky, both claim after a heal: the higher score, node1, keeps it",
			announced: []netip.Addr{held, fresh},
			claims:    owner.Snapshot{"node2": record("node2", held), "node3": record("node3")},
			wantMine:  map[netip.Addr]bool{held: true, fresh: true},
			wantOwner: map[netip.Addr]string{held: "node1", fresh: "node1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			announced := map[netip.Addr]announcer.Announcement{}
			for _, ip := range tt.announced {
				announced[ip] = announcer.Announcement{Pool: "default"}
			}
			decisions, mine := decide(snapshot{cloud: cloud, self: "node1", defaultInterface: "eth0", services: services, nodes: nodes,
				endpointNodes: func(*corev1.Service) map[string]bool { return nil },
				live:          map[string]bool{"node1": true, "node2": true, "node3": true},
				announced:     announced, claims: tt.claims})
			for _, ip := range []netip.Addr{held, fresh} {
				if _, ok := mine[ip]; ok != tt.wantMine[ip] {
					t.Errorf("%s announced: %v, want %v", ip, ok, tt.wantMine[ip])
				}
				if got := decisions[ip].held; got != tt.wantHeld[ip] {
					t.Errorf("%s held %q, want %q", ip, got, tt.wantHeld[ip])
				}
				if got := decisions[ip].owner; got != tt.wantOwner[ip] {
					t.Errorf("%s owner %s, want %s", ip, got, tt.wantOwner[ip])
				}
			}
		})
	}
}

// TestDecideRebalance: a pass allowed to rebalance gives up exactly one IP
// that the empty node wins by rendezvous, and only when every candidate's
// record is known; other passes give up nothing.
func TestDecideRebalance(t *testing.T) {
	cloud := testCloud(t)
	nodes := []*corev1.Node{
		readyNode("node1", nil, "203.0.113.11"),
		readyNode("node2", nil, "203.0.113.12"),
		readyNode("node3", nil, "203.0.113.13"),
	}
	// node2 and node3 hold all 11 IPs; node1 came back with none.
	var services []*corev1.Service
	announced := map[netip.Addr]announcer.Announcement{}
	var node3 []netip.Addr
	for i := range 11 {
		ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(200 + i)})
		services = append(services, lbService("ns", "svc"+string(rune('a'+i)), corev1.ServiceExternalTrafficPolicyCluster, ip.String()))
		if owner.Pick(ip, []string{"node2", "node3"}) == "node2" {
			announced[ip] = announcer.Announcement{Pool: "default"}
		} else {
			node3 = append(node3, ip)
		}
	}
	if len(announced) < 5 {
		t.Skipf("node2 holds only %d of 11 IPs; the test needs a load of at least 5", len(announced))
	}
	tests := []struct {
		name      string
		claims    owner.Snapshot
		rebalance bool
		want      int // IPs given up
	}{
		{name: "not this pass", claims: owner.Snapshot{"node1": owner.NewRecord("node1", 1, 1, nil), "node3": owner.NewRecord("node3", 1, 1, node3)}},
		{name: "this pass: one IP", rebalance: true, want: 1,
			claims: owner.Snapshot{"node1": owner.NewRecord("node1", 1, 1, nil), "node3": owner.NewRecord("node3", 1, 1, node3)}},
		{name: "this pass, node1's record unknown: none", rebalance: true,
			claims: owner.Snapshot{"node3": owner.NewRecord("node3", 1, 1, node3)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			decisions, mine := decide(snapshot{cloud: cloud, self: "node2", defaultInterface: "eth0", services: services, nodes: nodes,
				endpointNodes: func(*corev1.Service) map[string]bool { return nil },
				live:          map[string]bool{"node1": true, "node2": true, "node3": true},
				announced:     announced, claims: tt.claims, rebalance: tt.rebalance})
			var given []netip.Addr
			for ip := range announced {
				if _, ok := mine[ip]; ok {
					continue
				}
				given = append(given, ip)
				if decisions[ip].held != heldRebalance {
					t.Errorf("%s withdrawn with %q, want the rebalance reason", ip, decisions[ip].held)
				}
				if w := owner.Pick(ip, []string{"node1", "node2", "node3"}); w != "node1" {
					t.Errorf("%s given up, but its rendezvous winner is %s, not the empty node1", ip, w)
				}
			}
			if len(given) != tt.want {
				t.Errorf("gave up %v, want %d IPs", given, tt.want)
			}
		})
	}
}

// TestHeldClaims: with sticky owners, a holder that the split-brain guard
// silences keeps its claim (held, not announced) over the passes of its
// silence, so that a returning rendezvous winner takes nothing; it
// announces again when the guard lets it; and an announced claim of
// another node (the majority side after a partition) outranks the held
// one, which is then dropped.
func TestHeldClaims(t *testing.T) {
	cloud := testCloud(t)
	nodes := []*corev1.Node{
		readyNode("node1", nil, "203.0.113.11"),
		readyNode("node2", nil, "203.0.113.12"),
		readyNode("node3", nil, "203.0.113.13"),
	}
	all := []string{"node1", "node2", "node3"}
	var services []*corev1.Service
	var x netip.Addr // node1's by rendezvous, node2's while node1 is away
	for i := range 11 {
		ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(200 + i)})
		services = append(services, lbService("ns", "svc"+string(rune('a'+i)), corev1.ServiceExternalTrafficPolicyCluster, ip.String()))
		if !x.IsValid() && owner.Pick(ip, all) == "node1" && owner.Pick(ip, all[1:]) == "node2" {
			x = ip
		}
	}
	if !x.IsValid() {
		t.Fatal("the pool has no IP of node1 that node2 takes over")
	}
	silenced, free := &quorum.Verdict{Claim: false}, &quorum.Verdict{Claim: true}
	record := func(node string, ips ...netip.Addr) owner.Record { return owner.NewRecord(node, 1, 1, ips) }
	pass := func(self string, verdict *quorum.Verdict, announced []netip.Addr, held map[netip.Addr]bool, claims owner.Snapshot) (*ipDecision, bool, map[netip.Addr]bool) {
		ann := map[netip.Addr]announcer.Announcement{}
		for _, ip := range announced {
			ann[ip] = announcer.Announcement{Pool: "default"}
		}
		decisions, mine := decide(snapshot{cloud: cloud, self: self, defaultInterface: "eth0", services: services, nodes: nodes,
			endpointNodes: func(*corev1.Service) map[string]bool { return nil },
			live:          map[string]bool{"node1": true, "node2": true, "node3": true},
			verdict:       verdict, announced: ann, held: held, claims: claims})
		_, announces := mine[x]
		return decisions[x], announces, publishHeld(nil, decisions)
	}

	// node2 announces x; the guard silences it while node1 comes back.
	d, announces, held := pass("node2", silenced, []netip.Addr{x}, nil, owner.Snapshot{"node1": record("node1"), "node3": record("node3")})
	if d.owner != "node2" || announces || d.held != heldNoQuorum || !held[x] {
		t.Fatalf("silenced holder: owner %s, announces %v, held %q, holds claim %v; want node2 holding its claim without announcing", d.owner, announces, d.held, held[x])
	}
	// A later pass of the silence: it announces nothing, and still holds.
	d, _, held = pass("node2", silenced, nil, held, owner.Snapshot{"node1": record("node1"), "node3": record("node3")})
	if d.owner != "node2" || !held[x] {
		t.Fatalf("second silent pass: owner %s, holds claim %v; want node2 still holding", d.owner, held[x])
	}
	// node1, back with every record, sees the held claim and takes nothing.
	d, announces, _ = pass("node1", free, nil, nil, owner.Snapshot{"node2": record("node2").WithHeld([]netip.Addr{x}), "node3": record("node3")})
	if d.owner != "node2" || announces {
		t.Fatalf("returning node1: owner %s, announces %v; want node2's held claim to win", d.owner, announces)
	}
	// The guard lets node2 claim again: it announces x once more.
	d, announces, held = pass("node2", free, nil, held, owner.Snapshot{"node1": record("node1"), "node3": record("node3")})
	if d.owner != "node2" || !announces || held[x] {
		t.Fatalf("released holder: owner %s, announces %v, holds claim %v; want node2 announcing", d.owner, announces, held[x])
	}
	// Partition heal: node2 held x on the minority side while node1
	// announced it; node1's announced claim wins and node2 lets go.
	d, announces, held = pass("node2", silenced, nil, map[netip.Addr]bool{x: true}, owner.Snapshot{"node1": record("node1", x), "node3": record("node3")})
	if d.owner != "node1" || announces || held[x] {
		t.Fatalf("heal: owner %s, node2 announces %v, holds claim %v; want node1, and node2 dropping its held claim", d.owner, announces, held[x])
	}
	// A node never starts holding an IP it did not claim before.
	d, _, held = pass("node1", silenced, nil, nil, owner.Snapshot{"node2": record("node2"), "node3": record("node3")})
	if d.owner != "node1" || held[x] {
		t.Fatalf("silenced node1 without a claim: owner %s, holds claim %v; want no held claim", d.owner, held[x])
	}
}
