package owner

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestRelease(t *testing.T) {
	all := []string{"node1", "node2", "node3"}
	// x is node1's by rendezvous, node2's without node1.
	x := netip.MustParseAddr(ipWon(t, all, "node1", "node2"))
	y := netip.MustParseAddr(ipWon(t, all, "node3", "node2"))
	everyone := func(netip.Addr) []string { return all }
	tests := []struct {
		name   string
		self   string
		held   []netip.Addr
		loads  map[string]int
		cands  func(netip.Addr) []string
		want   netip.Addr
		wantOK bool
	}{
		{
			name: "balanced: nothing", self: "node2", held: []netip.Addr{x, y},
			loads: map[string]int{"node1": 10, "node2": 12, "node3": 11}, cands: everyone,
		},
		{
			name: "few IPs: 3 against 0 is below the minimum difference", self: "node2", held: []netip.Addr{x, y},
			loads: map[string]int{"node1": 0, "node2": 3, "node3": 3}, cands: everyone,
		},
		{
			name: "many IPs: 1,010 against 1,000 is below the factor", self: "node2", held: []netip.Addr{x, y},
			loads: map[string]int{"node1": 1000, "node2": 1010, "node3": 1000}, cands: everyone,
		},
		{
			name: "returned node with nothing: give it one", self: "node2", held: []netip.Addr{x},
			loads: map[string]int{"node1": 0, "node2": 20, "node3": 20}, cands: everyone,
			want: x, wantOK: true,
		},
		{
			name: "the least loaded winner first", self: "node2", held: []netip.Addr{y, x},
			loads: map[string]int{"node1": 0, "node2": 20, "node3": 5}, cands: everyone,
			want: x, wantOK: true,
		},
		{
			name: "an IP self wins by rendezvous is never released", self: "node1", held: []netip.Addr{x},
			loads: map[string]int{"node1": 20, "node2": 0, "node3": 0}, cands: everyone,
		},
		{
			name: "the winner must be a candidate", self: "node2", held: []netip.Addr{x},
			loads: map[string]int{"node1": 0, "node2": 20, "node3": 20},
			cands: func(netip.Addr) []string { return []string{"node2", "node3"} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Release(tt.self, tt.held, tt.cands, func(n string) int { return tt.loads[n] })
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("Release = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestRebalanceAfterReturn plays Release in the cluster model of
// sticky_test.go: after a return, each holder gives up at most one IP per
// round; every IP keeps exactly one announcer throughout, each release is
// one move, and the loads end within the thresholds.
func TestRebalanceAfterReturn(t *testing.T) {
	nodes := nodeNames(3)
	var ips []netip.Addr
	for i := range 300 {
		ips = append(ips, nthIP(i))
	}
	c := newCluster(nodes, ips)
	c.settle(t, nodes[1:]) // node1 comes back to find everything held
	c.settle(t, nodes)
	c.assertOneEach(t, "back")
	load := func(n string) int { return len(c.announced[n]) }
	moves := 0
	for round := range 1000 {
		released := 0
		for _, n := range nodes {
			var held []netip.Addr
			for ip := range c.announced[n] {
				held = append(held, ip)
			}
			if ip, ok := Release(n, held, func(netip.Addr) []string { return nodes }, load); ok {
				delete(c.announced[n], ip)
				released++
			}
		}
		if released == 0 {
			break
		}
		moves += released
		c.settle(t, nodes)
		c.assertOneEach(t, fmt.Sprintf("round %d", round))
	}
	loads := []int{load("node1"), load("node2"), load("node3")}
	for _, a := range loads {
		for _, b := range loads {
			if a-b >= RebalanceMin && a*RebalanceFactorDen > b*RebalanceFactorNum {
				t.Errorf("loads %v still unbalanced beyond the thresholds", loads)
			}
		}
	}
	t.Logf("loads after %d moves: %v", moves, loads)
}
