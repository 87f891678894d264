package owner

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func TestPick(t *testing.T) {
	tests := []struct {
		name       string
		ip         string
		candidates []string
		want       string
	}{
		{name: "no candidates", ip: "203.0.113.200", candidates: nil, want: ""},
		{name: "one candidate", ip: "203.0.113.200", candidates: []string{"node1"}, want: "node1"},
		// The next rows pin the score function: if they change, announcers
		// of two versions disagree about owners during a rolling update.
		{name: "three nodes, v4", ip: "203.0.113.200", candidates: []string{"node1", "node2", "node3"}, want: pinned(t, "203.0.113.200")},
		{name: "three nodes, v6", ip: "2001:db8:1::200", candidates: []string{"node1", "node2", "node3"}, want: pinned(t, "2001:db8:1::200")},
		{name: "duplicates do not matter", ip: "203.0.113.200", candidates: []string{"node3", "node1", "node3", "node2", "node1"}, want: pinned(t, "203.0.113.200")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Pick(netip.MustParseAddr(tt.ip), tt.candidates); got != tt.want {
				t.Errorf("Pick(%s, %v) = %q, want %q", tt.ip, tt.candidates, got, tt.want)
			}
		})
	}
}

// pinned is the owner among node1..3, as recorded from the scores in
// TestScoreIsStable.
func pinned(t *testing.T, ip string) string {
	t.Helper()
	want := map[string]string{
		"203.0.113.200":   "node1",
		"2001:db8:1::200": "node3",
	}[ip]
	if want == "" {
		t.Fatalf("no pinned owner for %s", ip)
	}
	return want
}

// TestScoreIsStable pins the score function to recorded values: FNV-1a 64
// plus murmur3 fmix64 of the node name, xor the same of the 16-byte IP,
// fmix64 again. If this test fails, announcers of two versions would
// disagree about owners during a rolling update.
func TestScoreIsStable(t *testing.T) {
	tests := []struct {
		ip, node string
		want     uint64
	}{
		{"203.0.113.200", "node1", 0xdb3bbc5e0c523fe8},
		{"203.0.113.200", "node2", 0x96683fde09974274},
		{"203.0.113.200", "node3", 0x111df8395a09981a},
		{"2001:db8:1::200", "node1", 0x6bf038bbdc9ea5e6},
		{"2001:db8:1::200", "node2", 0x1f4925cc34de65b8},
		{"2001:db8:1::200", "node3", 0xcc1b3a0fd64d885e},
	}
	for _, tt := range tests {
		if got := score(hashString(tt.node), hashIP(netip.MustParseAddr(tt.ip))); got != tt.want {
			t.Errorf("score(%s, %s) = %#x, want %#x", tt.node, tt.ip, got, tt.want)
		}
	}
}

func TestPickIgnoresOrder(t *testing.T) {
	nodes := []string{"a", "b", "c", "d", "e", "f", "g"}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		want := Pick(ip, nodes)
		shuffled := slices.Clone(nodes)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := Pick(ip, shuffled); got != want {
			t.Fatalf("Pick(%s) depends on order: %q vs %q", ip, got, want)
		}
	}
}

func TestPickMappedEqualsV4(t *testing.T) {
	nodes := []string{"node1", "node2", "node3", "node4"}
	for i := range 64 {
		v4 := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		mapped := netip.AddrFrom16(v4.As16())
		if a, b := Pick(v4, nodes), Pick(mapped, nodes); a != b {
			t.Fatalf("%s → %q but %s → %q", v4, a, mapped, b)
		}
	}
}

// TestPickSpreads checks that IPs are spread roughly evenly: with 3 nodes
// and 3000 consecutive IPs, every node owns between 25% and 42%.
func TestPickSpreads(t *testing.T) {
	for _, n := range []int{2, 3, 5, 10} {
		nodes := nodeNames(n)
		count := map[string]int{}
		const ips = 3000
		for i := range ips {
			count[Pick(nthIP(i), nodes)]++
		}
		expect := float64(ips) / float64(n)
		for _, node := range nodes {
			if c := float64(count[node]); c < 0.75*expect || c > 1.25*expect {
				t.Errorf("%d nodes: %s owns %v of %d IPs, want about %.0f", n, node, c, ips, expect)
			}
		}
	}
}

// TestRemovingANodeMovesOnlyItsIPs is the property that makes failover
// cheap: when a node leaves, every IP it did not own keeps its owner, and
// its own IPs are spread over the others.
func TestRemovingANodeMovesOnlyItsIPs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 50 {
		nodes := nodeNames(2 + r.IntN(9))
		gone := nodes[r.IntN(len(nodes))]
		rest := slices.DeleteFunc(slices.Clone(nodes), func(s string) bool { return s == gone })
		moved := map[string]int{}
		for i := range 500 {
			ip := nthIP(r.IntN(1 << 20))
			if i%2 == 1 {
				ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i), 14: byte(i >> 8), 13: byte(trial)})
			}
			before, after := Pick(ip, nodes), Pick(ip, rest)
			if before != gone && after != before {
				t.Fatalf("trial %d: removing %s moved %s from %s to %s", trial, gone, ip, before, after)
			}
			if before == gone {
				moved[after]++
			}
		}
		if len(rest) >= 2 && len(moved) < 2 && sum(moved) > 20 {
			t.Errorf("trial %d: all of %s's IPs went to one node: %v", trial, gone, moved)
		}
	}
}

// TestAddingANodeTakesOnlyIPs checks the converse: a joining node only
// takes IPs, it never moves IPs between the existing nodes.
func TestAddingANodeTakesOnlyIPs(t *testing.T) {
	nodes := nodeNames(4)
	more := append(slices.Clone(nodes), "node-new")
	for i := range 2000 {
		ip := nthIP(i)
		before, after := Pick(ip, nodes), Pick(ip, more)
		if after != before && after != "node-new" {
			t.Fatalf("adding node-new moved %s from %s to %s", ip, before, after)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	nodes := nodeNames(100)
	ip := netip.MustParseAddr("203.0.113.200")
	for b.Loop() {
		Pick(ip, nodes)
	}
}

func nodeNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node%d", i+1)
	}
	return out
}

func nthIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func sum(m map[string]int) int {
	s := 0
	for _, v := range m {
		s += v
	}
	return s
}
