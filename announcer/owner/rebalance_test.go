package owner

import (
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
